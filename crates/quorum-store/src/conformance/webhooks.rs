//! Conformance: webhooks' outbox and deliveries.

use super::*;
use crate::{Attempt, DeliveryState, NewWebhook, Review};

fn subscription(project_id: Option<i64>, events: &[&str]) -> NewWebhook {
    NewWebhook {
        project_id,
        url: "http://127.0.0.1:9/hook".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        secret: "s1".into(),
        created_by: None,
        created_at: 0,
    }
}

fn attempt(state: DeliveryState, status: Option<i32>, next: i64, now: i64) -> Attempt {
    Attempt {
        status,
        error: None,
        latency_ms: 3,
        state,
        next_attempt_at: next,
        now,
    }
}

/// One claim of one delivery.
async fn claim<S: Store>(
    store: &S,
    runner: &str,
    now: i64,
    lease: i64,
) -> crate::Result<Option<crate::DueDelivery>> {
    Ok(store.claim_deliveries(runner, now, lease, 1).await?.pop())
}

pub async fn answers_write_their_events_with_them<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let watched = project(&store, owner, 2, LocalePolicy::Any).await;
    let quiet = project(&store, owner, 1, LocalePolicy::Any).await;
    let hook = store
        .create_webhook(subscription(
            Some(watched),
            &["response.created", "item.completed"],
        ))
        .await
        .unwrap();
    assert_eq!(hook.events, ["response.created", "item.completed"]);
    let everywhere = store
        .create_webhook(subscription(None, &["item.completed"]))
        .await
        .unwrap();
    assert_eq!(
        store.webhooks(Some(watched)).await.unwrap(),
        std::slice::from_ref(&hook)
    );
    assert_eq!(
        store.webhooks(None).await.unwrap(),
        std::slice::from_ref(&everywhere)
    );
    for p in [watched, quiet] {
        store
            .import_items(p, batch![item("x", 0, None), item("y", 0, None)], 0)
            .await
            .unwrap();
    }
    // Two answers bring `x` of the watched project to its overlap of 2.
    for (rater, now) in [(a, 1), (b, 2)] {
        let (lease, _) = store
            .next_lease(next(watched, rater, 2, now))
            .await
            .unwrap()
            .unwrap();
        store
            .submit(submission(lease.id, rater, 2, now))
            .await
            .unwrap();
    }
    let kinds = |deliveries: Vec<crate::Delivery>| {
        let mut kinds: Vec<String> = deliveries.into_iter().map(|d| d.kind).collect();
        kinds.sort();
        kinds
    };
    assert_eq!(
        kinds(store.deliveries(hook.id, i64::MAX, 10).await.unwrap()),
        ["item.completed", "response.created", "response.created"]
    );
    assert_eq!(
        kinds(store.deliveries(everywhere.id, i64::MAX, 10).await.unwrap()),
        ["item.completed"]
    );
    // The quiet project's answer (overlap 1: it completes its item) reaches only the
    // instance-wide subscription, and only as the event it asked for.
    let (lease, _) = store
        .next_lease(next(quiet, a, 1, 3))
        .await
        .unwrap()
        .unwrap();
    store.submit(submission(lease.id, a, 1, 3)).await.unwrap();
    assert_eq!(
        store.deliveries(hook.id, i64::MAX, 10).await.unwrap().len(),
        3
    );
    assert_eq!(
        kinds(store.deliveries(everywhere.id, i64::MAX, 10).await.unwrap()),
        ["item.completed", "item.completed"]
    );
    // Settling an item before its overlap completes it too, once.
    let (lease, item) = store
        .next_lease(next(watched, a, 2, 4))
        .await
        .unwrap()
        .unwrap();
    store.submit(submission(lease.id, a, 2, 4)).await.unwrap();
    store.settle_item(item.id, 5).await.unwrap();
    store.settle_item(item.id, 6).await.unwrap();
    assert_eq!(
        kinds(store.deliveries(hook.id, i64::MAX, 10).await.unwrap()),
        [
            "item.completed",
            "item.completed",
            "response.created",
            "response.created",
            "response.created"
        ]
    );
    // A subscription to answers alone: each answer carries its event (on PostgreSQL, in the
    // one-statement path).
    let answers_only = project(&store, owner, 1, LocalePolicy::Any).await;
    let listener = store
        .create_webhook(subscription(Some(answers_only), &["response.created"]))
        .await
        .unwrap();
    store
        .import_items(answers_only, batch![super::item("z", 0, None)], 0)
        .await
        .unwrap();
    let (lease, _) = store
        .next_lease(next(answers_only, b, 1, 5))
        .await
        .unwrap()
        .unwrap();
    let SubmitOutcome::Created(response) =
        store.submit(submission(lease.id, b, 1, 5)).await.unwrap()
    else {
        panic!("created")
    };
    let heard = store.deliveries(listener.id, i64::MAX, 10).await.unwrap();
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0].kind, "response.created");
    let due = store.claim_deliveries("r", 5, MINUTE, 10).await.unwrap();
    let subject = &due
        .iter()
        .find(|d| d.webhook.id == listener.id)
        .unwrap()
        .event
        .subject;
    assert_eq!(subject["response_id"], response.id);
    assert_eq!(subject["item_id"], response.item_id);
    // An event no write carries is recorded only when someone wants it.
    assert!(
        store
            .record_event(Some(quiet), "run.finished", json!({"job_id": 1}), None, 7)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn deliveries_are_claimed_once_retried_and_given_up<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    let hook = store
        .create_webhook(subscription(Some(p), &["run.finished"]))
        .await
        .unwrap();
    for job in 1..=2 {
        let event = store
            .record_event(Some(p), "run.finished", json!({"job_id": job}), None, 10)
            .await
            .unwrap();
        assert!(event.is_some());
    }
    // Oldest first, each to one runner; a held delivery is not claimed again until its lease
    // lapses.
    let first = claim(&store, "r1", 10, MINUTE).await.unwrap().unwrap();
    assert_eq!(first.event.subject, json!({"job_id": 1}));
    assert_eq!((first.delivery.attempts, first.webhook.id), (1, hook.id));
    let second = claim(&store, "r2", 10, MINUTE).await.unwrap().unwrap();
    assert_eq!(second.event.subject, json!({"job_id": 2}));
    assert!(claim(&store, "r3", 20, MINUTE).await.unwrap().is_none());
    // Only the holder records an attempt; a failure is retried when it is due.
    let retry = attempt(DeliveryState::Pending, Some(500), 1_000, 30);
    assert!(
        !store
            .finish_delivery(first.delivery.id, "r2", retry.clone())
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_delivery(first.delivery.id, "r1", retry)
            .await
            .unwrap()
    );
    assert!(claim(&store, "r3", 999, MINUTE).await.unwrap().is_none());
    let again = claim(&store, "r3", 1_000, MINUTE).await.unwrap().unwrap();
    assert_eq!(
        (again.delivery.id, again.delivery.attempts),
        (first.delivery.id, 2)
    );
    let done = attempt(DeliveryState::Delivered, Some(204), 0, 1_010);
    assert!(
        store
            .finish_delivery(again.delivery.id, "r3", done)
            .await
            .unwrap()
    );
    // r2's server died: its delivery is claimed again once its lease lapses.
    assert!(
        claim(&store, "r4", 9 + MINUTE, MINUTE)
            .await
            .unwrap()
            .is_none()
    );
    let taken = claim(&store, "r4", 10 + MINUTE, MINUTE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.delivery.id, second.delivery.id);
    let gave_up = attempt(DeliveryState::Failed, None, 0, 20 + MINUTE);
    assert!(
        store
            .finish_delivery(taken.delivery.id, "r4", gave_up)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_delivery(
                taken.delivery.id,
                "r4",
                attempt(DeliveryState::Delivered, Some(200), 0, 1)
            )
            .await
            .unwrap()
    );

    let log = store.deliveries(hook.id, i64::MAX, 10).await.unwrap();
    let states: Vec<_> = log.iter().map(|d| (d.state, d.last_status)).collect();
    assert_eq!(
        states,
        [
            (DeliveryState::Failed, None),
            (DeliveryState::Delivered, Some(204))
        ]
    );
    assert_eq!(log[1].delivered_at, Some(1_010));
    assert_eq!(
        store.webhook(hook.id).await.unwrap().unwrap().failing_since,
        Some(20 + MINUTE)
    );
    // Redelivering queues the failed one again; a success clears the failing mark.
    assert_eq!(
        store.redeliver(hook.id, None, 100 * MINUTE).await.unwrap(),
        1
    );
    let redone = claim(&store, "r5", 100 * MINUTE, MINUTE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (redone.delivery.id, redone.delivery.attempts),
        (second.delivery.id, 1)
    );
    let ok = attempt(DeliveryState::Delivered, Some(200), 0, 100 * MINUTE);
    assert!(
        store
            .finish_delivery(redone.delivery.id, "r5", ok)
            .await
            .unwrap()
    );
    assert_eq!(
        store.webhook(hook.id).await.unwrap().unwrap().failing_since,
        None
    );

    // Rotation keeps the old secret for its window; deletion takes the log with it.
    assert!(store.rotate_webhook_secret(hook.id, "s2", 5).await.unwrap());
    let rotated = store.webhook(hook.id).await.unwrap().unwrap();
    assert_eq!(
        (
            rotated.secret.as_str(),
            rotated.previous_secret.as_deref(),
            rotated.previous_until
        ),
        ("s2", Some("s1"), Some(5))
    );
    assert!(store.delete_webhook(hook.id).await.unwrap());
    assert!(!store.delete_webhook(hook.id).await.unwrap());
    assert!(
        store
            .deliveries(hook.id, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn standing_reviews_completion_and_reports_write_their_events<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let a = user(&store, "a").await;
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    let kinds = [
        "project.completed",
        "rater.paused",
        "rater.reinstated",
        "review.created",
        "standard.report_signed",
    ];
    let hook = store
        .create_webhook(subscription(Some(p), &kinds))
        .await
        .unwrap();
    store
        .import_items(p, batch![item("x", 1, None), item("y", 0, None)], 0)
        .await
        .unwrap();
    let subjects = |deliveries: Vec<crate::Delivery>| -> Vec<String> {
        deliveries.into_iter().rev().map(|d| d.kind).collect()
    };
    // The first answer completes an item, not the project; the second completes both.
    let mut responses = Vec::new();
    for now in [1, 2] {
        let (lease, _) = store.next_lease(next(p, a, 1, now)).await.unwrap().unwrap();
        let SubmitOutcome::Created(response) =
            store.submit(submission(lease.id, a, 1, now)).await.unwrap()
        else {
            panic!("created")
        };
        responses.push(response);
        let log = subjects(store.deliveries(hook.id, i64::MAX, 10).await.unwrap());
        assert_eq!(
            log,
            if now == 1 {
                vec![]
            } else {
                vec!["project.completed".to_string()]
            }
        );
    }
    // Pauses and reinstatements (not qualification decisions), each only when it changes
    // something.
    let paused = RaterChange::Paused {
        reason: "too fast".into(),
    };
    assert!(
        store
            .change_rater(p, a, paused.clone(), None, 3)
            .await
            .unwrap()
    );
    assert!(!store.change_rater(p, a, paused, None, 4).await.unwrap());
    let qualified = RaterChange::Qualified {
        skill: format!("project:{p}"),
        reason: "passed".into(),
    };
    assert!(
        store
            .change_rater(p, a, qualified, Some(owner), 5)
            .await
            .unwrap()
    );
    let back = RaterChange::Reinstated {
        reason: "checked".into(),
    };
    assert!(
        store
            .change_rater(p, a, back, Some(owner), 6)
            .await
            .unwrap()
    );
    // Every verdict, with what it decided.
    store
        .put_reviews(vec![Review {
            response_id: responses[0].id,
            project_id: p,
            item_id: responses[0].item_id,
            rater_id: a,
            reviewer_id: owner,
            verdict: Verdict::Correct,
            answers: Some(json!({"label": "no"})),
            created_at: 7,
        }])
        .await
        .unwrap();
    // A report signed: once per key, however often it is asked for.
    for _ in 0..2 {
        store
            .record_event(
                Some(p),
                "standard.report_signed",
                json!({"standard_hash": "sha256:x"}),
                Some("report:sha256:x:sig".into()),
                8,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        subjects(store.deliveries(hook.id, i64::MAX, 10).await.unwrap()),
        [
            "project.completed",
            "rater.paused",
            "rater.reinstated",
            "review.created",
            "standard.report_signed"
        ]
    );
    // Claimed in one batch, oldest first; nothing is left for the next claim.
    let due = store.claim_deliveries("r", 10, MINUTE, 10).await.unwrap();
    assert_eq!(due.len(), 5);
    assert_eq!(due[0].event.kind, "project.completed");
    assert!(claim(&store, "r2", 10, MINUTE).await.unwrap().is_none());
    let events: Vec<serde_json::Value> = due.into_iter().map(|d| d.event.subject).collect();
    assert_eq!(events[1]["reason"], "too fast");
    assert_eq!(events[2]["actor_id"], owner);
    assert_eq!(events[3]["verdict"], "correct");
    assert_eq!(events[3]["answers"], json!({"label": "no"}));
}
