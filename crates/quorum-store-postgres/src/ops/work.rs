//! Work: the SQL of the work context and the adapter of the `Work` port.

use async_trait::async_trait;
use quorum_store::{
    ItemPage, ItemResponse, SubmitStep, Work, late_answer, may_replay, own_lease, skip_step,
    submit_step,
};

use super::projects::item;
use super::rows::*;
use super::*;
use crate::{PgStore, retryable};

#[async_trait]
impl Work for PgStore {
    async fn next_lease(&self, request: NextRequest) -> Result<Option<(Lease, StoredItem)>> {
        // Each statement is atomic; a lost deadlock or serialisation race is simply retried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match next_lease(&self.pool, request.clone()).await {
                Err(error) if attempt < 8 && retryable(&error) => continue,
                other => return other,
            }
        }
    }
    async fn lease(&self, id: i64) -> Result<Option<Lease>> {
        lease(&self.pool, id).await
    }
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome> {
        match submit_live_lease(&self.pool, &submission).await {
            Ok(Some(response)) => return Ok(SubmitOutcome::Created(response)),
            // Not a live lease, or the statement lost a race: the full transaction decides.
            Ok(None) => {}
            Err(error) if retryable(&error) => {}
            Err(error) => return Err(error),
        }
        transaction!(self.pool, |conn| submit(conn, submission.clone()).await)
    }
    async fn skip(&self, lease_id: i64, user_id: i64, _now: i64) -> Result<()> {
        transaction!(self.pool, |conn| skip(conn, lease_id, user_id).await)
    }
    async fn export_responses(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>> {
        export_responses(&self.pool, project_id, after, limit).await
    }
    async fn responses_by_item(
        &self,
        project_id: i64,
        after_item: i64,
        items: i64,
    ) -> Result<ItemPage> {
        responses_by_item(&self.pool, project_id, after_item, items).await
    }
}

/// Adds `delta_responses` and `delta_active` to an item's counters and recomputes `open`.
pub(crate) async fn count(
    conn: &mut PgConnection,
    item_id: i64,
    overlap: i32,
    delta_responses: i64,
    delta_active: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE items SET responses = responses + $1, active_leases = active_leases + $2,
         open = (NOT settled AND responses + $1 + active_leases + $2 < $3) WHERE id = $4",
    )
    .bind(delta_responses)
    .bind(delta_active)
    .bind(i64::from(overlap))
    .bind(item_id)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(())
}

/// Marks one live lease expired (if it still is) and frees its slot.
pub(crate) async fn expire(conn: &mut PgConnection, lease_id: i64, overlap: i32) -> Result<()> {
    let item: Option<i64> = sqlx::query_scalar(
        "UPDATE leases SET state = 'expired' WHERE id = $1 AND state = 'active' RETURNING item_id",
    )
    .bind(lease_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database_error)?;
    if let Some(item) = item {
        count(conn, item, overlap, 0, -1).await?;
        quorum_store::count_expired(1);
    }
    Ok(())
}

