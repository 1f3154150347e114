//! The one behaviour suite every backend must pass. A backend's tests call
//! [`conformance_tests!`](crate::conformance_tests) with an async constructor that returns a
//! fresh, empty store for each test.

#![expect(
    clippy::unwrap_used,
    reason = "a test suite: a failed step should fail the test loudly"
)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use quorum_core::Role;
use quorum_core::item::{Item, ItemInput};
use quorum_core::schema::Schema;
use serde_json::json;

use crate::{
    BattleSides, Generation, ItemBatch, LeaseState, LocalePolicy, Member, ModelSpec, NewProject,
    NewToken, NewUser, NextRequest, Pool, QualityPolicy, RaterChange, Review, StandardRun, Store,
    StoreError, Submission, SubmitOutcome, Verdict,
};

/// Generates one `#[tokio::test]` per conformance check for a backend.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            users_and_tokens, projects_and_members, import_creates_then_updates_by_external_id,
            next_follows_priority_overlap_and_never_repeats, expired_leases_free_their_slot,
            submissions_are_idempotent_and_checked, skipped_items_are_not_offered_again,
            locale_routing, export_pages_and_stats, concurrent_raters_never_overshoot,
            models_generations_and_battles, settled_items_take_no_more_answers,
            gold_pool_scores_and_rater_standing, reviews_replace_and_count,
            standard_runs_and_instance_settings);
    };
    (@each $make:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::conformance::$name($make().await).await;
            }
        )*
    };
}

const MINUTE: i64 = 60_000;

macro_rules! batch {
    ($($item:expr),* $(,)?) => {
        [$($item),*].into_iter().collect::<ItemBatch>()
    };
}

fn schema() -> Schema {
    Schema::parse(&json!({
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": ["yes", "no"], "required": true}]
    }))
    .expect("a valid schema")
}

fn item(external_id: &str, priority: i32, locale: Option<&str>) -> Item {
    let mut metadata = serde_json::Map::new();
    if let Some(locale) = locale {
        metadata.insert("locale".into(), json!(locale));
    }
    let input = ItemInput {
        external_id: Some(external_id.to_string()),
        fields: json!({"text": format!("item {external_id}")})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        metadata,
        priority,
        ..ItemInput::default()
    };
    Item::validate(input, &schema()).expect("a valid item")
}

async fn user<S: Store>(store: &S, name: &str) -> i64 {
    store
        .create_user(NewUser {
            name: name.to_string(),
            password_hash: "x".into(),
            is_admin: false,
            created_at: 0,
        })
        .await
        .expect("user created")
        .id
}

async fn project<S: Store>(
    store: &S,
    owner: i64,
    overlap: i32,
    locale_policy: LocalePolicy,
) -> i64 {
    store
        .create_project(
            NewProject {
                name: "p".into(),
                instructions: String::new(),
                schema: serde_json::to_value(schema()).unwrap_or_default(),
                overlap,
                lease_seconds: 60,
                locale_policy,
                min_overlap: None,
                target_confidence: None,
                quality: QualityPolicy::default(),
                created_by: owner,
            },
            0,
        )
        .await
        .expect("project created")
        .id
}

fn next(project_id: i64, user_id: i64, overlap: i32, now: i64) -> NextRequest {
    NextRequest {
        project_id,
        user_id,
        overlap,
        lease_seconds: 60,
        locales: None,
        pool: Pool::Any,
        now,
    }
}

fn submission(lease_id: i64, user_id: i64, overlap: i32, now: i64) -> Submission {
    Submission {
        lease_id,
        user_id,
        overlap,
        answers: json!({"label": "yes"}),
        time_spent_ms: 1200,
        idempotency_key: None,
        gold_pool: false,
        gold_correct: None,
        now,
    }
}

