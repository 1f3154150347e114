//! The sender: claims due deliveries (one server each, for a lease of time), signs and posts
//! them, and schedules the next attempt with exponential back-off and jitter until the retry
//! window ends. It runs beside the job runner and stops with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quorum_store::{Attempt, DeliveryState, DueDelivery, Store};
use tokio::task::JoinSet;

use super::signature;
use crate::App;

/// How a server's sender works.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Deliveries in flight at once on this server.
    pub slots: usize,
    /// How long a claimed delivery is this server's; a server that dies mid-delivery leaves it
    /// to be claimed again after this.
    pub lease: Duration,
    /// How often an idle sender looks for due deliveries.
    pub poll: Duration,
    /// A receiver that has not answered by then has failed this attempt (at most two thirds of
    /// the lease).
    pub timeout: Duration,
    /// The first retry waits about this long; each next one twice as long, at most an hour.
    pub backoff: Duration,
    /// After this long since the event, a failing delivery is given up (and its subscription
    /// marked failing).
    pub give_up_after: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            slots: 8,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(10),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// When to try a failed delivery next (Unix ms): `backoff × 2^(attempts−1)`, at most an hour,
/// times a jitter in [0.5, 1.5) so receivers that fail together are not retried together;
/// `None` once the next attempt would fall after the retry window.
pub fn next_attempt(
    attempts: i32,
    event_at: i64,
    now: i64,
    settings: &DeliverySettings,
    jitter: f64,
) -> Option<i64> {
    let base = settings.backoff.as_millis() as f64;
    let doubled = base * 2f64.powi(attempts.clamp(1, 30) - 1);
    let delay = (doubled.min(3_600_000.0) * (0.5 + jitter.clamp(0.0, 1.0))) as i64;
    let at = now + delay.max(1);
    (at <= event_at + settings.give_up_after.as_millis() as i64).then_some(at)
}

impl<S: Store> App<S> {
    /// Runs the sender until `stopped` turns true. Deliveries in flight when it stops are
    /// abandoned to their lease: another server (or this one, restarted) sends them again, so
    /// a receiver may see an event twice and must use its id to tell.
    pub(crate) async fn run_sender(
        self,
        runner: String,
        settings: DeliverySettings,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        // An attempt ends well before its claim lapses, so no other server starts the same one
        // while it is still under way.
        let timeout = settings.timeout.min(settings.lease * 2 / 3);
        let http = self.egress().client_builder().timeout(timeout).build();
        let http = match http {
            Ok(http) => http,
            Err(error) => {
                tracing::error!(%error, "the webhook sender could not start");
                return;
            }
        };
        let settings = Arc::new(settings);
        let mut sending = JoinSet::new();
        loop {
            // Claimed in batches: once half the slots are free (or all are), not one at a time.
            let slots = settings.slots.max(1);
            let free = slots.saturating_sub(sending.len());
            if free > 0 && (free >= slots.div_ceil(2) || sending.is_empty()) {
                let lease = settings.lease.as_millis() as i64;
                let claimed = self
                    .store()
                    .claim_deliveries(&runner, self.now(), lease, free as i64)
                    .await;
                match claimed {
                    Ok(due) => {
                        for due in due {
                            sending.spawn(self.clone().send(
                                due,
                                http.clone(),
                                runner.clone(),
                                Arc::clone(&settings),
                            ));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the webhook sender could not claim deliveries");
                    }
                }
            }
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(settings.poll) => {}
                Some(_) = sending.join_next(), if !sending.is_empty() => {
                    while sending.try_join_next().is_some() {}
                }
            }
        }
        sending.abort_all();
        while sending.join_next().await.is_some() {}
    }

    /// One attempt of one delivery, recorded whatever happens.
    async fn send(
        self,
        due: DueDelivery,
        http: reqwest::Client,
        runner: String,
        settings: Arc<DeliverySettings>,
    ) {
        let started = Instant::now();
        let (status, error) = match self.post(&due, &http).await {
            Ok(status) if (200..300).contains(&status) => (Some(status), None),
            Ok(status) => (
                Some(status),
                Some(format!("the receiver answered {status}")),
            ),
            Err(error) => (None, Some(error)),
        };
        let now = self.now();
        let (state, next_attempt_at) = match &error {
            None => (DeliveryState::Delivered, now),
            Some(_) => match next_attempt(
                due.delivery.attempts,
                due.event.created_at,
                now,
                &settings,
                rand::random(),
            ) {
                Some(at) => (DeliveryState::Pending, at),
                None => (DeliveryState::Failed, now),
            },
        };
        if let Some(error) = &error {
            tracing::warn!(
                delivery = due.delivery.id, webhook = due.webhook.id, attempt = due.delivery.attempts,
                given_up = state == DeliveryState::Failed, %error, "webhook delivery failed"
            );
        }
        let attempt = Attempt {
            status: status.map(i32::from),
            error,
            latency_ms: started.elapsed().as_millis() as i64,
            state,
            next_attempt_at,
            now,
        };
        match self
            .store()
            .finish_delivery(due.delivery.id, &runner, attempt)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                delivery = due.delivery.id,
                "another server took this delivery over; its attempt here is not recorded"
            ),
            Err(error) => {
                tracing::warn!(delivery = due.delivery.id, %error, "could not record a delivery")
            }
        }
    }

    /// Posts the event; the receiver's status, or why there is none.
    async fn post(&self, due: &DueDelivery, http: &reqwest::Client) -> Result<u16, String> {
        if let Some(problem) = self.egress().refuse_url(&due.webhook.url) {
            return Err(problem);
        }
        let payload = self
            .event_payload(&due.event)
            .await
            .map_err(|e| format!("the payload could not be built: {e}"))?;
        let body = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
        let now = self.now();
        let mut secrets = vec![due.webhook.secret.as_str()];
        if let Some(previous) = &due.webhook.previous_secret
            && due.webhook.previous_until.is_some_and(|until| until > now)
        {
            secrets.push(previous);
        }
        let signed = signature::sign(&secrets, now.div_euclid(1000), &body);
        let response = http
            .post(&due.webhook.url)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("Quorum-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header(signature::HEADER, signed)
            .header("quorum-event", &due.event.kind)
            .header("quorum-event-id", format!("evt_{}", due.event.id))
            .header("quorum-delivery", due.delivery.id.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "the receiver did not answer in time".to_string()
                } else {
                    format!("the request failed: {e}")
                }
            })?;
        Ok(response.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_with_jitter_and_stop_at_the_window() {
        let settings = DeliverySettings::default();
        let at = |attempts, now, jitter| next_attempt(attempts, 0, now, &settings, jitter);
        // 10 s, 20 s, 40 s… around their middle, and jitter spreads each over ×0.5 to ×1.5.
        assert_eq!(at(1, 0, 0.5), Some(10_000));
        assert_eq!(at(2, 0, 0.5), Some(20_000));
        assert_eq!(at(3, 0, 0.0), Some(20_000));
        assert_eq!(at(3, 0, 1.0), Some(60_000));
        // Capped at an hour (times the jitter).
        assert_eq!(at(20, 0, 0.5), Some(3_600_000));
        // Nothing after 24 hours from the event.
        let day = 24 * 3_600_000;
        assert_eq!(at(20, day - 3_600_000, 0.5), Some(day));
        assert_eq!(at(20, day - 3_599_999, 0.5), None);
    }
}
