//! Tallies: a project's answers folded into kept aggregates as they arrive, so the dashboard
//! and the agreement report read one record instead of every response.
//!
//! Every stored response is queued in the transaction that stores it (a trigger, whatever
//! wrote it). A fold reads, in one snapshot, the project's tally, a batch of queued responses
//! and every response of their items ([`Tallies::tally_batch`]); the application computes the
//! new tally, and [`Tallies::save_tally`] stores it and takes the folded responses off the queue
//! in one transaction, only if no other fold saved in between (the version).

use async_trait::async_trait;
use serde_json::Value;

use crate::Result;

/// A response as a tally reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct TallyResponse {
    pub id: i64,
    pub user_id: i64,
    pub answers: Value,
    pub time_spent_ms: i64,
    pub created_at: i64,
}

/// An item with queued responses: every response it has in the snapshot, oldest first, and
/// which of them are queued (not yet in the tally).
#[derive(Debug, Clone, PartialEq)]
pub struct TallyItem {
    pub item_id: i64,
    pub responses: Vec<TallyResponse>,
    pub queued: Vec<i64>,
}

/// What one fold reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TallyBatch {
    /// The saved tally's version (0: none saved yet) and its data.
    pub version: i64,
    pub data: Option<String>,
    pub items: Vec<TallyItem>,
    /// Queued responses of the batch's items that no longer exist (nothing to fold; they
    /// only leave the queue).
    pub gone: Vec<i64>,
}

impl TallyBatch {
    /// The queued responses this batch takes off the queue.
    pub fn queued(&self) -> Vec<i64> {
        self.items
            .iter()
            .flat_map(|i| i.queued.iter().copied())
            .chain(self.gone.iter().copied())
            .collect()
    }
}

#[async_trait]
pub trait Tallies {
    /// In one snapshot: the project's tally, and the first `limit` items (by id) with queued
    /// responses, with all their responses and which of them are queued.
    async fn tally_batch(&self, project_id: i64, limit: i64) -> Result<TallyBatch>;
    /// Saves the tally as `version + 1` and takes `folded` off the queue, in one transaction,
    /// only if the saved version is still `version`; `false` (and nothing written) otherwise.
    async fn save_tally(
        &self,
        project_id: i64,
        version: i64,
        data: String,
        folded: Vec<i64>,
        now: i64,
    ) -> Result<bool>;
    /// The project's tally as saved: its version, data and when it was saved.
    async fn tally(&self, project_id: i64) -> Result<Option<(i64, String, i64)>>;
    /// How many responses wait to be folded in the project (counting stops at `cap`).
    async fn tally_backlog(&self, project_id: i64, cap: i64) -> Result<i64>;
    /// The projects with responses waiting to be folded.
    async fn tally_pending(&self) -> Result<Vec<i64>>;
    /// When the oldest response still waiting to be folded (any project) was stored.
    async fn tally_oldest(&self) -> Result<Option<i64>>;
}
