//! `quorum serve` as a real process: durability under SIGKILL and SIGTERM on SQLite, and the
//! helpers the other real-process tests share.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

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
pub(crate) fn serve_with(database: &str, admin_password: &str, more: &[&str]) -> Served {
    serve_env(database, admin_password, more, &[])
}

/// `quorum serve` with more arguments and environment variables.
#[expect(
    clippy::zombie_processes,
    reason = "`Served` kills and waits when dropped"
)]
pub(crate) fn serve_env(
    database: &str,
    admin_password: &str,
    more: &[&str],
    environment: &[(&str, &str)],
) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database", database])
        .args(more)
        .envs(environment.iter().copied())
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

/// A project's statistics (`/stats`'s `stats` object), which must be answered.
pub(crate) async fn project_stats(client: &Client, base: &str, token: &str, project: i64) -> Value {
    let (status, body) = call(
        client,
        token,
        reqwest::Method::GET,
        format!("{base}/api/v1/projects/{project}/stats"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["stats"].clone()
}

/// Creates a project with `items` items and `raters` raters; returns (project, rater tokens).
pub(crate) async fn setup(
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

/// Each rater token's user name, as `setup` made them.
pub(crate) fn rater_names(tokens: &[String]) -> HashMap<String, String> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), format!("rater{i}")))
        .collect()
}

/// Every rater of `tokens` looping over `bases` until nothing is left; every acknowledged
/// (item, token) pair.
pub(crate) async fn all_raters(
    client: &Client,
    bases: &[String],
    project: i64,
    tokens: &[String],
) -> Vec<(String, String)> {
    let tasks: Vec<_> = tokens
        .iter()
        .map(|t| {
            tokio::spawn(rater_loop(
                client.clone(),
                bases.to_vec(),
                project,
                t.clone(),
            ))
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    acknowledged
}

/// Every acknowledged (item, rater) pair, from a rater looping next + submit until nothing is
/// left. A connection error (the server was killed) ends the loop.
pub(crate) async fn rater_loop(
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
pub(crate) struct Counters {
    pub(crate) acknowledged: std::sync::atomic::AtomicUsize,
    pub(crate) interrupted: std::sync::atomic::AtomicUsize,
}

/// One counted rater loop per token against `base`, and a way to wait for the load: returns
/// the loops once `acknowledged` answers are in (the load still running).
pub(crate) async fn raters_under_way(
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
pub(crate) async fn exported(
    client: &Client,
    base: &str,
    admin: &str,
    project: i64,
) -> Vec<(String, String)> {
    export_rows(client, base, admin, project)
        .await
        .iter()
        .map(|row| {
            (
                format!("item {}", row["external_id"].as_str().unwrap()),
                row["user"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every row of the project's JSON Lines export.
pub(crate) async fn export_rows(
    client: &Client,
    base: &str,
    admin: &str,
    project: i64,
) -> Vec<Value> {
    client
        .get(format!("{base}/api/v1/projects/{project}/export"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
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
    let names = rater_names(&tokens);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let mut server = serve(&database, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &server.base, &database, &admin, 400, 8, 2).await;
    let names = rater_names(&tokens);
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

/// The operations guide's configuration reference names every option of `quorum serve` and
/// its environment variable.
#[test]
fn every_serve_option_is_in_the_operations_guide() {
    let help = Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
    )
    .unwrap();
    // Options start their line; variables are shown as `[env: NAME=…]`.
    let options = help
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .map(|rest| format!("--{}", rest.split([' ', ',']).next().unwrap()));
    let variables = help
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap().to_string());
    let mut named = 0;
    for name in options.chain(variables).filter(|n| n != "--help") {
        named += 1;
        assert!(
            guide.contains(&format!("`{name}`")),
            "docs/operations.md does not name `{name}`"
        );
    }
    assert!(
        named > 30,
        "{named} options and variables found in:\n{help}"
    );
}

/// Signs `name` in through the login form (with a client that does not follow redirects):
/// the status, and the session cookie's `Set-Cookie` (value and attributes) if one came.
pub(crate) async fn sign_in(
    client: &Client,
    base: &str,
    name: &str,
    password: &str,
) -> (StatusCode, Option<String>) {
    let form = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let login_cookie = form.headers()["set-cookie"].to_str().unwrap().to_string();
    let page = form.text().await.unwrap();
    let csrf = page.split("name=\"login_csrf\" value=\"").nth(1).unwrap();
    let csrf = csrf.split('"').next().unwrap();
    let response = client
        .post(format!("{base}/login"))
        .header("cookie", login_cookie.split(';').next().unwrap())
        .form(&[("name", name), ("password", password), ("login_csrf", csrf)])
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    (response.status(), cookie)
}
