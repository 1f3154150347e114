//! Conformance: Quality: settling, gold, rater standing and reviews.

use super::*;

/// A settled item is complete at once: no more leases, counted as complete, its answers kept.
pub async fn settled_items_take_no_more_answers<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let p = project(&store, owner, 3, LocalePolicy::Any).await;
    store
        .import_items(p, batch![item("x", 0, None)], 0)
        .await
        .unwrap();
    let (lease, got) = store.next_lease(next(p, a, 3, 1)).await.unwrap().unwrap();
    store.submit(submission(lease.id, a, 3, 2)).await.unwrap();
    assert_eq!(
        store
            .item_answers(got.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.user_id, r.answers))
            .collect::<Vec<_>>(),
        vec![(a, json!({"label": "yes"}))]
    );
    store.settle_item(got.id, 0).await.unwrap();
    assert!(store.next_lease(next(p, b, 3, 3)).await.unwrap().is_none());
    let stats = store.stats(p, 3, 4).await.unwrap();
    assert_eq!((stats.items_complete, stats.items_in_progress), (1, 0));
    // A skip or an expiry later must not reopen it.
    let (lease, _) = {
        store
            .import_items(p, batch![item("y", 0, None)], 5)
            .await
            .unwrap();
        store.next_lease(next(p, b, 3, 6)).await.unwrap().unwrap()
    };
    store.skip(lease.id, b, 7).await.unwrap();
    assert!(store.next_lease(next(p, b, 3, 8)).await.unwrap().is_none());
    let c = user(&store, "c").await;
    let (_, got) = store.next_lease(next(p, c, 3, 9)).await.unwrap().unwrap();
    assert_eq!(
        got.external_id.as_deref(),
        Some("y"),
        "the settled item stays closed"
    );
}

