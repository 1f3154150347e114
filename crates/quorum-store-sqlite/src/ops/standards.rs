//! Standards: the SQL of the standards context and the adapter of the `Standards` port.

use async_trait::async_trait;
use quorum_store::Standards;

use super::rows::*;
use super::*;
use crate::SqliteStore;

#[async_trait]
impl Standards for SqliteStore {
    async fn put_standard_run(&self, run: StandardRun) -> Result<()> {
        self.write(move |c| put_standard_run(c, &run)).await
    }
    async fn standard_runs(&self, hash: &str) -> Result<Vec<StandardRun>> {
        let hash = hash.to_string();
        self.readers.run(move |c| standard_runs(c, &hash)).await
    }
    async fn all_standard_runs(&self) -> Result<Vec<StandardRun>> {
        self.readers.run(all_standard_runs).await
    }
    async fn standard_run_of(&self, project_id: i64) -> Result<Option<StandardRun>> {
        self.readers
            .run(move |c| standard_run_of(c, project_id))
            .await
    }
    async fn instance_setting(&self, name: &str, value: String) -> Result<String> {
        let name = name.to_string();
        self.write(move |c| instance_setting(c, &name, &value))
            .await
    }
}

pub fn put_standard_run(conn: &Connection, run: &StandardRun) -> Result<()> {
    execute(
        conn,
        "INSERT INTO standard_runs (hash, prompts_project_id, battles_project_id, models, private, standard, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run.hash,
            run.prompts_project_id,
            run.battles_project_id,
            json_text(&run.models),
            run.private,
            json_text(&run.standard),
            run.created_at
        ],
    )?;
    Ok(())
}

pub fn all_standard_runs(conn: &Connection) -> Result<Vec<StandardRun>> {
    all(
        conn,
        "SELECT * FROM standard_runs ORDER BY id DESC",
        [],
        standard_run_from,
    )
}

pub fn standard_runs(conn: &Connection, hash: &str) -> Result<Vec<StandardRun>> {
    all(
        conn,
        "SELECT * FROM standard_runs WHERE hash = ?1 ORDER BY id",
        [hash],
        standard_run_from,
    )
}

pub fn standard_run_of(conn: &Connection, project_id: i64) -> Result<Option<StandardRun>> {
    one(
        conn,
        "SELECT * FROM standard_runs WHERE prompts_project_id = ?1 OR battles_project_id = ?1
         ORDER BY id DESC LIMIT 1",
        [project_id],
        standard_run_from,
    )
}

pub fn instance_setting(conn: &Connection, name: &str, value: &str) -> Result<String> {
    execute(
        conn,
        "INSERT INTO instance_settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        [name, value],
    )?;
    scalar(
        conn,
        "SELECT value FROM instance_settings WHERE name = ?1",
        [name],
    )?
    .ok_or(StoreError::NotFound("setting"))
}
