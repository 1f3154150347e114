//! An evaluation standard end to end: the public-service example run against two models and a
//! judge served by an OpenAI-compatible server on loopback, rated by simulated raters of two
//! locales through the ordinary rater loop; the signed report checked against the engine's
//! own computation, tampered with, and compared with a second instance's report.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

use quorum_app::evaluation::llm::RetryPolicy;
use quorum_app::standards::report::SignedReport;
use quorum_app::standards::run::RunOptions;
use quorum_app::standards::{self, Standard};
use quorum_app::{AddMember, App, Caller, SubmitAnswers, SystemClock};
use quorum_stats::arena::{self as engine};
use quorum_store::{Evaluation, ModelSpec, Standards};
use quorum_store_sqlite::SqliteStore;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/standards/public-service-assistant.toml")
}

/// "careful" answers well, "hasty" badly; the judge prefers the careful answer.
async fn provider() -> String {
    async fn completions(Json(body): Json<Value>) -> axum::response::Response {
        use axum::response::IntoResponse;
        let model = body["model"].as_str().unwrap_or_default();
        if model == "down-v1" {
            return (axum::http::StatusCode::BAD_GATEWAY, "down").into_response();
        }
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        // Requests name the provider's model id (`NAME-v1`).
        let content = match model {
            "judge-v1" => {
                let a = prompt.find("careful:").unwrap_or(usize::MAX);
                let b = prompt.find("hasty:").unwrap_or(usize::MAX);
                if a < b {
                    "A is better. [[A]]"
                } else {
                    "B is better. [[B]]"
                }
                .to_string()
            }
            other => format!(
                "{other}: an answer to {}",
                prompt.chars().take(20).collect::<String>()
            ),
        };
        Json(json!({"choices": [{"message": {"role": "assistant", "content": content}}]}))
            .into_response()
    }
    let router = axum::Router::new().route("/v1/chat/completions", post(completions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

/// A fresh instance with the three models registered, the standard run, and four raters (two
/// per locale) who prefer the careful answer on helpfulness except the en-GB raters on
/// the prompts in Arabic, and always find the Arabic-speaking raters' answers more fitting.
async fn instance(dir: &Path, standard: &Standard, base: &str) -> (App<SqliteStore>, Caller, i64) {
    let store = SqliteStore::open(dir.join("q.sqlite3").to_str().unwrap())
        .await
        .unwrap();
    let app = App::new(Arc::new(store), Arc::new(SystemClock))
        .with_egress(quorum_app::evaluation::llm::Egress::permissive());
    let (admin, _) = app
        .bootstrap_admin(Some("administrator".into()))
        .await
        .unwrap()
        .unwrap();
    let admin = Caller { user: admin };
    for name in ["careful", "hasty", "judge"] {
        app.register_model(
            &admin,
            ModelSpec {
                name: name.into(),
                base_url: Some(base.into()),
                model_id: Some(format!("{name}-v1")),
                api_key_env: None,
                parameters: json!({"temperature": 0}),
                created_at: 0,
            },
        )
        .await
        .unwrap();
    }
    let options = RunOptions {
        models: vec!["careful".into(), "hasty".into()],
        concurrency: 2,
        policy: RetryPolicy::default(),
    };
    let run = app
        .run_standard(&admin, standard, options, &|_| {})
        .await
        .unwrap();
    let project = run.battles_project_id;
    // The report refuses until the raters are there, and says what is missing.
    let missing = app.standard_missing(&admin, standard).await.unwrap();
    assert!(
        missing.iter().any(|m| m.contains("ar-QA: 0 of the 2")),
        "{missing:?}"
    );
    assert!(app.report_standard(&admin, standard).await.is_err());
    for (name, locale) in [
        ("qa1", "ar-QA"),
        ("qa2", "ar-QA"),
        ("gb1", "en-GB"),
        ("gb2", "en-GB"),
    ] {
        let user = app
            .create_user_unchecked(name, "password123", false)
            .await
            .unwrap();
        app.add_member(
            &admin,
            project,
            AddMember {
                user: name.into(),
                role: quorum_core::Role::Annotator,
                locales: vec![locale.into()],
                skills: vec![],
            },
        )
        .await
        .unwrap();
        let rater = Caller { user };
        while let Some(assignment) = app.next(&rater, project).await.unwrap() {
            let item = serde_json::to_value(&assignment.item).unwrap();
            let careful_is_a = item["fields"]["responses"][0]["content"]
                .as_str()
                .unwrap()
                .starts_with("careful");
            let arabic = item["fields"]["prompt"]
                .as_str()
                .unwrap()
                .chars()
                .any(|c| ('\u{600}'..='\u{6ff}').contains(&c));
            let prefers_careful = !(arabic && locale == "en-GB");
            let side = |careful: bool| if careful == careful_is_a { "a" } else { "b" };
            app.submit(
                &rater,
                assignment.lease.id,
                SubmitAnswers {
                    answers: json!({
                        "helpfulness": side(prefers_careful),
                        "cultural_appropriateness": side(locale == "ar-QA" || !arabic),
                        "harmful": "neither"
                    })
                    .as_object()
                    .unwrap()
                    .clone(),
                    time_spent_ms: 5000,
                },
                None,
            )
            .await
            .unwrap();
        }
    }
    (app, admin, project)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_runs_reports_verifies_and_compares_across_instances() {
    let standard = standards::load(&example()).unwrap();
    let base = provider().await;
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (app, admin, project) = instance(one.path(), &standard, &base).await;
    let missing = app.standard_missing(&admin, &standard).await.unwrap();
    let judges = app.judge_reports(&admin, project).await.unwrap();
    assert!(missing.is_empty(), "{missing:?} {judges:?}");
    let signed = app.report_standard(&admin, &standard).await.unwrap();
    signed.verify().unwrap();
    let report = &signed.report;
    assert_eq!(report.standard_hash, standard.hash);
    assert_eq!(report.items.len(), 6);
    assert!(
        report.items.iter().all(|i| i.item.is_some()),
        "a public standard shows its items"
    );
    assert_eq!(report.raters_by_locale.get("ar-QA"), Some(&2));
    assert_eq!(report.raters_by_locale.get("en-GB"), Some(&2));
    assert_eq!(report.human_ratings, 6 * 4);
    assert_eq!(report.models[0].model_id.as_deref(), Some("careful-v1"));
    assert_eq!(report.judges, vec!["judge".to_string()]);
    assert_eq!(report.judge_agreement[0].judged, 6);
    // Every battle's consensus on the label question, by the standard's method.
    assert_eq!(
        report.consensus["harmful"].get("neither"),
        Some(&6),
        "{:?}",
        report.consensus
    );

    // The board is the engine's: the same votes through quorum-stats directly.
    let mut battles = Vec::new();
    let names = ["careful", "hasty"];
    for vote in app.store().battle_votes(project, 0, 1000).await.unwrap() {
        let a = names.iter().position(|n| *n == vote.model_a).unwrap() as u32;
        let b = names.iter().position(|n| *n == vote.model_b).unwrap() as u32;
        let winner = match vote.answers["helpfulness"].as_str().unwrap() {
            "a" => engine::Winner::A,
            "b" => engine::Winner::B,
            _ => engine::Winner::Tie,
        };
        battles.push(engine::Battle { a, b, winner });
    }
    let options = engine::ArenaOptions {
        rounds: standard.spec.scoring.bootstrap,
        seed: standard.spec.scoring.seed,
        ..engine::ArenaOptions::default()
    };
    let direct = engine::leaderboard(2, &battles, &options).unwrap();
    for row in &report.leaderboard.boards[0].models {
        let index = names.iter().position(|n| *n == row.model).unwrap();
        assert!(
            (row.rating - direct.ratings[index]).abs() < 1e-6,
            "{row:?} vs {:?}",
            direct.ratings
        );
        let lower = row.lower.unwrap();
        assert!(
            (lower - direct.lower[index]).abs() < 1e-6,
            "{row:?} vs {:?}",
            direct.lower
        );
    }
    // Sliced by rater locale: the en-GB raters split on Arabic prompts.
    assert!(report.slices["rater_locale"].boards.len() >= 2);

    // Tampering is caught: a rating, an item hash, the standard's hash.
    let mut tampered = signed.clone();
    tampered.report.leaderboard.boards[0].models[0].rating = 9999.0;
    assert!(tampered.verify().unwrap_err()[0].contains("signature"));
    let mut tampered = signed.clone();
    tampered.report.items[0].hash = "sha256:00".into();
    assert!(tampered.verify().unwrap_err().len() >= 2);
    let text = serde_json::to_string(&signed).unwrap();
    let reread: SignedReport = serde_json::from_str(&text).unwrap();
    // Written out and read back (floats round-trip exactly), it still verifies.
    reread.verify().unwrap();

    // A second instance, same standard, same recorded answers: the boards compare equal.
    let (app_two, admin_two, _) = instance(two.path(), &standard, &base).await;
    let other = app_two
        .report_standard(&admin_two, &standard)
        .await
        .unwrap();
    assert_ne!(
        other.signature.public_key, signed.signature.public_key,
        "each instance has its key"
    );
    let comparison = signed.compare(&other).unwrap();
    assert!(comparison.equal, "{comparison:?}");
    assert!(
        comparison
            .models
            .iter()
            .all(|m| m.within_intervals && m.difference == Some(0.0))
    );
    // The operator's own key (rotated in from a file or a secret store) signs in place of the
    // stored one; reports signed before still verify, each by the key it names.
    let seed = [7u8; 32];
    let rotated = app_two.clone().with_signing_key(seed);
    let resigned = rotated
        .report_standard(&admin_two, &standard)
        .await
        .unwrap();
    resigned.verify().unwrap();
    assert_eq!(
        resigned.signature.public_key,
        hex_of(
            &ed25519_dalek::SigningKey::from_bytes(&seed)
                .verifying_key()
                .to_bytes()
        )
    );
    other.verify().unwrap();
    // Reports of different standards are refused.
    let mut different = other.clone();
    different.report.standard_hash = "sha256:other".into();
    assert!(signed.compare(&different).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_out_standard_never_exports_its_items() {
    let file = example().with_file_name("health-information.toml");
    let standard = standards::load(&file).unwrap();
    let base = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.sqlite3").to_str().unwrap())
        .await
        .unwrap();
    let app = App::new(Arc::new(store), Arc::new(SystemClock))
        .with_egress(quorum_app::evaluation::llm::Egress::permissive());
    let (admin, _) = app.bootstrap_admin(None).await.unwrap().unwrap();
    let admin = Caller { user: admin };
    for name in ["careful", "hasty", "judge", "down"] {
        let model = ModelSpec {
            name: name.into(),
            base_url: Some(base.clone()),
            model_id: Some(format!("{name}-v1")),
            api_key_env: None,
            parameters: json!({}),
            created_at: 0,
        };
        app.register_model(&admin, model).await.unwrap();
    }
    // A model that never answers: the run stops before building battles and says why.
    let failing = RunOptions {
        models: vec!["careful".into(), "down".into()],
        concurrency: 2,
        policy: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
    };
    let refused = app
        .run_standard(&admin, &standard, failing, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("down answered 0 of 3"), "{refused}");
    assert!(
        app.store()
            .standard_runs(&standard.hash)
            .await
            .unwrap()
            .is_empty()
    );
    let options = RunOptions {
        models: vec!["careful".into(), "hasty".into()],
        concurrency: 2,
        policy: RetryPolicy::default(),
    };
    let run = app
        .run_standard(&admin, &standard, options, &|_| {})
        .await
        .unwrap();
    assert!(run.private);
    for project in [run.prompts_project_id, run.battles_project_id] {
        let refused = app
            .dpo_pairs(&admin, project)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("held out"), "{refused}");
    }
    let refused = app.sft_conversations(&admin, run.battles_project_id).await;
    assert!(refused.is_err());
    // Its raters must qualify first, under the standard's skill.
    let project = app.project(&admin, run.battles_project_id).await.unwrap().0;
    let qualification = project.quality.qualification.unwrap();
    assert_eq!(
        qualification.skill.as_deref(),
        Some("standard health-information")
    );
    assert_eq!(qualification.gold_items, 5);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A private standard's signed report names its items by hash alone: no prompt text in it,
/// yet it verifies and its item hashes are the standard's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_standards_report_carries_only_item_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example()).unwrap();
    assert!(text.contains("policy = \"public\""));
    let private = dir.path().join("private.toml");
    std::fs::write(
        &private,
        text.replace("policy = \"public\"", "policy = \"private\""),
    )
    .unwrap();
    std::fs::copy(
        example().with_extension("jsonl"),
        dir.path().join("public-service-assistant.jsonl"),
    )
    .unwrap();
    let standard = standards::load(&private).unwrap();
    let base = provider().await;
    let (app, admin, _) = instance(dir.path(), &standard, &base).await;
    let signed = app.report_standard(&admin, &standard).await.unwrap();
    signed.verify().unwrap();
    let report = &signed.report;
    assert_eq!(report.items.len(), standard.items.len());
    assert!(report.items.iter().all(|i| i.item.is_none()));
    let listed: Vec<(&str, &str)> = report
        .items
        .iter()
        .map(|i| (i.id.as_str(), i.hash.as_str()))
        .collect();
    let expected: Vec<(&str, &str)> = report
        .spec
        .items
        .iter()
        .map(|(id, hash)| (id.as_str(), hash.as_str()))
        .collect();
    assert_eq!(listed, expected);
    let json = serde_json::to_string(&signed).unwrap();
    for item in &standard.items {
        // The prompt as it would appear inside a JSON string.
        let encoded = serde_json::to_string(&item.prompt).unwrap();
        assert!(
            !json.contains(encoded.trim_matches('"')),
            "{} leaked",
            item.id
        );
    }
}
