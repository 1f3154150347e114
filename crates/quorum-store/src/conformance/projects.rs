//! Conformance: Projects, members and items.

use super::*;

pub async fn projects_and_members<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let rater = user(&store, "rater").await;
    let first = project(&store, owner, 3, LocalePolicy::Any).await;
    let second = project(&store, owner, 3, LocalePolicy::Any).await;
    let member = store.member(first, owner).await.unwrap().unwrap();
    assert_eq!(member.role, Role::Manager);
    store
        .upsert_member(Member {
            project_id: second,
            user_id: rater,
            role: Role::Annotator,
            locales: vec!["ar-QA".into()],
            skills: vec!["medicine".into()],
        })
        .await
        .unwrap();
    let theirs = store.list_projects(Some(rater), 0, 10).await.unwrap();
    assert_eq!(
        theirs.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![second]
    );
    assert_eq!(
        store.member(second, rater).await.unwrap().unwrap().locales,
        vec!["ar-QA".to_string()]
    );
    let page = store.list_projects(None, first, 10).await.unwrap();
    assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), vec![second]);
    // Upserting changes the role in place.
    store
        .upsert_member(Member {
            project_id: second,
            user_id: rater,
            role: Role::Reviewer,
            locales: vec![],
            skills: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        store.member(second, rater).await.unwrap().unwrap().role,
        Role::Reviewer
    );
    assert!(store.project(999_999).await.unwrap().is_none());
}

pub async fn import_creates_then_updates_by_external_id<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    let report = store
        .import_items(p, batch![item("a", 0, None), item("b", 0, None)], 1)
        .await
        .unwrap();
    assert_eq!((report.created, report.updated), (2, 0));
    let report = store
        .import_items(p, batch![item("b", 5, None), item("c", 0, None)], 2)
        .await
        .unwrap();
    assert_eq!((report.created, report.updated), (1, 1));
    let stats = store.stats(p, 1, 3).await.unwrap();
    assert_eq!(stats.items, 3);
}

pub async fn export_pages_and_stats<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let raters = [
        user(&store, "a").await,
        user(&store, "b").await,
        user(&store, "c").await,
    ];
    let p = project(&store, owner, 3, LocalePolicy::Any).await;
    store
        .import_items(p, batch![item("x", 0, None), item("y", 0, None)], 0)
        .await
        .unwrap();
    for (i, &r) in raters.iter().enumerate() {
        let (lease, _) = store
            .next_lease(next(p, r, 3, i as i64))
            .await
            .unwrap()
            .unwrap();
        store
            .submit(submission(lease.id, r, 3, i as i64 + 1))
            .await
            .unwrap();
    }
    let first = store.export_responses(p, 0, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = store
        .export_responses(p, first[1].response_id, 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].user_name, "c");
    assert_eq!(rest[0].answers, json!({"label": "yes"}));
    let stats = store.stats(p, 3, 10).await.unwrap();
    assert_eq!(
        (
            stats.items,
            stats.items_complete,
            stats.items_in_progress,
            stats.items_untouched
        ),
        (2, 1, 0, 1)
    );
    assert_eq!(
        (stats.responses, stats.raters, stats.active_leases),
        (3, 3, 0)
    );
    let roster = store.roster(p, raters.to_vec()).await.unwrap();
    assert_eq!(roster.len(), 4, "the owner and the three raters");
    assert!(roster.iter().all(|a| a.skips == 0));
    let mut answered = 0;
    for rater in &roster {
        let record = store.rater_record(p, rater.user_id, 0).await.unwrap();
        answered += record.responses;
        let later = store
            .rater_record(p, rater.user_id, i64::MAX)
            .await
            .unwrap();
        assert_eq!(later.responses, 0);
    }
    assert_eq!(answered, 3);
}

pub async fn responses_by_item_come_a_page_of_items_at_a_time<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let raters = [user(&store, "a").await, user(&store, "b").await];
    let p = project(&store, owner, 2, LocalePolicy::Any).await;
    let other = project(&store, owner, 2, LocalePolicy::Any).await;
    store
        .import_items(
            p,
            batch![
                item("w", 0, None),
                item("x", 0, None),
                item("y", 0, None),
                item("z", 0, None)
            ],
            0,
        )
        .await
        .unwrap();
    store
        .import_items(other, batch![item("o", 0, None)], 0)
        .await
        .unwrap();
    // Each rater answers three of the four items; `z` stays unanswered.
    let mut now = 0;
    for _ in 0..3 {
        for &r in &raters {
            now += 1;
            let (lease, _) = store.next_lease(next(p, r, 2, now)).await.unwrap().unwrap();
            store.submit(submission(lease.id, r, 2, now)).await.unwrap();
        }
    }
    let (other_lease, _) = store
        .next_lease(next(other, raters[0], 2, now))
        .await
        .unwrap()
        .unwrap();
    store
        .submit(submission(other_lease.id, raters[0], 2, now))
        .await
        .unwrap();
    let ids = |rows: &[crate::ItemResponse]| {
        rows.iter()
            .map(|r| (r.external_id.clone().unwrap(), r.user_name.clone()))
            .collect::<Vec<_>>()
    };
    store
        .import_items(p, batch![gold_item("y")], 0)
        .await
        .unwrap();
    let page = store.responses_by_item(p, 0, 2).await.unwrap();
    assert!(page.gold.is_empty());
    let (first, last) = (page.rows, page.last_item);
    let pair = |e: &str| {
        [
            (e.to_string(), "a".to_string()),
            (e.to_string(), "b".to_string()),
        ]
    };
    assert_eq!(ids(&first), [pair("w"), pair("x")].concat());
    assert!(
        first
            .windows(2)
            .all(|w| (w[0].item_id, w[0].response_id) < (w[1].item_id, w[1].response_id))
    );
    let last = last.unwrap();
    assert_eq!(last, first[3].item_id);
    // The next page looks at `y` and `z`: only `y` has answers.
    let page = store.responses_by_item(p, last, 2).await.unwrap();
    let (second, last) = (page.rows, page.last_item);
    assert_eq!(page.gold, [(second[0].item_id, json!({"label": "yes"}))]);
    assert!(second.iter().all(|r| r.gold));
    assert_eq!(ids(&second), pair("y").to_vec());
    let last = last.unwrap();
    assert!(last > second[1].item_id, "the page went on to `z`");
    let end = store.responses_by_item(p, last, 2).await.unwrap();
    assert_eq!(end, ItemPage::default(), "no item of the project is left");
}
