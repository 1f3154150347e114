//! Standards: the SQL of the standards context and the adapter of the `Standards` port.

use async_trait::async_trait;
use quorum_store::Standards;

use super::rows::*;
use super::*;
use crate::PgStore;

#[async_trait]
impl Standards for PgStore {
    async fn put_standard_run(&self, run: StandardRun) -> Result<()> {
        transaction!(self.pool, |conn| put_standard_run(conn, &run).await)
    }
    async fn standard_runs(&self, hash: &str) -> Result<Vec<StandardRun>> {
        standard_runs(&self.pool, hash).await
    }
    async fn all_standard_runs(&self) -> Result<Vec<StandardRun>> {
        all_standard_runs(&self.pool).await
    }
    async fn standard_run_of(&self, project_id: i64) -> Result<Option<StandardRun>> {
        standard_run_of(&self.pool, project_id).await
    }
    async fn instance_setting(&self, name: &str, value: String) -> Result<String> {
        instance_setting(&self.pool, name, &value).await
    }
}

pub async fn put_standard_run(conn: &mut PgConnection, run: &StandardRun) -> Result<()> {
    sqlx::query(
        "INSERT INTO standard_runs (hash, prompts_project_id, battles_project_id, models, private, standard, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&run.hash)
    .bind(run.prompts_project_id)
    .bind(run.battles_project_id)
    .bind(json_text(&run.models))
    .bind(run.private)
    .bind(json_text(&run.standard))
    .bind(run.created_at)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(())
}

pub async fn all_standard_runs(pool: &PgPool) -> Result<Vec<StandardRun>> {
    sqlx::query("SELECT * FROM standard_runs ORDER BY id DESC")
        .fetch_all(pool)
        .await
        .map_err(database_error)?
        .iter()
        .map(standard_run_from)
        .collect()
}

pub async fn standard_runs(pool: &PgPool, hash: &str) -> Result<Vec<StandardRun>> {
    sqlx::query("SELECT * FROM standard_runs WHERE hash = $1 ORDER BY id")
        .bind(hash)
        .fetch_all(pool)
        .await
        .map_err(database_error)?
        .iter()
        .map(standard_run_from)
        .collect()
}

pub async fn standard_run_of(pool: &PgPool, project_id: i64) -> Result<Option<StandardRun>> {
    sqlx::query(
        "SELECT * FROM standard_runs WHERE prompts_project_id = $1 OR battles_project_id = $1
         ORDER BY id DESC LIMIT 1",
    )
    .bind(project_id)
    .fetch_optional(pool)
    .await
    .map_err(database_error)?
    .as_ref()
    .map(standard_run_from)
    .transpose()
}

pub async fn instance_setting(pool: &PgPool, name: &str, value: &str) -> Result<String> {
    sqlx::query_scalar(
        "WITH inserted AS (
             INSERT INTO instance_settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING RETURNING value)
         SELECT value FROM inserted UNION ALL
         SELECT value FROM instance_settings WHERE name = $1 LIMIT 1",
    )
    .bind(name)
    .bind(value)
    .fetch_one(pool)
    .await
    .map_err(database_error)
}
