//! Conformance: Tallies: the queue every stored response joins, batches read in one snapshot,
//! saves that apply once, and the roster the tallied figures are shown against.

use super::*;

/// Every answer is queued; a batch holds each queued item with all its responses; a save
/// applies only on the version it read and takes exactly the folded responses off the queue.
pub async fn answers_queue_for_the_tally_and_each_fold_applies_once<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let p = project(&store, owner, 2, LocalePolicy::Any).await;
    let other = project(&store, owner, 1, LocalePolicy::Any).await;
    store
        .import_items(p, batch![item("x", 0, None), item("w", 0, None)], 0)
        .await
        .unwrap();
    store
        .import_items(other, batch![item("o", 0, None)], 0)
        .await
        .unwrap();
    assert!(store.tally_pending().await.unwrap().is_empty());
    assert_eq!(store.tally_oldest().await.unwrap(), None);
    let empty = store.tally_batch(p, 10).await.unwrap();
    assert_eq!((empty.version, empty.data, empty.items.len()), (0, None, 0));

    let mut answered = Vec::new();
    for (rater, now) in [(a, 10), (b, 20)] {
        let (lease, got) = store
            .next_lease(next(p, rater, 2, now))
            .await
            .unwrap()
            .unwrap();
        let SubmitOutcome::Created(r) = store
            .submit(submission(lease.id, rater, 2, now + 1))
            .await
            .unwrap()
        else {
            panic!("a new answer")
        };
        answered.push((got.id, r.id));
    }
    let (lease, _) = store
        .next_lease(next(other, a, 1, 30))
        .await
        .unwrap()
        .unwrap();
    store.submit(submission(lease.id, a, 1, 31)).await.unwrap();
    // The oldest answer waiting is the first one stored (at 11).
    assert_eq!(store.tally_oldest().await.unwrap(), Some(11));
    let mut pending = store.tally_pending().await.unwrap();
    pending.sort_unstable();
    assert_eq!(pending, vec![p, other]);
    assert_eq!(store.tally_backlog(p, 100).await.unwrap(), 2);
    assert_eq!(
        store.tally_backlog(p, 1).await.unwrap(),
        1,
        "counting stops at the cap"
    );

    // Both raters got the first item: one item, both responses queued, in id order.
    assert_eq!(answered[0].0, answered[1].0);
    let batch = store.tally_batch(p, 10).await.unwrap();
    assert_eq!(batch.items.len(), 1);
    let first = &batch.items[0];
    assert_eq!(first.item_id, answered[0].0);
    assert_eq!(first.queued, vec![answered[0].1, answered[1].1]);
    let seen: Vec<(i64, i64, i64)> = first
        .responses
        .iter()
        .map(|r| (r.user_id, r.time_spent_ms, r.created_at))
        .collect();
    assert_eq!(seen, vec![(a, 1200, 11), (b, 1200, 21)]);
    assert_eq!(first.responses[0].answers, json!({"label": "yes"}));

    // Fold only the first response: the second stays queued, and shows as already kept next
    // time while a new answer joins it.
    assert!(
        store
            .save_tally(p, 0, "one".into(), vec![answered[0].1], 40)
            .await
            .unwrap()
    );
    assert!(
        !store
            .save_tally(p, 0, "stale".into(), vec![answered[1].1], 41)
            .await
            .unwrap(),
        "a save on a version another fold moved past applies nothing"
    );
    assert_eq!(
        store.tally(p).await.unwrap(),
        Some((1, "one".to_string(), 40))
    );
    let batch = store.tally_batch(p, 10).await.unwrap();
    assert_eq!((batch.version, batch.data.as_deref()), (1, Some("one")));
    assert_eq!(batch.queued(), vec![answered[1].1]);
    assert_eq!(batch.items[0].responses.len(), 2);
    assert!(
        store
            .save_tally(p, 1, "two".into(), batch.queued(), 50)
            .await
            .unwrap()
    );
    assert_eq!(store.tally_backlog(p, 100).await.unwrap(), 0);
    assert_eq!(store.tally_pending().await.unwrap(), vec![other]);
    assert!(store.tally_batch(p, 10).await.unwrap().items.is_empty());

    // The roster: members, plus the past responders asked for, by name, with their skips.
    let c = user(&store, "c").await;
    store
        .import_items(other, batch![item("o2", 0, None)], 54)
        .await
        .unwrap();
    let (lease, _) = store
        .next_lease(next(other, c, 1, 55))
        .await
        .unwrap()
        .unwrap();
    store.skip(lease.id, c, 56).await.unwrap();
    let roster = store.roster(other, vec![a, c]).await.unwrap();
    let seen: Vec<(&str, i64, Option<&str>)> = roster
        .iter()
        .map(|r| (r.name.as_str(), r.skips, r.role.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("a", 0, None),
            ("c", 1, None),
            ("owner", 0, Some("manager"))
        ]
    );
    assert!(
        roster
            .iter()
            .all(|r| r.responses == 0 && r.last_active.is_none())
    );

    // The limit counts items: with two items queued and a limit of one, the first comes alone.
    let p3 = project(&store, owner, 1, LocalePolicy::Any).await;
    store
        .import_items(p3, batch![item("y", 0, None), item("z", 0, None)], 0)
        .await
        .unwrap();
    for now in [60, 70] {
        let (lease, _) = store
            .next_lease(next(p3, a, 1, now))
            .await
            .unwrap()
            .unwrap();
        store
            .submit(submission(lease.id, a, 1, now + 1))
            .await
            .unwrap();
    }
    assert_eq!(store.tally_batch(p3, 1).await.unwrap().items.len(), 1);
    let both = store.tally_batch(p3, 5).await.unwrap();
    assert_eq!(both.items.len(), 2);
    assert!(
        both.items[0].item_id < both.items[1].item_id,
        "items in id order"
    );
    assert!(
        both.items
            .iter()
            .all(|i| i.queued.len() == 1 && i.responses.len() == 1)
    );
}
