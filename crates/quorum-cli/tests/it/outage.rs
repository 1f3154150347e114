//! PostgreSQL going away under load (a restart, a failover): through a forwarder on loopback
//! whose connections are cut and which refuses new ones for a while, raters keep answering.
//! No request hangs, requests during the outage get 503 with `Retry-After`, and afterwards
//! every acknowledged answer is stored and no item is over-served.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::postgres::{Forwarder, FreshDatabase, free_port};
use crate::serve::{exported, rater_names, serve, setup};

/// What one rater saw: answers acknowledged (item text), 503s, requests that hung, and leases
/// the database no longer knew when the answer came (404).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) acknowledged: Vec<String>,
    pub(crate) unavailable: usize,
    pub(crate) hung: usize,
    pub(crate) lost_leases: usize,
}

/// Next and submit until nothing is left; a 503 (with `Retry-After`) is waited out.
async fn rater(client: Client, base: String, project: i64, token: String) -> Seen {
    let mut seen = Seen::default();
    let mut lease: Option<(i64, String)> = None;
    for _ in 0..2000 {
        let request = match &lease {
            None => client.post(format!("{base}/api/v1/projects/{project}/next")),
            Some((id, _)) => client
                .post(format!("{base}/api/v1/leases/{id}/response"))
                .header("Idempotency-Key", format!("lease-{id}"))
                .json(&json!({"answers": {"label": "a"}})),
        };
        let response = match request.bearer_auth(&token).send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                seen.hung += 1;
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let status = response.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(response.headers()["retry-after"], "5");
            seen.unavailable += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        match lease.take() {
            None if status == StatusCode::NO_CONTENT => return seen,
            None => {
                assert_eq!(status, StatusCode::OK);
                let body: Value = response.json().await.unwrap();
                let id = body["lease"]["id"].as_i64().unwrap();
                let text = body["item"]["fields"]["text"].as_str().unwrap().to_string();
                lease = Some((id, text));
            }
            // A lease is committed without waiting for its WAL (it is not an answer): one
            // granted just before the primary died may not have reached the standby.
            Some(_) if status == StatusCode::NOT_FOUND => seen.lost_leases += 1,
            Some((_, text)) => {
                // A replay after a lost reply answers 200; either way it is stored once.
                assert!(status.is_success(), "{status}");
                seen.acknowledged.push(text);
            }
        }
    }
    panic!("the rater never finished");
}

/// One [`rater`] per token, rater `i` answering through `bases[i % bases.len()]`.
pub(crate) fn spawn_raters(
    client: &Client,
    bases: &[String],
    project: i64,
    tokens: &[String],
) -> Vec<tokio::task::JoinHandle<Seen>> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let base = bases[i % bases.len()].clone();
            tokio::spawn(rater(client.clone(), base, project, token.clone()))
        })
        .collect()
}

/// What each rater saw, once all are done; none of their requests may have hung.
pub(crate) async fn finished(raters: Vec<tokio::task::JoinHandle<Seen>>) -> Vec<Seen> {
    let mut seen = Vec::new();
    for rater in raters {
        seen.push(rater.await.unwrap());
    }
    assert_eq!(seen.iter().map(|s| s.hung).sum::<usize>(), 0, "{seen:?}");
    seen
}

/// After the fault: `items` items each answered exactly `overlap` times, every answer a rater
/// was acknowledged stored under their name, and each stored answer acknowledged once.
pub(crate) fn nothing_lost(
    stored: &[(String, String)],
    tokens: &[String],
    seen: &[Seen],
    items: usize,
    overlap: usize,
) {
    let mut per_item = HashMap::new();
    for (item, _) in stored {
        *per_item.entry(item.clone()).or_insert(0) += 1;
    }
    assert_eq!(per_item.len(), items, "every item answered");
    assert!(per_item.values().all(|&n| n == overlap), "{per_item:?}");
    let names = rater_names(tokens);
    for (token, seen) in tokens.iter().zip(seen) {
        for text in &seen.acknowledged {
            let pair = (text.clone(), names[token].clone());
            assert!(
                stored.contains(&pair),
                "{pair:?} was acknowledged but is not stored"
            );
        }
    }
    let acknowledged: usize = seen.iter().map(|s| s.acknowledged.len()).sum();
    assert_eq!(
        acknowledged,
        stored.len(),
        "each stored answer was acknowledged once"
    );
}

/// Waits until the project holds at least `n` answers: an outage is only a test while raters
/// are mid-way.
pub(crate) async fn until_stored(client: &Client, base: &str, admin: &str, project: i64, n: i64) {
    for _ in 0..1000 {
        let stats = crate::serve::project_stats(client, base, admin, project).await;
        if stats["responses"].as_i64().unwrap() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the raters never stored {n} answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raters_ride_out_a_postgres_outage_and_nothing_acknowledged_is_lost() {
    let database = FreshDatabase::new("quorum_outage").await;
    let port = free_port();
    let forwarder = Forwarder::start(port).await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/{}", database.name);
    let server = serve(&url, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let (project, tokens) = setup(&client, &server.base, &url, &admin, 150, 4, 2).await;
    let raters = spawn_raters(
        &client,
        std::slice::from_ref(&server.base),
        project,
        &tokens,
    );
    // The database goes away mid-load (a fifth of the answers in), stays away two seconds,
    // and comes back.
    until_stored(&client, &server.base, &admin, project, 60).await;
    forwarder.stop();
    // The readiness check says so while it lasts.
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        health
            .text()
            .await
            .unwrap()
            .contains("database_unreachable")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _forwarder = Forwarder::start(port).await;
    let seen = finished(raters).await;
    assert_eq!(
        seen.iter().map(|s| s.lost_leases).sum::<usize>(),
        0,
        "{seen:?}"
    );
    assert!(
        seen.iter().map(|s| s.unavailable).sum::<usize>() > 0,
        "the outage was seen: {seen:?}"
    );
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let stored = exported(&client, &server.base, &admin, project).await;
    nothing_lost(&stored, &tokens, &seen, 150, 2);
    drop(server);
    database.drop().await;
}
