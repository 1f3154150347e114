//! Webhooks: subscriptions to a project's (or, for administrators, every project's) events,
//! and the payloads delivered to them.
//!
//! The store writes each event in the transaction of the change that causes it (an answer, an
//! item completing, a run finishing) and a delivery per subscription that wants it; the job
//! runner's sender ([`deliver`]) claims due deliveries, signs and posts them, and retries with
//! exponential back-off and jitter until the retry window (24 hours) ends.

pub mod deliver;
pub mod signature;

use serde::Serialize;
use serde_json::{Value, json};

use quorum_core::Role;
use quorum_store::{Delivery, EVENT_KINDS, NewWebhook, Store, Webhook, WebhookEvent};

use crate::{App, AppError, Caller};

/// The version of the payload format; a change that is not an addition raises it.
pub const PAYLOAD_VERSION: u32 = 1;
/// Subscriptions per project (and instance-wide): each one multiplies every event's deliveries.
pub const MAX_SUBSCRIPTIONS: usize = 20;
/// How long a rotated-out secret still signs, unless the rotation says otherwise.
pub const DEFAULT_ROTATION_OVERLAP_MS: i64 = 24 * 3_600_000;

/// A subscription as its managers see it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookView {
    pub id: i64,
    pub project_id: Option<i64>,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: i64,
    /// Since when deliveries have been given up on (reset by the next success).
    pub failing_since: Option<i64>,
    /// While a rotated-out secret still signs: until when.
    pub previous_secret_until: Option<i64>,
}

impl WebhookView {
    fn of(webhook: Webhook, now: i64) -> Self {
        Self {
            id: webhook.id,
            project_id: webhook.project_id,
            url: webhook.url,
            events: webhook.events,
            created_at: webhook.created_at,
            failing_since: webhook.failing_since,
            previous_secret_until: webhook.previous_until.filter(|until| *until > now),
        }
    }
}

/// The body of every delivery (version [`PAYLOAD_VERSION`]). Headers: `Quorum-Signature`
/// (`t=<Unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`, one `v1` per valid secret),
/// `Quorum-Event` (= `type`), `Quorum-Event-Id` (= `id`), `Quorum-Delivery`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventPayload {
    /// `evt_<n>`: the same for every subscription and every retry of the event, so a receiver
    /// that sees it twice can tell.
    pub id: String,
    /// One of `response.created`, `item.completed`, `project.completed`, `review.created`,
    /// `rater.paused`, `rater.reinstated`, `run.finished`, `standard.report_signed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub created_at: i64,
    pub project_id: Option<i64>,
    /// `response.created`: `{response_id, item_id, external_id, user_id, user, answers,
    /// time_spent_ms, created_at, gold}`; `item.completed`: `{item_id, external_id, responses,
    /// reason: "overlap" | "settled"}`; `project.completed` (no item left open or leased):
    /// `{last_item_id}`; `review.created`: `{response_id, item_id, rater_id, reviewer_id,
    /// verdict, answers}`; `rater.paused`, `rater.reinstated`: `{user_id, reason, actor_id}`
    /// (`actor_id` null for the automatic rules); `run.finished`: `{job_id, kind, state,
    /// model, attempts, error, finished_at}`; `standard.report_signed` (the battles project's
    /// subscribers): `{standard_hash, name, version, public_key, signature}`.
    pub data: Value,
}

/// A new subscription, or a rotated secret: the secret is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WithSecret {
    pub webhook: WebhookView,
    pub secret: String,
}

fn new_secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 24]>()))
}

impl<S: Store> App<S> {
    /// Who may manage subscriptions of `project_id`: its managers; instance-wide ones
    /// (`None`): administrators.
    async fn require_hooks(
        &self,
        caller: &Caller,
        project_id: Option<i64>,
    ) -> Result<(), AppError> {
        match project_id {
            Some(id) => self.require(caller, id, Role::Manager).await.map(|_| ()),
            None if caller.user.is_admin => Ok(()),
            None => Err(AppError::Forbidden(
                "instance-wide webhooks are for administrators".into(),
            )),
        }
    }