/// Two autocommitted statements, no explicit transaction: each is atomic on its own, and
/// together they take two round trips instead of four.
pub async fn next_lease(
    pool: &PgPool,
    request: NextRequest,
) -> Result<Option<(Lease, StoredItem)>> {
    let NextRequest {
        project_id,
        user_id,
        overlap,
        lease_seconds,
        ref locales,
        pool: which,
        now,
    } = request;
    // In one round trip: make this transaction's commit asynchronous, expire the project's
    // stale leases (freeing their slots), and look for the rater's own live lease, which is
    // returned again if there is one. The one-row `config` relation on the outside makes sure
    // `set_config` runs whether or not a lease is found.
    //
    // The commit need not wait for its WAL flush because a lease is not an answer: if the
    // server crashes first, the item simply returns to the pool, and the next durable commit
    // (an answer) flushes it anyway, in order.
    let row = sqlx::query(
        "WITH expired AS (
             UPDATE leases SET state = 'expired'
             WHERE project_id = $1 AND state = 'active' AND expires_at <= $3 RETURNING item_id),
         freed AS (SELECT item_id, COUNT(*)::INT AS n FROM expired GROUP BY item_id),
         released AS (
             UPDATE items SET active_leases = active_leases - freed.n,
                              open = (NOT settled AND responses + active_leases - freed.n < $4)
             FROM freed WHERE items.id = freed.item_id)
         SELECT live.*, (SELECT COUNT(*) FROM expired) AS expired_now
         FROM (SELECT set_config('synchronous_commit', 'off', true)) AS config
         LEFT JOIN LATERAL (
             SELECT * FROM leases
             WHERE user_id = $2 AND project_id = $1 AND state = 'active' AND expires_at > $3 LIMIT 1
         ) AS live ON TRUE",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(now)
    .bind(overlap)
    .fetch_one(pool)
    .await
    .map_err(database_error)?;
    quorum_store::count_expired(get::<i64>(&row, "expired_now")?.unsigned_abs());
    if get::<Option<i64>>(&row, "id")?.is_some() {
        let lease = lease_from(&row)?;
        let item = item(pool, lease.item_id)
            .await?
            .ok_or(StoreError::NotFound("item"))?;
        return Ok(Some((lease, item)));
    }
    // Choose, lease and count in one statement. Rows another transaction is assigning are
    // skipped, not waited for: concurrent raters each take a different open item, and the open
    // flag is re-checked after the lock.
    // Where gold is mixed in (a pool other than `Any` was asked for), the other pool's choice
    // is made too and thrown away, so how long `next` takes tells nothing of which it was.
    let mut sql = format!(
        "WITH candidate AS ({} FOR UPDATE SKIP LOCKED)",
        candidate_sql(which, locales.is_some())
    );
    let decoy = match which {
        Pool::Any => None,
        Pool::Gold => Some(Pool::Regular),
        Pool::Regular => Some(Pool::Gold),
    };
    if let Some(other) = decoy {
        sql.push_str(&format!(
            ", decoy AS ({})",
            candidate_sql(other, locales.is_some())
        ));
    }
    sql.push_str(
        ",
         lease AS (
             INSERT INTO leases (project_id, item_id, user_id, created_at, expires_at)
             SELECT $1, id, $2, $3, $4 FROM candidate RETURNING *),
         item AS (
             UPDATE items SET active_leases = active_leases + 1, open = (NOT settled AND responses + active_leases + 1 < $5)
             WHERE id = (SELECT item_id FROM lease) RETURNING *)
         SELECT chosen.* FROM (SELECT set_config('synchronous_commit', 'off', true)) AS config",
    );
    if decoy.is_some() {
        sql.push_str(" CROSS JOIN (SELECT COUNT(*) FROM decoy) AS decoy_made");
    }
    sql.push_str(
        " LEFT JOIN LATERAL (
             SELECT item.*, lease.id AS lease_id, lease.created_at AS lease_created_at, lease.expires_at
             FROM lease JOIN item ON item.id = lease.item_id
         ) AS chosen ON TRUE",
    );
    let mut query = sqlx::query(&sql)
        .bind(project_id)
        .bind(user_id)
        .bind(now)
        .bind(now + lease_seconds * 1000)
        .bind(overlap);
    if let Some(filter) = locales {
        query = query.bind(&filter.tags).bind(&filter.languages);
    }
    let row = query.fetch_one(pool).await.map_err(database_error)?;
    if get::<Option<i64>>(&row, "lease_id")?.is_none() {
        return Ok(None);
    }
    let item = item_from(&row)?;
    let lease = Lease {
        id: get(&row, "lease_id")?,
        project_id,
        item_id: item.id,
        user_id,
        created_at: get(&row, "lease_created_at")?,
        expires_at: get(&row, "expires_at")?,
        state: LeaseState::Active,
    };
    Ok(Some((lease, item)))
}

