//! Webhooks over HTTP: subscriptions on the project boundary, events delivered to a real
//! receiver on loopback that fails, recovers and is given up on, signatures checked with the
//! README's Python recipe, secrets rotated with an overlap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Server;

/// What a receiver got, and how it answers: `fail_first` requests get a 500, then 204s;
/// `always_fail` makes every answer a 503.
#[derive(Default)]
struct Receiver {
    got: Vec<(HeaderMap, Bytes)>,
    fail_first: usize,
    always_fail: bool,
    answered: usize,
}

type Shared = Arc<Mutex<Receiver>>;

async fn receive(State(receiver): State<Shared>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let mut receiver = receiver.lock().unwrap();
    receiver.answered += 1;
    if receiver.always_fail {
        return AxumStatus::SERVICE_UNAVAILABLE;
    }
    if receiver.answered <= receiver.fail_first {
        return AxumStatus::INTERNAL_SERVER_ERROR;
    }
    receiver.got.push((headers, body));
    AxumStatus::NO_CONTENT
}

/// A receiver on a loopback port; its URL.
async fn receiver(state: Receiver) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(state));
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, shared)
}

/// A server whose sender retries within milliseconds and gives up after `give_up`.
async fn server(give_up: Duration) -> Server {
    let mut runner = quorum_app::jobs::RunnerSettings::default();
    runner.deliveries.poll = Duration::from_millis(20);
    runner.deliveries.backoff = Duration::from_millis(30);
    runner.deliveries.give_up_after = give_up;
    Server::start_configured(quorum_server::HttpSettings::default(), runner).await
}

fn schema() -> Value {
    json!({
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": ["yes", "no"], "required": true}]
    })
}

