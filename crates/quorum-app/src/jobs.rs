//! The job runner: background work that outlives the request that started it.
//!
//! A request queues a job (a row in the store); every server runs a runner that claims jobs,
//! renews its claim while it works and records the outcome. A server that dies mid-job stops
//! renewing, and once the claim's lease runs out another server (or the same one, restarted)
//! claims the job and runs it again: handlers are written to resume (a model run calls only
//! the prompts with no answer yet), so a job is done at least once and its work never twice
//! over. Model runs and LLM judges run here; webhook deliveries will.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::task::JoinSet;

use quorum_core::Role;
use quorum_store::{Job, JobClaim, NewJob, Store};

use crate::evaluation::judges::JudgeRequest;
use crate::evaluation::llm::RetryPolicy;
use crate::evaluation::runs::RunRequest;
use crate::{App, AppError, Caller};

/// A model's answers to a project of prompts ([`App::run_models`] for one model).
pub const MODEL_RUN: &str = "model_run";
/// An LLM judge's votes on a battle project ([`App::run_judge`]).
pub const JUDGE: &str = "judge";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelRunJob {
    model: String,
    concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JudgeJob {
    model: String,
    template: Option<String>,
    concurrency: usize,
}

/// How a server's runner works.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// The runner's name in the jobs it claims (host, process and a random part).
    pub name: String,
    /// How long a claim holds without renewal: after a server dies, its jobs wait this long
    /// before another server takes them over. Renewed every third of it.
    pub lease: Duration,
    /// How often an idle runner looks for jobs queued by other servers.
    pub poll: Duration,
    /// Jobs one server runs at once.
    pub slots: usize,
    /// A job whose runner stopped this many times is failed, not claimed again.
    pub max_attempts: i32,
    /// The webhook sender beside the runner.
    pub deliveries: crate::webhooks::deliver::DeliverySettings,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "quorum".into());
        RunnerSettings {
            name: format!(
                "{host}-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            slots: 4,
            max_attempts: 5,
            deliveries: crate::webhooks::deliver::DeliverySettings::default(),
        }
    }
}

/// A running job runner; [`JobRunner::stop`] (or dropping it) ends it.
#[derive(Debug)]
pub struct JobRunner {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    sender: Option<tokio::task::JoinHandle<()>>,
    tallier: Option<tokio::task::JoinHandle<()>>,
}

