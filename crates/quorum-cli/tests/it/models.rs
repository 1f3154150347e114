//! Models from the command line: registering and running them against a provider on
//! loopback, and preference pairs through DPO import and export.

use std::process::Command;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::serve::{call, serve, setup};

/// `quorum models add`, `quorum models list` and `quorum run` against a provider on loopback;
/// a second run calls nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_registers_models_and_runs_them_resumably() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let server = serve(&database, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let (project, _) = setup(&client, &server.base, &database, &admin, 4, 0, 1).await;
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|axum::Json(body): axum::Json<Value>| async move {
            let prompt = body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            axum::Json(json!({"choices": [{"message": {"content": format!("re: {prompt}")}}]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let quorum = |args: Vec<String>| {
        let database = database.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_quorum"))
                    .args(&args)
                    .args(["--database", &database])
                    // The operator allows a model on loopback with its key in HOME.
                    .env("QUORUM_MODEL_KEYS_ALLOW", "HOME")
                    .env("QUORUM_ALLOW_PRIVATE_MODEL_HOSTS", "true")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Without the operator's leave, neither the variable nor the loopback endpoint is taken.
    for (variable, url) in [
        ("HOME", "https://api.example.org/v1"),
        ("QUORUM_KEY_ECHO", provider.as_str()),
    ] {
        let refused = Command::new(env!("CARGO_BIN_EXE_quorum"))
            .args([
                "models",
                "add",
                "echo",
                "--base-url",
                url,
                "--api-key-env",
                variable,
            ])
            .args(["--database", &database])
            .env_remove("QUORUM_MODEL_KEYS_ALLOW")
            .env_remove("QUORUM_ALLOW_PRIVATE_MODEL_HOSTS")
            .output()
            .unwrap();
        assert!(!refused.status.success(), "{variable} {url}: {refused:?}");
    }
    let output = quorum(args(&[
        "models",
        "add",
        "echo",
        "--base-url",
        &provider,
        "--api-key-env",
        "HOME",
        "--param",
        "temperature=0.2",
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    let output = quorum(args(&["models", "list"])).await;
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(
        listed.contains("echo") && listed.contains("\"temperature\":0.2"),
        "{listed}"
    );
    let project_arg = project.to_string();
    let output = quorum(args(&[
        "run",
        "--project",
        &project_arg,
        "--models",
        "echo",
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("echo: 4/4 answered, 0 failed, 4 calls this run"),
        "{stderr}"
    );
    let output = quorum(args(&[
        "run",
        "--project",
        &project_arg,
        "--models",
        "echo",
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("echo: 4/4 answered, 0 failed, 0 calls this run"),
        "{stderr}"
    );
    let output = quorum(args(&[
        "run",
        "--project",
        &project_arg,
        "--models",
        "ghost",
    ]))
    .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no model named `ghost`"));
}

/// The real preference pairs of `hh_rlhf_harmless_base_test` go in with `quorum import
/// --format dpo` and come out of `quorum export --format dpo` unchanged (id, prompt, chosen,
/// rejected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hh_rlhf_pairs_round_trip_through_dpo_import_and_export() {
    let Some(root) = crate::support::datasets() else {
        return;
    };
    let pairs = root.join("hh_rlhf_harmless_base_test/pairs.jsonl");
    if !pairs.is_file() {
        crate::support::skip(&format!("{} not found", pairs.display()));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let server = serve(&database, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let schema = json!({
        "fields": [{"name": "prompt", "kind": "text"}, {"name": "responses", "kind": "responses"}],
        "questions": [{"name": "preference", "kind": "pairwise", "allow_both_bad": true, "required": true}]
    });
    let (status, body) = call(
        &client,
        &admin,
        reqwest::Method::POST,
        format!("{}/api/v1/projects", server.base),
        Some(json!({"name": "hh", "schema": schema})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let project = body["project"]["id"].as_i64().unwrap().to_string();
    let quorum = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quorum"))
            .args(args)
            .args(["--database", &database])
            .output()
            .unwrap()
    };
    let output = quorum(&[
        "import",
        "--project",
        &project,
        "--format",
        "dpo",
        pairs.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let exported = dir.path().join("dpo.jsonl");
    let output = quorum(&[
        "export",
        "--project",
        &project,
        "--format",
        "dpo",
        "--output",
        exported.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let key = |v: &Value| {
        (
            v["id"].clone(),
            v["prompt"].clone(),
            v["chosen"].clone(),
            v["rejected"].clone(),
        )
    };
    let read = |path: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let original = read(&pairs);
    let back = read(&exported);
    assert_eq!(original.len(), 2312);
    let mut want: Vec<_> = original.iter().map(key).collect();
    let mut got: Vec<_> = back.iter().map(key).collect();
    want.sort_by_key(|k| k.0.to_string());
    got.sort_by_key(|k| k.0.to_string());
    assert!(want == got, "the pairs changed on the way through");
    assert!(back.iter().all(|v| v["source"] == "gold"));
}

/// `--job-slots 0` makes a server that queues jobs but runs none: a run started there waits in
/// the queue until a server with slots takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_no_job_slots_queues_but_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let environment = [
        ("QUORUM_MODEL_KEYS_ALLOW", "HOME"),
        ("QUORUM_ALLOW_PRIVATE_MODEL_HOSTS", "true"),
    ];
    let server = crate::serve::serve_env(
        &database,
        "administrator",
        &["--job-slots", "0"],
        &environment,
    );
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let (project, _) = setup(&client, &server.base, &database, &admin, 2, 0, 1).await;
    let (status, body) = call(
        &client,
        &admin,
        reqwest::Method::POST,
        format!("{}/api/v1/models", server.base),
        Some(json!({"name": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "HOME"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        &client,
        &admin,
        reqwest::Method::POST,
        format!("{}/api/v1/projects/{project}/runs", server.base),
        Some(json!({"models": ["m"]})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = body["jobs"][0]["id"].as_i64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, body) = call(
        &client,
        &admin,
        reqwest::Method::GET,
        format!("{}/api/v1/jobs/{job}", server.base),
        None,
    )
    .await;
    assert_eq!(body["job"]["state"], "queued", "{body}");
    assert_eq!(body["job"]["attempts"], 0, "{body}");
}
