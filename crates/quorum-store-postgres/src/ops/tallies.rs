//! Tallies: the SQL of the tally queue and the adapter of the `Tallies` port.

use async_trait::async_trait;
use quorum_store::{Tallies, TallyBatch, TallyItem, TallyResponse};

use super::*;
use crate::PgStore;

#[async_trait]
impl Tallies for PgStore {
    async fn tally_batch(&self, project_id: i64, limit: i64) -> Result<TallyBatch> {
        // One snapshot: the tally, the queue and the responses agree.
        let mut snapshot = self.pool.begin().await.map_err(database_error)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *snapshot)
            .await
            .map_err(database_error)?;
        let batch = tally_batch(&mut snapshot, project_id, limit).await;
        let _ = snapshot.rollback().await;
        batch
    }
    async fn save_tally(
        &self,
        project_id: i64,
        version: i64,
        data: String,
        folded: Vec<i64>,
        now: i64,
    ) -> Result<bool> {
        transaction!(self.pool, |conn| save_tally(
            conn, project_id, version, &data, &folded, now
        )
        .await)
    }
    async fn tally(&self, project_id: i64) -> Result<Option<(i64, String, i64)>> {
        sqlx::query_as("SELECT version, data, updated_at FROM tallies WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(database_error)
    }
    async fn tally_backlog(&self, project_id: i64, cap: i64) -> Result<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM tally_queue WHERE project_id = $1 LIMIT $2) q",
        )
        .bind(project_id)
        .bind(cap)
        .fetch_one(&self.pool)
        .await
        .map_err(database_error)
    }
    async fn tally_pending(&self) -> Result<Vec<i64>> {
        // One index probe per project, not a walk of the whole queue.
        sqlx::query_scalar(
            "WITH RECURSIVE p(id) AS (
                 SELECT MIN(project_id) FROM tally_queue
                 UNION ALL
                 SELECT (SELECT MIN(project_id) FROM tally_queue WHERE project_id > p.id)
                 FROM p WHERE p.id IS NOT NULL)
             SELECT id FROM p WHERE id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(database_error)
    }
    async fn tally_oldest(&self) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT created_at FROM responses WHERE id = (SELECT MIN(response_id) FROM tally_queue)",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(database_error)
    }
}

async fn tally_batch(conn: &mut PgConnection, project_id: i64, limit: i64) -> Result<TallyBatch> {
    let saved: Option<(i64, String)> =
        sqlx::query_as("SELECT version, data FROM tallies WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(database_error)?;
    let mut batch = TallyBatch {
        version: saved.as_ref().map_or(0, |s| s.0),
        data: saved.map(|s| s.1),
        items: Vec::new(),
        gone: Vec::new(),
    };
    // The first `limit` items with queued responses, by id, named one by one: joined through
    // a range instead, the planner reads every lease and response of the table.
    let items: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT item_id FROM tally_queue WHERE project_id = $1 ORDER BY item_id LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(database_error)?;
    if items.is_empty() {
        return Ok(batch);
    }
    let rows = sqlx::query(
        "SELECT q.item_id, r.id, r.user_id, r.answers, r.time_spent_ms, r.created_at,
                EXISTS (SELECT 1 FROM tally_queue t WHERE t.response_id = r.id) AS queued
         FROM unnest($1::BIGINT[]) AS q(item_id)
         JOIN leases l ON l.item_id = q.item_id
         JOIN responses r ON r.lease_id = l.id
         ORDER BY q.item_id, r.id",
    )
    .bind(&items)
    .fetch_all(&mut *conn)
    .await
    .map_err(database_error)?;
    for row in &rows {
        let item_id: i64 = get(row, "item_id")?;
        if batch.items.last().map(|i| i.item_id) != Some(item_id) {
            batch.items.push(TallyItem {
                item_id,
                responses: Vec::new(),
                queued: Vec::new(),
            });
        }
        let response = TallyResponse {
            id: get(row, "id")?,
            user_id: get(row, "user_id")?,
            answers: parse_json(&get::<String>(row, "answers")?)?,
            time_spent_ms: get(row, "time_spent_ms")?,
            created_at: get(row, "created_at")?,
        };
        let item = batch.items.last_mut().expect("pushed above");
        if get(row, "queued")? {
            item.queued.push(response.id);
        }
        item.responses.push(response);
    }
    batch.gone = sqlx::query_scalar(
        "SELECT response_id FROM tally_queue q
         WHERE project_id = $1 AND item_id = ANY($2)
           AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.id = q.response_id)",
    )
    .bind(project_id)
    .bind(&items)
    .fetch_all(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(batch)
}

async fn save_tally(
    conn: &mut PgConnection,
    project_id: i64,
    version: i64,
    data: &str,
    folded: &[i64],
    now: i64,
) -> Result<bool> {
    // A concurrent fold of the same version waits on the row, then finds the version moved on.
    let saved = if version == 0 {
        sqlx::query(
            "INSERT INTO tallies (project_id, version, data, updated_at) VALUES ($1, 1, $2, $3)
             ON CONFLICT (project_id) DO NOTHING",
        )
        .bind(project_id)
    } else {
        sqlx::query(
            "UPDATE tallies SET version = version + 1, data = $2, updated_at = $3
             WHERE project_id = $1 AND version = $4",
        )
        .bind(project_id)
    };
    let query = saved.bind(data).bind(now);
    let query = if version == 0 {
        query
    } else {
        query.bind(version)
    };
    let saved = query
        .execute(&mut *conn)
        .await
        .map_err(database_error)?
        .rows_affected()
        == 1;
    if saved {
        sqlx::query("DELETE FROM tally_queue WHERE response_id = ANY($1)")
            .bind(folded)
            .execute(&mut *conn)
            .await
            .map_err(database_error)?;
    }
    Ok(saved)
}