/// Gold items have their own pool (each rater once, whatever the overlap); submissions carry
/// their gold score; a rater's record, standing and audit log follow.
pub async fn gold_pool_scores_and_rater_standing<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    store
        .import_items(
            p,
            batch![
                gold_item("g1"),
                item("x1", 0, None),
                gold_item("g2"),
                item("x2", 0, None)
            ],
            0,
        )
        .await
        .unwrap();
    let request = |user, pool, now| NextRequest {
        pool,
        ..next(p, user, 1, now)
    };
    // The ordinary stream never offers gold.
    let (lease, got) = store
        .next_lease(request(a, Pool::Regular, 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.external_id.as_deref(), Some("x1"));
    store.submit(submission(lease.id, a, 1, 2)).await.unwrap();
    // Gold: each rater gets each gold item once, overlap 1 notwithstanding.
    let mut seen = HashSet::new();
    for (n, correct) in [(3, true), (5, false)] {
        let (lease, got) = store
            .next_lease(request(a, Pool::Gold, n))
            .await
            .unwrap()
            .unwrap();
        assert!(got.gold.is_some());
        seen.insert(got.external_id.clone().unwrap());
        store
            .submit(Submission {
                gold_pool: true,
                gold_correct: Some(correct),
                time_spent_ms: 100 * n,
                ..submission(lease.id, a, 1, n + 1)
            })
            .await
            .unwrap();
    }
    assert_eq!(seen.len(), 2);
    assert!(
        store
            .next_lease(request(a, Pool::Gold, 7))
            .await
            .unwrap()
            .is_none()
    );
    // Another rater still gets gold; a late answer on an expired gold lease is not refused.
    let (lease, _) = store
        .next_lease(request(b, Pool::Gold, 8))
        .await
        .unwrap()
        .unwrap();
    let late = Submission {
        gold_pool: true,
        gold_correct: Some(true),
        ..submission(lease.id, b, 1, 8 + 2 * MINUTE)
    };
    assert!(matches!(
        store.submit(late).await.unwrap(),
        SubmitOutcome::Created(_)
    ));
    let (lease, _) = store
        .next_lease(request(b, Pool::Regular, 9 + 2 * MINUTE))
        .await
        .unwrap()
        .unwrap();
    store.skip(lease.id, b, 10 + 2 * MINUTE).await.unwrap();

    let record = store.rater_record(p, a, 0).await.unwrap();
    assert_eq!(
        (
            record.responses,
            record.gold_answered,
            record.gold_correct,
            record.skips
        ),
        (3, 2, 1, 0)
    );
    assert_eq!(record.recent_times_ms, vec![500, 300, 1200]);
    let record = store.rater_record(p, b, 0).await.unwrap();
    assert_eq!((record.gold_correct, record.skips), (1, 1));
    assert_eq!(store.rater_record(p, a, 5).await.unwrap().responses, 1);

    // Standing: pause once, reinstate once, each logged with its actor.
    assert!(store.rater_state(p, a).await.unwrap().is_none());
    let paused = RaterChange::Paused {
        reason: "too fast".into(),
    };
    assert!(
        store
            .change_rater(p, a, paused.clone(), None, 20)
            .await
            .unwrap()
    );
    assert!(!store.change_rater(p, a, paused, None, 21).await.unwrap());
    let state = store.rater_state(p, a).await.unwrap().unwrap();
    assert_eq!(state.paused.as_deref(), Some("too fast"));
    let reinstated = RaterChange::Reinstated {
        reason: "checked".into(),
    };
    assert!(
        !store
            .change_rater(p, b, reinstated.clone(), Some(owner), 22)
            .await
            .unwrap()
    );
    assert!(
        store
            .change_rater(p, a, reinstated, Some(owner), 23)
            .await
            .unwrap()
    );
    let state = store.rater_state(p, a).await.unwrap().unwrap();
    assert_eq!((state.paused, state.reinstated_at), (None, 23));
    assert_eq!(store.rater_states(p).await.unwrap().len(), 1);

    // Qualifications are kept by skill, across projects.
    assert_eq!(store.qualification(b, "skill:medical").await.unwrap(), None);
    let skill = "skill:medical".to_string();
    store
        .change_rater(
            p,
            b,
            RaterChange::NotQualified {
                skill: skill.clone(),
                reason: "2 of 5".into(),
            },
            None,
            24,
        )
        .await
        .unwrap();
    assert_eq!(store.qualification(b, &skill).await.unwrap(), Some(false));
    store
        .change_rater(
            p,
            b,
            RaterChange::Qualified {
                skill: skill.clone(),
                reason: "override".into(),
            },
            Some(owner),
            25,
        )
        .await
        .unwrap();
    assert_eq!(store.qualification(b, &skill).await.unwrap(), Some(true));
    let events = store.rater_events(p).await.unwrap();
    let log: Vec<(i64, Option<i64>, i64)> = events
        .iter()
        .map(|e| (e.user_id, e.actor_id, e.at))
        .collect();
    assert_eq!(
        log,
        vec![
            (a, None, 20),
            (a, Some(owner), 23),
            (b, None, 24),
            (b, Some(owner), 25)
        ]
    );
    assert!(matches!(events[3].change, RaterChange::Qualified { .. }));

    // Rules are stored with the project.
    let mut quality = QualityPolicy {
        gold_rate: 0.1,
        ..QualityPolicy::default()
    };
    quality.pause.min_median_ms = Some(800);
    store.set_quality(p, quality.clone()).await.unwrap();
    assert_eq!(store.project(p).await.unwrap().unwrap().quality, quality);
    assert!(matches!(
        store.set_quality(p + 1000, quality).await,
        Err(StoreError::NotFound(_))
    ));

    // A decision under a shared skill is logged in every project naming that skill, and only
    // there; a project's own qualification only in that project.
    let naming = |skill: &str| QualityPolicy {
        qualification: Some(crate::Qualification {
            gold_items: 5,
            min_accuracy: 0.8,
            skill: Some(skill.to_string()),
        }),
        ..QualityPolicy::default()
    };
    let (q, other) = (
        project(&store, owner, 1, LocalePolicy::Any).await,
        project(&store, owner, 1, LocalePolicy::Any).await,
    );
    store.set_quality(p, naming("medical")).await.unwrap();
    store.set_quality(q, naming("medical")).await.unwrap();
    store.set_quality(other, naming("legal")).await.unwrap();
    let (in_p, in_q, in_other) = event_counts(&store, [p, q, other]).await;
    store
        .change_rater(
            p,
            a,
            RaterChange::NotQualified {
                skill: "skill:medical".into(),
                reason: "1 of 5".into(),
            },
            Some(owner),
            30,
        )
        .await
        .unwrap();
    assert_eq!(
        event_counts(&store, [p, q, other]).await,
        (in_p + 1, in_q + 1, in_other)
    );
    let logged = store.rater_events(q).await.unwrap().pop().unwrap();
    assert_eq!(
        (logged.user_id, logged.actor_id, logged.at),
        (a, Some(owner), 30)
    );
    store
        .change_rater(
            p,
            a,
            RaterChange::Qualified {
                skill: format!("project:{p}"),
                reason: "by hand".into(),
            },
            Some(owner),
            31,
        )
        .await
        .unwrap();
    assert_eq!(
        event_counts(&store, [p, q, other]).await,
        (in_p + 2, in_q + 1, in_other)
    );
}

