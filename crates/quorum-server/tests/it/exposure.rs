//! What the server gives away and what it spends: what a rater sees of gold, heavy analyses,
//! metrics, rating scales and browser headers (issue 12's findings, continued from `security`).

use crate::security::*;
use crate::support::{Server, label_schema};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The best one-threshold rule on `feature` fitted on the first half of `seen`, scored on the
/// second half: its accuracy there, and the accuracy of always guessing "not gold".
fn threshold_rule(seen: &[(f64, bool)]) -> (f64, f64) {
    let (train, test) = seen.split_at(seen.len() / 2);
    let accuracy = |data: &[(f64, bool)], cut: f64, above_is_gold: bool| {
        data.iter()
            .filter(|(x, gold)| ((*x > cut) == above_is_gold) == *gold)
            .count() as f64
            / data.len() as f64
    };
    let mut best = (f64::NEG_INFINITY, false, 0.0);
    for &(cut, _) in train {
        for direction in [false, true] {
            let score = accuracy(train, cut, direction);
            if score > best.2 {
                best = (cut, direction, score);
            }
        }
    }
    let baseline = test.iter().filter(|(_, gold)| !gold).count() as f64 / test.len() as f64;
    (accuracy(test, best.0, best.1), baseline)
}

/// Finding 7: nothing a rater sees — lease ids, order, how long `next` takes, the shape of
/// the payload — tells gold from ordinary items, even when the gold was imported apart (its
/// own id range) and its items are chosen at random.
#[tokio::test]
async fn what_a_rater_sees_does_not_tell_gold_apart() {
    let server = Server::start().await;
    let p = server.project(label_schema(), 1).await;
    // Gold first in one test and last in another would be the same: here regular items come
    // first, so gold ids are all higher.
    let text = |prefix: &str, n: usize, gold: bool| -> String {
        (0..n)
            .map(|i| {
                let mut item = json!({"fields": {"text": format!("{prefix}{i:04}")}});
                if gold {
                    item["gold"] = json!({"label": "pos"});
                }
                format!("{item}\n")
            })
            .collect()
    };
    assert_eq!(
        server.import(p, &text("r", 700, false)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.import(p, &text("g", 300, true)).await.0,
        StatusCode::OK
    );
    let (status, _) = server
        .call(
            &server.admin_token,
            Method::PUT,
            &format!("/api/v1/projects/{p}/quality"),
            Some(json!({"gold_rate": 0.2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = server.rater("sleuth", p, "annotator", &[]).await;
    let mut seen = Vec::new();
    loop {
        let started = std::time::Instant::now();
        let (status, body) =
            post(&server, &token, &format!("/api/v1/projects/{p}/next"), None).await;
        let took = started.elapsed().as_secs_f64();
        if status == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        let gold = is_gold(&body);
        let lease = body["lease"]["id"].as_i64().unwrap();
        let (status, reply) =
            answer_with_key(&server, &token, lease, "pos", &format!("k{lease}")).await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        // What the rater can see, text aside: every number in the payloads.
        let mut numbers = Vec::new();
        collect_numbers(&body, &mut numbers);
        collect_numbers(&reply, &mut numbers);
        seen.push((body.clone(), reply, took, gold, numbers));
    }
    assert!(seen.len() >= 800, "{} items", seen.len());
    let gold_count = seen.iter().filter(|s| s.3).count();
    assert!((100..=300).contains(&gold_count), "{gold_count} gold items");
    // No item id anywhere in what the rater was sent.
    for (assignment, reply, ..) in &seen {
        assert!(
            assignment["item"].get("id").is_none() && assignment["lease"].get("item_id").is_none(),
            "{assignment}"
        );
        assert!(reply["response"].get("item_id").is_none(), "{reply}");
    }
    // Same payload shape, gold or not.
    let shapes = |gold: bool| -> std::collections::BTreeSet<String> {
        seen.iter()
            .filter(|s| s.3 == gold)
            .map(|s| format!("{:?}{:?}", keys(&s.0), keys(&s.1)))
            .collect()
    };
    assert_eq!(shapes(true), shapes(false));
    // No number, no position and no timing separates them better than chance.
    let features: Vec<(&str, Vec<f64>)> = {
        let mut features = vec![
            (
                "position",
                (0..seen.len()).map(|i| i as f64).collect::<Vec<_>>(),
            ),
            ("next latency", seen.iter().map(|s| s.2).collect()),
        ];
        let width = seen[0].4.len();
        for k in 0..width {
            features.push((
                "payload number",
                seen.iter()
                    .map(|s| s.4.get(k).copied().unwrap_or(0.0))
                    .collect(),
            ));
        }
        features
    };
    for (name, values) in features {
        let labelled: Vec<(f64, bool)> = values.into_iter().zip(seen.iter().map(|s| s.3)).collect();
        let (accuracy, baseline) = threshold_rule(&labelled);
        assert!(
            accuracy <= baseline + 0.06,
            "{name} tells gold apart: {accuracy:.3} vs {baseline:.3} by always guessing regular"
        );
    }
}

fn collect_numbers(value: &Value, out: &mut Vec<f64>) {
    match value {
        Value::Number(n) => out.push(n.as_f64().unwrap_or(0.0)),
        Value::Object(map) => map.values().for_each(|v| collect_numbers(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_numbers(v, out)),
        _ => {}
    }
}

fn keys(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(keys(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Finding 11: reviewers' heaviest analyses (here: boards with 10,000 bootstrap rounds on
/// separable votes) neither stall the server for others nor run for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_analyses_wait_their_turn_and_separable_boards_stop_early() {
    use crate::evaluation::{post_lines, prefer, vote_all};
    let server = Server::start().await;
    let prompts = server
        .project(json!({"fields": [{"name": "question", "kind": "text"}], "questions": [{"name": "ok", "kind": "label", "options": ["yes", "no"]}]}), 1)
        .await;
    assert_eq!(
        server
            .import(
                prompts,
                "{\"external_id\": \"p0\", \"fields\": {\"question\": \"q\"}}\n"
            )
            .await
            .0,
        StatusCode::OK
    );
    let mut lines = String::new();
    for model in ["m-good", "m-local", "m-weak", "m-last"] {
        lines.push_str(&format!(
            "{{\"prompt_id\": \"p0\", \"model\": \"{model}\", \"response\": \"{} answer\"}}\n",
            model.trim_start_matches("m-")
        ));
    }
    assert_eq!(
        post_lines(
            &server,
            &format!("/api/v1/projects/{prompts}/generations"),
            &lines
        )
        .await
        .0,
        StatusCode::OK
    );
    let (status, body) = post(
        &server,
        &server.admin_token,
        &format!("/api/v1/projects/{prompts}/battles"),
        Some(json!({"name": "arena", "sampling": {"kind": "all_pairs"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let arena = body["project"]["id"].as_i64().unwrap();
    // One rater, a strict order: six battles, every one decided the same way (separable).
    let token = server.rater("judge", arena, "annotator", &[]).await;
    assert_eq!(
        vote_all(&server, &token, arena, prefer("good", "local")).await,
        6
    );
    let boards: Vec<_> = (0..4)
        .map(|_| {
            let server = &server;
            async move {
                let started = std::time::Instant::now();
                let (status, body) = server
                    .call(
                        &server.admin_token,
                        Method::GET,
                        &format!("/api/v1/projects/{arena}/leaderboard?bootstrap=10000"),
                        None,
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                started.elapsed()
            }
        })
        .collect();
    let probe = async {
        let mut latencies = Vec::new();
        for _ in 0..60 {
            let started = std::time::Instant::now();
            let response = server
                .client
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            latencies.push(started.elapsed());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        latencies.sort();
        latencies[latencies.len() * 99 / 100]
    };
    let (took, p99) = tokio::join!(futures_util::future::join_all(boards), probe);
    assert!(
        p99 < std::time::Duration::from_millis(50),
        "/healthz p99 {p99:?} while boards were computed"
    );
    let slowest = took.into_iter().max().unwrap();
    assert!(
        slowest < std::time::Duration::from_secs(30),
        "four boards took {slowest:?}"
    );
}

/// Finding 12: odd HTTP methods do not grow the metrics without bound, and the operator can
/// keep `/metrics` for their scraper.
#[tokio::test]
async fn metrics_stay_small_and_can_be_kept_private() {
    let server = Server::start_with(quorum_server::HttpSettings {
        metrics_token: Some("scrape-secret".into()),
        ..quorum_server::HttpSettings::default()
    })
    .await;
    for i in 0..300 {
        let method = Method::from_bytes(format!("PROBE{i}").as_bytes()).unwrap();
        server
            .client
            .request(method, format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
    }
    let (status, _) = server.call("wrong", Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let unauthenticated = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let (status, text) = server
        .call("scrape-secret", Method::GET, "/metrics", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(
        !text.contains("PROBE"),
        "unknown methods get no label of their own"
    );
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(text.len() < 20_000, "{} bytes", text.len());
}

/// Finding 19: a rating scale as wide as an integer is refused before it reaches a browser.
#[tokio::test]
async fn rating_scales_are_bounded() {
    let server = Server::start().await;
    for (min, max) in [(i64::MIN, i64::MAX), (0, 1000)] {
        let schema = json!({"fields": [{"name": "text", "kind": "text"}], "questions": [{"name": "score", "kind": "rating", "min": min, "max": max}]});
        let (status, body) = post(
            &server,
            &server.admin_token,
            "/api/v1/projects",
            Some(json!({"name": "wide", "schema": schema})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("101 points"),
            "{body}"
        );
    }
}

/// Finding 17: pages carry a policy that allows no inline or foreign script and no framing;
/// over HTTPS cookies are Secure; a project can keep raters' browsers to its own image hosts.
#[tokio::test]
async fn browsers_are_told_what_to_refuse() {
    let server = Server::start_with(quorum_server::HttpSettings {
        https: true,
        ..quorum_server::HttpSettings::default()
    })
    .await;
    let page = server
        .client
        .get(format!("{}/login", server.base))
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        page.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let policy = header("content-security-policy").expect("a CSP");
    for part in [
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(part), "{policy}");
    }
    assert!(
        !policy.contains("script-src 'self' 'unsafe-inline'"),
        "{policy}"
    );
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"));
    assert!(header("referrer-policy").is_some());
    assert!(header("strict-transport-security").is_some());
    assert!(header("set-cookie").unwrap().contains("; Secure"));
    let cookie = crate::web::sign_in(&server, "admin", "administrator").await;
    let cookie = cookie.unwrap();
    assert!(!cookie.is_empty());

    // Images only from the hosts the schema lists.
    let schema = json!({
        "fields": [{"name": "photo", "kind": "image", "hosts": ["images.example.org"]}],
        "questions": [{"name": "label", "kind": "label", "options": ["cat", "dog"]}]
    });
    let (status, body) = post(
        &server,
        &server.admin_token,
        "/api/v1/projects",
        Some(json!({"name": "photos", "schema": schema})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let p = body["project"]["id"].as_i64().unwrap();
    let (status, body) = server
        .import(p, "{\"fields\": {\"photo\": \"https://images.example.org/1.png\"}}\n{\"fields\": {\"photo\": \"https://tracker.example.net/1.png\"}}\n")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"]["rejected"][0]["row"], 2, "{body}");
    let (status, _) = server
        .import(
            p,
            "{\"fields\": {\"photo\": \"https://images.example.org/1.png\"}}\n",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(&server, &server.admin_token, "/api/v1/projects", Some(json!({"name": "bad", "schema": {"fields": [{"name": "t", "kind": "text", "hosts": ["x.org"]}], "questions": [{"name": "l", "kind": "label", "options": ["a", "b"]}]}}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let work = reqwest::Client::new()
        .get(format!("{}/projects/{p}/work", server.base))
        .header(
            "cookie",
            crate::web::sign_in(&server, "admin", "administrator")
                .await
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let policy = work.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("img-src 'self' data: https://images.example.org;"),
        "{policy}"
    );
}