/// The choice of an item from a pool: open items (any gold item, for the gold pool) the rater
/// never had, matching their locales when `$6`/`$7` are bound; best first.
fn candidate_sql(which: Pool, locales: bool) -> String {
    let mut sql = String::from(match which {
        Pool::Any => "SELECT id FROM items i WHERE i.project_id = $1 AND i.open",
        Pool::Regular => {
            "SELECT id FROM items i WHERE i.project_id = $1 AND i.open AND i.gold IS NULL"
        }
        Pool::Gold => "SELECT id FROM items i WHERE i.project_id = $1 AND i.gold IS NOT NULL",
    });
    sql.push_str(
        " AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.item_id = i.id AND l.user_id = $2)",
    );
    if locales {
        // Arrays keep the statement text the same whatever the number of locales.
        sql.push_str(
            " AND (i.locale_key IS NULL OR i.locale_key = ANY($6) OR i.language_key = ANY($7))",
        );
    }
    sql.push_str(if which == Pool::Gold {
        " ORDER BY random() LIMIT 1"
    } else {
        " ORDER BY i.priority DESC, i.id ASC LIMIT 1"
    });
    sql
}

pub async fn lease(pool: &PgPool, id: i64) -> Result<Option<Lease>> {
    let row = sqlx::query("SELECT * FROM leases WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(lease_from).transpose()
}

/// The lease, locked for the rest of the transaction.
async fn locked_lease(conn: &mut PgConnection, lease_id: i64) -> Result<Option<Lease>> {
    let row = sqlx::query("SELECT * FROM leases WHERE id = $1 FOR UPDATE")
        .bind(lease_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database_error)?;
    row.as_ref().map(lease_from).transpose()
}

/// The common case of a submission in one autocommitted statement: the caller's lease is live,
/// so mark it answered, count the response and store it — with its `response.created` event
/// and deliveries when a subscription wants them. Returns `None` when the lease is not the
/// caller's live lease (already answered, skipped, expired, someone else's or missing), or when
/// a subscription wants completion events (which need the item's count after this answer):
/// [`submit`] then sorts out which, writes those events, replays, or refuses.
pub async fn submit_live_lease(pool: &PgPool, s: &Submission) -> Result<Option<Response>> {
    let row = sqlx::query(
        "WITH hooks AS (
             SELECT webhooks.id, webhooks.events FROM webhooks, leases
             WHERE leases.id = $2
               AND (webhooks.project_id = leases.project_id OR webhooks.project_id IS NULL)),
         answered AS (
             UPDATE leases SET state = 'submitted'
             WHERE id = $2 AND user_id = $1 AND state = 'active' AND expires_at > $6
               AND NOT EXISTS (SELECT 1 FROM hooks WHERE events LIKE '%\"item.completed\"%'
                                                      OR events LIKE '%\"project.completed\"%')
             RETURNING project_id, item_id),
         counted AS (
             UPDATE items SET responses = responses + 1, active_leases = active_leases - 1,
                              open = (NOT settled AND responses + active_leases < $7)
             WHERE id = (SELECT item_id FROM answered)),
         stored AS (
             INSERT INTO responses (project_id, item_id, user_id, lease_id, answers, time_spent_ms, idempotency_key, created_at, gold_correct)
             SELECT project_id, item_id, $1, $2, $3, $4, $5, $6, $8 FROM answered
             RETURNING *),
         event AS (
             INSERT INTO webhook_events (project_id, kind, subject, created_at)
             SELECT project_id, 'response.created',
                    json_build_object('response_id', id, 'item_id', item_id)::text, $6
             FROM stored WHERE EXISTS (SELECT 1 FROM hooks WHERE events LIKE '%\"response.created\"%')
             RETURNING id),
         deliveries AS (
             INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at)
             SELECT hooks.id, event.id, $6, $6 FROM hooks, event
             WHERE hooks.events LIKE '%\"response.created\"%')
         SELECT stored.* FROM stored, (SELECT set_config('synchronous_commit', 'on', true)) AS durable",
    )
    .bind(s.user_id)
    .bind(s.lease_id)
    .bind(json_text(&s.answers))
    .bind(s.time_spent_ms)
    .bind(&s.idempotency_key)
    .bind(s.now)
    .bind(s.overlap)
    .bind(s.gold_correct)
    .fetch_optional(pool)
    .await
    .map_err(database_error)?;
    row.as_ref().map(response_from).transpose()
}

