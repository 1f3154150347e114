//! Use-cases: every action a person or program can take, with its authorisation rule.
//!
//! The HTTP handlers and CLI commands parse input, call one function here and present the
//! result. Nothing here knows about HTTP, HTML or terminals.

//!
//! The modules follow Quorum's contexts — `accounts`, `projects`, `work`, `quality`,
//! `evaluation`, `standards` — beside the cross-cutting homes: `export` (every export format),
//! `jobs` (the job runner), `dashboard`, `pages` and the error type.

pub mod accounts;
pub mod dashboard;
mod error;
pub mod evaluation;
pub mod export;
pub mod jobs;
mod pages;
mod projects;
pub mod quality;
mod replicas;
pub mod standards;
pub mod webhooks;
mod work;

use std::sync::Arc;

pub use error::AppError;
pub use projects::{
    AddMember, CreateProject, DEFAULT_LEASE_SECONDS, DEFAULT_OVERLAP, ImportFormat, ImportOutcome,
    ImportSession, MAX_REJECTED, ParsedRow, Rejected, csv_items, rejected_summary,
};
pub use work::{Assignment, ItemView, LeaseView, ResponseView, SubmitAnswers, Submitted};

use quorum_store::{Store, User};

/// Threads an analysis may use, and analyses one server runs at once: half the cores (at
/// least one), so the other half keeps serving raters whatever reviewers ask for.
pub fn analysis_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

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

/// How long authorisation data read from the store (a token's user, a project, a membership)
/// is reused before it is read again. A change made through another server takes effect
/// within this time; changes made through this server take effect at once.
pub const CACHE_MS: i64 = 5_000;

