//! Jobs: the SQL of the job queue and the adapter of the `Jobs` port. Claims run on the
//! writer thread, so two claims never see the same queued job.

use async_trait::async_trait;
use quorum_store::{Job, JobClaim, Jobs, NewJob, job_key_taken};

use super::rows::*;
use super::*;
use crate::SqliteStore;

#[async_trait]
impl Jobs for SqliteStore {
    async fn enqueue_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        self.write(move |c| enqueue_jobs(c, &jobs)).await
    }
    async fn claim_job(&self, claim: JobClaim) -> Result<Option<Job>> {
        self.write(move |c| claim_job(c, &claim)).await
    }
    async fn renew_job(&self, id: i64, runner: &str, lease_until: i64) -> Result<bool> {
        let runner = runner.to_string();
        self.write(move |c| {
            Ok(execute(
                c,
                "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND runner = ?2 AND state = 'running'",
                params![id, runner, lease_until],
            )? == 1)
        })
        .await
    }
    async fn finish_job(
        &self,
        id: i64,
        runner: &str,
        error: Option<String>,
        now: i64,
    ) -> Result<bool> {
        let runner = runner.to_string();
        self.write(move |c| {
            let state = if error.is_some() { "failed" } else { "done" };
            let project: Option<Option<i64>> = scalar(
                c,
                "UPDATE jobs SET state = ?3, error = ?4, finished_at = ?5, lease_until = NULL
                 WHERE id = ?1 AND runner = ?2 AND state = 'running' RETURNING project_id",
                params![id, runner, state, error, now],
            )?;
            let Some(project) = project else {
                return Ok(false);
            };
            emit(
                c,
                project,
                "run.finished",
                &serde_json::json!({"job_id": id}),
                now,
            )?;
            Ok(true)
        })
        .await
    }
    async fn release_job(&self, id: i64, runner: &str) -> Result<bool> {
        let runner = runner.to_string();
        self.write(move |c| {
            Ok(execute(
                c,
                "UPDATE jobs SET state = 'queued', runner = NULL, lease_until = NULL
                 WHERE id = ?1 AND runner = ?2 AND state = 'running'",
                params![id, runner],
            )? == 1)
        })
        .await
    }
    async fn job(&self, id: i64) -> Result<Option<Job>> {
        self.readers
            .run(move |c| one(c, "SELECT * FROM jobs WHERE id = ?1", [id], job_from))
            .await
    }
    async fn jobs(&self, project_id: Option<i64>, before: i64, limit: i64) -> Result<Vec<Job>> {
        self.readers
            .run(move |c| {
                all(
                    c,
                    "SELECT * FROM jobs WHERE (?1 IS NULL OR project_id = ?1) AND id < ?2
                     ORDER BY id DESC LIMIT ?3",
                    params![project_id, before, limit],
                    job_from,
                )
            })
            .await
    }
}

pub fn enqueue_jobs(conn: &Connection, jobs: &[NewJob]) -> Result<Vec<Job>> {
    let mut queued = Vec::with_capacity(jobs.len());
    for job in jobs {
        let live: Option<i64> = scalar(
            conn,
            "SELECT id FROM jobs WHERE key = ?1 AND state IN ('queued', 'running')",
            [&job.key],
        )?;
        if let Some(id) = live {
            return Err(job_key_taken(&job.key, id));
        }
        queued.push(
            one(
                conn,
                "INSERT INTO jobs (kind, project_id, key, payload, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING *",
                params![
                    job.kind,
                    job.project_id,
                    job.key,
                    json_text(&job.payload),
                    job.created_by,
                    job.created_at
                ],
                job_from,
            )?
            .ok_or(StoreError::NotFound("job"))?,
        );
    }
    Ok(queued)
}

pub fn claim_job(conn: &Connection, claim: &JobClaim) -> Result<Option<Job>> {
    execute(
        conn,
        "UPDATE jobs SET state = 'failed', finished_at = ?1, lease_until = NULL,
                error = 'its runner stopped ' || attempts || ' times before it finished'
         WHERE state = 'running' AND lease_until <= ?1 AND attempts >= ?2",
        params![claim.now, claim.max_attempts],
    )?;
    one(
        conn,
        "UPDATE jobs SET state = 'running', runner = ?1, lease_until = ?2, attempts = attempts + 1,
                started_at = COALESCE(started_at, ?3)
         WHERE id = (SELECT id FROM jobs
                     WHERE state = 'queued' OR (state = 'running' AND lease_until <= ?3)
                     ORDER BY id LIMIT 1)
         RETURNING *",
        params![claim.runner, claim.now + claim.lease_ms, claim.now],
        job_from,
    )
}
