//! Work: the SQL of the work context and the adapter of the `Work` port.

use async_trait::async_trait;
use quorum_store::{
    ItemPage, ItemResponse, SubmitStep, Work, late_answer, may_replay, own_lease, skip_step,
    submit_step,
};

use super::projects::item;
use super::rows::*;
use super::*;
use crate::SqliteStore;

#[async_trait]
impl Work for SqliteStore {
    async fn next_lease(&self, request: NextRequest) -> Result<Option<(Lease, StoredItem)>> {
        self.write(move |c| next_lease(c, request)).await
    }
    async fn lease(&self, id: i64) -> Result<Option<Lease>> {
        self.readers.run(move |c| lease(c, id)).await
    }
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome> {
        self.write(move |c| submit(c, submission)).await
    }
    async fn skip(&self, lease_id: i64, user_id: i64, _now: i64) -> Result<()> {
        self.write(move |c| skip(c, lease_id, user_id)).await
    }
    async fn export_responses(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>> {
        self.readers
            .run(move |c| export_responses(c, project_id, after, limit))
            .await
    }
    async fn responses_by_item(
        &self,
        project_id: i64,
        after_item: i64,
        items: i64,
    ) -> Result<ItemPage> {
        self.readers
            .run(move |c| {
                let snapshot = c.unchecked_transaction().map_err(database_error)?;
                responses_by_item(&snapshot, project_id, after_item, items)
            })
            .await
    }
}

/// Adds `delta_responses` and `delta_active` to an item's counters and recomputes `open`.
pub(crate) fn count(
    conn: &Connection,
    item_id: i64,
    overlap: i32,
    delta_responses: i64,
    delta_active: i64,
) -> Result<()> {
    execute(
        conn,
        "UPDATE items SET responses = responses + ?1, active_leases = active_leases + ?2,
         open = (settled = 0 AND responses + ?1 + active_leases + ?2 < ?3) WHERE id = ?4",
        params![delta_responses, delta_active, overlap, item_id],
    )?;
    Ok(())
}

/// Marks one live lease expired (if it still is) and frees its slot.
pub(crate) fn expire(conn: &Connection, lease_id: i64, overlap: i32) -> Result<()> {
    let item: Option<i64> = scalar(
        conn,
        "UPDATE leases SET state = 'expired' WHERE id = ?1 AND state = 'active' RETURNING item_id",
        [lease_id],
    )?;
    if let Some(item) = item {
        count(conn, item, overlap, 0, -1)?;
        quorum_store::count_expired(1);
    }
    Ok(())
}

pub fn next_lease(conn: &Connection, request: NextRequest) -> Result<Option<(Lease, StoredItem)>> {
    let NextRequest {
        project_id,
        user_id,
        overlap,
        lease_seconds,
        ref locales,
        pool,
        now,
    } = request;
    if let Some(lease) = one(
        conn,
        "SELECT * FROM leases WHERE user_id = ?1 AND project_id = ?2 AND state = 'active' AND expires_at > ?3 LIMIT 1",
        [user_id, project_id, now],
        lease_from,
    )? {
        let item = item(conn, lease.item_id)?.ok_or(StoreError::NotFound("item"))?;
        return Ok(Some((lease, item)));
    }
    let stale: Vec<i64> = {
        let mut statement = conn
            .prepare_cached("SELECT id FROM leases WHERE project_id = ?1 AND state = 'active' AND expires_at <= ?2")
            .map_err(database_error)?;
        let rows = statement
            .query_map([project_id, now], |row| row.get(0))
            .map_err(database_error)?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(database_error)?
    };
    for lease_id in stale {
        expire(conn, lease_id, overlap)?;
    }
    // Where gold is mixed in (a pool other than `Any` was asked for), the other pool's choice
    // is made too and thrown away, so how long `next` takes tells nothing of which it was.
    let decoy = match pool {
        Pool::Any => None,
        Pool::Gold => Some(Pool::Regular),
        Pool::Regular => Some(Pool::Gold),
    };
    if let Some(other) = decoy {
        candidate(conn, other, project_id, user_id, locales.as_ref())?;
    }
    let Some(item_id) = candidate(conn, pool, project_id, user_id, locales.as_ref())? else {
        return Ok(None);
    };
    let lease = one(
        conn,
        "INSERT INTO leases (project_id, item_id, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING *",
        [project_id, item_id, user_id, now, now + lease_seconds * 1000],
        lease_from,
    )?
    .ok_or(StoreError::NotFound("lease"))?;
    count(conn, item_id, overlap, 0, 1)?;
    let item = item(conn, item_id)?.ok_or(StoreError::NotFound("item"))?;
    Ok(Some((lease, item)))
}

/// The choice of an item from a pool: open items (any gold item, for the gold pool) the rater
/// never had, matching their locales when required; best first.
fn candidate(
    conn: &Connection,
    pool: Pool,
    project_id: i64,
    user_id: i64,
    locales: Option<&quorum_core::LocaleFilter>,
) -> Result<Option<i64>> {
    let mut sql = String::from(match pool {
        Pool::Any => "SELECT id FROM items i WHERE i.project_id = ?1 AND i.open = 1",
        Pool::Regular => {
            "SELECT id FROM items i WHERE i.project_id = ?1 AND i.open = 1 AND i.gold IS NULL"
        }
        Pool::Gold => "SELECT id FROM items i WHERE i.project_id = ?1 AND i.gold IS NOT NULL",
    });
    sql.push_str(
        " AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.item_id = i.id AND l.user_id = ?2)",
    );
    let mut values: Vec<rusqlite::types::Value> = vec![project_id.into(), user_id.into()];
    if let Some(filter) = locales {
        sql.push_str(" AND (i.locale_key IS NULL");
        for (column, list) in [
            ("locale_key", &filter.tags),
            ("language_key", &filter.languages),
        ] {
            if !list.is_empty() {
                let start = values.len() + 1;
                let marks: Vec<String> = (start..start + list.len())
                    .map(|n| format!("?{n}"))
                    .collect();
                sql.push_str(&format!(" OR i.{column} IN ({})", marks.join(", ")));
                values.extend(list.iter().cloned().map(rusqlite::types::Value::from));
            }
        }
        sql.push(')');
    }
    sql.push_str(if pool == Pool::Gold {
        " ORDER BY random() LIMIT 1"
    } else {
        " ORDER BY i.priority DESC, i.id ASC LIMIT 1"
    });
    scalar::<i64>(conn, &sql, params_from_iter(values))
}

pub fn lease(conn: &Connection, id: i64) -> Result<Option<Lease>> {
    one(conn, "SELECT * FROM leases WHERE id = ?1", [id], lease_from)
}

pub fn submit(conn: &Connection, s: Submission) -> Result<SubmitOutcome> {
    let lease = own_lease(lease(conn, s.lease_id)?, s.user_id)?;
    if may_replay(&lease)
        && let Some(key) = &s.idempotency_key
        && let Some(response) = one(
            conn,
            "SELECT * FROM responses WHERE user_id = ?1 AND idempotency_key = ?2",
            params![s.user_id, key],
            response_from,
        )?
    {
        return Ok(SubmitOutcome::Replayed(response));
    }
    let step = submit_step(&lease, s.now)?;
    if let SubmitStep::Late { expire_first } = step {
        if expire_first {
            expire(conn, lease.id, s.overlap)?;
        }
        let (taken, gold): (i64, bool) = one(
            conn,
            "SELECT responses + active_leases, gold IS NOT NULL FROM items WHERE id = ?1",
            [lease.item_id],
            |row| Ok(Ok((row.get(0)?, row.get(1)?))),
        )?
        .unwrap_or((0, false));
        late_answer(taken, s.overlap, gold, s.gold_pool)?;
    }
    let (responses, active) = step.counts();
    count(conn, lease.item_id, s.overlap, responses, active)?;
    execute(
        conn,
        "UPDATE leases SET state = 'submitted' WHERE id = ?1",
        [lease.id],
    )?;
    let response = one(
        conn,
        "INSERT INTO responses (project_id, item_id, user_id, lease_id, answers, time_spent_ms, idempotency_key, gold_correct, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING *",
        params![lease.project_id, lease.item_id, s.user_id, lease.id, json_text(&s.answers), s.time_spent_ms, s.idempotency_key, s.gold_correct, s.now],
        response_from,
    )?
    .ok_or(StoreError::NotFound("response"))?;
    answer_events(conn, &response, s.overlap, responses == 1)?;
    Ok(SubmitOutcome::Created(response))
}

/// The events of a stored answer, in its transaction: `response.created`, and
/// `item.completed` when it was the answer that brought the item to its overlap.
fn answer_events(
    conn: &Connection,
    response: &Response,
    overlap: i32,
    counted: bool,
) -> Result<()> {
    let wanted = wanted_events(conn, Some(response.project_id))?;
    let (project, item, now) = (response.project_id, response.item_id, response.created_at);
    if wanted.iter().any(|k| k == "response.created") {
        let subject = serde_json::json!({"response_id": response.id, "item_id": item});
        emit(conn, Some(project), "response.created", &subject, now)?;
    }
    let completion = ["item.completed", "project.completed"];
    if counted && wanted.iter().any(|k| completion.contains(&k.as_str())) {
        let complete: Option<bool> = scalar(
            conn,
            "SELECT responses = ?2 AND settled = 0 FROM items WHERE id = ?1",
            params![item, overlap],
        )?;
        if complete == Some(true) {
            item_completed(conn, project, item, "overlap", now)?;
        }
    }
    Ok(())
}

pub fn skip(conn: &Connection, lease_id: i64, user_id: i64) -> Result<()> {
    let lease = own_lease(lease(conn, lease_id)?, user_id)?;
    skip_step(&lease)?;
    let overlap: i32 = scalar(
        conn,
        "SELECT overlap FROM projects WHERE id = ?1",
        [lease.project_id],
    )?
    .ok_or(StoreError::NotFound("project"))?;
    execute(
        conn,
        "UPDATE leases SET state = 'skipped' WHERE id = ?1",
        [lease.id],
    )?;
    count(conn, lease.item_id, overlap, 0, -1)
}

pub fn responses_by_item(
    conn: &Connection,
    project_id: i64,
    after_item: i64,
    items: i64,
) -> Result<ItemPage> {
    let last: Option<i64> = scalar::<Option<i64>>(
        conn,
        "SELECT MAX(id) FROM (SELECT id FROM items WHERE project_id = ?1 AND id > ?2
                              ORDER BY id LIMIT ?3)",
        [project_id, after_item, items],
    )?
    .flatten();
    let Some(last) = last else {
        return Ok(ItemPage::default());
    };
    // Items by the (project_id, id) index, their leases by (item_id, user_id), each lease's
    // response by its key: a page reads its own rows and no others.
    let rows = all(
        conn,
        "SELECT r.id, i.id AS item_id, i.external_id, r.user_id, u.name, r.answers,
                r.time_spent_ms, r.created_at, i.gold IS NOT NULL AS gold
         FROM items i JOIN leases l ON l.item_id = i.id JOIN responses r ON r.lease_id = l.id
              JOIN users u ON u.id = r.user_id
         WHERE i.project_id = ?1 AND i.id > ?2 AND i.id <= ?3 ORDER BY i.id, r.id",
        [project_id, after_item, last],
        |row| {
            Ok(Ok(ItemResponse {
                response_id: row.get(0)?,
                item_id: row.get(1)?,
                external_id: row.get(2)?,
                user_id: row.get(3)?,
                user_name: row.get(4)?,
                answers: row.get(5)?,
                time_spent_ms: row.get(6)?,
                created_at: row.get(7)?,
                gold: row.get(8)?,
            }))
        },
    )?;
    let gold = all(
        conn,
        "SELECT id, gold FROM items WHERE project_id = ?1 AND id > ?2 AND id <= ?3
                                      AND gold IS NOT NULL",
        [project_id, after_item, last],
        |row| {
            let (id, gold): (i64, String) = (row.get(0)?, row.get(1)?);
            Ok(parse_json(&gold).map(|gold| (id, gold)))
        },
    )?;
    Ok(ItemPage {
        rows,
        gold,
        last_item: Some(last),
    })
}

pub fn export_responses(
    conn: &Connection,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<ExportRow>> {
    all(
        conn,
        "SELECT r.id, r.item_id, i.external_id, r.user_id, u.name, r.answers, r.time_spent_ms, r.created_at,
                i.gold IS NOT NULL AS gold
         FROM responses r JOIN items i ON i.id = r.item_id JOIN users u ON u.id = r.user_id
         WHERE r.project_id = ?1 AND r.id > ?2 ORDER BY r.id LIMIT ?3",
        [project_id, after, limit],
        export_row_from,
    )
}
