//! Webhooks: subscriptions, the outbox and deliveries, and the adapter of the `Webhooks` port.
//! Events are written by [`wanted_events`] and [`emit`] inside the transactions that cause
//! them; a delivery is claimed with `FOR UPDATE SKIP LOCKED`, so two servers never send the
//! same one at once.

use async_trait::async_trait;
use quorum_store::{Attempt, Delivery, DueDelivery, NewWebhook, Webhook, Webhooks};
use serde_json::Value;

use super::rows::*;
use super::*;
use crate::PgStore;

/// The event kinds some subscription of the project (or of the instance) wants.
pub(crate) async fn wanted_events(
    conn: &mut PgConnection,
    project_id: Option<i64>,
) -> Result<Vec<String>> {
    let lists: Vec<String> = sqlx::query_scalar(
        "SELECT events FROM webhooks WHERE project_id = $1 OR project_id IS NULL",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(database_error)?;
    let mut kinds = Vec::new();
    for list in lists {
        for kind in parse_json::<Vec<String>>(&list)? {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    Ok(kinds)
}

/// Writes an event and one delivery per subscription that wants it, in the caller's
/// transaction; `None` when none does.
pub(crate) async fn emit(
    conn: &mut PgConnection,
    project_id: Option<i64>,
    kind: &str,
    subject: &Value,
    now: i64,
) -> Result<Option<i64>> {
    emit_once(conn, project_id, kind, subject, None, now).await
}

/// [`emit`], but nothing when an event with the key `once` was written before.
async fn emit_once(
    conn: &mut PgConnection,
    project_id: Option<i64>,
    kind: &str,
    subject: &Value,
    once: Option<&str>,
    now: i64,
) -> Result<Option<i64>> {
    let pattern = format!("%\"{kind}\"%");
    let event: Option<i64> = sqlx::query_scalar(
        "WITH wanted AS (
             SELECT id FROM webhooks
             WHERE (project_id = $1 OR project_id IS NULL) AND events LIKE $2),
         event AS (
             INSERT INTO webhook_events (project_id, kind, subject, created_at, once_key)
             SELECT $1, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM wanted)
             ON CONFLICT DO NOTHING RETURNING id),
         deliveries AS (
             INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at)
             SELECT wanted.id, event.id, $5, $5 FROM wanted, event)
         SELECT id FROM event",
    )
    .bind(project_id)
    .bind(pattern)
    .bind(kind)
    .bind(json_text(subject))
    .bind(now)
    .bind(once)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(event)
}

/// An item's completion, in the caller's transaction: `item.completed`, and
/// `project.completed` when no item of the project is left open or leased.
pub(crate) async fn item_completed(
    conn: &mut PgConnection,
    project_id: i64,
    item_id: i64,
    reason: &str,
    now: i64,
) -> Result<()> {
    let subject = serde_json::json!({"item_id": item_id, "reason": reason});
    emit(conn, Some(project_id), "item.completed", &subject, now).await?;
    let wanted = wanted_events(conn, Some(project_id)).await?;
    if !wanted.iter().any(|k| k == "project.completed") {
        return Ok(());
    }
    let complete: bool = sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM items WHERE project_id = $1 AND open)
            AND NOT EXISTS (SELECT 1 FROM leases WHERE project_id = $1 AND state = 'active')",
    )
    .bind(project_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(database_error)?;
    if complete {
        let subject = serde_json::json!({"last_item_id": item_id});
        emit(conn, Some(project_id), "project.completed", &subject, now).await?;
    }
    Ok(())
}

const DELIVERY: &str =
    "SELECT d.*, e.kind FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id";

