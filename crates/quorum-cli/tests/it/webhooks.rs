//! Webhooks from real `quorum serve` processes: nothing acknowledged is lost when the server is
//! SIGKILLed with deliveries under way, and (in `postgres.rs`) two servers on one PostgreSQL
//! deliver each event once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::serve::{call, exported, rater_names, raters_under_way, serve_env, setup};

/// Every request a receiver got: (event id, payload).
pub(crate) type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A receiver on a loopback port that takes `delay` to answer 204; its URL.
pub(crate) async fn receiver(delay: Duration) -> (String, Received) {
    async fn receive(
        State((got, delay)): State<(Received, Duration)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> AxumStatus {
        tokio::time::sleep(delay).await;
        let id = headers["quorum-event-id"].to_str().unwrap().to_string();
        let payload: Value = serde_json::from_slice(&body).unwrap();
        got.lock().unwrap().push((id, payload));
        AxumStatus::NO_CONTENT
    }
    let got: Received = Arc::default();
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state((Arc::clone(&got), delay));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, got)
}

/// Subscribes `url` to the project's `response.created` events.
pub(crate) async fn subscribe(client: &Client, base: &str, admin: &str, project: i64, url: &str) {
    let (status, body) = call(
        client,
        admin,
        Method::POST,
        format!("{base}/api/v1/projects/{project}/webhooks"),
        Some(json!({"url": url, "events": ["response.created"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// (item text, rater name) of every `response.created` a receiver got, by event id.
pub(crate) fn answers_received(got: &Received) -> HashMap<String, (String, String)> {
    got.lock()
        .unwrap()
        .iter()
        .map(|(id, payload)| {
            let data = &payload["data"];
            let item = format!("item {}", data["external_id"].as_str().unwrap());
            (
                id.clone(),
                (item, data["user"].as_str().unwrap().to_string()),
            )
        })
        .collect()
}

/// Waits (at most `seconds`) until the receiver holds every one of `wanted`.
pub(crate) async fn until_received(
    got: &Received,
    wanted: &HashSet<(String, String)>,
    seconds: u64,
) -> HashMap<String, (String, String)> {
    let mut received = HashMap::new();
    for _ in 0..seconds * 20 {
        received = answers_received(got);
        let have: HashSet<&(String, String)> = received.values().collect();
        if wanted.iter().all(|w| have.contains(w)) {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let have: HashSet<&(String, String)> = received.values().collect();
    let missing = wanted.iter().filter(|w| !have.contains(w)).count();
    panic!("{missing} of {} events never arrived", wanted.len());
}

/// SIGKILL with deliveries under way (a slow receiver, raters still answering): after a
/// restart, every acknowledged answer's event arrives, and every event that arrives is of an
/// answer that was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_answer_is_delivered_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/q.sqlite3", dir.path().display());
    let allow = [("QUORUM_ALLOW_PRIVATE_MODEL_HOSTS", "true")];
    let lease = ["--job-lease", "3"];
    let mut first = serve_env(&database, "administrator", &lease, &allow);
    let admin = first.token.clone().unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &first.base, &database, &admin, 3000, 8, 1).await;
    let names = rater_names(&tokens);
    let (url, got) = receiver(Duration::from_millis(15)).await;
    subscribe(&client, &first.base, &admin, project, &url).await;

    let (tasks, _) = raters_under_way(&client, &first.base, project, &tokens, 150).await;
    // Killed once deliveries are flowing (the sender looks every second), with more to come.
    for _ in 0..200 {
        if got.lock().unwrap().len() >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.child.kill().unwrap(); // SIGKILL, deliveries in flight and queued
    first.child.wait().unwrap();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    let at_kill = got.lock().unwrap().len();
    assert!(
        (30..acknowledged.len()).contains(&at_kill),
        "deliveries were still to come when the server died ({at_kill} of {})",
        acknowledged.len()
    );

    let second = serve_env(&database, "administrator", &lease, &allow);
    let wanted: HashSet<(String, String)> = acknowledged
        .iter()
        .map(|(item, token)| (item.clone(), names[token].clone()))
        .collect();
    until_received(&got, &wanted, 60).await;
    // Answers stored but not acknowledged (the reply was lost with the server) have events too.
    let stored: HashSet<(String, String)> = exported(&client, &second.base, &admin, project)
        .await
        .into_iter()
        .collect();
    let received = until_received(&got, &stored, 30).await;
    for answer in received.values() {
        assert!(
            stored.contains(answer),
            "an event of an answer never stored: {answer:?}"
        );
    }
    assert_eq!(
        received.len(),
        stored.len(),
        "one event per stored answer, whatever was delivered twice"
    );
}
