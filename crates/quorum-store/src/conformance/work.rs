//! Conformance: Work: leases, answers and skips.

use super::*;

pub async fn next_follows_priority_overlap_and_never_repeats<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (a, b, c) = (
        user(&store, "a").await,
        user(&store, "b").await,
        user(&store, "c").await,
    );
    let p = project(&store, owner, 2, LocalePolicy::Any).await;
    store
        .import_items(p, batch![item("low", 0, None), item("high", 9, None)], 0)
        .await
        .unwrap();
    let (lease, first) = store.next_lease(next(p, a, 2, 10)).await.unwrap().unwrap();
    assert_eq!(first.external_id.as_deref(), Some("high"));
    // Asking again returns the same live lease.
    let (again, _) = store.next_lease(next(p, a, 2, 11)).await.unwrap().unwrap();
    assert_eq!(again.id, lease.id);
    store.submit(submission(lease.id, a, 2, 12)).await.unwrap();
    let (lease_a2, second) = store.next_lease(next(p, a, 2, 13)).await.unwrap().unwrap();
    assert_eq!(second.external_id.as_deref(), Some("low"));
    store
        .submit(submission(lease_a2.id, a, 2, 14))
        .await
        .unwrap();
    assert!(
        store.next_lease(next(p, a, 2, 15)).await.unwrap().is_none(),
        "a has seen everything"
    );
    for rater in [b] {
        for _ in 0..2 {
            let (l, _) = store
                .next_lease(next(p, rater, 2, 16))
                .await
                .unwrap()
                .unwrap();
            store.submit(submission(l.id, rater, 2, 17)).await.unwrap();
        }
    }
    assert!(
        store.next_lease(next(p, c, 2, 18)).await.unwrap().is_none(),
        "both items have 2 responses"
    );
    let stats = store.stats(p, 2, 19).await.unwrap();
    assert_eq!(
        (stats.items_complete, stats.responses, stats.raters),
        (2, 4, 2)
    );
}

