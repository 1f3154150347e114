//! Tallies: the SQL of the tally queue and the adapter of the `Tallies` port.

use async_trait::async_trait;
use quorum_store::{Tallies, TallyBatch, TallyItem, TallyResponse};

use super::*;
use crate::SqliteStore;

#[async_trait]
impl Tallies for SqliteStore {
    async fn tally_batch(&self, project_id: i64, limit: i64) -> Result<TallyBatch> {
        self.readers
            .run(move |c| {
                // One read transaction: the tally, the queue and the responses agree.
                let snapshot = c.unchecked_transaction().map_err(database_error)?;
                tally_batch(&snapshot, project_id, limit)
            })
            .await
    }
    async fn save_tally(
        &self,
        project_id: i64,
        version: i64,
        data: String,
        folded: Vec<i64>,
        now: i64,
    ) -> Result<bool> {
        self.write(move |c| save_tally(c, project_id, version, &data, &folded, now))
            .await
    }
    async fn tally(&self, project_id: i64) -> Result<Option<(i64, String, i64)>> {
        self.readers
            .run(move |c| {
                one(
                    c,
                    "SELECT version, data, updated_at FROM tallies WHERE project_id = ?1",
                    [project_id],
                    |row| Ok(Ok((row.get(0)?, row.get(1)?, row.get(2)?))),
                )
            })
            .await
    }
    async fn tally_backlog(&self, project_id: i64, cap: i64) -> Result<i64> {
        self.readers
            .run(move |c| {
                Ok(scalar(
                    c,
                    "SELECT COUNT(*) FROM
                       (SELECT 1 FROM tally_queue WHERE project_id = ?1 LIMIT ?2)",
                    [project_id, cap],
                )?
                .unwrap_or(0))
            })
            .await
    }
    async fn tally_pending(&self) -> Result<Vec<i64>> {
        self.readers
            .run(|c| {
                all(
                    c,
                    // One index probe per project, not a walk of the whole queue.
                    "WITH RECURSIVE p(id) AS (
                         SELECT MIN(project_id) FROM tally_queue
                         UNION ALL
                         SELECT (SELECT MIN(project_id) FROM tally_queue WHERE project_id > p.id)
                         FROM p WHERE p.id IS NOT NULL)
                     SELECT id FROM p WHERE id IS NOT NULL",
                    [],
                    |row| Ok(Ok(row.get(0)?)),
                )
            })
            .await
    }
    async fn tally_oldest(&self) -> Result<Option<i64>> {
        self.readers
            .run(|c| {
                Ok(scalar::<Option<i64>>(
                    c,
                    "SELECT created_at FROM responses
                     WHERE id = (SELECT MIN(response_id) FROM tally_queue)",
                    [],
                )?
                .flatten())
            })
            .await
    }
}

pub fn tally_batch(conn: &Connection, project_id: i64, limit: i64) -> Result<TallyBatch> {
    let saved: Option<(i64, String)> = one(
        conn,
        "SELECT version, data FROM tallies WHERE project_id = ?1",
        [project_id],
        |row| Ok(Ok((row.get(0)?, row.get(1)?))),
    )?;
    let mut batch = TallyBatch {
        version: saved.as_ref().map_or(0, |s| s.0),
        data: saved.map(|s| s.1),
        items: Vec::new(),
        gone: Vec::new(),
    };
    // The first `limit` items with queued responses, by id: the batch is every queued item up
    // to the last of them.
    let last: Option<i64> = scalar::<Option<i64>>(
        conn,
        "SELECT MAX(item_id) FROM (SELECT DISTINCT item_id FROM tally_queue
                                   WHERE project_id = ?1 ORDER BY item_id LIMIT ?2)",
        [project_id, limit],
    )?
    .flatten();
    let Some(last) = last else {
        return Ok(batch);
    };
    let rows = all(
        conn,
        "SELECT q.item_id, r.id, r.user_id, r.answers, r.time_spent_ms, r.created_at,
                EXISTS (SELECT 1 FROM tally_queue t WHERE t.response_id = r.id)
         FROM (SELECT DISTINCT item_id FROM tally_queue WHERE project_id = ?1 AND item_id <= ?2) q
         JOIN leases l ON l.item_id = q.item_id
         JOIN responses r ON r.lease_id = l.id
         ORDER BY q.item_id, r.id",
        [project_id, last],
        queued_response_from,
    )?;
    for (item_id, queued, response) in rows {
        if batch.items.last().map(|i| i.item_id) != Some(item_id) {
            batch.items.push(TallyItem {
                item_id,
                responses: Vec::new(),
                queued: Vec::new(),
            });
        }
        let item = batch.items.last_mut().expect("pushed above");
        if queued {
            item.queued.push(response.id);
        }
        item.responses.push(response);
    }
    batch.gone = all(
        conn,
        "SELECT response_id FROM tally_queue q
         WHERE project_id = ?1 AND item_id <= ?2
           AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.id = q.response_id)",
        [project_id, last],
        |row| Ok(Ok(row.get(0)?)),
    )?;
    Ok(batch)
}