pub async fn submit(conn: &mut PgConnection, s: Submission) -> Result<SubmitOutcome> {
    // An answer is acknowledged only once it is flushed, whatever the server's default.
    sqlx::query("SELECT set_config('synchronous_commit', 'on', true)")
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    // Lock the lease first: a concurrent retry with the same idempotency key then waits here
    // and afterwards finds the first attempt's response instead of a conflict.
    let lease = own_lease(locked_lease(conn, s.lease_id).await?, s.user_id)?;
    if may_replay(&lease)
        && let Some(key) = &s.idempotency_key
    {
        let row =
            sqlx::query("SELECT * FROM responses WHERE user_id = $1 AND idempotency_key = $2")
                .bind(s.user_id)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await
                .map_err(database_error)?;
        if let Some(row) = row {
            return Ok(SubmitOutcome::Replayed(response_from(&row)?));
        }
    }
    let step = submit_step(&lease, s.now)?;
    if let SubmitStep::Late { expire_first } = step {
        if expire_first {
            expire(conn, lease.id, s.overlap).await?;
        }
        let (taken, gold): (i64, bool) = sqlx::query_as(
            "SELECT (responses + active_leases)::BIGINT, gold IS NOT NULL FROM items WHERE id = $1 FOR UPDATE",
        )
        .bind(lease.item_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(database_error)?;
        late_answer(taken, s.overlap, gold, s.gold_pool)?;
    }
    let (responses, active) = step.counts();
    // Counters, lease state and the response in one round trip.
    let row = sqlx::query(
        "WITH counted AS (
             UPDATE items SET responses = responses + $9, active_leases = active_leases + $10,
                              open = (NOT settled AND responses + $9 + active_leases + $10 < $11)
             WHERE id = $2),
         answered AS (UPDATE leases SET state = 'submitted' WHERE id = $4)
         INSERT INTO responses (project_id, item_id, user_id, lease_id, answers, time_spent_ms, idempotency_key, created_at, gold_correct)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $12) RETURNING *",
    )
    .bind(lease.project_id)
    .bind(lease.item_id)
    .bind(s.user_id)
    .bind(lease.id)
    .bind(json_text(&s.answers))
    .bind(s.time_spent_ms)
    .bind(&s.idempotency_key)
    .bind(s.now)
    .bind(responses)
    .bind(active)
    .bind(s.overlap)
    .bind(s.gold_correct)
    .fetch_one(&mut *conn)
    .await
    .map_err(database_error)?;
    let response = response_from(&row)?;
    answer_events(conn, &response, s.overlap, responses == 1).await?;
    Ok(SubmitOutcome::Created(response))
}

/// The events of a stored answer, in its transaction: `response.created`, and
/// `item.completed` when it was the answer that brought the item to its overlap.
async fn answer_events(
    conn: &mut PgConnection,
    response: &Response,
    overlap: i32,
    counted: bool,
) -> Result<()> {
    let wanted = wanted_events(conn, Some(response.project_id)).await?;
    let (project, item, now) = (response.project_id, response.item_id, response.created_at);
    if wanted.iter().any(|k| k == "response.created") {
        let subject = serde_json::json!({"response_id": response.id, "item_id": item});
        emit(conn, Some(project), "response.created", &subject, now).await?;
    }
    let completion = ["item.completed", "project.completed"];
    if counted && wanted.iter().any(|k| completion.contains(&k.as_str())) {
        let complete: Option<bool> =
            sqlx::query_scalar("SELECT responses = $2 AND NOT settled FROM items WHERE id = $1")
                .bind(item)
                .bind(i64::from(overlap))
                .fetch_optional(&mut *conn)
                .await
                .map_err(database_error)?;
        if complete == Some(true) {
            item_completed(conn, project, item, "overlap", now).await?;
        }
    }
    Ok(())
}

