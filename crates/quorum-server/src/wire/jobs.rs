//! Background jobs.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

/// Background work (a model run, an LLM judge) that any server's job runner may claim; a job
/// whose server stops is taken over by another once its claim lapses.
#[derive(Debug, Serialize, ToSchema)]
pub struct Job {
    pub id: i64,
    /// `model_run` or `judge`.
    pub kind: String,
    pub project_id: Option<i64>,
    /// At most one queued or running job holds a key (e.g. `model_run:{project}:{model}`).
    pub key: String,
    /// The handler's input (model, concurrency, judge template).
    pub payload: Value,
    pub state: JobState,
    /// Claims so far: more than one when a server stopped mid-job and another took it over.
    pub attempts: i32,
    /// The runner (host, process) holding or last holding it; shown to administrators only.
    pub runner: Option<String>,
    /// While running: until when (Unix ms) the claim holds unless renewed.
    pub lease_until: Option<i64>,
    pub error: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl From<quorum_store::Job> for Job {
    fn from(job: quorum_store::Job) -> Self {
        use quorum_store::JobState as Stored;
        Self {
            id: job.id,
            kind: job.kind,
            project_id: job.project_id,
            key: job.key,
            payload: job.payload,
            state: match job.state {
                Stored::Queued => JobState::Queued,
                Stored::Running => JobState::Running,
                Stored::Done => JobState::Done,
                Stored::Failed => JobState::Failed,
            },
            attempts: job.attempts,
            runner: job.runner,
            lease_until: job.lease_until,
            error: job.error,
            created_by: job.created_by,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Jobs {
    pub jobs: Vec<Job>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobEnvelope {
    pub job: Job,
}
