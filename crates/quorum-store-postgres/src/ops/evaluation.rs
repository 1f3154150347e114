//! Evaluation: the SQL of the evaluation context and the adapter of the `Evaluation` port.

use async_trait::async_trait;
use quorum_store::Evaluation;

use super::projects::import_items;
use super::rows::*;
use super::*;
use crate::PgStore;

#[async_trait]
impl Evaluation for PgStore {
    async fn upsert_model(&self, model: ModelSpec) -> Result<()> {
        transaction!(self.pool, |conn| upsert_model(conn, model.clone()).await)
    }
    async fn models(&self) -> Result<Vec<ModelSpec>> {
        models(&self.pool).await
    }
    async fn put_generations(&self, generations: Vec<Generation>) -> Result<()> {
        transaction!(self.pool, |conn| put_generations(conn, &generations).await)
    }
    async fn generations(&self, project_id: i64) -> Result<Vec<Generation>> {
        generations(&self.pool, project_id).await
    }
    async fn import_battles(
        &self,
        project_id: i64,
        items: ItemBatch,
        sides: Vec<BattleSides>,
        now: i64,
    ) -> Result<ImportReport> {
        let mut tx = self.pool.begin().await.map_err(database_error)?;
        let report = import_battles(&mut tx, project_id, items, sides, now).await?;
        tx.commit().await.map_err(database_error)?;
        Ok(report)
    }
    async fn battle_votes(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<BattleVote>> {
        battle_votes(&self.pool, project_id, after, limit).await
    }
}

pub async fn upsert_model(conn: &mut PgConnection, model: ModelSpec) -> Result<()> {
    sqlx::query(
        "INSERT INTO models (name, base_url, model_id, api_key_env, parameters, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO UPDATE SET base_url = excluded.base_url, model_id = excluded.model_id,
         api_key_env = excluded.api_key_env, parameters = excluded.parameters",
    )
    .bind(&model.name)
    .bind(&model.base_url)
    .bind(&model.model_id)
    .bind(&model.api_key_env)
    .bind(json_text(&model.parameters))
    .bind(model.created_at)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(())
}

pub async fn models(pool: &PgPool) -> Result<Vec<ModelSpec>> {
    let rows = sqlx::query("SELECT * FROM models ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(database_error)?;
    rows.iter().map(model_spec_from).collect()
}

pub async fn put_generations(conn: &mut PgConnection, generations: &[Generation]) -> Result<()> {
    for g in generations {
        sqlx::query(
        "INSERT INTO generations (project_id, item_id, model, output, error, latency_ms, prompt_tokens,
         completion_tokens, attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (item_id, model) DO UPDATE SET output = excluded.output, error = excluded.error,
         latency_ms = excluded.latency_ms, prompt_tokens = excluded.prompt_tokens,
         completion_tokens = excluded.completion_tokens, attempts = excluded.attempts,
         created_at = excluded.created_at",
    )
    .bind(g.project_id)
    .bind(g.item_id)
    .bind(&g.model)
    .bind(&g.output)
    .bind(&g.error)
    .bind(g.latency_ms)
    .bind(g.prompt_tokens)
    .bind(g.completion_tokens)
    .bind(g.attempts)
    .bind(g.created_at)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    }
    Ok(())
}

pub async fn generations(pool: &PgPool, project_id: i64) -> Result<Vec<Generation>> {
    let rows =
        sqlx::query("SELECT * FROM generations WHERE project_id = $1 ORDER BY item_id, model")
            .bind(project_id)
            .fetch_all(pool)
            .await
            .map_err(database_error)?;
    rows.iter().map(generation_from).collect()
}

pub async fn import_battles(
    conn: &mut PgConnection,
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
    let mut external = Vec::with_capacity(items.len());
    for item in items.iter() {
        external.push(
            item.external_id
                .map(str::to_string)
                .ok_or_else(|| StoreError::Conflict("a battle item needs an external id".into()))?,
        );
    }
    let report = import_items(conn, project_id, items, now).await?;
    let (model_a, model_b, prompt): (Vec<String>, Vec<String>, Vec<Option<i64>>) = sides
        .into_iter()
        .map(|s| (s.model_a, s.model_b, s.prompt_item_id))
        .fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut a, mut b, mut p), (x, y, z)| {
                a.push(x);
                b.push(y);
                p.push(z);
                (a, b, p)
            },
        );
    sqlx::query(
        "INSERT INTO battles (item_id, project_id, model_a, model_b, prompt_item_id)
         SELECT i.id, $1, s.model_a, s.model_b, s.prompt_item_id
         FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[])
              AS s(external_id, model_a, model_b, prompt_item_id)
         JOIN items i ON i.project_id = $1 AND i.external_id = s.external_id
         ON CONFLICT (item_id) DO UPDATE SET model_a = excluded.model_a, model_b = excluded.model_b,
         prompt_item_id = excluded.prompt_item_id",
    )
    .bind(project_id)
    .bind(&external)
    .bind(&model_a)
    .bind(&model_b)
    .bind(&prompt)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(report)
}

pub async fn battle_votes(
    pool: &PgPool,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<BattleVote>> {
    let rows = sqlx::query(
        "SELECT r.id, r.item_id, b.model_a, b.model_b, u.name, r.answers, i.category, i.locale, m.locales
         FROM responses r JOIN battles b ON b.item_id = r.item_id JOIN items i ON i.id = r.item_id
         JOIN users u ON u.id = r.user_id
         LEFT JOIN members m ON m.project_id = r.project_id AND m.user_id = r.user_id
         WHERE r.project_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3",
    )
    .bind(project_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(database_error)?;
    rows.iter().map(battle_vote_from).collect()
}
