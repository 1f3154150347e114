//! Webhooks: subscriptions, the outbox and deliveries, and the adapter of the `Webhooks` port.
//! Events are written by [`wanted_events`] and [`emit`] inside the writes that cause them.

use async_trait::async_trait;
use quorum_store::{Attempt, Delivery, DueDelivery, NewWebhook, Webhook, Webhooks};
use serde_json::Value;

use super::rows::*;
use super::*;
use crate::SqliteStore;

/// The event kinds some subscription of the project (or of the instance) wants: read once per
/// write that may cause events, so a project without subscriptions pays this one lookup.
pub(crate) fn wanted_events(conn: &Connection, project_id: Option<i64>) -> Result<Vec<String>> {
    let lists: Vec<String> = all(
        conn,
        "SELECT events FROM webhooks WHERE project_id = ?1 OR project_id IS NULL",
        [project_id],
        |row| Ok(Ok(row.get::<_, String>(0)?)),
    )?;
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
pub(crate) fn emit(
    conn: &Connection,
    project_id: Option<i64>,
    kind: &str,
    subject: &Value,
    now: i64,
) -> Result<Option<i64>> {
    emit_once(conn, project_id, kind, subject, None, now)
}

/// [`emit`], but nothing when an event with the key `once` was written before.
fn emit_once(
    conn: &Connection,
    project_id: Option<i64>,
    kind: &str,
    subject: &Value,
    once: Option<&str>,
    now: i64,
) -> Result<Option<i64>> {
    let pattern = format!("%\"{kind}\"%");
    let wanted: Option<i64> = scalar(
        conn,
        "SELECT 1 FROM webhooks WHERE (project_id = ?1 OR project_id IS NULL) AND events LIKE ?2 LIMIT 1",
        params![project_id, pattern],
    )?;
    if wanted.is_none() {
        return Ok(None);
    }
    let event: Option<i64> = scalar(
        conn,
        "INSERT INTO webhook_events (project_id, kind, subject, created_at, once_key)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING RETURNING id",
        params![project_id, kind, json_text(subject), now, once],
    )?;
    let Some(event) = event else {
        return Ok(None);
    };
    execute(
        conn,
        "INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at)
         SELECT id, ?1, ?2, ?2 FROM webhooks
         WHERE (project_id = ?3 OR project_id IS NULL) AND events LIKE ?4",
        params![event, now, project_id, pattern],
    )?;
    Ok(Some(event))
}

/// An item's completion, in the caller's transaction: `item.completed`, and
/// `project.completed` when no item of the project is left open or leased.
pub(crate) fn item_completed(
    conn: &Connection,
    project_id: i64,
    item_id: i64,
    reason: &str,
    now: i64,
) -> Result<()> {
    let subject = serde_json::json!({"item_id": item_id, "reason": reason});
    emit(conn, Some(project_id), "item.completed", &subject, now)?;
    if !wanted_events(conn, Some(project_id))?
        .iter()
        .any(|k| k == "project.completed")
    {
        return Ok(());
    }
    let complete: Option<bool> = scalar(
        conn,
        "SELECT NOT EXISTS (SELECT 1 FROM items WHERE project_id = ?1 AND open = 1)
            AND NOT EXISTS (SELECT 1 FROM leases WHERE project_id = ?1 AND state = 'active')",
        [project_id],
    )?;
    if complete == Some(true) {
        let subject = serde_json::json!({"last_item_id": item_id});
        emit(conn, Some(project_id), "project.completed", &subject, now)?;
    }
    Ok(())
}

const DELIVERY: &str =
    "SELECT d.*, e.kind FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id";

fn claim_delivery(
    conn: &Connection,
    runner: &str,
    now: i64,
    lease_ms: i64,
) -> Result<Option<DueDelivery>> {
    let Some(delivery) = one(
        conn,
        &format!(
            "{DELIVERY} WHERE d.state = 'pending' AND d.next_attempt_at <= ?1
             ORDER BY d.next_attempt_at, d.id LIMIT 1"
        ),
        [now],
        delivery_from,
    )?
    else {
        return Ok(None);
    };
    execute(
        conn,
        "UPDATE webhook_deliveries SET runner = ?2, next_attempt_at = ?3, attempts = attempts + 1 WHERE id = ?1",
        params![delivery.id, runner, now + lease_ms],
    )?;
    let event = one(
        conn,
        "SELECT * FROM webhook_events WHERE id = ?1",
        [delivery.event_id],
        webhook_event_from,
    )?
    .ok_or(StoreError::NotFound("event"))?;
    let webhook = one(
        conn,
        "SELECT * FROM webhooks WHERE id = ?1",
        [delivery.webhook_id],
        webhook_from,
    )?
    .ok_or(StoreError::NotFound("webhook"))?;
    Ok(Some(DueDelivery {
        delivery: Delivery {
            attempts: delivery.attempts + 1,
            next_attempt_at: now + lease_ms,
            ..delivery
        },
        event,
        webhook,
    }))
}

fn finish_delivery(conn: &Connection, id: i64, runner: &str, attempt: &Attempt) -> Result<bool> {
    let webhook: Option<i64> = scalar(
        conn,
        "UPDATE webhook_deliveries SET state = ?3, next_attempt_at = ?4, runner = NULL,
             last_status = ?5, last_error = ?6, last_latency_ms = ?7,
             delivered_at = CASE WHEN ?3 = 'delivered' THEN ?8 END
         WHERE id = ?1 AND runner = ?2 AND state = 'pending' RETURNING webhook_id",
        params![
            id,
            runner,
            attempt.state.as_str(),
            attempt.next_attempt_at,
            attempt.status,
            attempt.error,
            attempt.latency_ms,
            attempt.now
        ],
    )?;
    let Some(webhook) = webhook else {
        return Ok(false);
    };
    match attempt.state {
        DeliveryState::Delivered => execute(
            conn,
            "UPDATE webhooks SET failing_since = NULL WHERE id = ?1 AND failing_since IS NOT NULL",
            [webhook],
        )?,
        DeliveryState::Failed => execute(
            conn,
            "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?2) WHERE id = ?1",
            params![webhook, attempt.now],
        )?,
        DeliveryState::Pending => 0,
    };
    Ok(true)
}

#[async_trait]
impl Webhooks for SqliteStore {
    async fn create_webhook(&self, webhook: NewWebhook) -> Result<Webhook> {
        self.write(move |c| {
            one(
                c,
                "INSERT INTO webhooks (project_id, url, events, secret, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING *",
                params![
                    webhook.project_id,
                    webhook.url,
                    json_text(&webhook.events),
                    webhook.secret,
                    webhook.created_by,
                    webhook.created_at
                ],
                webhook_from,
            )?
            .ok_or(StoreError::NotFound("webhook"))
        })
        .await
    }
    async fn webhook(&self, id: i64) -> Result<Option<Webhook>> {
        self.readers
            .run(move |c| {
                one(
                    c,
                    "SELECT * FROM webhooks WHERE id = ?1",
                    [id],
                    webhook_from,
                )
            })
            .await
    }
    async fn webhooks(&self, project_id: Option<i64>) -> Result<Vec<Webhook>> {
        self.readers
            .run(move |c| {
                all(
                    c,
                    "SELECT * FROM webhooks WHERE project_id IS ?1 ORDER BY id",
                    [project_id],
                    webhook_from,
                )
            })
            .await
    }
    async fn delete_webhook(&self, id: i64) -> Result<bool> {
        self.write(move |c| {
            execute(
                c,
                "DELETE FROM webhook_deliveries WHERE webhook_id = ?1",
                [id],
            )?;
            Ok(execute(c, "DELETE FROM webhooks WHERE id = ?1", [id])? == 1)
        })
        .await
    }
    async fn rotate_webhook_secret(
        &self,
        id: i64,
        secret: &str,
        previous_until: i64,
    ) -> Result<bool> {
        let secret = secret.to_string();
        self.write(move |c| {
            Ok(execute(
                c,
                "UPDATE webhooks SET previous_secret = secret, previous_until = ?3, secret = ?2 WHERE id = ?1",
                params![id, secret, previous_until],
            )? == 1)
        })
        .await
    }
    async fn record_event(
        &self,
        project_id: Option<i64>,
        kind: &str,
        subject: Value,
        once: Option<String>,
        now: i64,
    ) -> Result<Option<i64>> {
        let kind = kind.to_string();
        self.write(move |c| emit_once(c, project_id, &kind, &subject, once.as_deref(), now))
            .await
    }
    async fn claim_deliveries(
        &self,
        runner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>> {
        let runner = runner.to_string();
        self.write(move |c| {
            let mut claimed = Vec::new();
            while (claimed.len() as i64) < limit {
                match claim_delivery(c, &runner, now, lease_ms)? {
                    Some(due) => claimed.push(due),
                    None => break,
                }
            }
            Ok(claimed)
        })
        .await
    }
    async fn finish_delivery(&self, id: i64, runner: &str, attempt: Attempt) -> Result<bool> {
        let runner = runner.to_string();
        self.write(move |c| finish_delivery(c, id, &runner, &attempt))
            .await
    }
    async fn deliveries(&self, webhook_id: i64, before: i64, limit: i64) -> Result<Vec<Delivery>> {
        self.readers
            .run(move |c| {
                all(
                    c,
                    &format!("{DELIVERY} WHERE d.webhook_id = ?1 AND d.id < ?2 ORDER BY d.id DESC LIMIT ?3"),
                    params![webhook_id, before, limit],
                    delivery_from,
                )
            })
            .await
    }
    async fn redeliver(&self, webhook_id: i64, delivery_id: Option<i64>, now: i64) -> Result<u64> {
        self.write(move |c| {
            Ok(execute(
                c,
                "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?3, attempts = 0
                 WHERE webhook_id = ?1 AND state = 'failed' AND (?2 IS NULL OR id = ?2)",
                params![webhook_id, delivery_id, now],
            )? as u64)
        })
        .await
    }
}
