//! The trust boundary, attacked over HTTP as an outsider or a member of lower rank would.
//! Each test names the finding of the security review it guards against (issue 12).

use quorum_store::Accounts;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::control::items;
use crate::support::{Server, label_schema};

pub(crate) async fn post(
    server: &Server,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    server.call(token, Method::POST, path, body).await
}

pub(crate) async fn next(server: &Server, token: &str, project: i64) -> Option<Value> {
    let (status, body) = post(
        server,
        token,
        &format!("/api/v1/projects/{project}/next"),
        None,
    )
    .await;
    match status {
        StatusCode::OK => Some(body),
        StatusCode::NO_CONTENT => None,
        other => panic!("next: {other} {body}"),
    }
}

/// Posts an answer with an idempotency key; returns the status and the reply.
pub(crate) async fn answer_with_key(
    server: &Server,
    token: &str,
    lease: i64,
    label: &str,
    key: &str,
) -> (StatusCode, Value) {
    let response = server
        .client
        .post(format!("{}/api/v1/leases/{lease}/response", server.base))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"answers": {"label": label}, "time_spent_ms": 1500}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

pub(crate) fn is_gold(assignment: &Value) -> bool {
    assignment["item"]["fields"]["text"]
        .as_str()
        .unwrap()
        .starts_with('g')
}

