//! Jobs: background work (model runs, LLM judges, and next webhook deliveries) that any server
//! sharing the database may run, that survives a restart and that the API can show.
//!
//! A job is claimed for a lease of time and its runner renews the lease while it works; a
//! job whose lease ran out (its server died) is claimed again by whichever server asks next.
//! On PostgreSQL the claim takes the row with `FOR UPDATE SKIP LOCKED`, so two servers never
//! claim one job; on SQLite the single writer serialises claims.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
    pub fn parse(text: &str) -> JobState {
        match text {
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            _ => JobState::Queued,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    /// What to run (the runner's name for its handler, e.g. `model_run`).
    pub kind: String,
    pub project_id: Option<i64>,
    /// At most one queued or running job holds a key: a second start of the same work is
    /// refused while the first is live, on every server.
    pub key: String,
    /// The handler's input.
    pub payload: Value,
    /// Whose authority the job runs with.
    pub created_by: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub project_id: Option<i64>,
    pub key: String,
    pub payload: Value,
    pub state: JobState,
    /// Claims so far (more than one when a runner stopped mid-job and another took it over).
    pub attempts: i32,
    /// The runner that holds (or last held) it.
    pub runner: Option<String>,
    /// While running: until when the runner's claim holds unless renewed.
    pub lease_until: Option<i64>,
    pub error: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A runner's claim on the next job.
#[derive(Debug, Clone)]
pub struct JobClaim {
    pub runner: String,
    pub now: i64,
    /// The claim holds until `now + lease_ms` unless renewed.
    pub lease_ms: i64,
    /// A job whose runners stopped this many times is failed instead of claimed again.
    pub max_attempts: i32,
}

#[async_trait]
pub trait Jobs {
    /// Queues jobs, all or none: refused (a conflict naming the key) when a live job already
    /// holds one of their keys.
    async fn enqueue_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>>;
    /// The oldest queued job, or a running one whose lease ran out, now held by `runner`.
    async fn claim_job(&self, claim: JobClaim) -> Result<Option<Job>>;
    /// Extends the runner's lease; `false` when the job is no longer the runner's (another
    /// runner took it over after the lease ran out).
    async fn renew_job(&self, id: i64, runner: &str, lease_until: i64) -> Result<bool>;
    /// Ends the runner's job: done, or failed with `error`; `false` when it is not the runner's.
    async fn finish_job(
        &self,
        id: i64,
        runner: &str,
        error: Option<String>,
        now: i64,
    ) -> Result<bool>;
    /// Gives a running job back to the queue because its runner is stopping: another runner
    /// may claim it at once instead of waiting for the lease to lapse; `false` when it is not
    /// the runner's.
    async fn release_job(&self, id: i64, runner: &str) -> Result<bool>;
    async fn job(&self, id: i64) -> Result<Option<Job>>;
    /// Jobs newest first, all or one project's, with `id < before`.
    async fn jobs(&self, project_id: Option<i64>, before: i64, limit: i64) -> Result<Vec<Job>>;
}

/// The refusal of a job whose key a live job (`live_id`) holds.
pub fn job_key_taken(key: &str, live_id: i64) -> StoreError {
    StoreError::Conflict(format!(
        "job {live_id} is already queued or running for `{key}`; its progress is at GET /api/v1/jobs/{live_id}"
    ))
}
