//! Conformance: the job queue.

use super::*;
use crate::{JobClaim, JobState, NewJob};

fn job(key: &str, project_id: Option<i64>) -> NewJob {
    NewJob {
        kind: "model_run".into(),
        project_id,
        key: key.into(),
        payload: json!({"model": key}),
        created_by: None,
        created_at: 1,
    }
}

fn claim(runner: &str, now: i64) -> JobClaim {
    JobClaim {
        runner: runner.into(),
        now,
        lease_ms: MINUTE,
        max_attempts: 3,
    }
}

pub async fn jobs_are_claimed_once_and_taken_over_when_their_runner_stops<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    let queued = store
        .enqueue_jobs(vec![job("a", Some(p)), job("b", None)])
        .await
        .unwrap();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0].state, JobState::Queued);
    assert_eq!(queued[0].payload, json!({"model": "a"}));

    // A live key is refused, and a batch with one refused job stores none of it.
    let refused = store
        .enqueue_jobs(vec![job("c", None), job("a", Some(p))])
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(m)) if m.contains("`a`")));
    assert_eq!(store.jobs(None, i64::MAX, 10).await.unwrap().len(), 2);

    // Oldest first, each once.
    let first = store.claim_job(claim("r1", 10)).await.unwrap().unwrap();
    assert_eq!(
        (first.id, first.state, first.attempts),
        (queued[0].id, JobState::Running, 1)
    );
    assert_eq!(first.runner.as_deref(), Some("r1"));
    assert_eq!(first.lease_until, Some(10 + MINUTE));
    let second = store.claim_job(claim("r1", 10)).await.unwrap().unwrap();
    assert_eq!(second.id, queued[1].id);
    assert!(store.claim_job(claim("r2", 20)).await.unwrap().is_none());

    // Only the holder renews; renewing keeps it from being taken over.
    assert!(!store.renew_job(first.id, "r2", 30 + MINUTE).await.unwrap());
    assert!(store.renew_job(first.id, "r1", 30 + MINUTE).await.unwrap());
    assert!(store.renew_job(second.id, "r1", 31 + MINUTE).await.unwrap());
    assert!(
        store
            .claim_job(claim("r2", 20 + MINUTE))
            .await
            .unwrap()
            .is_none()
    );

    // Its runner stopped: once the lease has run out, another runner takes it over, and the
    // first can neither renew nor finish it any more.
    let taken = store
        .claim_job(claim("r2", 30 + MINUTE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (taken.id, taken.attempts),
        (first.id, 2),
        "the oldest lapsed job"
    );
    assert_eq!(taken.started_at, Some(10), "started when first claimed");
    assert!(!store.renew_job(first.id, "r1", 40 + MINUTE).await.unwrap());
    assert!(!store.finish_job(first.id, "r1", None, 40).await.unwrap());
    assert!(store.finish_job(first.id, "r2", None, 50).await.unwrap());
    let done = store.job(first.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.finished_at), (JobState::Done, Some(50)));
    assert!(
        !store.finish_job(first.id, "r2", None, 60).await.unwrap(),
        "finished once"
    );

    // A stopping runner gives its job back: claimable at once, by anyone.
    let held = store.claim_job(claim("r4", 55)).await.unwrap();
    assert!(held.is_none(), "nothing lapsed yet");
    assert!(
        !store.release_job(second.id, "r2").await.unwrap(),
        "not r2's"
    );
    assert!(store.release_job(second.id, "r1").await.unwrap());
    let released = store.job(second.id).await.unwrap().unwrap();
    assert_eq!((released.state, released.runner), (JobState::Queued, None));
    let again_held = store.claim_job(claim("r4", 56)).await.unwrap().unwrap();
    assert_eq!((again_held.id, again_held.attempts), (second.id, 2));
    assert!(
        !store.release_job(second.id, "r1").await.unwrap(),
        "no longer r1's"
    );

    // A finished key may be queued again; a failure keeps its message.
    let again = store.enqueue_jobs(vec![job("a", Some(p))]).await.unwrap();
    assert!(
        store
            .finish_job(second.id, "r4", Some("no key".into()), 70)
            .await
            .unwrap()
    );
    let failed = store.job(second.id).await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (JobState::Failed, Some("no key"))
    );

    // A job whose runners keep stopping is failed, not claimed for ever.
    let mut now = 100 * MINUTE;
    for attempt in 1..=3 {
        let held = store.claim_job(claim("r3", now)).await.unwrap().unwrap();
        assert_eq!((held.id, held.attempts), (again[0].id, attempt));
        now += 2 * MINUTE;
    }
    assert!(store.claim_job(claim("r3", now)).await.unwrap().is_none());
    let gave_up = store.job(again[0].id).await.unwrap().unwrap();
    assert_eq!(gave_up.state, JobState::Failed);
    assert!(gave_up.error.unwrap().contains("3 times"));

    // Listed newest first, all or one project's, paged by id.
    let all: Vec<i64> = store
        .jobs(None, i64::MAX, 10)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(all, vec![again[0].id, queued[1].id, queued[0].id]);
    let mine: Vec<i64> = store
        .jobs(Some(p), i64::MAX, 10)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(mine, vec![again[0].id, queued[0].id]);
    assert_eq!(store.jobs(Some(p), again[0].id, 10).await.unwrap().len(), 1);
}

pub async fn concurrent_runners_never_share_a_job<S: Store>(store: S) {
    let store = Arc::new(store);
    let jobs: Vec<NewJob> = (0..40).map(|i| job(&format!("k{i}"), None)).collect();
    store.enqueue_jobs(jobs).await.unwrap();
    let mut tasks = Vec::new();
    for r in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(job) = store.claim_job(claim(&format!("r{r}"), 5)).await.unwrap() {
                held.push(job.id);
            }
            held
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    claimed.sort_unstable();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!(
        (before, claimed.len()),
        (40, 40),
        "every job claimed exactly once"
    );
}