pub async fn expired_leases_free_their_slot<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    store
        .import_items(p, batch![item("only", 0, None), item("other", -1, None)], 0)
        .await
        .unwrap();
    let (lease_a, _) = store.next_lease(next(p, a, 1, 0)).await.unwrap().unwrap();
    assert_eq!(lease_a.expires_at, 60_000);
    let expired_before = crate::LEASES_EXPIRED.load(std::sync::atomic::Ordering::Relaxed);
    // While a's lease lives, b gets the other item; after it expires, b gets "only".
    let (lease_b, other) = store
        .next_lease(next(p, b, 1, MINUTE / 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.external_id.as_deref(), Some("other"));
    store.skip(lease_b.id, b, MINUTE / 2 + 1).await.unwrap();
    let (lease_b2, only) = store
        .next_lease(next(p, b, 1, 2 * MINUTE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(only.external_id.as_deref(), Some("only"));
    assert_eq!(
        store.lease(lease_a.id).await.unwrap().unwrap().state,
        LeaseState::Expired
    );
    // Counted for `quorum_leases_expired_total` (other tests may count theirs meanwhile).
    assert!(crate::LEASES_EXPIRED.load(std::sync::atomic::Ordering::Relaxed) > expired_before);
    store
        .submit(submission(lease_b2.id, b, 1, 2 * MINUTE + 1))
        .await
        .unwrap();
    // a's late answer would overshoot the overlap: refused.
    let late = store.submit(submission(lease_a.id, a, 1, 3 * MINUTE)).await;
    assert!(matches!(late, Err(StoreError::LeaseExpired)), "{late:?}");

    // A late answer whose slot is still free is accepted.
    let q = project(&store, owner, 1, LocalePolicy::Any).await;
    store
        .import_items(q, batch![item("x", 0, None)], 0)
        .await
        .unwrap();
    let (lease, _) = store.next_lease(next(q, a, 1, 0)).await.unwrap().unwrap();
    let outcome = store
        .submit(submission(lease.id, a, 1, 5 * MINUTE))
        .await
        .unwrap();
    assert!(matches!(outcome, SubmitOutcome::Created(_)));
    assert_eq!(
        store.stats(q, 1, 5 * MINUTE).await.unwrap().items_complete,
        1
    );
}

/// The server's clock jumps (an NTP correction, a virtual machine resumed, two servers whose
/// clocks disagree): a lease is judged by the time each request brings, and what decides who
/// may answer is the lease's state in the database, so nothing is over-served and no
/// acknowledged answer is lost, whichever way the clock moved.
pub async fn a_clock_that_jumps_never_over_serves_nor_loses_an_answer<S: Store>(store: S) {
    let hour = 60 * MINUTE;
    let owner = user(&store, "owner").await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    store
        .import_items(
            p,
            batch![item("first", 1, None), item("second", 0, None)],
            0,
        )
        .await
        .unwrap();
    // a's lease is granted at 10:00, then the clock jumps back an hour: the lease is still
    // a's, nobody else gets its item, and a's answer, timed before the lease, is stored.
    let (lease_a, first) = store
        .next_lease(next(p, a, 1, 10 * hour))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.external_id.as_deref(), Some("first"));
    let (again, _) = store
        .next_lease(next(p, a, 1, 9 * hour))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, lease_a.id);
    let (lease_b, second) = store
        .next_lease(next(p, b, 1, 9 * hour))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.external_id.as_deref(), Some("second"));
    let answered = store
        .submit(submission(lease_a.id, a, 1, 9 * hour))
        .await
        .unwrap();
    assert!(
        matches!(answered, SubmitOutcome::Created(_)),
        "{answered:?}"
    );
    // Now the clock jumps two hours ahead: by it b's lease has expired, and a takes the item.
    let (lease_a2, taken) = store
        .next_lease(next(p, a, 1, 11 * hour))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.external_id.as_deref(), Some("second"));
    store
        .submit(submission(lease_a2.id, a, 1, 11 * hour))
        .await
        .unwrap();
    // b answers with the clock back where it was, when the lease still looked live: the slot
    // is taken, so the answer is refused rather than stored over the overlap.
    let late = store
        .submit(submission(lease_b.id, b, 1, 9 * hour + 1))
        .await;
    assert!(matches!(late, Err(StoreError::LeaseExpired)), "{late:?}");
    let stats = store.stats(p, 1, 9 * hour).await.unwrap();
    assert_eq!(
        (stats.items_complete, stats.responses, stats.active_leases),
        (2, 2, 0)
    );
    assert!(
        store
            .next_lease(next(p, b, 1, 9 * hour))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn submissions_are_idempotent_and_checked<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let p = project(&store, owner, 2, LocalePolicy::Any).await;
    store
        .import_items(p, batch![item("x", 0, None)], 0)
        .await
        .unwrap();
    let (lease, _) = store.next_lease(next(p, a, 2, 0)).await.unwrap().unwrap();
    let stranger = store.submit(submission(lease.id, b, 2, 1)).await;
    assert!(
        matches!(stranger, Err(StoreError::NotFound(_))),
        "{stranger:?}"
    );
    let keyed = Submission {
        idempotency_key: Some("k1".into()),
        ..submission(lease.id, a, 2, 1)
    };
    let SubmitOutcome::Created(first) = store.submit(keyed.clone()).await.unwrap() else {
        panic!("created")
    };
    let SubmitOutcome::Replayed(again) = store.submit(keyed).await.unwrap() else {
        panic!("replayed")
    };
    assert_eq!(first, again);
    let twice = store.submit(submission(lease.id, a, 2, 2)).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(store.stats(p, 2, 3).await.unwrap().responses, 1);
    assert!(matches!(
        store.submit(submission(424_242, a, 2, 2)).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn skipped_items_are_not_offered_again<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    store
        .import_items(p, batch![item("x", 0, None)], 0)
        .await
        .unwrap();
    let (lease, _) = store.next_lease(next(p, a, 1, 0)).await.unwrap().unwrap();
    store.skip(lease.id, a, 1).await.unwrap();
    assert_eq!(
        store.lease(lease.id).await.unwrap().unwrap().state,
        LeaseState::Skipped
    );
    assert!(store.next_lease(next(p, a, 1, 2)).await.unwrap().is_none());
    assert!(
        store.next_lease(next(p, b, 1, 3)).await.unwrap().is_some(),
        "the slot is free for b"
    );
    assert!(matches!(
        store.skip(lease.id, a, 4).await,
        Err(StoreError::Conflict(_))
    ));
    // Activity lists members (raters reach `next` only as members).
    store
        .upsert_member(Member {
            project_id: lease.project_id,
            user_id: a,
            role: Role::Annotator,
            locales: vec![],
            skills: vec![],
        })
        .await
        .unwrap();
    let activity = store.roster(lease.project_id, vec![]).await.unwrap();
    let skipper = activity.iter().find(|r| r.user_id == a).unwrap();
    assert!(skipper.skips >= 1, "{activity:?}");
    assert_eq!(skipper.role.as_deref(), Some("annotator"));
}

pub async fn locale_routing<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (qatari, british) = (user(&store, "qa").await, user(&store, "gb").await);
    let p = project(&store, owner, 1, LocalePolicy::Match).await;
    store
        .import_items(
            p,
            batch![
                item("ar", 5, Some("ar-QA")),
                item("en", 0, Some("en-GB")),
                item("any", -5, None),
            ],
            0,
        )
        .await
        .unwrap();
    let ask = |user_id, locales: &[&str]| NextRequest {
        locales: Some(quorum_core::LocaleFilter::new(
            &locales.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
        )),
        ..next(p, user_id, 1, 1)
    };
    let (_, got) = store
        .next_lease(ask(british, &["en-GB"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.external_id.as_deref(),
        Some("en"),
        "the ar-QA item outranks it but is not theirs"
    );
    let (_, got) = store
        .next_lease(ask(qatari, &["ar"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.external_id.as_deref(),
        Some("ar"),
        "a bare language matches its regions"
    );
}

/// 64 raters ask and answer at once on 40 items with overlap 3: no item may end with more than
/// 3 responses, no rater may answer an item twice, and all 120 slots get filled.
pub async fn concurrent_raters_never_overshoot<S: Store>(store: S) {
    let store = Arc::new(store);
    let owner = user(store.as_ref(), "owner").await;
    let p = project(store.as_ref(), owner, 3, LocalePolicy::Any).await;
    let items: ItemBatch = (0..40).map(|i| item(&format!("i{i}"), 0, None)).collect();
    store.import_items(p, items, 0).await.unwrap();
    let mut raters = Vec::new();
    for r in 0..64 {
        raters.push(user(store.as_ref(), &format!("r{r}")).await);
    }
    let mut tasks = Vec::new();
    for &rater in &raters {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            while let Some((lease, item)) = store.next_lease(next(p, rater, 3, 1)).await.unwrap() {
                store
                    .submit(submission(lease.id, rater, 3, 2))
                    .await
                    .unwrap();
                answered.push(item.id);
            }
            (rater, answered)
        }));
    }
    let mut per_item: HashMap<i64, usize> = HashMap::new();
    let mut pairs = HashSet::new();
    for task in tasks {
        let (rater, answered) = task.await.unwrap();
        for item in answered {
            *per_item.entry(item).or_default() += 1;
            assert!(
                pairs.insert((rater, item)),
                "rater {rater} answered item {item} twice"
            );
        }
    }
    assert!(per_item.values().all(|&n| n == 3), "{per_item:?}");
    assert_eq!(per_item.len(), 40);
    let stats = store.stats(p, 3, 3).await.unwrap();
    assert_eq!((stats.responses, stats.items_complete), (120, 40));
}