type QueuedRow = (i64, bool, TallyResponse);

/// Item id, whether the response is queued, and the response.
fn queued_response_from(row: &Row<'_>) -> rusqlite::Result<Result<QueuedRow>> {
    let answers = match parse_json(&row.get::<_, String>(3)?) {
        Ok(answers) => answers,
        Err(e) => return Ok(Err(e)),
    };
    let response = TallyResponse {
        id: row.get(1)?,
        user_id: row.get(2)?,
        answers,
        time_spent_ms: row.get(4)?,
        created_at: row.get(5)?,
    };
    Ok(Ok((row.get(0)?, row.get(6)?, response)))
}

pub fn save_tally(
    conn: &Connection,
    project_id: i64,
    version: i64,
    data: &str,
    folded: &[i64],
    now: i64,
) -> Result<bool> {
    let saved: Option<i64> = scalar(
        conn,
        "SELECT version FROM tallies WHERE project_id = ?1",
        [project_id],
    )?;
    if saved.unwrap_or(0) != version {
        return Ok(false);
    }
    execute(
        conn,
        "INSERT INTO tallies (project_id, version, data, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (project_id) DO UPDATE SET version = excluded.version, data = excluded.data,
                                               updated_at = excluded.updated_at",
        params![project_id, version + 1, data, now],
    )?;
    execute(
        conn,
        "DELETE FROM tally_queue WHERE response_id IN (SELECT value FROM json_each(?1))",
        [json_text(&folded)],
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use quorum_store::Tallies;

    use super::*;

    /// A queued response that no longer exists (its row removed under the queue) leaves the
    /// queue with the next fold instead of holding the queue up for good.
    #[tokio::test]
    async fn a_queued_response_that_is_gone_leaves_the_queue() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("q.sqlite3");
        let store = SqliteStore::open(path.to_str().expect("UTF-8"))
            .await
            .expect("opens");
        store
            .write(|c| {
                c.execute_batch(
                    "INSERT INTO users (id, name, password_hash, created_at) VALUES (1, 'a', '', 0);
                     INSERT INTO projects (id, name, instructions, schema, overlap, lease_seconds,
                                           locale_policy, quality, created_at)
                     VALUES (1, 'p', '', '{}', 1, 60, 'any', '{}', 0);
                     INSERT INTO items (id, project_id, fields, created_at) VALUES (1, 1, '{}', 0);
                     INSERT INTO items (id, project_id, fields, created_at) VALUES (2, 1, '{}', 0);
                     INSERT INTO leases (id, project_id, item_id, user_id, created_at, expires_at, state)
                     VALUES (1, 1, 1, 1, 0, 1, 'submitted'), (2, 1, 2, 1, 0, 1, 'submitted');
                     INSERT INTO responses (id, project_id, item_id, user_id, lease_id, answers, created_at)
                     VALUES (1, 1, 1, 1, 1, '{}', 5), (2, 1, 2, 1, 2, '{}', 6);
                     DELETE FROM responses WHERE id = 1;",
                )
                .map_err(database_error)
            })
            .await
            .expect("written");
        let batch = store.tally_batch(1, 10).await.expect("read");
        assert_eq!(batch.gone, vec![1]);
        assert_eq!(batch.items.len(), 1, "item 2 and its response");
        assert_eq!(batch.queued(), vec![2, 1]);
        assert!(
            store
                .save_tally(1, 0, "{}".into(), batch.queued(), 7)
                .await
                .expect("saved")
        );
        assert_eq!(store.tally_backlog(1, 10).await.expect("read"), 0);
        assert_eq!(store.tally_oldest().await.expect("read"), None);
    }
}
