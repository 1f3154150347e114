//! The storage port. The application is generic over [`Store`]; `quorum-store-sqlite` and
//! `quorum-store-postgres` implement it, and `conformance` (behind the feature of that name,
//! which the backends turn on for their tests) holds the one test suite both run.
//!
//! The port is cut along Quorum's contexts: one trait per context, each in the file of that
//! name with its records, plus the cross-cutting job queue (`jobs.rs`) and webhooks' outbox (`webhooks.rs`); [`Store`] is their
//! union.
//!
//! Times are Unix milliseconds passed in by the caller (`now`), so storage never reads a clock
//! and tests control expiry exactly.

#[cfg(feature = "conformance")]
pub mod conformance;

mod accounts;
mod evaluation;
mod jobs;
mod projects;
mod quality;
mod standards;
mod tallies;
mod webhooks;
mod work;

use async_trait::async_trait;

pub use accounts::*;
pub use evaluation::*;
pub use jobs::*;
pub use projects::*;
pub use quality::*;
pub use standards::*;
pub use tallies::*;
pub use webhooks::*;
pub use work::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness or state rule refused the write; the message says which.
    #[error("{0}")]
    Conflict(String),
    /// The lease has expired and its slot was taken by someone else.
    #[error("the lease expired and the item has since been given to other raters")]
    LeaseExpired,
    #[error("the store is shutting down")]
    Closed,
    /// The database cannot be reached (down, restarting, failing over): the request did
    /// nothing it acknowledged, and may be tried again shortly.
    #[error("the database cannot be reached: {0}")]
    Unreachable(String),
    /// The database's storage is full: nothing of the write was stored.
    #[error("the server's storage is full")]
    StorageFull,
    /// The database's filesystem has turned read-only (the kernel does so on a disk error):
    /// nothing of the write was stored, and nothing will be until an operator repairs it.
    #[error("the server's storage has become read-only")]
    StorageReadOnly,
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Leases this process has marked expired (a rater who took an item and neither answered nor
/// skipped it in time), on any store: the `quorum_leases_expired_total` counter.
pub static LEASES_EXPIRED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts `n` leases marked expired.
pub fn count_expired(n: u64) {
    LEASES_EXPIRED.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

#[async_trait]
pub trait Store:
    Accounts
    + Projects
    + Work
    + Quality
    + Evaluation
    + Standards
    + Tallies
    + Jobs
    + Webhooks
    + Send
    + Sync
    + 'static
{
    /// Waits until every acknowledged write is durable and stops accepting new ones.
    async fn close(&self);

    /// The number of rows in each of [`TABLES`], in that order, read in one snapshot (what a
    /// restore reports to be checked against the instance it came from).
    async fn row_counts(&self) -> Result<Vec<(&'static str, i64)>>;

    /// Whether the database answers a trivial query (the readiness check).
    async fn ping(&self) -> Result<()>;

    /// Webhook deliveries waiting to be made (the outbox), and when the oldest of them fell
    /// due (Unix milliseconds), if any.
    async fn outbox_backlog(&self) -> Result<(i64, Option<i64>)>;

    /// How far behind its primary this database is, in milliseconds, when it is a read
    /// replica (0 when it has replayed everything it has received); `None` when it is not one.
    async fn replay_lag_ms(&self) -> Result<Option<i64>> {
        Ok(None)
    }
}

/// Every table Quorum keeps, on either backend.
pub const TABLES: &[&str] = &[
    "users",
    "api_tokens",
    "projects",
    "members",
    "items",
    "leases",
    "responses",
    "models",
    "generations",
    "battles",
    "rater_states",
    "rater_events",
    "qualifications",
    "reviews",
    "standard_runs",
    "instance_settings",
    "jobs",
    "webhooks",
    "webhook_events",
    "webhook_deliveries",
    "tally_queue",
    "tallies",
    "item_counts",
];
