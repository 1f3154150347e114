//! Background jobs over HTTP: who may see them, and how they page.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::security::{post, slow_provider};
use crate::support::Server;

/// The jobs endpoints keep to the project boundary: a project's jobs for its reviewers and
/// managers, every job for administrators, nothing of another project's (404, ids leak
/// nothing), and pages that follow `before`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_seen_only_where_their_project_is() {
    let server = Server::start().await;
    let (base, _) = slow_provider(std::time::Duration::from_millis(10)).await;
    let schema = json!({
        "fields": [{"name": "prompt", "kind": "text"}],
        "questions": [{"name": "ok", "kind": "label", "options": ["yes", "no"]}]
    });
    let mine = server.project(schema.clone(), 1).await;
    let theirs = server.project(schema, 1).await;
    for p in [mine, theirs] {
        let prompts = "{\"external_id\": \"p\", \"fields\": {\"prompt\": \"q\"}}\n";
        assert_eq!(server.import(p, prompts).await.0, StatusCode::OK);
    }
    let admin = server.admin_token.clone();
    for name in ["m1", "m2"] {
        let (status, body) = post(
            &server,
            &admin,
            "/api/v1/models",
            Some(json!({"name": name, "base_url": base})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = post(
        &server,
        &admin,
        &format!("/api/v1/projects/{mine}/runs"),
        Some(json!({"models": ["m1", "m2"]})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mine_jobs: Vec<i64> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    let (status, body) = post(
        &server,
        &admin,
        &format!("/api/v1/projects/{theirs}/runs"),
        Some(json!({"models": ["m1"]})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let their_job = body["jobs"][0]["id"].as_i64().unwrap();

    let reviewer = server.rater("rev", mine, "reviewer", &[]).await;
    let annotator = server.rater("ann", mine, "annotator", &[]).await;
    let get = |token: String, path: String| {
        let server = &server;
        async move { server.call(&token, Method::GET, &path, None).await }
    };
    // The reviewer sees their project's jobs, newest first, paged by `before`.
    let (status, body) = get(reviewer.clone(), format!("/api/v1/projects/{mine}/jobs")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<i64> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![mine_jobs[1], mine_jobs[0]]);
    let (_, body) = get(
        reviewer.clone(),
        format!(
            "/api/v1/projects/{mine}/jobs?before={}&limit=1",
            mine_jobs[1]
        ),
    )
    .await;
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["jobs"][0]["id"], mine_jobs[0]);
    let (status, _) = get(reviewer.clone(), format!("/api/v1/jobs/{}", mine_jobs[0])).await;
    assert_eq!(status, StatusCode::OK);
    // Nothing of the other project's, and not the list of every job.
    let (status, _) = get(reviewer.clone(), format!("/api/v1/jobs/{their_job}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(reviewer.clone(), format!("/api/v1/projects/{theirs}/jobs")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(reviewer.clone(), "/api/v1/jobs".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An annotator of the project reads no jobs.
    let (status, _) = get(annotator.clone(), format!("/api/v1/projects/{mine}/jobs")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The administrator sees all three.
    let (_, body) = get(admin.clone(), "/api/v1/jobs".into()).await;
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(3), "{body}");
}
