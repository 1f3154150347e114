//! The quality loop and standards in a real headless Chromium: a fast rater paused, reinstated
//! and reviewed; a standard run, reported and its report opened (helpers in `browser`).

use crate::browser::*;
use crate::serve::{call, serve};
use fantoccini::Locator;
use fantoccini::key::Key;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The quality loop in the browser: a manager saves rules through the dashboard form; a rater
/// who answers too fast is paused and the workspace says why; the manager reinstates them from
/// the dashboard and the audit log shows both; a reviewer rejects a response on the review page
/// and it leaves the consensus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_rater_is_paused_reinstated_and_reviewed() {
    let Some(driver) = driver() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        &format!("sqlite://{}/q.sqlite3", dir.path().display()),
        "manager-password",
    );
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let token = server.token.clone().unwrap();
    let texts: Vec<String> = (0..14).map(|i| format!("text {i}")).collect();
    let (project, ids) = label_project(
        &server,
        "Checked",
        &["positive", "negative"],
        2,
        &texts,
        &["ann", "bob"],
    )
    .await;
    let bob_id = ids[1];

    // The manager sets a minimum median time of a minute and a review of disagreements.
    let manager = browser(&driver, 1280, 900).await;
    sign_in(&manager, &base, "admin", "manager-password").await;
    let dashboard = format!("{base}/projects/{project}");
    manager.goto(&dashboard).await.unwrap();
    manager
        .find(Locator::Css("input[name=p_seconds]"))
        .await
        .unwrap()
        .send_keys("60")
        .await
        .unwrap();
    manager
        .find(Locator::Css("input[name=r_disagreement]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    manager
        .find(Locator::Css("#quality button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&manager, "#quality-result", "Saved").await;
    let (_, body) = call(
        &client,
        &token,
        Method::GET,
        format!("{base}/api/v1/projects/{project}"),
        None,
    )
    .await;
    assert_eq!(
        body["project"]["quality"]["pause"]["min_median_ms"], 60000,
        "{body}"
    );
    assert_eq!(body["project"]["quality"]["review"]["disagreement"], true);

    // Ann answers "positive" as fast as she can: after ten answers she is paused and told why.
    let ann = browser(&driver, 1280, 720).await;
    sign_in(&ann, &base, "ann", "rater-password").await;
    ann.goto(&format!("{base}/projects/{project}/work"))
        .await
        .unwrap();
    let mut last = String::new();
    for _ in 0..10 {
        last = next_item(&ann, &last).await;
        press(&ann, &['1', Key::Enter.into()]).await;
    }
    let told = wait_for_text(&ann, "#item", "No more items").await;
    assert!(told.contains("median time"), "{told}");
    screenshot(&ann, "workspace-paused").await;

    // Bob answers "negative" over the API, so every item Ann answered is disputed.
    let (_, body) = call(
        &client,
        &token,
        Method::POST,
        format!("{base}/api/v1/users/{bob_id}/tokens"),
        None,
    )
    .await;
    let bob = body["token"].as_str().unwrap().to_string();
    loop {
        let (status, body) = call(
            &client,
            &bob,
            Method::POST,
            format!("{base}/api/v1/projects/{project}/next"),
            None,
        )
        .await;
        if status != StatusCode::OK {
            break;
        }
        let lease = body["lease"]["id"].as_i64().unwrap();
        call(
            &client,
            &bob,
            Method::POST,
            format!("{base}/api/v1/leases/{lease}/response"),
            Some(json!({"answers": {"label": "negative"}, "time_spent_ms": 90000})),
        )
        .await;
    }

    // The manager sees the pause, reinstates Ann, and the log shows both changes.
    manager.goto(&dashboard).await.unwrap();
    wait_for_text(&manager, "table.raters", "paused: median time").await;
    manager
        .find(Locator::Css("button.standing[data-action=reinstate]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let log = wait_for_text(&manager, "body", "reinstated by a manager").await;
    assert!(log.contains("Audit log") && log.contains("paused"), "{log}");
    screenshot(&manager, "dashboard-quality").await;

    // The manager reviews the first disputed item: Ann's answer is rejected.
    manager
        .goto(&format!("{base}/projects/{project}/review"))
        .await
        .unwrap();
    wait_for_text(&manager, "#review-status", "disagreement").await;
    let rows = manager
        .find_all(Locator::Css("#review-item tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let item_before = wait_for_text(&manager, "#review-status", "Item").await;
    for row in rows {
        if row.text().await.unwrap().starts_with("ann") {
            row.find(Locator::Css("input[value=reject]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
    }
    screenshot(&manager, "review").await;
    manager
        .find(Locator::Css("#review-item button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The next disputed item comes up; the first one's consensus is Bob's alone.
    let mut moved_on = false;
    for _ in 0..200 {
        let now = manager
            .find(Locator::Css("#review-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if now != item_before {
            moved_on = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        moved_on,
        "the review queue never moved past `{item_before}`"
    );
    let (_, body) = call(
        &client,
        &token,
        Method::GET,
        format!("{base}/api/v1/projects/{project}/consensus"),
        None,
    )
    .await;
    // Items t0–t9 had both answers; the reviewed one (t0, the oldest) keeps Bob's alone.
    let counts: Vec<(&str, i64)> = body["consensus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["external_id"].as_str().unwrap(),
                c["responses"].as_i64().unwrap(),
            )
        })
        .filter(|(id, _)| id.len() == 2)
        .collect();
    assert_eq!(counts[0], ("t0", 1), "{body}");
    assert!(counts[1..].iter().all(|(_, n)| *n == 2), "{body}");
    for c in [ann, manager] {
        c.close().await.unwrap();
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
}

/// `quorum standard`: the public-service example is run against two models on a loopback
/// provider and rated by raters of both locales; `report` refuses until then, naming what is
/// missing; the signed report verifies, fails once tampered with, compares equal with itself,
/// and its HTML twin opens in Chromium (screenshot `standard-report`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_is_run_reported_verified_and_its_report_opens_in_chromium() {
    use quorum_app::{AddMember, App, Caller, SubmitAnswers, SystemClock};
    use quorum_store::{Accounts, ModelSpec, Store};

    async fn completions(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
        let model = body["model"].as_str().unwrap_or_default();
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let content = if model == "judge" {
            if prompt.find("careful") < prompt.find("hasty") {
                "[[A]]"
            } else {
                "[[B]]"
            }
            .to_string()
        } else {
            format!("{model}: an answer")
        };
        axum::Json(json!({"choices": [{"message": {"role": "assistant", "content": content}}]}))
    }
    let router =
        axum::Router::new().route("/v1/chat/completions", axum::routing::post(completions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/standards/public-service-assistant.toml");
    let quorum = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quorum"))
            .args(args)
            // The models answer on loopback, with the operator's leave.
            .env("QUORUM_ALLOW_PRIVATE_MODEL_HOSTS", "true")
            .output()
            .unwrap()
    };
    let standard = quorum_app::standards::load(&file).unwrap();
    {
        let store = quorum_store_sqlite::SqliteStore::open(&database)
            .await
            .unwrap();
        let app = App::new(std::sync::Arc::new(store), std::sync::Arc::new(SystemClock))
            .with_egress(quorum_app::evaluation::llm::Egress::permissive());
        let (admin, _) = app.bootstrap_admin(None).await.unwrap().unwrap();
        let admin = Caller { user: admin };
        for name in ["careful", "hasty", "judge"] {
            let model = ModelSpec {
                name: name.into(),
                base_url: Some(provider.clone()),
                model_id: None,
                api_key_env: None,
                parameters: json!({"temperature": 0}),
                created_at: 0,
            };
            app.register_model(&admin, model).await.unwrap();
        }
        app.store().close().await;
    }
    let ran = quorum(&[
        "standard",
        "run",
        file.to_str().unwrap(),
        "--database",
        &database,
        "--models",
        "careful,hasty",
    ]);
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(said.contains(&standard.hash), "{said}");
    let project: i64 = said
        .split("battles in project ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let out = dir.path().join("report");
    let out_arg = out.to_str().unwrap();
    let refused = quorum(&[
        "standard",
        "report",
        file.to_str().unwrap(),
        "--database",
        &database,
        "--out",
        out_arg,
    ]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("requirements are not met") && said.contains("ar-QA: 0 of the 2"),
        "{said}"
    );

    {
        let store = quorum_store_sqlite::SqliteStore::open(&database)
            .await
            .unwrap();
        let app = App::new(std::sync::Arc::new(store), std::sync::Arc::new(SystemClock))
            .with_egress(quorum_app::evaluation::llm::Egress::permissive());
        let admin = Caller {
            user: app.store().user_by_name("admin").await.unwrap().unwrap(),
        };
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
            let member = AddMember {
                user: name.into(),
                role: quorum_core::Role::Annotator,
                locales: vec![locale.into()],
                skills: vec![],
            };
            app.add_member(&admin, project, member).await.unwrap();
            let rater = Caller { user };
            let mut n = 0;
            while let Some(assignment) = app.next(&rater, project).await.unwrap() {
                let item = serde_json::to_value(&assignment.item).unwrap();
                let first = item["fields"]["responses"][0]["content"].as_str().unwrap();
                let careful = if first.starts_with("careful") {
                    "a"
                } else {
                    "b"
                };
                let other = if careful == "a" { "b" } else { "a" };
                n += 1;
                // Most raters prefer the careful answer; gb2 sometimes does not.
                let helpful = if name == "gb2" && n % 3 == 0 {
                    other
                } else {
                    careful
                };
                let answers = json!({"helpfulness": helpful, "cultural_appropriateness": careful, "harmful": "neither"});
                let body = SubmitAnswers {
                    answers: answers.as_object().unwrap().clone(),
                    time_spent_ms: 4000,
                };
                app.submit(&rater, assignment.lease.id, body, None)
                    .await
                    .unwrap();
            }
        }
        app.store().close().await;
    }
    let made = quorum(&[
        "standard",
        "report",
        file.to_str().unwrap(),
        "--database",
        &database,
        "--out",
        out_arg,
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let report = out.join("report.json");
    let verified = quorum(&[
        "standard",
        "verify",
        report.to_str().unwrap(),
        "--standard",
        file.to_str().unwrap(),
    ]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let compared = quorum(&[
        "standard",
        "compare",
        report.to_str().unwrap(),
        report.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&compared.stdout).contains("the boards are equal"));
    // One number changed by hand: the signature no longer matches.
    let text = std::fs::read_to_string(&report).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    json["report"]["human_ratings"] = json!(999);
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_string(&json).unwrap()).unwrap();
    let rejected = quorum(&["standard", "verify", tampered.to_str().unwrap()]);
    assert!(!rejected.status.success());
    assert!(String::from_utf8_lossy(&rejected.stderr).contains("signature"));
    // Backed up and restored, the instance signs the same report with the same key.
    let backup = dir.path().join("backup.sqlite3");
    let saved = quorum(&[
        "backup",
        "--database",
        &database,
        "--output",
        backup.to_str().unwrap(),
    ]);
    assert!(saved.status.success(), "{saved:?}");
    let restored = format!("sqlite://{}/restored.sqlite3", dir.path().display());
    let back = quorum(&[
        "restore",
        "--input",
        backup.to_str().unwrap(),
        "--database",
        &restored,
    ]);
    let said = String::from_utf8_lossy(&back.stdout);
    assert!(back.status.success(), "{said}");
    let key = json["signature"]["public_key"].as_str().unwrap();
    assert!(
        said.contains(&format!(
            "the report of `{}` verifies, signed by {key}",
            standard.spec.standard.name
        )),
        "{said}"
    );

    let Some(driver) = driver() else { return };
    let client = browser(&driver, 1280, 1000).await;
    client
        .goto(&format!("file://{}", out.join("report.html").display()))
        .await
        .unwrap();
    let hash = client
        .wait()
        .for_element(Locator::Css("#standard-hash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(hash, standard.hash);
    let boards = client
        .find_all(Locator::Css("figure.board svg"))
        .await
        .unwrap();
    assert!(boards.len() >= 2, "the overall board and per-slice boards");
    screenshot(&client, "standard-report").await;
    client.close().await.unwrap();
}