/// Finding 2: an idempotency key first used on one lease, replayed on a skipped gold lease,
/// must not reveal that lease's gold answer (nor that it is gold).
#[tokio::test]
pub(crate) async fn an_idempotency_key_replays_only_on_its_own_lease_and_says_what_it_said_then() {
    let server = Server::start().await;
    let p = server.project(label_schema(), 1).await;
    server.import(p, &items("g", 30, true)).await;
    server.import(p, &items("r", 30, false)).await;
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::PUT,
            &format!("/api/v1/projects/{p}/quality"),
            Some(json!({"gold_rate": 0.5, "gold_feedback": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = server.rater("eve", p, "annotator", &[]).await;

    // A regular answer under K1, a gold answer under K2 (wrong), then a gold lease skipped.
    let (mut regular, mut gold, mut skipped) = (None, None, None);
    while regular.is_none() || gold.is_none() || skipped.is_none() {
        let assignment = next(&server, &token, p).await.expect("items left");
        let lease = assignment["lease"]["id"].as_i64().unwrap();
        if !is_gold(&assignment) && regular.is_none() {
            let (status, reply) = answer_with_key(&server, &token, lease, "neg", "K1").await;
            assert_eq!(status, StatusCode::CREATED, "{reply}");
            regular = Some((lease, reply));
        } else if is_gold(&assignment) && gold.is_none() {
            let (status, reply) = answer_with_key(&server, &token, lease, "neg", "K2").await;
            assert_eq!(status, StatusCode::CREATED, "{reply}");
            assert_eq!(reply["feedback"]["correct"], json!(false), "{reply}");
            gold = Some((lease, reply));
        } else if is_gold(&assignment) {
            let (status, _) = post(
                &server,
                &token,
                &format!("/api/v1/leases/{lease}/skip"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            skipped = Some(lease);
        } else {
            let (status, _) = post(
                &server,
                &token,
                &format!("/api/v1/leases/{lease}/skip"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
    }
    let skipped = skipped.unwrap();
    // The attack: K1 on the skipped gold lease. Refused, and nothing about the gold comes back.
    let (status, reply) = answer_with_key(&server, &token, skipped, "pos", "K1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert!(!reply.to_string().contains("expected"), "{reply}");
    assert!(!reply.to_string().contains("feedback"), "{reply}");
    // On its own lease, a key replays the original reply exactly, whatever the body says now.
    let (lease, original) = regular.unwrap();
    let (status, replay) = answer_with_key(&server, &token, lease, "pos", "K1").await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay["response"], original["response"]);
    assert_eq!(replay.get("feedback"), None);
    let (lease, original) = gold.unwrap();
    let (status, replay) = answer_with_key(&server, &token, lease, "pos", "K2").await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay["response"], original["response"]);
    assert_eq!(replay["feedback"], original["feedback"]);
}

pub(crate) async fn put_quality(
    server: &Server,
    token: &str,
    project: i64,
    policy: Value,
) -> (StatusCode, Value) {
    server
        .call(
            token,
            Method::PUT,
            &format!("/api/v1/projects/{project}/quality"),
            Some(policy),
        )
        .await
}

/// Finding 1: a manager of one project cannot reach a rater's standing in another through a
/// shared skill name; every shared decision is in the audit log of every project it affects.
#[tokio::test]
pub(crate) async fn a_shared_skill_is_an_administrators_decision_and_logged_everywhere_it_counts() {
    let server = Server::start().await;
    let a = server.project(label_schema(), 1).await;
    let b = server.project(label_schema(), 1).await;
    for p in [a, b] {
        server.import(p, &items("g", 5, true)).await;
    }
    let qualification = |skill: Option<&str>| json!({"qualification": {"gold_items": 2, "min_accuracy": 1.0, "skill": skill}});
    let admin = server.admin_token.clone();
    assert_eq!(
        put_quality(&server, &admin, b, qualification(Some("medical")))
            .await
            .0,
        StatusCode::OK
    );
    let manager = server.rater("mallory", a, "manager", &[]).await;
    let victim = server.rater("victim", a, "annotator", &[]).await;
    let (status, _) = post(
        &server,
        &admin,
        &format!("/api/v1/projects/{b}/members"),
        Some(json!({"user": "victim", "role": "annotator"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // The manager of A cannot name B's skill in A, and their own project-scoped decisions stay
    // in A.
    let (status, body) = put_quality(&server, &manager, a, qualification(Some("medical"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        put_quality(&server, &manager, a, qualification(None))
            .await
            .0,
        StatusCode::OK
    );
    let victim_id = server
        .app
        .store()
        .user_by_name("victim")
        .await
        .unwrap()
        .unwrap()
        .id;
    let standing = format!("/api/v1/projects/{a}/raters/{victim_id}/standing");
    let fail = json!({"action": "qualify", "passed": false, "reason": "spite"});
    assert_eq!(
        post(&server, &manager, &standing, Some(fail.clone()))
            .await
            .0,
        StatusCode::OK
    );
    assert!(next(&server, &victim, b).await.is_some(), "B is untouched");

    // When an administrator shares the skill, A's manager still cannot decide it by hand.
    assert_eq!(
        put_quality(&server, &admin, a, qualification(Some("medical")))
            .await
            .0,
        StatusCode::OK
    );
    // The manager may change A's other rules as long as the skill stays.
    let mut same = qualification(Some("medical"));
    same["gold_rate"] = json!(0.2);
    assert_eq!(
        put_quality(&server, &manager, a, same).await.0,
        StatusCode::OK
    );
    let (status, body) = post(&server, &manager, &standing, Some(fail.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A decision under the shared skill — here by the rules in A — is logged in B as well.
    let events = |p: i64| {
        let server = &server;
        async move {
            let (_, body) = server
                .call(
                    &server.admin_token,
                    Method::GET,
                    &format!("/api/v1/projects/{p}/rater-events"),
                    None,
                )
                .await;
            body["events"].as_array().unwrap().clone()
        }
    };
    let logged_in_b = events(b).await.len();
    for _ in 0..2 {
        let assignment = next(&server, &victim, a).await.expect("gold to qualify on");
        let lease = assignment["lease"]["id"].as_i64().unwrap();
        let (status, _) =
            answer_with_key(&server, &victim, lease, "neg", &format!("k{lease}")).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let in_b = events(b).await;
    assert_eq!(in_b.len(), logged_in_b + 1, "{in_b:?}");
    let last = in_b.last().unwrap();
    assert_eq!(last["action"], "not_qualified");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("in project {a}")),
        "{last}"
    );
}

/// Finding 5: padding a name does not reset its count, and someone else failing from another
/// address does not lock a name's owner out; one address has a budget over all names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn sign_in_limits_follow_the_name_and_the_address() {
    use crate::web::sign_in_from;
    let server = Server::start().await;
    server
        .app
        .create_user_unchecked("ann", "password123", false)
        .await
        .unwrap();
    let attacker: std::net::IpAddr = [127, 0, 0, 2].into();
    let owner: std::net::IpAddr = [127, 0, 0, 3].into();
    for name in ["admin", " admin", "admin ", "ADMIN", "  Admin  "] {
        let (status, _) = sign_in_from(&server, attacker, name, "guess")
            .await
            .unwrap_err();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Locked for that name from that address, whatever the padding, even with the password…
    for name in ["admin", "   admin   "] {
        let (status, page) = sign_in_from(&server, attacker, name, "administrator")
            .await
            .unwrap_err();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    }
    // …but not for its owner elsewhere.
    assert!(
        sign_in_from(&server, owner, "admin", "administrator")
            .await
            .is_ok()
    );
    // One address walking through many names runs out of its budget for every name.
    let walker: std::net::IpAddr = [127, 0, 0, 4].into();
    let budget = quorum_app::accounts::ADDRESS_BUDGET as usize;
    let failures: Vec<_> = (0..budget)
        .map(|i| {
            let server = &server;
            async move { sign_in_from(server, walker, &format!("user{i}"), "guess").await }
        })
        .collect();
    for failure in futures_util::future::join_all(failures).await {
        assert_eq!(failure.unwrap_err().0, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = sign_in_from(&server, walker, "ann", "password123")
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        sign_in_from(&server, owner, "ann", "password123")
            .await
            .is_ok()
    );
}

/// Finding 6: password checks never stall other requests, and a name that does not exist costs
/// the same time as one that does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_burst_of_failed_sign_ins_neither_stalls_the_server_nor_tells_names_apart() {
    use crate::web::sign_in_from;
    let server = Server::start().await;
    let timed = |name: &'static str, from: u8| {
        let server = &server;
        async move {
            let started = std::time::Instant::now();
            let (status, _) =
                sign_in_from(server, [127, 0, 1, from].into(), name, "wrong-password")
                    .await
                    .unwrap_err();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            started.elapsed()
        }
    };
    // Known and unknown names, one at a time, alternating.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..4 {
        known.push(timed("admin", 1 + i).await);
        unknown.push(timed("nobody-by-this-name", 1 + i).await);
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[2], unknown[2]);
    assert!(
        unknown * 2 > known && known * 2 > unknown,
        "known name {known:?}, unknown name {unknown:?}"
    );
    // 64 concurrent failures (from 64 addresses, so no limit cuts them short) while /healthz
    // is asked again and again.
    let burst: Vec<_> = (0..64u8).map(|i| timed("admin", 100 + i)).collect();
    let burst = futures_util::future::join_all(burst);
    let probe = async {
        let client = reqwest::Client::new();
        let mut latencies = Vec::new();
        for _ in 0..100 {
            let started = std::time::Instant::now();
            let response = client
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            latencies.push(started.elapsed());
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        latencies
    };
    let (_, mut latencies) = tokio::join!(burst, probe);
    latencies.sort();
    let p99 = latencies[98];
    assert!(
        p99 < std::time::Duration::from_millis(50),
        "/healthz p99 {p99:?} during the burst"
    );
}

/// A chat-completions provider on loopback that takes `delay` per answer and counts calls.
pub(crate) async fn slow_provider(
    delay: std::time::Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&calls);
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let counted = std::sync::Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                axum::Json(json!({"choices": [{"message": {"content": "an answer"}}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, calls)
}

/// Findings 13 and 14: the model registry (endpoints, parameters) is for administrators and
/// managers; a model already running on a project is not started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn the_registry_is_for_managers_and_a_run_starts_once() {
    let server = Server::start().await;
    let (base, calls) = slow_provider(std::time::Duration::from_millis(300)).await;
    let schema = json!({
        "fields": [{"name": "prompt", "kind": "text"}],
        "questions": [{"name": "ok", "kind": "label", "options": ["yes", "no"]}]
    });
    let p = server.project(schema, 1).await;
    let prompts: String = (0..3)
        .map(|i| format!("{{\"external_id\": \"p{i}\", \"fields\": {{\"prompt\": \"q{i}\"}}}}\n"))
        .collect();
    assert_eq!(server.import(p, &prompts).await.0, StatusCode::OK);
    let admin = server.admin_token.clone();
    let (status, body) = post(
        &server,
        &admin,
        "/api/v1/models",
        Some(json!({"name": "m", "base_url": base})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let annotator = server.rater("ann", p, "annotator", &[]).await;
    let reviewer = server.rater("rev", p, "reviewer", &[]).await;
    let manager = server.rater("man", p, "manager", &[]).await;
    for (token, expected) in [
        (&annotator, StatusCode::FORBIDDEN),
        (&reviewer, StatusCode::FORBIDDEN),
        (&manager, StatusCode::OK),
        (&admin, StatusCode::OK),
    ] {
        let (status, body) = server
            .call(token, Method::GET, "/api/v1/models", None)
            .await;
        assert_eq!(status, expected, "{body}");
        if status == StatusCode::FORBIDDEN {
            assert!(!body.to_string().contains(&base), "{body}");
        }
    }
    let runs = format!("/api/v1/projects/{p}/runs");
    let (status, body) = post(&server, &manager, &runs, Some(json!({"models": ["m"]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for _ in 0..4 {
        let (status, body) = post(&server, &manager, &runs, Some(json!({"models": ["m"]}))).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
    }
    // The one run answers every prompt, once each.
    for _ in 0..100 {
        let (_, body) = server.call(&manager, Method::GET, &runs, None).await;
        if body["models"][0]["answered"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    // Once its job is done, the model may be run again (nothing is left to call).
    let jobs = format!("/api/v1/projects/{p}/jobs");
    for _ in 0..100 {
        let (_, body) = server.call(&manager, Method::GET, &jobs, None).await;
        if body["jobs"][0]["state"] == "done" {
            // Which server ran it is for administrators.
            assert!(body["jobs"][0]["runner"].is_null(), "{body}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, body) = post(&server, &manager, &runs, Some(json!({"models": ["m"]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// Finding 10: tokens can expire, be listed and revoked; accounts can be disabled; passwords
/// changed — over the API and on the account pages.
#[tokio::test]
pub(crate) async fn tokens_and_accounts_have_a_lifecycle() {
    let server = Server::start().await;
    let p = server.project(label_schema(), 1).await;
    let ann = server.rater("ann", p, "annotator", &[]).await;
    let bob = server.rater("bob", p, "annotator", &[]).await;
    let store = server.app.store();
    let ann_id = store.user_by_name("ann").await.unwrap().unwrap().id;
    let admin = server.admin_token.clone();
    // Ann issues herself a second token that expires, lists both; Bob sees nothing of hers.
    let in_a_day = server.app.now() + 86_400_000;
    let (status, body) = post(
        &server,
        &ann,
        &format!("/api/v1/users/{ann_id}/tokens"),
        Some(json!({"name": "ci", "expires_at": in_a_day})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ci = body["token"].as_str().unwrap().to_string();
    let (status, body) = server
        .call(
            &ann,
            Method::GET,
            &format!("/api/v1/users/{ann_id}/tokens"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let tokens = body["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{body}");
    assert!(!body.to_string().contains(&ci), "secrets are never listed");
    let ci_id = tokens.iter().find(|t| t["name"] == "ci").unwrap();
    assert_eq!(ci_id["expires_at"], json!(in_a_day));
    let ci_id = ci_id["id"].as_i64().unwrap();
    for (method, path) in [
        (Method::GET, format!("/api/v1/users/{ann_id}/tokens")),
        (
            Method::DELETE,
            format!("/api/v1/users/{ann_id}/tokens/{ci_id}"),
        ),
    ] {
        let (status, _) = server.call(&bob, method, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = post(
        &server,
        &bob,
        &format!("/api/v1/users/{ann_id}/disable"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A token in the past is refused; revoking works at once.
    let (status, _) = post(
        &server,
        &ann,
        &format!("/api/v1/users/{ann_id}/tokens"),
        Some(json!({"name": "old", "expires_at": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .call(
            &ann,
            Method::DELETE,
            &format!("/api/v1/users/{ann_id}/tokens/{ci_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.call(&ci, Method::GET, "/api/v1/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Ann changes her password over the API: her web sessions end, her token stays.
    let cookie = crate::web::sign_in(&server, "ann", "password123")
        .await
        .unwrap();
    let (status, body) = post(
        &server,
        &ann,
        "/api/v1/me/password",
        Some(json!({"current_password": "wrong-one", "new_password": "another-password"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = post(
        &server,
        &ann,
        "/api/v1/me/password",
        Some(json!({"current_password": "password123", "new_password": "another-password"})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let home = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = home
        .get(format!("{}/home", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the session ended"
    );
    assert_eq!(
        server.call(&ann, Method::GET, "/api/v1/me", None).await.0,
        StatusCode::OK
    );

    // The account page lists her sessions and tokens.
    let cookie = crate::web::sign_in(&server, "ann", "another-password")
        .await
        .unwrap();
    let page = home
        .get(format!("{}/account", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("web session") && page.contains("Revoke"),
        "{page}"
    );

    // An administrator disables her: token and session stop at once, sign-in is refused;
    // the users page lists her as disabled.
    let (status, body) = post(
        &server,
        &admin,
        &format!("/api/v1/users/{ann_id}/disable"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["user"]["disabled_at"].is_number());
    assert_eq!(
        server.call(&ann, Method::GET, "/api/v1/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let response = home
        .get(format!("{}/home", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        crate::web::sign_in(&server, "ann", "another-password")
            .await
            .unwrap_err()
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (_, users) = server
        .call(&admin, Method::GET, "/api/v1/users", None)
        .await;
    assert!(
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "ann" && u["disabled_at"].is_number())
    );
    assert_eq!(
        server
            .call(&bob, Method::GET, "/api/v1/users", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let admin_id = store.user_by_name("admin").await.unwrap().unwrap().id;
    let (status, _) = post(
        &server,
        &admin,
        &format!("/api/v1/users/{admin_id}/disable"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "administrators cannot lock themselves out"
    );
}
