//! Read replicas for analytics: dashboards, statistics, consensus, agreement, reliability,
//! exports and leaderboards can be read from streaming standbys, so reading a whole project
//! never competes with raters on the primary. The rater loop, every write and every
//! authorisation check (project and membership) use the primary.
//!
//! Each replica's replay lag is asked every second ([`App::probe_replicas`]); an analysis goes
//! to the next replica (in turn) that answered and is at most `max_lag_ms` behind, and to the
//! primary when none is. The lag of the replica an answer was read from is reported with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use quorum_store::Store;

use crate::App;

/// Lag of a replica that did not answer its last probe (or has not been asked yet).
const DOWN: i64 = -1;

struct Replica<S> {
    name: String,
    store: Arc<S>,
    lag_ms: AtomicI64,
}

pub(crate) struct Replicas<S> {
    list: Vec<Replica<S>>,
    turn: AtomicUsize,
    max_lag_ms: i64,
}

impl<S> Default for Replicas<S> {
    fn default() -> Self {
        Self {
            list: Vec::new(),
            turn: AtomicUsize::new(0),
            max_lag_ms: 0,
        }
    }
}

impl<S: Store> App<S> {
    /// Reads analyses from these replicas (name for logs, store) while they are at most
    /// `max_lag_ms` behind.
    pub fn with_replicas(mut self, replicas: Vec<(String, Arc<S>)>, max_lag_ms: i64) -> Self {
        self.replicas = Arc::new(Replicas {
            list: replicas
                .into_iter()
                .map(|(name, store)| Replica {
                    name,
                    store,
                    lag_ms: AtomicI64::new(DOWN),
                })
                .collect(),
            turn: AtomicUsize::new(0),
            max_lag_ms,
        });
        self
    }

    /// Asks every replica how far behind it is (the server does this every second).
    pub async fn probe_replicas(&self) {
        for replica in &self.replicas.list {
            let lag = match replica.store.replay_lag_ms().await {
                // A database that is not in recovery has nothing to catch up on.
                Ok(lag) => lag.unwrap_or(0).max(0),
                Err(error) => {
                    if replica.lag_ms.load(Ordering::Relaxed) != DOWN {
                        tracing::warn!(replica = %replica.name, %error, "a read replica does not answer; analyses go elsewhere");
                    }
                    DOWN
                }
            };
            let before = replica.lag_ms.swap(lag, Ordering::Relaxed);
            let max = self.replicas.max_lag_ms;
            if lag > max && (before <= max) {
                tracing::warn!(replica = %replica.name, lag_ms = lag, max_lag_ms = max, "a read replica is too far behind; analyses go elsewhere");
            }
        }
    }

    /// The application to run an analysis with: reading from a replica that is close enough
    /// behind (in turn), or from the primary when there is none.
    pub fn analytics(&self) -> App<S> {
        let replicas = &self.replicas;
        let n = replicas.list.len();
        let start = replicas.turn.fetch_add(1, Ordering::Relaxed);
        let chosen = (0..n).map(|k| (start + k) % n).find(|&i| {
            let lag = replicas.list[i].lag_ms.load(Ordering::Relaxed);
            (0..=replicas.max_lag_ms).contains(&lag)
        });
        let mut app = self.clone();
        if let Some(i) = chosen {
            app.store = Arc::clone(&replicas.list[i].store);
            app.replica = Some(i);
        }
        app
    }

    /// Each read replica (by its URL without password) and its lag when last asked, in
    /// milliseconds; `None` when it did not answer.
    pub fn replica_lags(&self) -> Vec<(String, Option<i64>)> {
        self.replicas
            .list
            .iter()
            .map(|r| {
                let lag = r.lag_ms.load(Ordering::Relaxed);
                (r.name.clone(), (lag != DOWN).then_some(lag))
            })
            .collect()
    }

    /// How far behind the primary this application's data is, when it reads from a replica
    /// (the lag last measured, in milliseconds).
    pub fn replica_lag_ms(&self) -> Option<i64> {
        let i = self.replica?;
        Some(self.replicas.list[i].lag_ms.load(Ordering::Relaxed).max(0))
    }
}
