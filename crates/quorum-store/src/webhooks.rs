//! Webhooks: subscriptions, the outbox of events, and their deliveries.
//!
//! An event is written in the same transaction as the change that causes it (the outbox), and
//! only when some subscription wants it: with one delivery row per subscription that does. So
//! a crash never loses an event nor invents one, and a project without subscriptions pays one
//! indexed lookup per change. Deliveries are claimed like jobs — for a lease of time, with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL — so exactly one server delivers each at a time,
//! and a delivery whose server died is claimed again once its lease lapses.

use async_trait::async_trait;
use serde_json::Value;

use crate::Result;

/// The events a subscription may ask for.
pub const EVENT_KINDS: [&str; 8] = [
    "response.created",
    "item.completed",
    "project.completed",
    "review.created",
    "rater.paused",
    "rater.reinstated",
    "run.finished",
    "standard.report_signed",
];

/// The event of a change of a rater's standing (pauses and reinstatements; qualification
/// decisions have none), with its subject.
pub fn standing_event(
    user_id: i64,
    change: &crate::RaterChange,
    actor_id: Option<i64>,
) -> Option<(&'static str, Value)> {
    let (kind, reason) = match change {
        crate::RaterChange::Paused { reason } => ("rater.paused", reason),
        crate::RaterChange::Reinstated { reason } => ("rater.reinstated", reason),
        _ => return None,
    };
    Some((
        kind,
        serde_json::json!({"user_id": user_id, "reason": reason, "actor_id": actor_id}),
    ))
}

/// The subject of a `review.created` event: the verdict itself (a later review replaces it,
/// so the event carries what was decided then).
pub fn review_event(review: &crate::Review) -> Value {
    serde_json::json!({
        "response_id": review.response_id, "item_id": review.item_id,
        "rater_id": review.rater_id, "reviewer_id": review.reviewer_id,
        "verdict": review.verdict.as_str(), "answers": review.answers,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: i64,
    /// `None`: instance-wide (every project's events; administrators).
    pub project_id: Option<i64>,
    pub url: String,
    /// The event kinds it receives.
    pub events: Vec<String>,
    /// The signing secret, and the one it replaced while the overlap window lasts.
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    /// Since when its deliveries have been failing for good (reset by a success).
    pub failing_since: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub project_id: Option<i64>,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

/// One event of the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub id: i64,
    pub project_id: Option<i64>,
    pub kind: String,
    /// What the event is about (ids); the delivered payload is built from it.
    pub subject: Value,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    Delivered,
    /// Given up after the retry window.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
    pub fn parse(text: &str) -> DeliveryState {
        match text {
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => DeliveryState::Pending,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event_id: i64,
    pub kind: String,
    pub state: DeliveryState,
    pub attempts: i32,
    /// When it is next tried (pending deliveries).
    pub next_attempt_at: i64,
    /// The last attempt: the receiver's status code, or why there was none, and how long it
    /// took.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// A claimed delivery with what sending it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub event: WebhookEvent,
    pub webhook: Webhook,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    /// `Delivered`, `Failed` (given up), or `Pending` to try again at `next_attempt_at`.
    pub state: DeliveryState,
    pub next_attempt_at: i64,
    pub now: i64,
}

#[async_trait]
pub trait Webhooks {
    async fn create_webhook(&self, webhook: NewWebhook) -> Result<Webhook>;
    async fn webhook(&self, id: i64) -> Result<Option<Webhook>>;
    /// A project's subscriptions, or the instance-wide ones (`None`).
    async fn webhooks(&self, project_id: Option<i64>) -> Result<Vec<Webhook>>;
    /// Deletes a subscription and its pending deliveries; `false` when there was none.
    async fn delete_webhook(&self, id: i64) -> Result<bool>;
    /// Replaces the secret; the old one stays valid (signatures carry both) until
    /// `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        id: i64,
        secret: &str,
        previous_until: i64,
    ) -> Result<bool>;
    /// Writes an event that no other write carries (a report signed) with its deliveries, in
    /// one transaction; `None` when no subscription wants it, or when an event with the same
    /// `once` key was recorded before.
    async fn record_event(
        &self,
        project_id: Option<i64>,
        kind: &str,
        subject: Value,
        once: Option<String>,
        now: i64,
    ) -> Result<Option<i64>>;
    /// Up to `limit` of the oldest due deliveries (pending with `next_attempt_at <= now`, whose
    /// claim is not held), claimed by `runner` until `now + lease_ms` by moving their next
    /// attempt there.
    async fn claim_deliveries(
        &self,
        runner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>>;
    /// Records an attempt of a delivery the runner holds; `false` when it is not its own.
    async fn finish_delivery(&self, id: i64, runner: &str, attempt: Attempt) -> Result<bool>;
    /// A subscription's deliveries, newest first, with `id < before`.
    async fn deliveries(&self, webhook_id: i64, before: i64, limit: i64) -> Result<Vec<Delivery>>;
    /// Queues failed deliveries again (one, or all of the subscription's), due at `now`.
    async fn redeliver(&self, webhook_id: i64, delivery_id: Option<i64>, now: i64) -> Result<u64>;
}
