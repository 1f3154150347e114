//! The trust boundary, attacked over HTTP as an outsider or a member of lower rank would.
//! Each test names the finding of the security review it guards against (issue 12).

use quorum_store::Accounts;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::control::items;
use crate::support::{Server, label_schema};

async fn post(
    server: &Server,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    server.call(token, Method::POST, path, body).await
}

async fn next(server: &Server, token: &str, project: i64) -> Option<Value> {
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
async fn answer_with_key(
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

fn is_gold(assignment: &Value) -> bool {
    assignment["item"]["fields"]["text"]
        .as_str()
        .unwrap()
        .starts_with('g')
}

/// Finding 2: an idempotency key first used on one lease, replayed on a skipped gold lease,
/// must not reveal that lease's gold answer (nor that it is gold).
#[tokio::test]
async fn an_idempotency_key_replays_only_on_its_own_lease_and_says_what_it_said_then() {
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

async fn put_quality(
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
async fn a_shared_skill_is_an_administrators_decision_and_logged_everywhere_it_counts() {
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
async fn sign_in_limits_follow_the_name_and_the_address() {
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
    let budget = quorum_app::auth::ADDRESS_BUDGET as usize;
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
async fn a_burst_of_failed_sign_ins_neither_stalls_the_server_nor_tells_names_apart() {
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
async fn slow_provider(
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
async fn the_registry_is_for_managers_and_a_run_starts_once() {
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
async fn tokens_and_accounts_have_a_lifecycle() {
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
