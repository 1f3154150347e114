//! `quorum serve` as a real process: durability under SIGKILL on SQLite, and two server
//! processes sharing one PostgreSQL database.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::Executor;

/// A running `quorum serve` child process.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) base: String,
    /// The API token printed on the first start, if this start printed one.
    pub(crate) token: Option<String>,
}

/// A server outliving its test (a failed assertion, a forgotten kill) is stopped here.
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(database: &str, admin_password: &str) -> Served {
    serve_with(database, admin_password, &[])
}

/// `quorum serve` with more arguments.
#[expect(
    clippy::zombie_processes,
    reason = "`Served` kills and waits when dropped"
)]
pub(crate) fn serve_with(database: &str, admin_password: &str, more: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database", database])
        .args(more)
        .env("QUORUM_ADMIN_PASSWORD", admin_password)
        .env("QUORUM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut token = None;
    loop {
        let line = lines
            .next()
            .expect("the server prints where it listens")
            .unwrap();
        if let Some(rest) = line.trim().strip_prefix("API token: ") {
            token = Some(rest.to_string());
        }
        if let Some(rest) = line.split("listening on ").nth(1) {
            let base = rest.split_whitespace().next().unwrap().to_string();
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Served { child, base, token };
        }
    }
}

pub(crate) async fn call(
    client: &Client,
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates a project with `items` items and `raters` raters; returns (project, rater tokens).
async fn setup(
    client: &Client,
    base: &str,
    database: &str,
    admin: &str,
    items: usize,
    raters: usize,
    overlap: i32,
) -> (i64, Vec<String>) {
    let schema = json!({"fields": [{"name": "text", "kind": "text"}], "questions": [{"name": "label", "kind": "label", "options": ["a", "b"], "required": true}]});
    let (status, body) = call(
        client,
        admin,
        reqwest::Method::POST,
        format!("{base}/api/v1/projects"),
        Some(json!({"name": "load", "schema": schema, "overlap": overlap})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let project = body["project"]["id"].as_i64().unwrap();
    let lines: String = (0..items)
        .map(|i| format!("{{\"external_id\": \"{i}\", \"fields\": {{\"text\": \"item {i}\"}}}}\n"))
        .collect();
    let response = client
        .post(format!("{base}/api/v1/projects/{project}/items"))
        .bearer_auth(admin)
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut tokens = Vec::new();
    for r in 0..raters {
        let name = format!("rater{r}");
        let created = Command::new(env!("CARGO_BIN_EXE_quorum"))
            .args([
                "admin",
                "create-user",
                &name,
                "--password",
                "password123",
                "--database",
                database,
            ])
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let token = Command::new(env!("CARGO_BIN_EXE_quorum"))
            .args(["admin", "create-token", &name, "--database", database])
            .output()
            .unwrap();
        assert!(token.status.success());
        let (status, _) = call(
            client,
            admin,
            reqwest::Method::POST,
            format!("{base}/api/v1/projects/{project}/members"),
            Some(json!({"user": name, "role": "annotator"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        tokens.push(String::from_utf8(token.stdout).unwrap().trim().to_string());
    }
    (project, tokens)
}

/// Every acknowledged (item, rater) pair, from a rater looping next + submit until nothing is
/// left. A connection error (the server was killed) ends the loop.
async fn rater_loop(
    client: Client,
    bases: Vec<String>,
    project: i64,
    token: String,
) -> Vec<(String, String)> {
    rater_loop_counted(client, bases, project, token, &Counters::default()).await
}

/// What the rater loops of a test have seen so far: answers acknowledged, and loops that
/// ended on a broken connection (a request was in flight when the server went away).
#[derive(Debug, Default)]
struct Counters {
    acknowledged: std::sync::atomic::AtomicUsize,
    interrupted: std::sync::atomic::AtomicUsize,
}

/// One counted rater loop per token against `base`, and a way to wait for the load: returns
/// the loops once `acknowledged` answers are in (the load still running).
async fn raters_under_way(
    client: &Client,
    base: &str,
    project: i64,
    tokens: &[String],
    acknowledged: usize,
) -> (
    Vec<tokio::task::JoinHandle<Vec<(String, String)>>>,
    std::sync::Arc<Counters>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let counters = std::sync::Arc::new(Counters::default());
    let tasks = tokens
        .iter()
        .map(|t| {
            let (client, base, t) = (client.clone(), base.to_string(), t.clone());
            let counters = std::sync::Arc::clone(&counters);
            tokio::spawn(async move {
                rater_loop_counted(client, vec![base], project, t, &counters).await
            })
        })
        .collect();
    for _ in 0..600 {
        if counters.acknowledged.load(SeqCst) >= acknowledged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        counters.acknowledged.load(SeqCst) >= acknowledged,
        "the load ran"
    );
    (tasks, counters)
}

/// [`rater_loop`], counting into `counters`.
async fn rater_loop_counted(
    client: Client,
    bases: Vec<String>,
    project: i64,
    token: String,
    counters: &Counters,
) -> Vec<(String, String)> {
    use std::sync::atomic::Ordering::SeqCst;
    let mut acknowledged = Vec::new();
    let mut turn = 0;
    loop {
        let base = &bases[turn % bases.len()];
        turn += 1;
        let Ok(response) = client
            .post(format!("{base}/api/v1/projects/{project}/next"))
            .bearer_auth(&token)
            .send()
            .await
        else {
            counters.interrupted.fetch_add(1, SeqCst);
            break;
        };
        if response.status() == StatusCode::NO_CONTENT {
            break;
        }
        let Ok(body) = response.json::<Value>().await else {
            break;
        };
        let lease = body["lease"]["id"].as_i64().unwrap();
        // Raters never see item ids: the text names the item (`setup` writes "item {external id}").
        let item = body["item"]["fields"]["text"].as_str().unwrap().to_string();
        let Ok(submitted) = client
            .post(format!("{base}/api/v1/leases/{lease}/response"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("{lease}"))
            .json(&json!({"answers": {"label": "a"}}))
            .send()
            .await
        else {
            counters.interrupted.fetch_add(1, SeqCst);
            break;
        };
        if submitted.status() == StatusCode::CREATED {
            acknowledged.push((item, token.clone()));
            counters.acknowledged.fetch_add(1, SeqCst);
        } else {
            assert!(
                submitted.status().is_server_error()
                    || submitted.status() == StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                submitted.status()
            );
        }
    }
    acknowledged
}

/// (item text, as `setup` writes it, rater name) of every stored response, from the export.
async fn exported(client: &Client, base: &str, admin: &str, project: i64) -> Vec<(String, String)> {
    let text = client
        .get(format!("{base}/api/v1/projects/{project}/export"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            (
                format!("item {}", row["external_id"].as_str().unwrap()),
                row["user"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_answer_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let mut first = serve(&database, "administrator");
    let admin = first.token.clone().unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &first.base, &database, &admin, 400, 16, 2).await;
    let names: HashMap<String, String> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), format!("rater{i}")))
        .collect();
    // Killed once 200 answers are acknowledged, while the 16 raters are still at work.
    let (tasks, counters) = raters_under_way(&client, &first.base, project, &tokens, 200).await;
    let child = &mut first.child;
    child.kill().unwrap(); // SIGKILL: no drain, no flush
    child.wait().unwrap();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(acknowledged.len() >= 200 && acknowledged.len() < 800);
    let interrupted = counters
        .interrupted
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        interrupted > 0,
        "some requests were in flight when the server died"
    );

    let mut second = serve(&database, "administrator");
    assert!(second.token.is_none(), "the administrator already exists");
    let stored = exported(&client, &second.base, &admin, project).await;
    let stored_set: HashSet<(String, String)> = stored.iter().cloned().collect();
    assert_eq!(
        stored_set.len(),
        stored.len(),
        "no response is stored twice"
    );
    for (item, token) in &acknowledged {
        assert!(
            stored_set.contains(&(item.clone(), names[token].clone())),
            "acknowledged answer lost: item {item}"
        );
    }
    let mut per_item: HashMap<String, usize> = HashMap::new();
    for (item, _) in &stored {
        *per_item.entry(item.clone()).or_default() += 1;
    }
    assert!(per_item.values().all(|&n| n <= 2));
    let child = &mut second.child;
    child.kill().unwrap();
    child.wait().unwrap();
}

fn postgres_url() -> String {
    std::env::var("QUORUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_postgres_never_overshoot() {
    let name = format!("quorum_it_{}", std::process::id());
    let options = sqlx::postgres::PgConnectOptions::from_str(&postgres_url()).unwrap();
    let admin_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("PostgreSQL is running");
    admin_pool
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin_pool
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let base_url = postgres_url();
    let database = format!("{}/{name}", &base_url[..base_url.rfind('/').unwrap()]);

    let first = serve(&database, "administrator");
    let second = serve(&database, "administrator");
    let admin = first.token.clone().or(second.token.clone()).unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &first.base, &database, &admin, 60, 64, 3).await;
    let names: HashMap<String, String> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), format!("rater{i}")))
        .collect();
    let bases = vec![first.base.clone(), second.base.clone()];
    let tasks: Vec<_> = tokens
        .iter()
        .map(|t| {
            tokio::spawn(rater_loop(
                client.clone(),
                bases.clone(),
                project,
                t.clone(),
            ))
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    let stored = exported(&client, &second.base, &admin, project).await;
    assert_eq!(stored.len(), 180, "60 items × overlap 3, all answered");
    assert_eq!(acknowledged.len(), 180);
    let mut per_item: HashMap<String, usize> = HashMap::new();
    let mut pairs = HashSet::new();
    for (item, user) in &stored {
        *per_item.entry(item.clone()).or_default() += 1;
        assert!(
            pairs.insert((item.clone(), user.clone())),
            "{user} answered item {item} twice"
        );
    }
    assert!(per_item.values().all(|&n| n == 3), "{per_item:?}");
    for (item, token) in &acknowledged {
        assert!(pairs.contains(&(item.clone(), names[token].clone())));
    }
    for mut served in [first, second] {
        let child = &mut served.child;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    admin_pool
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_import_is_all_or_nothing_and_export_streams_what_the_api_stored() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let mut server = serve(&database, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &server.base, &database, &admin, 0, 1, 1).await;
    let quorum = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quorum"))
            .args(args)
            .output()
            .unwrap()
    };
    let project_arg = project.to_string();

    let bad = dir.path().join("items.jsonl");
    std::fs::write(
        &bad,
        "{\"fields\": {\"text\": \"fine\"}}\n\n{\"fields\": {\"txt\": \"typo\"}}\n",
    )
    .unwrap();
    let output = quorum(&[
        "import",
        "--project",
        &project_arg,
        "--database",
        &database,
        bad.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("items.jsonl:3: fields.txt: the schema has no such field"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 rows were rejected; nothing was imported"),
        "{stderr}"
    );
    let (_, stats) = call(
        &client,
        &admin,
        reqwest::Method::GET,
        format!("{}/api/v1/projects/{project}/stats", server.base),
        None,
    )
    .await;
    assert_eq!(stats["stats"]["items"], 0);

    let good = dir.path().join("items.csv");
    std::fs::write(
        &good,
        "external_id,text\nc1,\"first, with a comma\"\nc2,second\n",
    )
    .unwrap();
    let output = quorum(&[
        "import",
        "--project",
        &project_arg,
        "--database",
        &database,
        good.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("2 created, 0 updated"));

    let answered = rater_loop(
        client.clone(),
        vec![server.base.clone()],
        project,
        tokens[0].clone(),
    )
    .await;
    assert_eq!(answered.len(), 2);
    let out = dir.path().join("export.csv");
    let output = quorum(&[
        "export",
        "--project",
        &project_arg,
        "--database",
        &database,
        "--format",
        "csv",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "response_id,item_id,external_id,user,answers,time_spent_ms,created_at"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].contains(",c1,rater0,\"{\"\"label\"\":\"\"a\"\"}\",0,"),
        "{text}"
    );
    let refused = quorum(&[
        "export",
        "--project",
        &project_arg,
        "--database",
        &database,
        "--as",
        "rater0",
    ]);
    assert!(!refused.status.success());
    // The consensus export: the CLI writes what the API serves.
    let consensus = quorum(&[
        "export",
        "--project",
        &project_arg,
        "--database",
        &database,
        "--format",
        "consensus",
    ]);
    assert!(
        consensus.status.success(),
        "{}",
        String::from_utf8_lossy(&consensus.stderr)
    );
    let from_cli = String::from_utf8_lossy(&consensus.stdout).to_string();
    let from_api = client
        .get(format!(
            "{}/api/v1/projects/{project}/export?format=consensus",
            server.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(from_cli, from_api);
    assert_eq!(from_cli.lines().count(), 2, "{from_cli}");
    let unknown = quorum(&[
        "export",
        "--project",
        &project_arg,
        "--database",
        &database,
        "--format",
        "xml",
    ]);
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        said.contains("unknown format `xml`; use jsonl, csv, dpo, sft, consensus"),
        "{said}"
    );
    let child = &mut server.child;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let mut server = serve(&database, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &server.base, &database, &admin, 400, 8, 2).await;
    let names: HashMap<String, String> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), format!("rater{i}")))
        .collect();
    // SIGTERM in the middle of the load: what is queued is committed and answered.
    let (tasks, _) = raters_under_way(&client, &server.base, project, &tokens, 100).await;
    let child = &mut server.child;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "SIGTERM ends the server cleanly: {exit:?}");
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(
        (100..800).contains(&acknowledged.len()),
        "stopped mid-load: {} answers acknowledged",
        acknowledged.len()
    );
    let mut again = serve(&database, "administrator");
    let stored: HashSet<(String, String)> = exported(&client, &again.base, &admin, project)
        .await
        .into_iter()
        .collect();
    for (item, token) in &acknowledged {
        assert!(
            stored.contains(&(item.clone(), names[token].clone())),
            "acknowledged before SIGTERM, lost after: {item}"
        );
    }
    let child = &mut again.child;
    child.kill().unwrap();
    child.wait().unwrap();
}

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

/// The quality loop on PostgreSQL across two servers: a rater who answers every gold item
/// wrong is paused after exactly three (the third wrong answer brings the bound under 0.7), by
/// whichever server took the answer, and both servers refuse them; a reviewer on one server
/// rejects a response and the consensus on the other drops it; a reinstatement on one lets the
/// rater work on the other; the audit log has both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quality_loop_holds_across_two_servers_on_postgres() {
    let name = format!("quorum_quality_{}", std::process::id());
    let options = sqlx::postgres::PgConnectOptions::from_str(&postgres_url()).unwrap();
    let admin_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("PostgreSQL is running");
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin_pool.execute(statement.as_str()).await.unwrap();
    }
    let base_url = postgres_url();
    let database = format!("{}/{name}", &base_url[..base_url.rfind('/').unwrap()]);
    let first = serve(&database, "administrator");
    let second = serve(&database, "administrator");
    let admin = first.token.clone().or(second.token.clone()).unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &first.base, &database, &admin, 40, 3, 2).await;
    let bases = [first.base.clone(), second.base.clone()];
    let url = |i: usize, path: &str| format!("{}/api/v1/{path}", bases[i % 2]);
    let gold: String = (0..20)
        .map(|i| format!("{{\"external_id\": \"g{i}\", \"fields\": {{\"text\": \"gold {i}\"}}, \"gold\": {{\"label\": \"a\"}}}}\n"))
        .collect();
    let response = client
        .post(url(0, &format!("projects/{project}/items")))
        .bearer_auth(&admin)
        .body(gold)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let rules = json!({"gold_rate": 0.3, "pause": {"min_accuracy_upper": 0.7}, "review": {"disagreement": true}});
    let (status, body) = call(
        &client,
        &admin,
        reqwest::Method::PUT,
        url(0, &format!("projects/{project}/quality")),
        Some(rules),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // rater0 answers `b` to everything, on alternate servers, until refused.
    let (spammer, careful) = (&tokens[0], &tokens[1]);
    let mut gold_answered = 0;
    for step in 0.. {
        let (status, body) = call(
            &client,
            spammer,
            reqwest::Method::POST,
            url(step, &format!("projects/{project}/next")),
            None,
        )
        .await;
        if status == StatusCode::FORBIDDEN {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("paused"),
                "{body}"
            );
            break;
        }
        assert_eq!(
            status,
            StatusCode::OK,
            "the spammer ran out of items unpaused: {body}"
        );
        gold_answered += usize::from(
            body["item"]["fields"]["text"]
                .as_str()
                .unwrap()
                .starts_with("gold"),
        );
        let lease = body["lease"]["id"].as_i64().unwrap();
        let (status, _) = call(
            &client,
            spammer,
            reqwest::Method::POST,
            url(step + 1, &format!("leases/{lease}/response")),
            Some(json!({"answers": {"label": "b"}, "time_spent_ms": 3000})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(gold_answered, 3);
    for i in 0..2 {
        let (status, _) = call(
            &client,
            spammer,
            reqwest::Method::POST,
            url(i, &format!("projects/{project}/next")),
            None,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "server {i} refuses a paused rater"
        );
    }
    // rater1 answers `a` to everything.
    for step in 0.. {
        let (status, body) = call(
            &client,
            careful,
            reqwest::Method::POST,
            url(step, &format!("projects/{project}/next")),
            None,
        )
        .await;
        if status == StatusCode::NO_CONTENT {
            break;
        }
        let lease = body["lease"]["id"].as_i64().unwrap();
        call(
            &client,
            careful,
            reqwest::Method::POST,
            url(step, &format!("leases/{lease}/response")),
            Some(json!({"answers": {"label": "a"}, "time_spent_ms": 3000})),
        )
        .await;
    }
    // rater2 reviews on the second server: the disputed item loses the spammer's answer.
    let (status, _) = call(
        &client,
        &admin,
        reqwest::Method::POST,
        url(0, &format!("projects/{project}/members")),
        Some(json!({"user": "rater2", "role": "reviewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let reviewer = &tokens[2];
    let (status, body) = call(
        &client,
        reviewer,
        reqwest::Method::GET,
        url(1, &format!("projects/{project}/review-queue")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task = &body["items"][0];
    let item_id = task["item_id"].as_i64().unwrap();
    let spam = task["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user_name"] == "rater0")
        .unwrap();
    let (status, body) = call(&client, reviewer, reqwest::Method::POST, url(1, &format!("projects/{project}/reviews")), Some(json!({"item_id": item_id, "verdicts": [{"response_id": spam["response_id"], "verdict": "reject"}]}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, body) = call(
        &client,
        &admin,
        reqwest::Method::GET,
        url(0, &format!("projects/{project}/consensus")),
        None,
    )
    .await;
    let agreed = body["consensus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["item_id"] == item_id)
        .unwrap()
        .clone();
    assert_eq!(
        (agreed["responses"].as_i64(), agreed["answer"].as_str()),
        (Some(1), Some("a")),
        "{agreed}"
    );

    // Reinstated on the second server, the rater works again on the first.
    let (_, body) = call(
        &client,
        &admin,
        reqwest::Method::GET,
        url(0, &format!("projects/{project}/raters")),
        None,
    )
    .await;
    let spammer_id = body["raters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "rater0")
        .unwrap()["user_id"]
        .as_i64()
        .unwrap();
    let (status, _) = call(
        &client,
        &admin,
        reqwest::Method::POST,
        url(
            1,
            &format!("projects/{project}/raters/{spammer_id}/standing"),
        ),
        Some(json!({"action": "reinstate", "reason": "warned"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &client,
        spammer,
        reqwest::Method::POST,
        url(0, &format!("projects/{project}/next")),
        None,
    )
    .await;
    assert!(
        status == StatusCode::OK || status == StatusCode::NO_CONTENT,
        "{status}"
    );
    let (_, body) = call(
        &client,
        &admin,
        reqwest::Method::GET,
        url(0, &format!("projects/{project}/rater-events")),
        None,
    )
    .await;
    let actions: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["paused", "reinstated"]);

    for mut served in [first, second] {
        let child = &mut served.child;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    admin_pool
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}
