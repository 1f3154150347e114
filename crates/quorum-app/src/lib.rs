//! Use-cases: every action a person or program can take, with its authorisation rule.
//!
//! The HTTP handlers and CLI commands parse input, call one function here and present the
//! result. Nothing here knows about HTTP, HTML or terminals.

pub mod auth;
mod error;
mod projects;
mod work;

use std::sync::Arc;

pub use error::AppError;
pub use projects::{
    AddMember, CreateProject, ImportFormat, ImportOutcome, ParsedRow, Rejected, csv_items,
    parse_items,
};
pub use work::{Assignment, ItemView, SubmitAnswers};

use quorum_store::{Store, User};

/// The clock, injected so tests can move time.
pub trait Clock: Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now(&self) -> i64;
}

#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The application: a store and a clock. Cheap to clone.
pub struct App<S> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
}

impl<S> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
        }
    }
}

impl<S> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl<S: Store> App<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
}
