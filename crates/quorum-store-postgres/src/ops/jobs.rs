//! Jobs: the SQL of the job queue and the adapter of the `Jobs` port. A claim takes the row
//! with `FOR UPDATE SKIP LOCKED`, so servers claiming at once each get a different job.

use async_trait::async_trait;
use quorum_store::{Job, JobClaim, Jobs, NewJob, job_key_taken};

use super::rows::*;
use super::*;
use crate::PgStore;

#[async_trait]
impl Jobs for PgStore {
    async fn enqueue_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        transaction!(self.pool, |conn| enqueue_jobs(conn, &jobs).await)
    }
    async fn claim_job(&self, claim: JobClaim) -> Result<Option<Job>> {
        transaction!(self.pool, |conn| claim_job(conn, &claim).await)
    }
    async fn renew_job(&self, id: i64, runner: &str, lease_until: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $3 WHERE id = $1 AND runner = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(runner)
        .bind(lease_until)
        .execute(&self.pool)
        .await
        .map_err(database_error)?;
        Ok(done.rows_affected() == 1)
    }
    async fn finish_job(
        &self,
        id: i64,
        runner: &str,
        error: Option<String>,
        now: i64,
    ) -> Result<bool> {
        let state = if error.is_some() { "failed" } else { "done" };
        transaction!(self.pool, |conn| {
            let project: Option<Option<i64>> = sqlx::query_scalar(
                "UPDATE jobs SET state = $3, error = $4, finished_at = $5, lease_until = NULL
                 WHERE id = $1 AND runner = $2 AND state = 'running' RETURNING project_id",
            )
            .bind(id)
            .bind(runner)
            .bind(state)
            .bind(&error)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
            .map_err(database_error)?;
            let Some(project) = project else {
                return Ok(false);
            };
            let subject = serde_json::json!({"job_id": id});
            emit(conn, project, "run.finished", &subject, now).await?;
            Ok(true)
        })
    }
    async fn release_job(&self, id: i64, runner: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', runner = NULL, lease_until = NULL
             WHERE id = $1 AND runner = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(runner)
        .execute(&self.pool)
        .await
        .map_err(database_error)?;
        Ok(done.rows_affected() == 1)
    }
    async fn job(&self, id: i64) -> Result<Option<Job>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(database_error)?;
        row.as_ref().map(job_from).transpose()
    }
    async fn jobs(&self, project_id: Option<i64>, before: i64, limit: i64) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE ($1::BIGINT IS NULL OR project_id = $1) AND id < $2
             ORDER BY id DESC LIMIT $3",
        )
        .bind(project_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(database_error)?;
        rows.iter().map(job_from).collect()
    }
}

pub async fn enqueue_jobs(conn: &mut PgConnection, jobs: &[NewJob]) -> Result<Vec<Job>> {
    let mut queued = Vec::with_capacity(jobs.len());
    for job in jobs {
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE key = $1 AND state IN ('queued', 'running')",
        )
        .bind(&job.key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database_error)?;
        if let Some(id) = live {
            return Err(job_key_taken(&job.key, id));
        }
        // Two servers queueing the same key at once: the unique index refuses the second.
        let row = sqlx::query(
            "INSERT INTO jobs (kind, project_id, key, payload, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(&job.kind)
        .bind(job.project_id)
        .bind(&job.key)
        .bind(json_text(&job.payload))
        .bind(job.created_by)
        .bind(job.created_at)
        .fetch_one(&mut *conn)
        .await
        .map_err(database_error)?;
        queued.push(job_from(&row)?);
    }
    Ok(queued)
}

pub async fn claim_job(conn: &mut PgConnection, claim: &JobClaim) -> Result<Option<Job>> {
    sqlx::query(
        "UPDATE jobs SET state = 'failed', finished_at = $1, lease_until = NULL,
                error = 'its runner stopped ' || attempts || ' times before it finished'
         WHERE state = 'running' AND lease_until <= $1 AND attempts >= $2",
    )
    .bind(claim.now)
    .bind(claim.max_attempts)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    let row = sqlx::query(
        "WITH candidate AS (
             SELECT id FROM jobs
             WHERE state = 'queued' OR (state = 'running' AND lease_until <= $3)
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         UPDATE jobs SET state = 'running', runner = $1, lease_until = $2,
                         attempts = attempts + 1, started_at = COALESCE(started_at, $3)
         WHERE id = (SELECT id FROM candidate) RETURNING *",
    )
    .bind(&claim.runner)
    .bind(claim.now + claim.lease_ms)
    .bind(claim.now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database_error)?;
    row.as_ref().map(job_from).transpose()
}
