//! The trust boundary, attacked over HTTP as an outsider or a member of lower rank would.
//! Each test names the finding of the security review it guards against (issue 12).

use quorum_store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, label_schema};

/// JSON Lines of `n` items named `{prefix}{i}`, gold (`pos`) when `gold`.
fn items(prefix: &str, n: usize, gold: bool) -> String {
    (0..n)
        .map(|i| {
            let mut item = json!({"external_id": format!("{prefix}{i}"), "fields": {"text": format!("{prefix}{i}")}});
            if gold {
                item["gold"] = json!({"label": "pos"});
            }
            format!("{item}\n")
        })
        .collect()
}

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
