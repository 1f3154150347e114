use std::collections::{HashMap, HashSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, label_schema};

fn contains_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map.contains_key(key) || map.values().any(|v| contains_key(v, key)),
        Value::Array(list) => list.iter().any(|v| contains_key(v, key)),
        _ => false,
    }
}

#[tokio::test]
async fn raters_see_only_their_leases_never_gold_and_nothing_of_other_projects() {
    let server = Server::start().await;
    let a = server.project(label_schema(), 2).await;
    let b = server.project(label_schema(), 2).await;
    let (status, _) = server
        .import(
            a,
            r#"{"external_id": "g1", "fields": {"text": "gold item"}, "gold": {"label": "pos"}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server
        .import(b, r#"{"fields": {"text": "secret of b"}}"#)
        .await;
    let rater = server.rater("rita", a, "annotator", &[]).await;
    let other = server.rater("otto", a, "annotator", &[]).await;

    let (status, body) = server
        .call(
            &rater,
            Method::POST,
            &format!("/api/v1/projects/{a}/next"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !contains_key(&body, "gold"),
        "a rater must never see gold: {body}"
    );
    assert_eq!(body["item"]["fields"]["text"], "gold item");
    let lease = body["lease"]["id"].as_i64().unwrap();

    // Project B does not exist as far as this rater can tell.
    for (method, path) in [
        (Method::GET, format!("/api/v1/projects/{b}")),
        (Method::POST, format!("/api/v1/projects/{b}/next")),
        (Method::GET, format!("/api/v1/projects/{b}/stats")),
        (Method::GET, format!("/api/v1/projects/{b}/export")),
    ] {
        let (status, body) = server.call(&rater, method, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (_, listed) = server
        .call(&rater, Method::GET, "/api/v1/projects", None)
        .await;
    assert_eq!(listed["projects"].as_array().unwrap().len(), 1);
    // Managers' actions are refused in their own project.
    for (method, path) in [
        (Method::GET, format!("/api/v1/projects/{a}/stats")),
        (Method::GET, format!("/api/v1/projects/{a}/export")),
        (Method::POST, format!("/api/v1/projects/{a}/members")),
    ] {
        let body = (method == Method::POST).then(|| json!({"user": "otto", "role": "manager"}));
        let (status, _) = server.call(&rater, method, &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    // Another rater cannot answer or skip Rita's lease: it does not exist for them.
    let (status, _) = server
        .call(
            &other,
            Method::POST,
            &format!("/api/v1/leases/{lease}/response"),
            Some(json!({"answers": {"label": "pos"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call(
            &other,
            Method::POST,
            &format!("/api/v1/leases/{lease}/skip"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // No token, a wrong token.
    let (status, body) = server.call("", Method::GET, "/api/v1/projects", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
    let (status, _) = server
        .call("qrm_not_a_token", Method::GET, "/api/v1/projects", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Raters cannot create projects.
    let (status, _) = server
        .call(
            &rater,
            Method::POST,
            "/api/v1/projects",
            Some(json!({"name": "x", "schema": label_schema()})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn imports_are_all_or_nothing_and_update_by_external_id() {
    let server = Server::start().await;
    let p = server.project(label_schema(), 1).await;
    let bad = "{\"external_id\": \"1\", \"fields\": {\"text\": \"ok\"}}\n\n{\"fields\": {\"txt\": \"typo\"}}\n{\"fields\": {\"text\": 5}}\n";
    let (status, body) = server.import(p, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "rows_rejected");
    let rejected = body["error"]["details"]["rejected"].as_array().unwrap();
    assert_eq!(rejected[0]["row"], 3);
    assert_eq!(
        rejected[0]["error"],
        "fields.txt: the schema has no such field"
    );
    assert_eq!(rejected[1]["row"], 4);
    assert_eq!(rejected[1]["error"], "fields.text: must be a string");
    let (_, stats) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{p}/stats"),
            None,
        )
        .await;
    assert_eq!(
        stats["stats"]["items"], 0,
        "nothing of a rejected import is written"
    );

    let good = json!([{"external_id": "1", "fields": {"text": "one"}}, {"external_id": "2", "fields": {"text": "two"}}]);
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::POST,
            &format!("/api/v1/projects/{p}/items"),
            Some(good),
        )
        .await;
    assert_eq!(
        (status, body["created"].as_u64(), body["updated"].as_u64()),
        (StatusCode::OK, Some(2), Some(0))
    );
    let (_, body) = server
        .import(
            p,
            "{\"external_id\": \"2\", \"fields\": {\"text\": \"two, fixed\"}}",
        )
        .await;
    assert_eq!(
        (body["created"].as_u64(), body["updated"].as_u64()),
        (Some(0), Some(1))
    );
    let csv =
        "external_id,text,category,gold.label\n3,\"three, with a comma\",news,pos\n4,four,,\n";
    let (status, body) = server.import_as(p, "text/csv", csv).await;
    assert_eq!(
        (status, body["created"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{body}"
    );
    let (status, body) = server
        .import_as(p, "text/csv", "external_id,txt\n5,x\n")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("CSV column `txt` is not a field"),
        "{body}"
    );
    let (_, body) = server
        .import_as(p, "text/csv", "external_id,text,priority\n6,six,high\n")
        .await;
    assert_eq!(body["error"]["details"]["rejected"][0]["row"], 2, "{body}");
    assert_eq!(
        body["error"]["details"]["rejected"][0]["error"],
        "priority `high` is not a whole number"
    );
    let (status, body) = server.import(p, "[{\"fields\": ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the body is not a JSON array")
    );
}

#[tokio::test]
async fn answers_are_validated_idempotent_and_exported() {
    let server = Server::start().await;
    let p = server.project(label_schema(), 1).await;
    server
        .import(
            p,
            "{\"external_id\": \"x\", \"fields\": {\"text\": \"a \\\"quoted\\\", text\"}}",
        )
        .await;
    let rater = server.rater("rita", p, "annotator", &[]).await;
    let (_, body) = server
        .call(
            &rater,
            Method::POST,
            &format!("/api/v1/projects/{p}/next"),
            None,
        )
        .await;
    let lease = body["lease"]["id"].as_i64().unwrap();
    let path = format!("/api/v1/leases/{lease}/response");
    let (status, body) = server
        .call(
            &rater,
            Method::POST,
            &path,
            Some(json!({"answers": {"label": "maybe"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"]["question"], "label");
    let (status, _) = server
        .call(&rater, Method::POST, &path, Some(json!({"answers": {}})))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the required question is missing"
    );
    let (status, body) = server
        .call(&rater, Method::POST, &path, Some(json!("not an object")))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let send = |key: &'static str| {
        server
            .client
            .post(format!("{}{path}", server.base))
            .bearer_auth(&rater)
            .header("Idempotency-Key", key)
            .json(&json!({"answers": {"label": "pos"}, "time_spent_ms": 4200}))
            .send()
    };
    let first = send("k-1").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let retry = send("k-1").await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["replayed"], true);
    assert_eq!(retry["response"], first["response"]);
    let again = send("k-2").await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "a lease takes one response"
    );

    let (status, _) = server
        .call(
            &rater,
            Method::POST,
            &format!("/api/v1/projects/{p}/next"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    for (format, expected) in [
        ("jsonl", "\"answers\":{\"label\":\"pos\"}"),
        (
            "csv",
            "response_id,item_id,external_id,user,answers,time_spent_ms,created_at\n1,1,x,rita,\"{\"\"label\"\":\"\"pos\"\"}\",4200,",
        ),
    ] {
        let text = server.export(p, format).await;
        assert!(text.contains(expected), "{format}: {text}");
    }
    let (status, _) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{p}/export?format=xml"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // `file` is for the aggregates, and only JSON Lines or Parquet; each refusal names it.
    for query in ["format=jsonl&file=parquet", "format=consensus&file=csv"] {
        let (status, body) = server
            .call(
                &server.admin_token,
                Method::GET,
                &format!("/api/v1/projects/{p}/export?{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["error"]["details"]["field"], "file", "{query}: {body}");
    }
    let response = server
        .client
        .get(format!(
            "{}/api/v1/projects/{p}/export?format=consensus&file=parquet",
            server.base
        ))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
}

#[tokio::test]
async fn sixty_four_raters_over_http_never_overshoot() {
    let server = Server::start().await;
    let p = server.project(label_schema(), 3).await;
    let items: String = (0..50)
        .map(|i| format!("{{\"external_id\": \"{i}\", \"fields\": {{\"text\": \"t{i}\"}}}}\n"))
        .collect();
    server.import(p, &items).await;
    let mut tokens = Vec::new();
    for r in 0..64 {
        tokens.push(server.rater(&format!("r{r}"), p, "annotator", &[]).await);
    }
    let mut tasks = Vec::new();
    for token in tokens {
        let (client, base) = (server.client.clone(), server.base.clone());
        tasks.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            loop {
                let response = client
                    .post(format!("{base}/api/v1/projects/{p}/next"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                if response.status() == StatusCode::NO_CONTENT {
                    return (token, answered);
                }
                let body: Value = response.json().await.unwrap();
                let lease = body["lease"]["id"].as_i64().unwrap();
                let submitted = client
                    .post(format!("{base}/api/v1/leases/{lease}/response"))
                    .bearer_auth(&token)
                    .json(&json!({"answers": {"label": "pos"}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(submitted.status(), StatusCode::CREATED);
                // Raters never see item ids: the text tells the items apart.
                answered.push(body["item"]["fields"]["text"].as_str().unwrap().to_string());
            }
        }));
    }
    let mut per_item: HashMap<String, usize> = HashMap::new();
    let mut pairs = HashSet::new();
    for task in tasks {
        let (token, answered) = task.await.unwrap();
        for item in answered {
            *per_item.entry(item.clone()).or_default() += 1;
            assert!(
                pairs.insert((token.clone(), item)),
                "a rater answered an item twice"
            );
        }
    }
    assert_eq!(per_item.len(), 50);
    assert!(per_item.values().all(|&n| n == 3), "{per_item:?}");
}

#[tokio::test]
async fn oversized_bodies_unknown_routes_health_and_metrics() {
    let server = Server::start().await;
    let big = "x".repeat(2 << 20);
    let response = server
        .client
        .post(format!("{}/api/v1/projects", server.base))
        .bearer_auth(&server.admin_token)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = server
        .call(&server.admin_token, Method::GET, "/api/v1/nothing", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let health = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "quorum_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "quorum_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 1"
        )
    );
    for line in [
        "quorum_outbox_pending 0",
        "quorum_outbox_oldest_due_seconds 0",
        "quorum_tally_oldest_seconds 0",
        "# TYPE quorum_leases_expired_total counter",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

/// The (method, path) pairs `api.rs` routes, read from its source: each `.route("PATH", …)`
/// and the method functions (`get(`, `.post(`, `delete(` …) in its handler expression.
fn routed_operations() -> HashSet<(String, String)> {
    let source = include_str!("../../src/api/mod.rs");
    let mut operations = HashSet::new();
    for rest in source.split(".route(").skip(1) {
        let rest = rest.trim_start().trim_start_matches('"');
        let path = rest.split('"').next().unwrap().to_string();
        // The handler expression runs to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let handler = &rest[..end];
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = handler.match_indices(&format!("{method}(")).any(|(i, _)| {
                i == 0 || !handler[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if called {
                operations.insert((method.to_string(), path.clone()));
            }
        }
    }
    operations
}

/// The checked-in OpenAPI document is the one the code generates from its handlers and wire
/// types, so a change to the wire format shows in review as a change to `openapi.json`.
/// `QUORUM_BLESS=1 cargo test` rewrites the file after an intended change.
#[test]
fn the_openapi_document_is_generated_from_the_wire_types() {
    let generated = quorum_server::openapi_document();
    if std::env::var_os("QUORUM_BLESS").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let checked_in = quorum_server::OPENAPI;
    if generated != checked_in {
        let first = generated
            .lines()
            .zip(checked_in.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| generated.lines().count().min(checked_in.lines().count()));
        panic!(
            "openapi.json differs from the generated document from line {}: review the change \
             and run `QUORUM_BLESS=1 cargo test -p quorum-server openapi` to accept it\n\
             generated: {:?}\nchecked in: {:?}",
            first + 1,
            generated.lines().nth(first),
            checked_in.lines().nth(first)
        );
    }
}

/// The checked-in OpenAPI document must describe exactly the operations the router serves, and
/// every one of them must answer (not 405, never 5xx) when called without a body.
#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let server = Server::start().await;
    let served: Value = server
        .client
        .get(format!("{}/api/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let document: Value = serde_json::from_str(quorum_server::OPENAPI).unwrap();
    assert_eq!(served, document);
    let documented: HashSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let routed: HashSet<(String, String)> = routed_operations()
        .into_iter()
        .filter(|(_, path)| path.starts_with("/api/") || path == "/healthz" || path == "/metrics")
        .collect();
    assert_eq!(
        routed, documented,
        "openapi.json is stale: update it with the routes"
    );
    for (method, path) in &documented {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let concrete = path
            .replace("{id}", "1")
            .replace("{token_id}", "1")
            .replace("{user_id}", "1")
            .replace("{hash}", "sha256:none");
        let (status, body) = server
            .call(&server.admin_token, method.clone(), &concrete, None)
            .await;
        assert_ne!(body["error"]["message"], "no such route", "{method} {path}");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !status.is_server_error(),
            "{method} {path}: {status} {body}"
        );
    }
}

/// Every operation that changes something refuses a session cookie without the page's CSRF
/// token (403), whatever the route.
#[tokio::test]
async fn every_state_changing_operation_needs_the_csrf_token() {
    let server = Server::start().await;
    let cookie = crate::web::sign_in(&server, "admin", "administrator")
        .await
        .unwrap();
    let document: Value = serde_json::from_str(quorum_server::OPENAPI).unwrap();
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            if method == "get" {
                continue;
            }
            let concrete = path
                .replace("{id}", "1")
                .replace("{token_id}", "1")
                .replace("{user_id}", "1")
                .replace("{hash}", "x");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .client
                .request(method.clone(), format!("{}{concrete}", server.base))
                .header("cookie", &cookie)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "csrf", "{method} {path}: {body}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} operations");
}