    /// A subscription the caller may manage; `NotFound` for any other, so ids tell nothing.
    async fn own_webhook(&self, caller: &Caller, id: i64) -> Result<Webhook, AppError> {
        let webhook = self
            .store()
            .webhook(id)
            .await?
            .ok_or(AppError::NotFound("webhook"))?;
        match self.require_hooks(caller, webhook.project_id).await {
            Ok(()) => Ok(webhook),
            Err(AppError::Forbidden(_)) if webhook.project_id.is_none() => {
                Err(AppError::NotFound("webhook"))
            }
            Err(error) => Err(error),
        }
    }

    /// Subscribes `url` to `events` of a project (managers) or of every project
    /// (administrators, `project_id` none).
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        project_id: Option<i64>,
        url: &str,
        events: Vec<String>,
    ) -> Result<WithSecret, AppError> {
        self.require_hooks(caller, project_id).await?;
        check_url(url)?;
        if let Some(problem) = self.egress().refuse_url(url) {
            return Err(invalid(problem, "url"));
        }
        if events.is_empty() {
            return Err(invalid("name at least one event", "events"));
        }
        for (i, event) in events.iter().enumerate() {
            if !EVENT_KINDS.contains(&event.as_str()) {
                return Err(invalid(
                    format!("unknown event `{event}`; use {}", EVENT_KINDS.join(", ")),
                    "events",
                ));
            }
            if events[..i].contains(event) {
                return Err(invalid(format!("`{event}` is named twice"), "events"));
            }
        }
        if self.store().webhooks(project_id).await?.len() >= MAX_SUBSCRIPTIONS {
            return Err(AppError::Conflict(format!(
                "at most {MAX_SUBSCRIPTIONS} webhooks per project (and instance-wide); delete one first"
            )));
        }
        let secret = new_secret();
        let webhook = self
            .store()
            .create_webhook(NewWebhook {
                project_id,
                url: url.to_string(),
                events,
                secret: secret.clone(),
                created_by: Some(caller.user.id),
                created_at: self.now(),
            })
            .await?;
        Ok(WithSecret {
            webhook: WebhookView::of(webhook, self.now()),
            secret,
        })
    }

    /// A project's subscriptions (managers), or the instance-wide ones (administrators).
    pub async fn webhooks(
        &self,
        caller: &Caller,
        project_id: Option<i64>,
    ) -> Result<Vec<WebhookView>, AppError> {
        self.require_hooks(caller, project_id).await?;
        let now = self.now();
        Ok(self
            .store()
            .webhooks(project_id)
            .await?
            .into_iter()
            .map(|w| WebhookView::of(w, now))
            .collect())
    }

    pub async fn webhook(&self, caller: &Caller, id: i64) -> Result<WebhookView, AppError> {
        Ok(WebhookView::of(
            self.own_webhook(caller, id).await?,
            self.now(),
        ))
    }

    /// Ends a subscription; its pending deliveries are dropped.
    pub async fn delete_webhook(&self, caller: &Caller, id: i64) -> Result<(), AppError> {
        self.own_webhook(caller, id).await?;
        self.store().delete_webhook(id).await?;
        Ok(())
    }

    /// A new secret; the old one keeps signing (next to the new) for `overlap_ms`, so
    /// receivers can switch without dropping a delivery.
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        id: i64,
        overlap_ms: Option<i64>,
    ) -> Result<WithSecret, AppError> {
        let overlap = overlap_ms.unwrap_or(DEFAULT_ROTATION_OVERLAP_MS);
        if !(0..=7 * 24 * 3_600_000).contains(&overlap) {
            return Err(invalid(
                "the overlap is 0 to 7 days (milliseconds)",
                "overlap_ms",
            ));
        }
        self.own_webhook(caller, id).await?;
        let secret = new_secret();
        self.store()
            .rotate_webhook_secret(id, &secret, self.now() + overlap)
            .await?;
        Ok(WithSecret {
            webhook: self.webhook(caller, id).await?,
            secret,
        })
    }

    /// A subscription's delivery log, newest first.
    pub async fn webhook_deliveries(
        &self,
        caller: &Caller,
        id: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, AppError> {
        self.own_webhook(caller, id).await?;
        Ok(self
            .store()
            .deliveries(id, before, limit.clamp(1, 1000))
            .await?)
    }

    /// Queues failed deliveries again: one, or every failed one of the subscription.
    pub async fn redeliver(
        &self,
        caller: &Caller,
        id: i64,
        delivery_id: Option<i64>,
    ) -> Result<u64, AppError> {
        self.own_webhook(caller, id).await?;
        let queued = self.store().redeliver(id, delivery_id, self.now()).await?;
        if queued == 0 && delivery_id.is_some() {
            return Err(AppError::Conflict(
                "that delivery has not failed (or is not this webhook's)".into(),
            ));
        }
        Ok(queued)
    }

    /// The body delivered for an event: its id (the same for every subscription and retry, for
    /// receivers' idempotency), its type, the payload version, and what it is about, read at
    /// delivery from records that do not change.
    pub async fn event_payload(&self, event: &WebhookEvent) -> Result<EventPayload, AppError> {
        let subject = &event.subject;
        let id = |key: &str| subject[key].as_i64().unwrap_or_default();
        let data = match event.kind.as_str() {
            "response.created" => {
                let (project, response) = (event.project_id.unwrap_or_default(), id("response_id"));
                let rows = self
                    .store()
                    .export_responses(project, response - 1, 1)
                    .await?;
                match rows.into_iter().find(|r| r.response_id == response) {
                    Some(row) => json!({
                        "response_id": row.response_id, "item_id": row.item_id,
                        "external_id": row.external_id, "user_id": row.user_id, "user": row.user_name,
                        "answers": row.answers, "time_spent_ms": row.time_spent_ms,
                        "created_at": row.created_at, "gold": row.gold,
                    }),
                    None => json!({"response_id": response}),
                }
            }
            "item.completed" => {
                let item = self.store().item(id("item_id")).await?;
                json!({
                    "item_id": id("item_id"),
                    "external_id": item.as_ref().and_then(|i| i.external_id.clone()),
                    "responses": item.as_ref().map(|i| i.responses),
                    "reason": subject["reason"],
                })
            }
            "run.finished" => {
                let job = self.store().job(id("job_id")).await?;
                match job {
                    Some(job) => json!({
                        "job_id": job.id, "kind": job.kind, "state": job.state,
                        "model": job.payload.get("model"), "attempts": job.attempts,
                        "error": job.error, "finished_at": job.finished_at,
                    }),
                    None => json!({"job_id": id("job_id")}),
                }
            }
            _ => subject.clone(),
        };
        Ok(EventPayload {
            id: format!("evt_{}", event.id),
            kind: event.kind.clone(),
            version: PAYLOAD_VERSION,
            created_at: event.created_at,
            project_id: event.project_id,
            data,
        })
    }
}

fn invalid(message: impl Into<String>, field: &str) -> AppError {
    AppError::Invalid {
        message: message.into(),
        details: json!({"field": field}),
    }
}

fn check_url(url: &str) -> Result<(), AppError> {
    if url.len() > 2000 {
        return Err(invalid("the URL is longer than 2000 characters", "url"));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| invalid(format!("`{url}` is not a URL: {e}"), "url"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(
            format!("`{url}` is not an http:// or https:// URL with a host"),
            "url",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "the URL may not carry credentials; receivers check the signature instead",
            "url",
        ));
    }
    Ok(())
}
