//! Several `quorum serve` processes on one PostgreSQL: exact assignment, the quality loop, and
//! background jobs taken over when the server running them dies.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Executor;

use crate::serve::{
    Served, all_raters, call, exported, rater_names, serve, serve_env, serve_with, setup,
};

pub(crate) fn postgres_url() -> String {
    std::env::var("QUORUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The test PostgreSQL's `host:port`.
pub(crate) fn postgres_address() -> String {
    let options = sqlx::postgres::PgConnectOptions::from_str(&postgres_url()).unwrap();
    format!("{}:{}", options.get_host(), options.get_port())
}

/// A loopback port nothing listens on (yet).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Forwards `port` on loopback to the test PostgreSQL until stopped; `stop` also cuts every
/// connection it carries.
pub(crate) struct Forwarder {
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Forwarder {
    pub(crate) async fn start(port: u16) -> Forwarder {
        let upstream = postgres_address();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let inner = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                inner.lock().unwrap().push(connection.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Forwarder { tasks }
    }

    pub(crate) fn stop(self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// A database of its own on the machine's PostgreSQL, for one test.
pub(crate) struct FreshDatabase {
    admin: sqlx::PgPool,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl FreshDatabase {
    pub(crate) async fn new(prefix: &str) -> FreshDatabase {
        let name = format!("{prefix}_{}", std::process::id());
        let options = sqlx::postgres::PgConnectOptions::from_str(&postgres_url()).unwrap();
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("PostgreSQL is running");
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.execute(statement.as_str()).await.unwrap();
        }
        let base = postgres_url();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        FreshDatabase { admin, name, url }
    }

    pub(crate) async fn drop(self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        self.admin.execute(statement.as_str()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_postgres_never_overshoot() {
    let fresh = FreshDatabase::new("quorum_it").await;
    let database = fresh.url.clone();

    let first = serve(&database, "administrator");
    let second = serve(&database, "administrator");
    let admin = first.token.clone().or(second.token.clone()).unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &first.base, &database, &admin, 60, 64, 3).await;
    let names = rater_names(&tokens);
    let bases = [first.base.clone(), second.base.clone()];
    let acknowledged = all_raters(&client, &bases, project, &tokens).await;
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
    // Both servers are killed (and waited for) when dropped, before their database goes.
    drop([first, second]);
    fresh.drop().await;
}

/// The quality loop on PostgreSQL across two servers: a rater who answers every gold item
/// wrong is paused after exactly three (the third wrong answer brings the bound under 0.7), by
/// whichever server took the answer, and both servers refuse them; a reviewer on one server
/// rejects a response and the consensus on the other drops it; a reinstatement on one lets the
/// rater work on the other; the audit log has both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quality_loop_holds_across_two_servers_on_postgres() {
    let fresh = FreshDatabase::new("quorum_quality").await;
    let database = fresh.url.clone();
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
        Method::PUT,
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
            Method::POST,
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
            Method::POST,
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
            Method::POST,
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
            Method::POST,
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
            Method::POST,
            url(step, &format!("leases/{lease}/response")),
            Some(json!({"answers": {"label": "a"}, "time_spent_ms": 3000})),
        )
        .await;
    }
    // rater2 reviews on the second server: the disputed item loses the spammer's answer.
    let (status, _) = call(
        &client,
        &admin,
        Method::POST,
        url(0, &format!("projects/{project}/members")),
        Some(json!({"user": "rater2", "role": "reviewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let reviewer = &tokens[2];
    let (status, body) = call(
        &client,
        reviewer,
        Method::GET,
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
    let (status, body) = call(&client, reviewer, Method::POST, url(1, &format!("projects/{project}/reviews")), Some(json!({"item_id": item_id, "verdicts": [{"response_id": spam["response_id"], "verdict": "reject"}]}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, body) = call(
        &client,
        &admin,
        Method::GET,
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
        Method::GET,
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
        Method::POST,
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
        Method::POST,
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
        Method::GET,
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

    // Both servers are killed (and waited for) when dropped, before their database goes.
    drop([first, second]);
    fresh.drop().await;
}

/// A model run started on one server whose server is killed mid-run (SIGKILL) is finished by
/// another server on the same PostgreSQL: the job's claim lapses, the second server's runner
/// takes it over and calls only the prompts with no answer yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_run_is_finished_by_another_server_when_its_server_dies() {
    let fresh = FreshDatabase::new("quorum_jobs").await;
    // A provider on loopback that takes 100 ms per answer and counts calls per prompt.
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let total = Arc::new(AtomicUsize::new(0));
    let router = {
        let (calls, total) = (Arc::clone(&calls), Arc::clone(&total));
        axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (calls, total) = (Arc::clone(&calls), Arc::clone(&total));
                async move {
                    let prompt = body["messages"][0]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    *calls.lock().unwrap().entry(prompt.clone()).or_default() += 1;
                    total.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    axum::Json(
                        json!({"choices": [{"message": {"content": format!("re: {prompt}")}}]}),
                    )
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    // The operator allows a model on loopback with its key in HOME; claims lapse after 3 s.
    let environment = [
        ("QUORUM_MODEL_KEYS_ALLOW", "HOME"),
        ("QUORUM_ALLOW_PRIVATE_MODEL_HOSTS", "true"),
    ];
    let start = || {
        serve_env(
            &fresh.url,
            "administrator",
            &["--job-lease", "3"],
            &environment,
        )
    };
    let mut first: Served = start();
    let admin = first.token.clone().unwrap();
    let client = Client::new();
    let prompts = 30;
    let (project, _) = setup(&client, &first.base, &fresh.url, &admin, prompts, 0, 1).await;
    let (status, body) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/api/v1/models", first.base),
        Some(json!({"name": "slow", "base_url": provider, "api_key_env": "HOME"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/api/v1/projects/{project}/runs", first.base),
        Some(json!({"models": ["slow"], "concurrency": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = body["jobs"][0]["id"].as_i64().unwrap();
    let job_url = |base: &str| format!("{base}/api/v1/jobs/{job}");
    let answered = |base: String| {
        let (client, admin) = (client.clone(), admin.clone());
        async move {
            let (_, body) = call(
                &client,
                &admin,
                Method::GET,
                format!("{base}/api/v1/projects/{project}/runs"),
                None,
            )
            .await;
            body["models"][0]["answered"].as_u64().unwrap_or(0) as usize
        }
    };
    // The first server is under way with the job.
    let mut under_way = 0;
    for _ in 0..200 {
        under_way = answered(first.base.clone()).await;
        if under_way >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!((5..prompts).contains(&under_way), "{under_way} answered");
    let (_, body) = call(&client, &admin, Method::GET, job_url(&first.base), None).await;
    assert_eq!(body["job"]["state"], "running", "{body}");
    let first_runner = body["job"]["runner"].as_str().unwrap().to_string();

    let second = start();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed_at = answered(second.base.clone()).await;
    assert!(killed_at < prompts, "killed mid-run: {killed_at} answered");

    let mut finished = Value::Null;
    for _ in 0..600 {
        let (_, body) = call(&client, &admin, Method::GET, job_url(&second.base), None).await;
        if body["job"]["state"] != "running" && body["job"]["state"] != "queued" {
            finished = body["job"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(finished["state"], "done", "{finished}");
    assert_eq!(
        finished["attempts"], 2,
        "claimed by each server once: {finished}"
    );
    assert_ne!(finished["runner"].as_str().unwrap(), first_runner);
    assert_eq!(answered(second.base.clone()).await, prompts);
    // The second server called only what had no answer: every prompt answered once, except
    // at most the one call the first server had in flight when it died.
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), prompts, "every prompt was called");
    let repeated = calls.values().filter(|&&n| n > 1).count();
    assert!(repeated <= 1, "{repeated} prompts called twice: {calls:?}");
    assert!(total.load(Ordering::SeqCst) <= prompts + 1);
    drop(second);
    fresh.drop().await;
}

/// Two servers on one PostgreSQL, both sending webhook deliveries: every answer's event
/// arrives, and none twice (each delivery is claimed by one server).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_deliver_each_webhook_event_once() {
    use crate::webhooks::{answers_received, receiver, subscribe, until_received};
    let fresh = FreshDatabase::new("quorum_hooks").await;
    let database = fresh.url.clone();
    let allow = [("QUORUM_ALLOW_PRIVATE_MODEL_HOSTS", "true")];
    let first = serve_env(&database, "administrator", &[], &allow);
    let second = serve_env(&database, "administrator", &[], &allow);
    let admin = first.token.clone().or(second.token.clone()).unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &first.base, &database, &admin, 200, 8, 2).await;
    let names = rater_names(&tokens);
    let (url, got) = receiver(Duration::from_millis(5)).await;
    subscribe(&client, &second.base, &admin, project, &url).await;
    let bases = [first.base.clone(), second.base.clone()];
    let wanted: HashSet<(String, String)> = all_raters(&client, &bases, project, &tokens)
        .await
        .into_iter()
        .map(|(item, token)| (item, names[&token].clone()))
        .collect();
    assert_eq!(wanted.len(), 400, "200 items × overlap 2");
    until_received(&got, &wanted, 60).await;
    // Anything delivered twice would arrive within the next polls of either server.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = got.lock().unwrap().len();
    let events = answers_received(&got);
    assert_eq!(events.len(), 400);
    assert_eq!(
        requests,
        400,
        "{} events were delivered more than once",
        requests - 400
    );
    drop([first, second]);
    fresh.drop().await;
}

/// A PostgreSQL that does not answer yet when the server starts (it starts with the machine,
/// or is failing over): the server waits with back-off and serves once it answers; with no
/// time to wait it stops at once, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_waits_for_a_postgres_that_is_not_up_yet() {
    let database = FreshDatabase::new("quorum_wait").await;
    // A port where nothing listens yet; later a forwarder to the real PostgreSQL takes it.
    let port = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/{}", database.name);

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_quorum"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &url])
        .args(["--database-wait", "0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("cannot reach the database") && said.contains("refused"),
        "{said}"
    );

    let started = std::time::Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // It forwards for the rest of the test (dropping it stops nothing).
        let _forwarding = Forwarder::start(port).await;
    });
    let server = serve_with(&url, "administrator", &["--database-wait", "30"]);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let (status, body) = call(
        &Client::new(),
        server.token.as_deref().unwrap(),
        Method::GET,
        format!("{}/api/v1/me", server.base),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(server);
    database.drop().await;
}