async fn claim_deliveries(
    conn: &mut PgConnection,
    runner: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<DueDelivery>> {
    // A claim need not wait for the disk: lost in a crash, it only makes the delivery be sent
    // again, which at-least-once delivery allows (receivers tell repeats by the event id).
    let rows = sqlx::query(
        "WITH candidate AS (
             SELECT id FROM webhook_deliveries
             WHERE state = 'pending' AND next_attempt_at <= $2
             ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED),
         claimed AS (
             UPDATE webhook_deliveries d
             SET runner = $1, next_attempt_at = $3, attempts = d.attempts + 1
             FROM candidate WHERE d.id = candidate.id RETURNING d.*),
         lazy AS (SELECT set_config('synchronous_commit', 'off', true))
         SELECT claimed.*, e.kind FROM claimed JOIN webhook_events e ON e.id = claimed.event_id, lazy
         ORDER BY claimed.next_attempt_at, claimed.id",
    )
    .bind(runner)
    .bind(now)
    .bind(now + lease_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(database_error)?;
    let deliveries: Vec<Delivery> = rows.iter().map(delivery_from).collect::<Result<_>>()?;
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let ids = |of: fn(&Delivery) -> i64| deliveries.iter().map(of).collect::<Vec<i64>>();
    let events = sqlx::query("SELECT * FROM webhook_events WHERE id = ANY($1)")
        .bind(ids(|d| d.event_id))
        .fetch_all(&mut *conn)
        .await
        .map_err(database_error)?
        .iter()
        .map(|row| webhook_event_from(row).map(|e| (e.id, e)))
        .collect::<Result<std::collections::HashMap<_, _>>>()?;
    let webhooks = sqlx::query("SELECT * FROM webhooks WHERE id = ANY($1)")
        .bind(ids(|d| d.webhook_id))
        .fetch_all(&mut *conn)
        .await
        .map_err(database_error)?
        .iter()
        .map(|row| webhook_from(row).map(|w| (w.id, w)))
        .collect::<Result<std::collections::HashMap<_, _>>>()?;
    deliveries
        .into_iter()
        .map(|delivery| {
            Ok(DueDelivery {
                event: events
                    .get(&delivery.event_id)
                    .cloned()
                    .ok_or(StoreError::NotFound("event"))?,
                webhook: webhooks
                    .get(&delivery.webhook_id)
                    .cloned()
                    .ok_or(StoreError::NotFound("webhook"))?,
                delivery,
            })
        })
        .collect()
}

/// Records an attempt in one statement: the delivery, and the subscription's failing mark
/// when it changes (set on giving up, cleared by a success). Like a claim, it need not wait
/// for the disk: lost in a crash, the delivery is sent again.
async fn finish_delivery(pool: &PgPool, id: i64, runner: &str, attempt: &Attempt) -> Result<bool> {
    let webhook: Option<i64> = sqlx::query_scalar(
        "WITH done AS (
             UPDATE webhook_deliveries SET state = $3, next_attempt_at = $4, runner = NULL,
                 last_status = $5, last_error = $6, last_latency_ms = $7,
                 delivered_at = CASE WHEN $3 = 'delivered' THEN $8 END
             WHERE id = $1 AND runner = $2 AND state = 'pending' RETURNING webhook_id),
         marked AS (
             UPDATE webhooks SET failing_since = CASE WHEN $3 = 'failed' THEN COALESCE(failing_since, $8) END
             WHERE id = (SELECT webhook_id FROM done)
               AND ($3 = 'failed' OR ($3 = 'delivered' AND failing_since IS NOT NULL)))
         SELECT webhook_id FROM done, (SELECT set_config('synchronous_commit', 'off', true)) AS lazy",
    )
    .bind(id)
    .bind(runner)
    .bind(attempt.state.as_str())
    .bind(attempt.next_attempt_at)
    .bind(attempt.status)
    .bind(&attempt.error)
    .bind(attempt.latency_ms)
    .bind(attempt.now)
    .fetch_optional(pool)
    .await
    .map_err(database_error)?;
    Ok(webhook.is_some())
}

#[async_trait]
impl Webhooks for PgStore {
    async fn create_webhook(&self, webhook: NewWebhook) -> Result<Webhook> {
        let row = sqlx::query(
            "INSERT INTO webhooks (project_id, url, events, secret, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(webhook.project_id)
        .bind(&webhook.url)
        .bind(json_text(&webhook.events))
        .bind(&webhook.secret)
        .bind(webhook.created_by)
        .bind(webhook.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(database_error)?;
        webhook_from(&row)
    }
    async fn webhook(&self, id: i64) -> Result<Option<Webhook>> {
        let row = sqlx::query("SELECT * FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(database_error)?;
        row.as_ref().map(webhook_from).transpose()
    }
    async fn webhooks(&self, project_id: Option<i64>) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(
            "SELECT * FROM webhooks WHERE project_id IS NOT DISTINCT FROM $1 ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .map_err(database_error)?;
        rows.iter().map(webhook_from).collect()
    }
    async fn delete_webhook(&self, id: i64) -> Result<bool> {
        transaction!(self.pool, |conn| {
            sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(database_error)?;
            let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(database_error)?;
            Ok(done.rows_affected() == 1)
        })
    }
    async fn rotate_webhook_secret(
        &self,
        id: i64,
        secret: &str,
        previous_until: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET previous_secret = secret, previous_until = $3, secret = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(secret)
        .bind(previous_until)
        .execute(&self.pool)
        .await
        .map_err(database_error)?;
        Ok(done.rows_affected() == 1)
    }
    async fn record_event(
        &self,
        project_id: Option<i64>,
        kind: &str,
        subject: Value,
        once: Option<String>,
        now: i64,
    ) -> Result<Option<i64>> {
        transaction!(self.pool, |conn| {
            emit_once(conn, project_id, kind, &subject, once.as_deref(), now).await
        })
    }
    async fn claim_deliveries(
        &self,
        runner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>> {
        transaction!(self.pool, |conn| {
            claim_deliveries(conn, runner, now, lease_ms, limit).await
        })
    }
    async fn finish_delivery(&self, id: i64, runner: &str, attempt: Attempt) -> Result<bool> {
        finish_delivery(&self.pool, id, runner, &attempt).await
    }
    async fn deliveries(&self, webhook_id: i64, before: i64, limit: i64) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "{DELIVERY} WHERE d.webhook_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3"
        ))
        .bind(webhook_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(database_error)?;
        rows.iter().map(delivery_from).collect()
    }
    async fn redeliver(&self, webhook_id: i64, delivery_id: Option<i64>, now: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $3, attempts = 0
             WHERE webhook_id = $1 AND state = 'failed' AND ($2::BIGINT IS NULL OR id = $2)",
        )
        .bind(webhook_id)
        .bind(delivery_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(database_error)?;
        Ok(done.rows_affected())
    }
}
