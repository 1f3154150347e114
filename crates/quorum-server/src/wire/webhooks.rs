//! Webhook subscriptions, their delivery log, and the events they receive.

use quorum_app::webhooks::{WebhookView, WithSecret};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The events a subscription may receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum EventKind {
    /// A rater's answer was stored.
    #[serde(rename = "response.created")]
    ResponseCreated,
    /// An item reached its overlap, or dynamic overlap settled it before.
    #[serde(rename = "item.completed")]
    ItemCompleted,
    /// No item of the project is left open or leased.
    #[serde(rename = "project.completed")]
    ProjectCompleted,
    /// A reviewer accepted, rejected or corrected a response.
    #[serde(rename = "review.created")]
    ReviewCreated,
    /// A rater was paused, by the rules or by a manager.
    #[serde(rename = "rater.paused")]
    RaterPaused,
    /// A manager reinstated a paused rater.
    #[serde(rename = "rater.reinstated")]
    RaterReinstated,
    /// A model run's or an LLM judge's job ended (done or failed).
    #[serde(rename = "run.finished")]
    RunFinished,
    /// A standard's report was signed (first asked for with these contents).
    #[serde(rename = "standard.report_signed")]
    ReportSigned,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ResponseCreated => "response.created",
            EventKind::ItemCompleted => "item.completed",
            EventKind::ProjectCompleted => "project.completed",
            EventKind::ReviewCreated => "review.created",
            EventKind::RaterPaused => "rater.paused",
            EventKind::RaterReinstated => "rater.reinstated",
            EventKind::RunFinished => "run.finished",
            EventKind::ReportSigned => "standard.report_signed",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are posted: `http://` or `https://`, on a public address unless the
    /// operator allows private ones.
    pub url: String,
    pub events: Vec<EventKind>,
}

/// A subscription (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    /// Null: instance-wide.
    pub project_id: Option<i64>,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: i64,
    /// Since when deliveries have been given up on (the dashboard says so); reset by the next
    /// success.
    pub failing_since: Option<i64>,
    /// While the secret before the last rotation still signs: until when (Unix ms).
    pub previous_secret_until: Option<i64>,
}

impl From<WebhookView> for Webhook {
    fn from(view: WebhookView) -> Self {
        Self {
            id: view.id,
            project_id: view.project_id,
            url: view.url,
            events: view.events,
            created_at: view.created_at,
            failing_since: view.failing_since,
            previous_secret_until: view.previous_secret_until,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEnvelope {
    pub webhook: Webhook,
}

/// A new subscription or a rotated secret: the secret appears in this reply only.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    pub webhook: Webhook,
    /// Signs every delivery (`Quorum-Signature`); keep it where the receiver can read it.
    pub secret: String,
}

impl From<WithSecret> for WebhookWithSecret {
    fn from(created: WithSecret) -> Self {
        Self {
            webhook: created.webhook.into(),
            secret: created.secret,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Webhooks {
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the old secret keeps signing beside the new one (ms, at most 7 days); 24 hours
    /// when absent.
    pub overlap_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redelivery {
    /// One failed delivery; every failed one of the subscription when absent.
    pub delivery_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    pub queued: u64,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    Delivered,
    /// Given up after the retry window (24 hours); `redeliver` queues it again.
    Failed,
}

/// One event's delivery to one subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    /// The event's id in the payload is `evt_<event_id>`.
    pub event_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: DeliveryState,
    pub attempts: i32,
    /// Pending: when it is tried next (Unix ms).
    pub next_attempt_at: Option<i64>,
    /// The receiver's status code at the last attempt, or null when there was none.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

impl From<quorum_store::Delivery> for Delivery {
    fn from(delivery: quorum_store::Delivery) -> Self {
        use quorum_store::DeliveryState as Stored;
        let state = match delivery.state {
            Stored::Pending => DeliveryState::Pending,
            Stored::Delivered => DeliveryState::Delivered,
            Stored::Failed => DeliveryState::Failed,
        };
        Self {
            id: delivery.id,
            webhook_id: delivery.webhook_id,
            event_id: delivery.event_id,
            kind: delivery.kind,
            state,
            attempts: delivery.attempts,
            next_attempt_at: matches!(state, DeliveryState::Pending)
                .then_some(delivery.next_attempt_at),
            last_status: delivery.last_status,
            last_error: delivery.last_error,
            last_latency_ms: delivery.last_latency_ms,
            created_at: delivery.created_at,
            delivered_at: delivery.delivered_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deliveries {
    pub deliveries: Vec<Delivery>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire's event names are the store's, in the same order, each once.
    #[test]
    fn the_event_kinds_are_the_stores() {
        let all = [
            EventKind::ResponseCreated,
            EventKind::ItemCompleted,
            EventKind::ProjectCompleted,
            EventKind::ReviewCreated,
            EventKind::RaterPaused,
            EventKind::RaterReinstated,
            EventKind::RunFinished,
            EventKind::ReportSigned,
        ];
        assert_eq!(all.map(EventKind::name), quorum_store::EVENT_KINDS);
        for kind in all {
            let named: EventKind = serde_json::from_value(serde_json::json!(kind.name())).unwrap();
            assert_eq!(named, kind);
        }
    }
}
