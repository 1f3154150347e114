//! Evaluation: the SQL of the evaluation context and the adapter of the `Evaluation` port.

use async_trait::async_trait;
use quorum_store::Evaluation;

use super::projects::import_items;
use super::rows::*;
use super::*;
use crate::SqliteStore;

#[async_trait]
impl Evaluation for SqliteStore {
    async fn upsert_model(&self, model: ModelSpec) -> Result<()> {
        self.write(move |c| upsert_model(c, model)).await
    }
    async fn models(&self) -> Result<Vec<ModelSpec>> {
        self.readers.run(models).await
    }
    async fn put_generations(&self, generations: Vec<Generation>) -> Result<()> {
        self.write(move |c| put_generations(c, generations)).await
    }
    async fn generations(&self, project_id: i64) -> Result<Vec<Generation>> {
        self.readers.run(move |c| generations(c, project_id)).await
    }
    async fn import_battles(
        &self,
        project_id: i64,
        items: ItemBatch,
        sides: Vec<BattleSides>,
        now: i64,
    ) -> Result<ImportReport> {
        self.write(move |c| import_battles(c, project_id, items, sides, now))
            .await
    }
    async fn battle_votes(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<BattleVote>> {
        self.readers
            .run(move |c| battle_votes(c, project_id, after, limit))
            .await
    }
}

pub fn upsert_model(conn: &Connection, model: ModelSpec) -> Result<()> {
    execute(
        conn,
        "INSERT INTO models (name, base_url, model_id, api_key_env, parameters, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO UPDATE SET base_url = excluded.base_url, model_id = excluded.model_id,
         api_key_env = excluded.api_key_env, parameters = excluded.parameters",
        params![
            model.name,
            model.base_url,
            model.model_id,
            model.api_key_env,
            json_text(&model.parameters),
            model.created_at
        ],
    )?;
    Ok(())
}

pub fn models(conn: &Connection) -> Result<Vec<ModelSpec>> {
    all(conn, "SELECT * FROM models ORDER BY name", [], model_from)
}

pub fn put_generations(conn: &Connection, generations: Vec<Generation>) -> Result<()> {
    for g in generations {
        execute(
        conn,
        "INSERT INTO generations (project_id, item_id, model, output, error, latency_ms, prompt_tokens,
         completion_tokens, attempts, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (item_id, model) DO UPDATE SET output = excluded.output, error = excluded.error,
         latency_ms = excluded.latency_ms, prompt_tokens = excluded.prompt_tokens,
         completion_tokens = excluded.completion_tokens, attempts = excluded.attempts,
         created_at = excluded.created_at",
        params![
            g.project_id,
            g.item_id,
            g.model,
            g.output,
            g.error,
            g.latency_ms,
            g.prompt_tokens,
            g.completion_tokens,
            g.attempts,
            g.created_at
        ],
    )?;
    }
    Ok(())
}

pub fn generations(conn: &Connection, project_id: i64) -> Result<Vec<Generation>> {
    all(
        conn,
        "SELECT * FROM generations WHERE project_id = ?1 ORDER BY item_id, model",
        [project_id],
        generation_from,
    )
}

pub fn import_battles(
    conn: &Connection,
    project_id: i64,
    items: ItemBatch,
    sides: Vec<BattleSides>,
    now: i64,
) -> Result<ImportReport> {
    if sides.len() != items.len() {
        return Err(StoreError::Conflict(format!(
            "{} items but {} battle sides",
            items.len(),
            sides.len()
        )));
    }
    let external: Vec<Option<String>> = items
        .iter()
        .map(|i| i.external_id.map(str::to_string))
        .collect();
    let report = import_items(conn, project_id, items, now)?;
    for (external, side) in external.into_iter().zip(sides) {
        let external = external
            .ok_or_else(|| StoreError::Conflict("a battle item needs an external id".into()))?;
        let item_id: i64 = scalar(
            conn,
            "SELECT id FROM items WHERE project_id = ?1 AND external_id = ?2",
            params![project_id, external],
        )?
        .ok_or(StoreError::NotFound("item"))?;
        execute(
            conn,
            "INSERT INTO battles (item_id, project_id, model_a, model_b, prompt_item_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (item_id) DO UPDATE SET model_a = excluded.model_a, model_b = excluded.model_b,
             prompt_item_id = excluded.prompt_item_id",
            params![item_id, project_id, side.model_a, side.model_b, side.prompt_item_id],
        )?;
    }
    Ok(report)
}

pub fn battle_votes(
    conn: &Connection,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<BattleVote>> {
    all(
        conn,
        "SELECT r.id, r.item_id, b.model_a, b.model_b, u.name, r.answers, i.category, i.locale, m.locales
         FROM responses r JOIN battles b ON b.item_id = r.item_id JOIN items i ON i.id = r.item_id
         JOIN users u ON u.id = r.user_id
         LEFT JOIN members m ON m.project_id = r.project_id AND m.user_id = r.user_id
         WHERE r.project_id = ?1 AND r.id > ?2 ORDER BY r.id LIMIT ?3",
        [project_id, after, limit],
        vote_from,
    )
}