/// How many audit-log rows each project has.
async fn event_counts<S: Store>(store: &S, projects: [i64; 3]) -> (usize, usize, usize) {
    let mut counts = [0; 3];
    for (count, project) in counts.iter_mut().zip(projects) {
        *count = store.rater_events(project).await.unwrap().len();
    }
    (counts[0], counts[1], counts[2])
}

/// Reviews replace earlier verdicts on the same response and count for or against its rater.
pub async fn reviews_replace_and_count<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (a, r) = (user(&store, "a").await, user(&store, "reviewer").await);
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    store
        .import_items(p, batch![item("x", 0, None), item("y", 0, None)], 0)
        .await
        .unwrap();
    let mut responses = Vec::new();
    for now in [1, 3] {
        let (lease, _) = store.next_lease(next(p, a, 1, now)).await.unwrap().unwrap();
        let SubmitOutcome::Created(response) = store
            .submit(submission(lease.id, a, 1, now + 1))
            .await
            .unwrap()
        else {
            panic!("a new response")
        };
        responses.push(response);
    }
    let review = |response: &crate::Response, verdict, answers| Review {
        response_id: response.id,
        project_id: p,
        item_id: response.item_id,
        rater_id: a,
        reviewer_id: r,
        verdict,
        answers,
        created_at: 10,
    };
    store
        .put_reviews(vec![
            review(&responses[0], Verdict::Reject, None),
            review(
                &responses[1],
                Verdict::Correct,
                Some(json!({"label": "no"})),
            ),
        ])
        .await
        .unwrap();
    let record = store.rater_record(p, a, 0).await.unwrap();
    assert_eq!((record.accepted, record.rejected), (0, 2));
    store
        .put_reviews(vec![review(&responses[0], Verdict::Accept, None)])
        .await
        .unwrap();
    let record = store.rater_record(p, a, 0).await.unwrap();
    assert_eq!((record.accepted, record.rejected), (1, 1));
    let stored = store.reviews(p).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].verdict, Verdict::Accept);
    assert_eq!(stored[1].answers, Some(json!({"label": "no"})));
    // A review of a response that does not exist writes nothing.
    let mut bad = review(&responses[1], Verdict::Accept, None);
    bad.response_id += 1000;
    assert!(
        store
            .put_reviews(vec![review(&responses[0], Verdict::Reject, None), bad])
            .await
            .is_err()
    );
    assert_eq!(store.reviews(p).await.unwrap()[0].verdict, Verdict::Accept);
}