/// A small cache of values that were found, each kept for [`CACHE_MS`]. Misses are never
/// cached, so something created elsewhere is seen on the next request.
pub(crate) struct Cache<K, V> {
    entries: std::sync::Mutex<std::collections::HashMap<K, (i64, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Self {
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &K, now: i64) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| now - at < CACHE_MS)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn put(&self, key: K, value: V, now: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= 50_000 {
                entries.retain(|_, (at, _)| now - *at < CACHE_MS);
                if entries.len() >= 50_000 {
                    entries.clear();
                }
            }
            entries.insert(key, (now, value));
        }
    }

    /// Forgets every entry whose value matches (e.g. all tokens of one user).
    pub(crate) fn forget_where(&self, matches: impl Fn(&V) -> bool) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (_, v)| !matches(v));
        }
    }

    pub(crate) fn forget(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

pub(crate) struct Caches {
    /// A token's owner and when the token expires.
    pub(crate) tokens: Cache<String, (User, Option<i64>)>,
    pub(crate) projects: Cache<i64, quorum_store::Project>,
    pub(crate) members: Cache<(i64, i64), quorum_store::Member>,
    /// Leases this server granted (immutable facts, so no expiry).
    pub(crate) leases: std::sync::Mutex<std::collections::HashMap<i64, work::KnownLease>>,
    /// Counts the gold draws, so each draws from its own random stream.
    pub(crate) draws: std::sync::atomic::AtomicU64,
    /// The seed of the gold draws: random per process (no rater can work it out from the
    /// clock), fixed by tests that want the same draws every run.
    pub(crate) draw_seed: std::sync::atomic::AtomicU64,
    /// Rater accuracy estimates per project, for dynamic overlap.
    pub(crate) accuracies:
        std::sync::Mutex<std::collections::HashMap<i64, quality::overlap::Accuracies>>,
    /// Password hashes computed at once (each takes a core for tens of milliseconds).
    pub(crate) hashing: tokio::sync::Semaphore,
    /// Analyses (whole-project consensus, agreement, boards…) running at once on this server.
    pub(crate) analyses: Arc<tokio::sync::Semaphore>,
    /// Wakes this server's job runner when a request here queues a job.
    pub(crate) jobs_queued: tokio::sync::Notify,
}

/// The application: a store, a clock, the operator's outbound-call policy and a short-lived
/// cache. Cheap to clone.
pub struct App<S> {
    /// Where this application reads and writes: the primary, or for an analysis a read
    /// replica ([`App::analytics`]).
    store: Arc<S>,
    /// The primary, for authorisation checks whatever `store` is.
    primary: Arc<S>,
    replicas: Arc<replicas::Replicas<S>>,
    /// Which replica `store` is, when it is one.
    replica: Option<usize>,
    clock: Arc<dyn Clock>,
    caches: Arc<Caches>,
    egress: Arc<evaluation::llm::Egress>,
    /// The operator's report-signing key (an Ed25519 seed), when not the stored one.
    signing_key: Option<Arc<[u8; 32]>>,
}

impl<S> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            primary: Arc::clone(&self.primary),
            replicas: Arc::clone(&self.replicas),
            replica: self.replica,
            clock: Arc::clone(&self.clock),
            caches: Arc::clone(&self.caches),
            egress: Arc::clone(&self.egress),
            signing_key: self.signing_key.clone(),
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
        let caches = Caches {
            tokens: Cache::new(),
            projects: Cache::new(),
            members: Cache::new(),
            leases: std::sync::Mutex::new(std::collections::HashMap::new()),
            draws: std::sync::atomic::AtomicU64::new(0),
            draw_seed: std::sync::atomic::AtomicU64::new(rand::random()),
            accuracies: std::sync::Mutex::new(std::collections::HashMap::new()),
            jobs_queued: tokio::sync::Notify::new(),
            // Half the cores at most: the other half keeps answering raters.
            analyses: Arc::new(tokio::sync::Semaphore::new(analysis_threads())),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4)),
            ),
        };
        Self {
            primary: Arc::clone(&store),
            store,
            replicas: Arc::default(),
            replica: None,
            clock,
            caches: Arc::new(caches),
            egress: Arc::new(evaluation::llm::Egress::default()),
            signing_key: None,
        }
    }

    /// Signs reports with this Ed25519 seed (the operator's, from a file or the environment)
    /// instead of the key kept in the database.
    pub fn with_signing_key(mut self, seed: [u8; 32]) -> Self {
        self.signing_key = Some(Arc::new(seed));
        self
    }

    pub(crate) fn operator_signing_key(&self) -> Option<&[u8; 32]> {
        self.signing_key.as_deref()
    }

    /// Sets which model endpoints and key variables model runs and judges may use (by default:
    /// public endpoints, keys in `QUORUM_KEY_…` variables).
    pub fn with_egress(mut self, egress: evaluation::llm::Egress) -> Self {
        self.egress = Arc::new(egress);
        self
    }

    /// Makes the gold draws repeatable (tests): the same requests then mix in the same gold.
    pub fn with_draw_seed(self, seed: u64) -> Self {
        self.caches
            .draw_seed
            .store(seed, std::sync::atomic::Ordering::Relaxed);
        self
    }

    pub fn egress(&self) -> &evaluation::llm::Egress {
        &self.egress
    }

    pub(crate) fn caches(&self) -> &Caches {
        &self.caches
    }

    /// A project, through the cache.
    pub(crate) async fn cached_project(
        &self,
        id: i64,
    ) -> Result<Option<quorum_store::Project>, AppError> {
        let now = self.now();
        if let Some(project) = self.caches.projects.get(&id, now) {
            return Ok(Some(project));
        }
        let project = self.primary.project(id).await?;
        if let Some(p) = &project {
            self.caches.projects.put(id, p.clone(), now);
        }
        Ok(project)
    }

    /// A membership, through the cache.
    pub(crate) async fn cached_member(
        &self,
        project_id: i64,
        user_id: i64,
    ) -> Result<Option<quorum_store::Member>, AppError> {
        let now = self.now();
        if let Some(member) = self.caches.members.get(&(project_id, user_id), now) {
            return Ok(Some(member));
        }
        let member = self.primary.member(project_id, user_id).await?;
        if let Some(m) = &member {
            self.caches
                .members
                .put((project_id, user_id), m.clone(), now);
        }
        Ok(member)
    }

    /// Runs an analysis — reading a whole project and computing over it — on the blocking
    /// pool, at most [`analysis_threads`] at a time on this server (others wait their turn), so
    /// it never holds the request workers raters' answers need.
    pub async fn analysis<T, F>(&self, work: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, AppError>> + Send + 'static,
    {
        let permit = Arc::clone(&self.caches.analyses)
            .acquire_owned()
            .await
            .map_err(|_| AppError::Unavailable)?;
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            runtime.block_on(work)
        })
        .await
        .map_err(|e| AppError::Internal(Box::new(e)))?
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The primary, whatever `store` is (tallies are folded and read there).
    pub(crate) fn primary(&self) -> &S {
        &self.primary
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