impl JobRunner {
    /// Stops claiming jobs, stops the ones running and gives them back to the queue, where
    /// another server (or this one, restarted) resumes them. A runner that dies without
    /// stopping leaves them to be taken over once their claims lapse.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in [self.task.take(), self.sender.take(), self.tallier.take()]
            .into_iter()
            .flatten()
        {
            let _ = task.await;
        }
    }
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl<S: Store> App<S> {
    /// Starts this server's job runner, and beside it the webhook sender and the tallier.
    pub fn start_job_runner(&self, settings: RunnerSettings) -> JobRunner {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let sender = tokio::spawn(self.clone().run_sender(
            settings.name.clone(),
            settings.deliveries.clone(),
            stop.subscribe(),
        ));
        let tallier = tokio::spawn(self.clone().run_tallier(settings.poll, stop.subscribe()));
        let app = self.clone();
        let task = tokio::spawn(async move {
            let settings = Arc::new(settings);
            let mut running = JoinSet::new();
            // Which job each running task holds, to give it back when the runner stops.
            let mut held: HashMap<tokio::task::Id, i64> = HashMap::new();
            loop {
                while running.len() < settings.slots.max(1) {
                    let claim = JobClaim {
                        runner: settings.name.clone(),
                        now: app.now(),
                        lease_ms: settings.lease.as_millis() as i64,
                        max_attempts: settings.max_attempts,
                    };
                    match app.store().claim_job(claim).await {
                        Ok(Some(job)) => {
                            let id = job.id;
                            let task =
                                running.spawn(app.clone().execute(job, Arc::clone(&settings)));
                            held.insert(task.id(), id);
                        }
                        Ok(None) => break,
                        Err(error) => {
                            tracing::warn!(%error, "the job runner could not claim a job");
                            break;
                        }
                    }
                }
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = app.caches().jobs_queued.notified() => {}
                    _ = tokio::time::sleep(settings.poll) => {}
                    Some(ended) = running.join_next_with_id(), if !running.is_empty() => {
                        let task = match &ended {
                            Ok((task, ())) => *task,
                            Err(error) => error.id(),
                        };
                        held.remove(&task);
                    }
                }
            }
            // Stopping: the jobs still running go back to the queue, so another server takes
            // them at once rather than after their lease.
            running.abort_all();
            while running.join_next().await.is_some() {}
            for (_, id) in held {
                match app.store().release_job(id, &settings.name).await {
                    Ok(true) => tracing::info!(job = id, "job given back to the queue"),
                    Ok(false) => {}
                    Err(error) => tracing::warn!(job = id, %error, "could not give a job back"),
                }
            }
        });
        JobRunner {
            stop,
            task: Some(task),
            sender: Some(sender),
            tallier: Some(tallier),
        }
    }

    /// Runs one claimed job while renewing its claim, then records the outcome.
    async fn execute(self, job: Job, settings: Arc<RunnerSettings>) {
        let lease_ms = settings.lease.as_millis() as i64;
        let renew = async {
            loop {
                tokio::time::sleep(settings.lease / 3).await;
                match self
                    .store()
                    .renew_job(job.id, &settings.name, self.now() + lease_ms)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => tracing::warn!(job = job.id, %error, "could not renew a job"),
                }
            }
        };
        tracing::info!(job = job.id, kind = %job.kind, attempt = job.attempts, "job started");
        let outcome = tokio::select! {
            outcome = self.run_job(&job) => outcome,
            () = renew => {
                tracing::warn!(job = job.id, "another runner took this job over; stopped here");
                return;
            }
        };
        let error = outcome.err().map(|e| e.to_string());
        match &error {
            None => tracing::info!(job = job.id, "job done"),
            Some(error) => tracing::warn!(job = job.id, %error, "job failed"),
        }
        if let Err(failure) = self
            .store()
            .finish_job(job.id, &settings.name, error, self.now())
            .await
        {
            tracing::warn!(job = job.id, error = %failure, "could not record a job's outcome");
        }
    }

    /// Runs a job's handler with the authority of whoever queued it, checked again now.
    async fn run_job(&self, job: &Job) -> Result<(), AppError> {
        let user = match job.created_by {
            Some(id) => self.store().user_by_id(id).await?,
            None => None,
        };
        let caller = match user {
            Some(user) if user.disabled_at.is_none() => Caller { user },
            _ => {
                return Err(AppError::Forbidden(
                    "the account that started this job is gone or disabled".into(),
                ));
            }
        };
        let project_id = job.project_id.ok_or(AppError::NotFound("project"))?;
        let payload = job.payload.clone();
        let bad = |e: serde_json::Error| AppError::Internal(Box::new(e));
        match job.kind.as_str() {
            MODEL_RUN => {
                let run: ModelRunJob = serde_json::from_value(payload).map_err(bad)?;
                let request = RunRequest {
                    models: vec![run.model],
                    concurrency: run.concurrency,
                    policy: RetryPolicy::default(),
                };
                self.run_models(&caller, project_id, request, &|_| {})
                    .await
                    .map(|_| ())
            }
            JUDGE => {
                let judge: JudgeJob = serde_json::from_value(payload).map_err(bad)?;
                let request = JudgeRequest {
                    model: judge.model,
                    template: judge.template,
                    concurrency: judge.concurrency,
                    policy: RetryPolicy::default(),
                };
                self.run_judge(&caller, project_id, request, &|| {})
                    .await
                    .map(|_| ())
            }
            other => Err(AppError::invalid(format!(
                "no handler for jobs of kind `{other}`"
            ))),
        }
    }

    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>, AppError> {
        let queued = self.store().enqueue_jobs(jobs).await?;
        self.caches().jobs_queued.notify_one();
        Ok(queued)
    }

    /// Queues a model run: one job per model, refused while one of them is queued or running
    /// on this project (on any server). Everything that can be checked is checked first.
    pub async fn start_model_run(
        &self,
        caller: &Caller,
        project_id: i64,
        request: &RunRequest,
    ) -> Result<Vec<Job>, AppError> {
        self.check_run(caller, project_id, request).await?;
        let now = self.now();
        let jobs = request
            .models
            .iter()
            .map(|model| NewJob {
                kind: MODEL_RUN.into(),
                project_id: Some(project_id),
                key: format!("{MODEL_RUN}:{project_id}:{model}"),
                payload: json!(ModelRunJob {
                    model: model.clone(),
                    concurrency: request.concurrency,
                }),
                created_by: Some(caller.user.id),
                created_at: now,
            })
            .collect();
        self.enqueue(jobs).await
    }

    /// Queues an LLM judge on a battle project (refused while the same judge is live there).
    pub async fn start_judge(
        &self,
        caller: &Caller,
        project_id: i64,
        request: &JudgeRequest,
    ) -> Result<Job, AppError> {
        self.check_judge(caller, project_id, request).await?;
        let job = NewJob {
            kind: JUDGE.into(),
            project_id: Some(project_id),
            key: format!("{JUDGE}:{project_id}:{}", request.model),
            payload: json!(JudgeJob {
                model: request.model.clone(),
                template: request.template.clone(),
                concurrency: request.concurrency,
            }),
            created_by: Some(caller.user.id),
            created_at: self.now(),
        };
        let mut queued = self.enqueue(vec![job]).await?;
        queued.pop().ok_or(AppError::NotFound("job"))
    }

    /// Jobs newest first with `id < before`: a project's (its reviewers and managers), or
    /// every job (administrators).
    pub async fn jobs(
        &self,
        caller: &Caller,
        project_id: Option<i64>,
        before: i64,
        limit: i64,
    ) -> Result<Vec<Job>, AppError> {
        match project_id {
            Some(id) => {
                self.require(caller, id, Role::Reviewer).await?;
            }
            None if !caller.user.is_admin => {
                return Err(AppError::Forbidden(
                    "every job is for administrators; a project's jobs are at /projects/{id}/jobs"
                        .into(),
                ));
            }
            None => {}
        }
        let jobs = self
            .store()
            .jobs(project_id, before, limit.clamp(1, 1000))
            .await?;
        Ok(jobs.into_iter().map(|job| shown_to(caller, job)).collect())
    }

    /// One job, for whoever may see its project's jobs (administrators for the rest).
    pub async fn job(&self, caller: &Caller, id: i64) -> Result<Job, AppError> {
        let job = self
            .store()
            .job(id)
            .await?
            .ok_or(AppError::NotFound("job"))?;
        let visible = match job.project_id {
            _ if caller.user.is_admin => true,
            Some(project) => self.require(caller, project, Role::Reviewer).await.is_ok(),
            None => false,
        };
        if !visible {
            return Err(AppError::NotFound("job"));
        }
        Ok(shown_to(caller, job))
    }
}

/// A job as the caller may see it: which server runs it (host and process) is for
/// administrators.
fn shown_to(caller: &Caller, mut job: Job) -> Job {
    if !caller.user.is_admin {
        job.runner = None;
    }
    job
}