pub async fn skip(conn: &mut PgConnection, lease_id: i64, user_id: i64) -> Result<()> {
    let lease = own_lease(locked_lease(conn, lease_id).await?, user_id)?;
    skip_step(&lease)?;
    let overlap: i32 = sqlx::query_scalar("SELECT overlap FROM projects WHERE id = $1")
        .bind(lease.project_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(database_error)?;
    sqlx::query("UPDATE leases SET state = 'skipped' WHERE id = $1")
        .bind(lease.id)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    count(conn, lease.item_id, overlap, 0, -1).await
}

pub async fn responses_by_item(
    pool: &PgPool,
    project_id: i64,
    after_item: i64,
    items: i64,
) -> Result<ItemPage> {
    let mut tx = pool.begin().await.map_err(database_error)?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM items WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(project_id)
    .bind(after_item)
    .bind(items)
    .fetch_all(&mut *tx)
    .await
    .map_err(database_error)?;
    let Some(&last) = ids.last() else {
        return Ok(ItemPage::default());
    };
    // The items named one by one: index lookups of their leases and responses, whatever the
    // planner's statistics say about the range.
    let rows = sqlx::query(
        "SELECT r.id, i.id AS item_id, i.external_id, r.user_id, u.name, r.answers,
                r.time_spent_ms, r.created_at, i.gold IS NOT NULL AS gold
         FROM unnest($1::BIGINT[]) AS q(id)
              JOIN items i ON i.id = q.id JOIN leases l ON l.item_id = i.id
              JOIN responses r ON r.lease_id = l.id JOIN users u ON u.id = r.user_id
         ORDER BY i.id, r.id",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(database_error)?;
    let gold: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, gold FROM items WHERE id = ANY($1::BIGINT[]) AND gold IS NOT NULL ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(database_error)?;
    tx.commit().await.map_err(database_error)?;
    Ok(ItemPage {
        rows: rows
            .iter()
            .map(|row| {
                Ok(ItemResponse {
                    response_id: get(row, "id")?,
                    item_id: get(row, "item_id")?,
                    external_id: get(row, "external_id")?,
                    user_id: get(row, "user_id")?,
                    user_name: get(row, "name")?,
                    answers: get(row, "answers")?,
                    time_spent_ms: get(row, "time_spent_ms")?,
                    created_at: get(row, "created_at")?,
                    gold: get(row, "gold")?,
                })
            })
            .collect::<Result<_>>()?,
        gold: gold
            .into_iter()
            .map(|(id, gold)| Ok((id, parse_json(&gold)?)))
            .collect::<Result<_>>()?,
        last_item: Some(last),
    })
}

pub async fn export_responses(
    pool: &PgPool,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<ExportRow>> {
    // A page must be read straight off the (project_id, id) index and stop at its limit. On a
    // young table the planner's statistics lag behind, and it fetched every remaining row and
    // sorted them, page after page (quadratic in the export). Sorting and bitmap scans are
    // therefore off for this one read-only transaction. Per-row key lookups for the item and
    // the user keep a page to its own rows.
    let mut tx = pool.begin().await.map_err(database_error)?;
    sqlx::query("SET LOCAL enable_sort = off")
        .execute(&mut *tx)
        .await
        .map_err(database_error)?;
    sqlx::query("SET LOCAL enable_bitmapscan = off")
        .execute(&mut *tx)
        .await
        .map_err(database_error)?;
    let rows = sqlx::query(
        "SELECT r.id, r.item_id, (SELECT external_id FROM items WHERE id = r.item_id) AS external_id,
                r.user_id, (SELECT name FROM users WHERE id = r.user_id) AS name, r.answers, r.time_spent_ms, r.created_at,
                (SELECT gold IS NOT NULL FROM items WHERE id = r.item_id) AS gold
         FROM responses r WHERE r.project_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3",
    )
    .bind(project_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(database_error)?;
    tx.commit().await.map_err(database_error)?;
    rows.iter().map(export_row_from).collect()
}