/// Waits until `done` holds of the receiver (at most 20 s).
async fn until(receiver: &Shared, done: impl Fn(&Receiver) -> bool) {
    for _ in 0..1000 {
        if done(&receiver.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the receiver did not get what was expected in 20 s");
}

/// Runs the README's verification recipe with python3 on each (header, body, secret); its
/// answers in order.
fn python_verifies(cases: &[(String, Vec<u8>, String)]) -> Vec<bool> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let after = readme
        .split("<!-- webhook-verify.py")
        .nth(1)
        .expect("the README documents the recipe");
    let recipe = after
        .split("```python\n")
        .nth(1)
        .and_then(|code| code.split("```").next())
        .expect("the recipe is a python block");
    let driver = r#"
import json, sys
for case in json.load(sys.stdin):
    print(verify(case["header"], bytes.fromhex(case["body"]), case["secret"]))
"#;
    let input: Vec<Value> = cases
        .iter()
        .map(|(header, body, secret)| {
            json!({"header": header, "body": hex_of(body), "secret": secret})
        })
        .collect();
    let mut child = std::process::Command::new("python3")
        .args(["-c", &format!("{recipe}{driver}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the README's recipe");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line == "True")
        .collect()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers[name].to_str().unwrap().to_string()
}

/// Answers become signed events at a receiver that fails twice and then recovers: every event
/// arrives once it does, each with its own id, retried deliveries logged with their attempts,
/// and the README's Python recipe accepts every signature (and refuses a wrong secret or a
/// changed body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_receiver_that_fails_then_recovers_signed() {
    let server = server(Duration::from_secs(3600)).await;
    let (url, got) = receiver(Receiver {
        fail_first: 2,
        ..Receiver::default()
    })
    .await;
    let project = server.project(schema(), 1).await;
    let items = (0..3)
        .map(|i| format!("{{\"external_id\": \"i{i}\", \"fields\": {{\"text\": \"t{i}\"}}}}\n"))
        .collect::<String>();
    assert_eq!(server.import(project, &items).await.0, StatusCode::OK);
    let (status, created) = server
        .call(
            &server.admin_token,
            Method::POST,
            &format!("/api/v1/projects/{project}/webhooks"),
            Some(json!({"url": url, "events": ["response.created", "item.completed"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let hook = created["webhook"]["id"].as_i64().unwrap();
    assert!(created["webhook"].get("secret").is_none());

    let rater = server.rater("r", project, "annotator", &[]).await;
    let answered = server
        .answer_all(&rater, project, |_| json!({"label": "yes"}))
        .await;
    assert_eq!(answered, 3);
    until(&got, |r| r.got.len() == 6).await;

    let received = got.lock().unwrap().got.clone();
    let mut ids = std::collections::HashSet::new();
    let mut kinds = Vec::new();
    for (headers, body) in &received {
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["version"], 1);
        assert_eq!(payload["project_id"], project);
        assert_eq!(
            header(headers, "quorum-event-id"),
            payload["id"].as_str().unwrap()
        );
        assert_eq!(
            header(headers, "quorum-event"),
            payload["type"].as_str().unwrap()
        );
        assert_eq!(header(headers, "content-type"), "application/json");
        assert!(ids.insert(payload["id"].as_str().unwrap().to_string()));
        match payload["type"].as_str().unwrap() {
            "response.created" => {
                assert_eq!(payload["data"]["answers"], json!({"label": "yes"}));
                assert_eq!(payload["data"]["user"], "r");
                assert!(
                    payload["data"]["external_id"]
                        .as_str()
                        .unwrap()
                        .starts_with('i')
                );
            }
            "item.completed" => {
                assert_eq!(payload["data"]["reason"], "overlap");
                assert_eq!(payload["data"]["responses"], 1);
            }
            other => panic!("unexpected event {other}"),
        }
        kinds.push(payload["type"].as_str().unwrap().to_string());
    }
    kinds.sort();
    assert_eq!(kinds.iter().filter(|k| *k == "response.created").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "item.completed").count(), 3);

    // The README's recipe, in Python, accepts every delivery's signature, and refuses a wrong
    // secret and a changed body.
    let mut cases: Vec<(String, Vec<u8>, String)> = received
        .iter()
        .map(|(headers, body)| {
            (
                header(headers, "quorum-signature"),
                body.to_vec(),
                secret.clone(),
            )
        })
        .collect();
    let (signature, body, _) = cases[0].clone();
    cases.push((signature.clone(), body.clone(), "whsec_wrong".into()));
    let mut changed = body.clone();
    changed.extend_from_slice(b" ");
    cases.push((signature, changed, secret.clone()));
    let verdicts = python_verifies(&cases);
    assert_eq!(verdicts.len(), 8);
    assert!(verdicts[..6].iter().all(|v| *v), "{verdicts:?}");
    assert_eq!(&verdicts[6..], [false, false]);

    // The log: every delivery delivered; the two refusals were retried.
    let (status, log) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/webhooks/{hook}/deliveries"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 6);
    assert!(
        deliveries
            .iter()
            .all(|d| d["state"] == "delivered" && d["last_status"] == 204)
    );
    let attempts: i64 = deliveries
        .iter()
        .map(|d| d["attempts"].as_i64().unwrap())
        .sum();
    assert_eq!(attempts, 8, "{log}");
}

/// A receiver that never answers well is given up on after the retry window; the subscription
/// shows it, `redeliver` queues the failures again, and a success clears the mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_given_up_on_and_redelivered_to() {
    let server = server(Duration::from_millis(300)).await;
    let (url, got) = receiver(Receiver {
        always_fail: true,
        ..Receiver::default()
    })
    .await;
    let project = server.project(schema(), 1).await;
    let items = "{\"external_id\": \"a\", \"fields\": {\"text\": \"t\"}}\n";
    assert_eq!(server.import(project, items).await.0, StatusCode::OK);
    let (status, created) = server
        .call(
            &server.admin_token,
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": url, "events": ["item.completed"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let hook = created["webhook"]["id"].as_i64().unwrap();
    let rater = server.rater("r", project, "annotator", &[]).await;
    server
        .answer_all(&rater, project, |_| json!({"label": "no"}))
        .await;
    let log_path = format!("/api/v1/webhooks/{hook}/deliveries");
    let mut given_up = Value::Null;
    for _ in 0..250 {
        given_up = server
            .call(&server.admin_token, Method::GET, &log_path, None)
            .await
            .1;
        if given_up["deliveries"][0]["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivery = &given_up["deliveries"][0];
    assert_eq!(delivery["state"], "failed", "{given_up}");
    assert_eq!(delivery["last_status"], 503);
    assert!(delivery["attempts"].as_i64().unwrap() >= 2, "{given_up}");
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    let (_, hook_now) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/webhooks/{hook}"),
            None,
        )
        .await;
    assert!(hook_now["webhook"]["failing_since"].is_i64(), "{hook_now}");

    // The receiver is fixed; every failed delivery is queued again and arrives.
    got.lock().unwrap().always_fail = false;
    let (status, queued) = server
        .call(
            &server.admin_token,
            Method::POST,
            &format!("/api/v1/webhooks/{hook}/redeliver"),
            None,
        )
        .await;
    assert_eq!((status, &queued), (StatusCode::OK, &json!({"queued": 1})));
    until(&got, |r| r.got.len() == 1).await;
    for _ in 0..250 {
        let (_, hook_now) = server
            .call(
                &server.admin_token,
                Method::GET,
                &format!("/api/v1/webhooks/{hook}"),
                None,
            )
            .await;
        if hook_now["webhook"]["failing_since"].is_null() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the success did not clear the failing mark");
}

/// Subscriptions keep to the project boundary: managers of the project only (its annotators and
/// reviewers get 403, another project's manager 404 on every route, instance-wide ones are
/// administrators'), and bad input is refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_managed_where_their_project_is() {
    let server = server(Duration::from_secs(3600)).await;
    let (url, _) = receiver(Receiver::default()).await;
    let mine = server.project(schema(), 1).await;
    let theirs = server.project(schema(), 1).await;
    let manager = server.rater("m", mine, "manager", &[]).await;
    let annotator = server.rater("a", mine, "annotator", &[]).await;
    let outsider = server.rater("o", theirs, "manager", &[]).await;
    let path = format!("/api/v1/projects/{mine}/webhooks");
    let body = json!({"url": url, "events": ["run.finished"]});
    let (status, created) = server
        .call(&manager, Method::POST, &path, Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let hook = created["webhook"]["id"].as_i64().unwrap();
    // Every webhook route: a lower role of the project gets 403, a manager of another
    // project 404 (ids tell nothing), and instance-wide subscriptions are administrators'.
    let reviewer = server.rater("r", mine, "reviewer", &[]).await;
    let one = format!("/api/v1/webhooks/{hook}");
    let routes = [
        (Method::POST, path.clone(), Some(body.clone())),
        (Method::GET, path.clone(), None),
        (Method::GET, one.clone(), None),
        (Method::DELETE, one.clone(), None),
        (Method::POST, format!("{one}/rotate"), None),
        (Method::GET, format!("{one}/deliveries"), None),
        (Method::POST, format!("{one}/redeliver"), None),
    ];
    for (method, route, request) in &routes {
        for (token, expected) in [
            (&annotator, StatusCode::FORBIDDEN),
            (&reviewer, StatusCode::FORBIDDEN),
            (&outsider, StatusCode::NOT_FOUND),
        ] {
            let (status, reply) = server
                .call(token, method.clone(), route, request.clone())
                .await;
            assert_eq!(status, expected, "{method} {route}: {reply}");
        }
    }
    for method in [Method::GET, Method::POST] {
        let (status, _) = server
            .call(&manager, method, "/api/v1/webhooks", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, listed) = server.call(&manager, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);

    for (bad, field) in [
        (
            json!({"url": "ftp://x.example/h", "events": ["run.finished"]}),
            "url",
        ),
        (
            json!({"url": "not a url", "events": ["run.finished"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@x.example/h", "events": ["run.finished"]}),
            "url",
        ),
        (json!({"url": url, "events": []}), "events"),
        (
            json!({"url": url, "events": ["run.finished", "run.finished"]}),
            "events",
        ),
    ] {
        let (status, refused) = server.call(&manager, Method::POST, &path, Some(bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["error"]["details"]["field"], field, "{refused}");
    }
    let (status, refused) = server
        .call(
            &manager,
            Method::POST,
            &path,
            Some(json!({"url": url, "events": ["item.deleted"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // Rotation: a new secret, the old one still signing until the overlap ends.
    let (status, rotated) = server
        .call(
            &manager,
            Method::POST,
            &format!("/api/v1/webhooks/{hook}/rotate"),
            Some(json!({"overlap_ms": 60000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["secret"], created["secret"]);
    assert!(rotated["webhook"]["previous_secret_until"].is_i64());
    let (status, _) = server
        .call(
            &manager,
            Method::DELETE,
            &format!("/api/v1/webhooks/{hook}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .call(
            &manager,
            Method::GET,
            &format!("/api/v1/webhooks/{hook}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The web app: a manager adds a webhook with a form (the secret shown once), its deliveries
/// are listed with their state and the receiver's status, the dashboard says when deliveries
/// are given up on, and "Redeliver failed" queues them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_see_and_steer_webhooks_in_the_web_app() {
    let server = server(Duration::from_millis(300)).await;
    let (url, got) = receiver(Receiver {
        always_fail: true,
        ..Receiver::default()
    })
    .await;
    let project = server.project(schema(), 1).await;
    let items = "{\"external_id\": \"a\", \"fields\": {\"text\": \"t\"}}\n";
    assert_eq!(server.import(project, items).await.0, StatusCode::OK);
    let cookie = crate::web::sign_in(&server, "admin", "administrator")
        .await
        .unwrap();
    let page = format!("/projects/{project}/webhooks");
    let (status, html) = crate::web::get(&server, &cookie, &page).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = crate::web::csrf_of(&html);
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (base, cookie) = (server.base.clone(), cookie.clone());
        async move {
            let response = client
                .post(format!("{base}{path}"))
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let form = vec![
        ("csrf", csrf.clone()),
        ("url", url.clone()),
        ("events", "response.created".to_string()),
        ("events", "item.completed".to_string()),
    ];
    let (status, html) = post(page.clone(), form).await;
    assert_eq!(status, StatusCode::CREATED, "{html}");
    assert!(html.contains("whsec_"), "the secret is shown once");
    let (_, listed) = crate::web::get(&server, &cookie, &page).await;
    assert!(!listed.contains("whsec_"), "and never again");
    assert!(listed.contains("response.created, item.completed"));
    // A stale form is refused.
    let (status, _) = post(
        page.clone(),
        vec![("csrf", "x".into()), ("url", url.clone())],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let rater = server.rater("r", project, "annotator", &[]).await;
    server
        .answer_all(&rater, project, |_| json!({"label": "yes"}))
        .await;
    let mut html = String::new();
    for _ in 0..250 {
        html = crate::web::get(&server, &cookie, &page).await.1;
        if html.matches("<td>failed</td>").count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(html.matches("<td>failed</td>").count(), 2, "{html}");
    assert!(html.contains("<td>503</td>"));
    let (_, dashboard) = crate::web::get(&server, &cookie, &format!("/projects/{project}")).await;
    assert!(
        dashboard.contains("have been given up on since"),
        "{dashboard}"
    );

    got.lock().unwrap().always_fail = false;
    let hook = html
        .split(&format!("/projects/{project}/webhooks/"))
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    let (status, html) = post(
        format!("{page}/{hook}/redeliver"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("2 failed deliveries queued again"), "{html}");
    until(&got, |r| r.got.len() == 2).await;
    let (status, html) = post(
        format!("{page}/{hook}/rotate"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("whsec_") && html.contains("The previous secret also signs until"));
    let (status, _) = post(format!("{page}/{hook}/delete"), vec![("csrf", csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, html) = crate::web::get(&server, &cookie, &page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Add a webhook") && !html.contains("Redeliver failed"));
}
