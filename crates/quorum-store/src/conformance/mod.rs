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
    BattleSides, Generation, ItemBatch, ItemPage, LeaseState, LocalePolicy, Member, ModelSpec,
    NewProject, NewToken, NewUser, NextRequest, Pool, QualityPolicy, RaterChange, Review,
    StandardRun, Store, StoreError, Submission, SubmitOutcome, Verdict,
};

/// Generates one `#[tokio::test]` per conformance check for a backend.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            users_and_tokens, projects_and_members, import_creates_then_updates_by_external_id,
            next_follows_priority_overlap_and_never_repeats, expired_leases_free_their_slot,
            a_clock_that_jumps_never_over_serves_nor_loses_an_answer,
            submissions_are_idempotent_and_checked, skipped_items_are_not_offered_again,
            locale_routing, export_pages_and_stats, responses_by_item_come_a_page_of_items_at_a_time,
            concurrent_raters_never_overshoot,
            models_generations_and_battles, settled_items_take_no_more_answers,
            gold_pool_scores_and_rater_standing, reviews_replace_and_count,
            standard_runs_and_instance_settings,
            jobs_are_claimed_once_and_taken_over_when_their_runner_stops,
            concurrent_runners_never_share_a_job, answers_write_their_events_with_them,
            deliveries_are_claimed_once_retried_and_given_up,
            standing_reviews_completion_and_reports_write_their_events,
            answers_queue_for_the_tally_and_each_fold_applies_once);
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

pub(super) fn schema() -> Schema {
    Schema::parse(&json!({
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": ["yes", "no"], "required": true}]
    }))
    .expect("a valid schema")
}

pub(super) fn item(external_id: &str, priority: i32, locale: Option<&str>) -> Item {
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

pub(super) async fn user<S: Store>(store: &S, name: &str) -> i64 {
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

pub(super) async fn project<S: Store>(
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
                schema: schema(),
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

pub(super) fn next(project_id: i64, user_id: i64, overlap: i32, now: i64) -> NextRequest {
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

pub(super) fn submission(lease_id: i64, user_id: i64, overlap: i32, now: i64) -> Submission {
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

pub(super) fn gold_item(external_id: &str) -> Item {
    let mut item = item(external_id, 0, None);
    item.gold = Some(
        json!({"label": "yes"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    item
}

mod accounts;
mod evaluation;
mod jobs;
mod projects;
mod quality;
mod standards;
mod tallies;
mod webhooks;
mod work;

pub use accounts::*;
pub use evaluation::*;
pub use jobs::*;
pub use projects::*;
pub use quality::*;
pub use standards::*;
pub use tallies::*;
pub use webhooks::*;
pub use work::*;