fn gold_item(external_id: &str) -> Item {
    let mut item = item(external_id, 0, None);
    item.gold = Some(
        json!({"label": "yes"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    item
}

pub async fn users_and_tokens<S: Store>(store: S) {
    let id = user(&store, "ada").await;
    let duplicate = store
        .create_user(NewUser {
            name: "ada".into(),
            password_hash: "y".into(),
            is_admin: false,
            created_at: 0,
        })
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(store.user_by_name("ada").await.unwrap().unwrap().id, id);
    assert!(store.user_by_name("bob").await.unwrap().is_none());
    let token = |name: &str, hash: &str, expires_at: Option<i64>| NewToken {
        user_id: id,
        name: name.into(),
        hash: hash.into(),
        created_at: 5,
        expires_at,
    };
    let cli = store
        .create_token(token("cli", "hash-1", None))
        .await
        .unwrap();
    let (owner, found) = store
        .user_by_token_hash("hash-1", 6)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (owner.name.as_str(), found.id, found.expires_at),
        ("ada", cli, None)
    );
    assert!(
        store
            .user_by_token_hash("hash-2", 6)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    store.delete_token("hash-1").await.unwrap();
    assert!(
        store
            .user_by_token_hash("hash-1", 6)
            .await
            .unwrap()
            .is_none(),
        "revoked"
    );
    store.delete_token("hash-1").await.unwrap();

    // Expiry, sliding by touch.
    let session = store
        .create_token(token("web session", "hash-3", Some(100)))
        .await
        .unwrap();
    assert!(
        store
            .user_by_token_hash("hash-3", 99)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .user_by_token_hash("hash-3", 100)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    store.touch_token(session, 99, Some(200)).await.unwrap();
    let (_, touched) = store
        .user_by_token_hash("hash-3", 150)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (touched.last_used_at, touched.expires_at),
        (Some(99), Some(200))
    );

    // Listing and revoking one token, only the owner's.
    let api = store
        .create_token(token("api", "hash-4", None))
        .await
        .unwrap();
    let listed: Vec<(i64, String)> = store
        .tokens(id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    assert_eq!(
        listed,
        vec![(session, "web session".into()), (api, "api".into())]
    );
    let other = user(&store, "eve").await;
    assert!(!store.revoke_token(other, api).await.unwrap());
    assert!(store.revoke_token(id, api).await.unwrap());
    assert!(
        store
            .user_by_token_hash("hash-4", 6)
            .await
            .unwrap()
            .is_none()
    );
    // Revoking by name leaves the others.
    store
        .create_token(token("api", "hash-5", None))
        .await
        .unwrap();
    assert_eq!(
        store.revoke_tokens(id, Some("web session")).await.unwrap(),
        1
    );
    assert!(
        store
            .user_by_token_hash("hash-5", 6)
            .await
            .unwrap()
            .is_some()
    );

    // Disabling ends every token at once and keeps the account from signing in.
    store
        .create_token(token("web session", "hash-6", None))
        .await
        .unwrap();
    assert!(store.set_user_disabled(id, Some(7)).await.unwrap());
    assert_eq!(
        store
            .user_by_name("ada")
            .await
            .unwrap()
            .unwrap()
            .disabled_at,
        Some(7)
    );
    assert!(store.tokens(id).await.unwrap().is_empty());
    assert!(
        store
            .user_by_token_hash("hash-5", 8)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.set_user_disabled(id, None).await.unwrap());
    assert_eq!(
        store.user_by_id(id).await.unwrap().unwrap().disabled_at,
        None
    );
    assert!(!store.set_user_disabled(id + 1000, Some(9)).await.unwrap());
    // A token of a disabled user is refused even if it was made after the disabling.
    assert!(store.set_user_disabled(other, Some(9)).await.unwrap());
    store
        .create_token(NewToken {
            user_id: other,
            ..token("api", "hash-7", None)
        })
        .await
        .unwrap();
    assert!(
        store
            .user_by_token_hash("hash-7", 10)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.set_password(id, "new-hash").await.unwrap());
    assert_eq!(
        store.user_by_id(id).await.unwrap().unwrap().password_hash,
        "new-hash"
    );
}

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
    let activity = store.rater_activity(lease.project_id, 0).await.unwrap();
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
    let activity = store.rater_activity(p, 0).await.unwrap();
    assert_eq!(activity.iter().map(|a| a.responses).sum::<i64>(), 3);
    assert!(activity.iter().all(|a| a.skips == 0));
    let later = store.rater_activity(p, i64::MAX).await.unwrap();
    assert!(later.iter().all(|a| a.responses_since == 0));
    assert!(
        activity
            .iter()
            .filter(|a| a.responses > 0)
            .all(|a| a.last_active.is_some())
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

/// Models are registered and updated by name; a generation is replaced by a later attempt;
/// battles record which model is behind each side, and their responses come back with the
/// rater's locales; a battle import that fails writes nothing.
pub async fn models_generations_and_battles<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let rater = user(&store, "rater").await;
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    let model = |name: &str, temperature: f64| ModelSpec {
        name: name.into(),
        base_url: Some("http://127.0.0.1:9/v1".into()),
        model_id: None,
        api_key_env: Some("KEY".into()),
        parameters: json!({"temperature": temperature}),
        created_at: 5,
    };
    store.upsert_model(model("m1", 0.0)).await.unwrap();
    store.upsert_model(model("m0", 0.0)).await.unwrap();
    store.upsert_model(model("m1", 0.7)).await.unwrap();
    let models = store.models().await.unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[1].parameters, json!({"temperature": 0.7}));

    store
        .import_items(p, batch![item("prompt", 0, None)], 0)
        .await
        .unwrap();
    let prompt = store
        .next_lease(next(p, owner, 1, 0))
        .await
        .unwrap()
        .unwrap()
        .1
        .id;
    let generation = |output: Option<&str>, attempts| Generation {
        project_id: p,
        item_id: prompt,
        model: "m1".into(),
        output: output.map(str::to_string),
        error: output.is_none().then(|| "HTTP 500".to_string()),
        latency_ms: 40,
        prompt_tokens: Some(3),
        completion_tokens: Some(7),
        attempts,
        created_at: 9,
    };
    store
        .put_generations(vec![generation(None, 3)])
        .await
        .unwrap();
    store
        .put_generations(vec![generation(Some("hello"), 1)])
        .await
        .unwrap();
    let generations = store.generations(p).await.unwrap();
    assert_eq!(generations, vec![generation(Some("hello"), 1)]);
    let listed = store.items(p, 0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, prompt);
    assert!(store.items(p, prompt, 10).await.unwrap().is_empty());

    let sides = |a: &str, b: &str| BattleSides {
        model_a: a.into(),
        model_b: b.into(),
        prompt_item_id: Some(prompt),
    };
    let q = project(&store, owner, 1, LocalePolicy::Any).await;
    // A battle without an external id refuses the whole import.
    let mut unnamed = item("x", 0, None);
    unnamed.external_id = None;
    let refused = store
        .import_battles(
            q,
            batch![item("b1", 0, None), unnamed],
            vec![sides("m0", "m1"), sides("m1", "m0")],
            1,
        )
        .await;
    assert!(refused.is_err());
    assert!(
        store
            .next_lease(next(q, rater, 1, 1))
            .await
            .unwrap()
            .is_none(),
        "nothing was written"
    );

    let report = store
        .import_battles(
            q,
            batch![item("b1", 0, Some("ar-QA"))],
            vec![sides("m0", "m1")],
            1,
        )
        .await
        .unwrap();
    assert_eq!(report.created, 1);
    store
        .upsert_member(Member {
            project_id: q,
            user_id: rater,
            role: Role::Annotator,
            locales: vec!["ar-QA".into(), "en".into()],
            skills: vec![],
        })
        .await
        .unwrap();
    let (lease, _) = store
        .next_lease(next(q, rater, 1, 2))
        .await
        .unwrap()
        .unwrap();
    let mut answer = submission(lease.id, rater, 1, 3);
    answer.answers = json!({"preference": "b"});
    store.submit(answer).await.unwrap();
    let votes = store.battle_votes(q, 0, 10).await.unwrap();
    assert_eq!(votes.len(), 1);
    let vote = &votes[0];
    assert_eq!((vote.model_a.as_str(), vote.model_b.as_str()), ("m0", "m1"));
    assert_eq!(vote.answers, json!({"preference": "b"}));
    assert_eq!(
        vote.rater_locales,
        vec!["ar-QA".to_string(), "en".to_string()]
    );
    assert_eq!(vote.item_locale.as_deref(), Some("ar-QA"));
    assert_eq!(vote.user_name, "rater");
    assert!(
        store
            .battle_votes(q, vote.response_id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Responses to ordinary items are not battle votes.
    assert!(store.battle_votes(p, 0, 10).await.unwrap().is_empty());
}

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
    store.settle_item(got.id).await.unwrap();
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

/// Standard runs are found by hash; an instance setting keeps its first value.
pub async fn standard_runs_and_instance_settings<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (p, b) = (
        project(&store, owner, 1, LocalePolicy::Any).await,
        project(&store, owner, 1, LocalePolicy::Any).await,
    );
    let run = StandardRun {
        hash: "sha256:abc".into(),
        prompts_project_id: p,
        battles_project_id: b,
        models: vec!["m1".into(), "m2".into()],
        private: true,
        standard: json!({"spec": {"name": "s"}, "items": []}),
        created_at: 5,
    };
    store.put_standard_run(run.clone()).await.unwrap();
    assert_eq!(
        store.standard_runs("sha256:abc").await.unwrap(),
        vec![run.clone()]
    );
    assert_eq!(store.standard_run_of(b).await.unwrap(), Some(run.clone()));
    assert_eq!(store.standard_run_of(p).await.unwrap(), Some(run));
    assert_eq!(store.standard_run_of(b + 100).await.unwrap(), None);
    let later = StandardRun {
        hash: "sha256:def".into(),
        created_at: 6,
        ..store.standard_run_of(p).await.unwrap().unwrap()
    };
    store.put_standard_run(later).await.unwrap();
    let hashes: Vec<String> = store
        .all_standard_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.hash)
        .collect();
    assert_eq!(hashes, vec!["sha256:def", "sha256:abc"]);
    assert!(store.standard_runs("sha256:xyz").await.unwrap().is_empty());
    let first = store.instance_setting("key", "one".into()).await.unwrap();
    assert_eq!(first, "one");
    let again = store.instance_setting("key", "two".into()).await.unwrap();
    assert_eq!(again, "one");
}
