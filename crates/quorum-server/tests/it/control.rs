//! Quality control in the loop over the API: gold mixed into the stream, qualification,
//! auto-pause with reinstatement and its audit log, and review.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, label_schema};

/// JSON Lines of `n` items named `{prefix}{i}`, gold (`pos`) when `gold`.
pub(crate) fn items(prefix: &str, n: usize, gold: bool) -> String {
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

async fn set_quality(server: &Server, project: i64, policy: Value) {
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::PUT,
            &format!("/api/v1/projects/{project}/quality"),
            Some(policy),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Leases the rater's next item: `Ok(Some(assignment))`, `Ok(None)` when there is nothing to
/// do, `Err(body)` when refused.
async fn next(server: &Server, token: &str, project: i64) -> Result<Option<Value>, Value> {
    let (status, body) = server
        .call(
            token,
            Method::POST,
            &format!("/api/v1/projects/{project}/next"),
            None,
        )
        .await;
    match status {
        StatusCode::OK => Ok(Some(body)),
        StatusCode::NO_CONTENT => Ok(None),
        StatusCode::FORBIDDEN => Err(body),
        other => panic!("next: {other} {body}"),
    }
}

async fn answer(server: &Server, token: &str, assignment: &Value, label: &str, ms: i64) -> Value {
    let lease = assignment["lease"]["id"].as_i64().unwrap();
    let (status, body) = server
        .call(
            token,
            Method::POST,
            &format!("/api/v1/leases/{lease}/response"),
            Some(json!({"answers": {"label": label}, "time_spent_ms": ms})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn text(assignment: &Value) -> &str {
    assignment["item"]["fields"]["text"].as_str().unwrap()
}

async fn get(server: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    server.call(token, Method::GET, path, None).await
}

/// The shape of a JSON value: its keys and kinds, not its contents.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => json!(["array", items.first().map(shape)]),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

#[tokio::test]
async fn gold_is_mixed_in_unseen_scored_and_left_out_of_the_data() {
    let server = Server::start().await;
    let p = server.project(label_schema(), 1).await;
    server.import(p, &items("g", 20, true)).await;
    server.import(p, &items("r", 80, false)).await;
    set_quality(&server, p, json!({"gold_rate": 0.25})).await;
    let token = server.rater("ann", p, "annotator", &[]).await;
    let (mut gold, mut regular) = (None::<Value>, None::<Value>);
    let mut gold_seen = 0i64;
    while let Some(assignment) = next(&server, &token, p).await.unwrap() {
        let reply = answer(&server, &token, &assignment, "pos", 1500).await;
        assert!(
            reply.get("feedback").is_none(),
            "feedback is off by default"
        );
        if text(&assignment).starts_with('g') {
            gold_seen += 1;
            gold.get_or_insert(assignment);
        } else {
            regular.get_or_insert(assignment);
        }
    }
    // Gold came at about the project's rate (20 of 80 expected) while regular items lasted.
    assert!((8..=20).contains(&gold_seen), "{gold_seen} gold items");
    let (gold, regular) = (gold.unwrap(), regular.unwrap());
    assert_eq!(shape(&gold), shape(&regular));
    assert!(!gold.to_string().contains("gold"), "{gold}");

    // Scored as answered: all right.
    let (_, body) = get(
        &server,
        &server.admin_token,
        &format!("/api/v1/projects/{p}/raters"),
    )
    .await;
    let ann = &body["raters"][0];
    assert_eq!(ann["gold_answered"].as_i64(), Some(gold_seen));
    assert_eq!(ann["gold_correct"].as_i64(), Some(gold_seen));
    // Gold answers are not data: neither in the consensus nor in the export.
    let (_, body) = get(
        &server,
        &server.admin_token,
        &format!("/api/v1/projects/{p}/consensus"),
    )
    .await;
    let consensus = body["consensus"].as_array().unwrap();
    assert_eq!(consensus.len(), 80);
    assert!(
        consensus
            .iter()
            .all(|c| c["external_id"].as_str().unwrap().starts_with('r'))
    );
    let export = server.export(p, "jsonl").await;
    assert_eq!(export.lines().count(), 80);
    assert!(!export.contains("\"g1\""));

    // Feedback, when the project shows it, after a gold item only.
    set_quality(&server, p, json!({"gold_rate": 0.5, "gold_feedback": true})).await;
    server.import(p, &items("s", 10, false)).await;
    let bob = server.rater("bob", p, "annotator", &[]).await;
    let mut feedback = 0;
    while let Some(assignment) = next(&server, &bob, p).await.unwrap() {
        let reply = answer(&server, &bob, &assignment, "neg", 1500).await;
        let gold_item = text(&assignment).starts_with('g');
        assert_eq!(reply.get("feedback").is_some(), gold_item, "{reply}");
        if gold_item {
            feedback += 1;
            assert_eq!(reply["feedback"]["expected"], json!({"label": "pos"}));
            assert_eq!(reply["feedback"]["correct"], false);
        }
    }
    assert!(feedback > 0, "bob met gold items");
}

#[tokio::test]
async fn a_spammer_is_paused_after_a_bounded_number_of_gold_items_and_can_be_reinstated() {
    let server = Server::start().await;
    // Four options: a rater answering at random is right a quarter of the time, and with a 0.7
    // bound is paused after 5 gold items at the median, 17 at the 99th percentile and 35 at
    // worst in 5,000 simulated raters (BENCHMARKS.md); 100 gold items are plenty.
    let four = json!({
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": ["pos", "neg", "mixed", "none"], "required": true}]
    });
    let p = server.project(four, 2).await;
    server.import(p, &items("g", 100, true)).await;
    server.import(p, &items("r", 400, false)).await;
    set_quality(
        &server,
        p,
        json!({"gold_rate": 0.2, "pause": {"min_accuracy_upper": 0.7}}),
    )
    .await;
    let spammer = server.rater("spam", p, "annotator", &[]).await;
    let careful = server.rater("care", p, "annotator", &[]).await;
    // The spammer answers at random (a fixed sequence), the careful rater right.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut gold_answered = 0;
    let refusal = loop {
        match next(&server, &spammer, p).await {
            Ok(Some(assignment)) => {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let label = ["pos", "neg", "mixed", "none"][(state % 4) as usize];
                gold_answered += usize::from(text(&assignment).starts_with('g'));
                answer(&server, &spammer, &assignment, label, 1500).await;
            }
            Ok(None) => panic!("the spammer was never paused"),
            Err(body) => break body,
        }
    };
    assert!(
        (3..=60).contains(&gold_answered),
        "paused after {gold_answered} gold items"
    );
    eprintln!("the spammer was paused after {gold_answered} gold items");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("paused") && message.contains("checked answers"),
        "{message}"
    );
    for _ in 0..150 {
        let assignment = next(&server, &careful, p).await.unwrap().unwrap();
        answer(&server, &careful, &assignment, "pos", 1500).await;
    }

    let (_, body) = get(
        &server,
        &server.admin_token,
        &format!("/api/v1/projects/{p}/raters"),
    )
    .await;
    let by_name: BTreeMap<&str, &Value> = body["raters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r))
        .collect();
    assert!(by_name["spam"]["paused"].is_string());
    assert!(by_name["care"]["paused"].is_null());
    assert!(by_name["spam"]["gold_upper"].as_f64().unwrap() < 0.7);
    let spam_id = by_name["spam"]["user_id"].as_i64().unwrap();

    // Only managers reinstate; a reinstated rater gets items again; the log has both.
    let standing = format!("/api/v1/projects/{p}/raters/{spam_id}/standing");
    let (status, _) = server
        .call(
            &careful,
            Method::POST,
            &standing,
            Some(json!({"action": "reinstate"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::POST,
            &standing,
            Some(json!({"action": "reinstate", "reason": "retrained"})),
        )
        .await;
    assert_eq!(
        (status, &body["changed"]),
        (StatusCode::OK, &json!(true)),
        "{body}"
    );
    let (_, body) = server
        .call(
            &server.admin_token,
            Method::POST,
            &standing,
            Some(json!({"action": "reinstate"})),
        )
        .await;
    assert_eq!(body["changed"], false, "not paused any more");
    assert!(next(&server, &spammer, p).await.unwrap().is_some());
    let (_, body) = get(
        &server,
        &server.admin_token,
        &format!("/api/v1/projects/{p}/rater-events"),
    )
    .await;
    let events = body["events"].as_array().unwrap();
    let actions: Vec<(&str, bool)> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor_id"].is_null()))
        .collect();
    assert_eq!(actions, vec![("paused", true), ("reinstated", false)]);
    assert_eq!(events[1]["reason"], "retrained");
}

#[tokio::test]
async fn speed_and_skip_rules_pause_with_their_reason() {
    let server = Server::start().await;
    let p = server.project(label_schema(), 3).await;
    server.import(p, &items("r", 40, false)).await;
    set_quality(
        &server,
        p,
        json!({"pause": {"min_median_ms": 1000, "max_skip_rate": 0.3}}),
    )
    .await;
    let fast = server.rater("fast", p, "annotator", &[]).await;
    for _ in 0..10 {
        let assignment = next(&server, &fast, p).await.unwrap().unwrap();
        answer(&server, &fast, &assignment, "pos", 200).await;
    }
    let refusal = next(&server, &fast, p).await.unwrap_err();
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("median time"),
        "{refusal}"
    );

    let skipper = server.rater("skipper", p, "annotator", &[]).await;
    for _ in 0..10 {
        let assignment = next(&server, &skipper, p).await.unwrap().unwrap();
        let lease = assignment["lease"]["id"].as_i64().unwrap();
        let (status, _) = server
            .call(
                &skipper,
                Method::POST,
                &format!("/api/v1/leases/{lease}/skip"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let refusal = next(&server, &skipper, p).await.unwrap_err();
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("skipped 10 of 10"),
        "{refusal}"
    );

    // Rules are checked field by field, and only managers set them.
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::PUT,
            &format!("/api/v1/projects/{p}/quality"),
            Some(json!({"gold_rate": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"]["field"], "gold_rate", "{body}");
    let (status, _) = server
        .call(
            &fast,
            Method::PUT,
            &format!("/api/v1/projects/{p}/quality"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn qualification_gates_real_items_and_is_shared_by_skill() {
    let server = Server::start().await;
    let rules =
        json!({"qualification": {"gold_items": 4, "min_accuracy": 0.75, "skill": "triage"}});
    let a = server.project(label_schema(), 2).await;
    server.import(a, &items("g", 6, true)).await;
    server.import(a, &items("r", 5, false)).await;
    set_quality(&server, a, rules.clone()).await;
    let good = server.rater("good", a, "annotator", &[]).await;
    let poor = server.rater("poor", a, "annotator", &[]).await;
    for (token, label) in [(&good, "pos"), (&poor, "neg")] {
        for _ in 0..4 {
            let assignment = next(&server, token, a).await.unwrap().unwrap();
            assert!(
                text(&assignment).starts_with('g'),
                "gold first while qualifying"
            );
            answer(&server, token, &assignment, label, 1500).await;
        }
    }
    let assignment = next(&server, &good, a).await.unwrap().unwrap();
    assert!(text(&assignment).starts_with('r'), "qualified: real items");
    let refusal = next(&server, &poor, a).await.unwrap_err();
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("qualification")
    );

    // A manager overrides; the log says who.
    let (_, body) = get(
        &server,
        &server.admin_token,
        &format!("/api/v1/projects/{a}/raters"),
    )
    .await;
    let poor_id = body["raters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "poor")
        .map(|r| r["user_id"].as_i64().unwrap())
        .unwrap();
    assert_eq!(
        body["raters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "poor")
            .unwrap()["qualified"],
        false
    );
    let (status, _) = server
        .call(
            &server.admin_token,
            Method::POST,
            &format!("/api/v1/projects/{a}/raters/{poor_id}/standing"),
            Some(json!({"action": "qualify", "passed": true, "reason": "checked by hand"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text(&next(&server, &poor, a).await.unwrap().unwrap()).starts_with('r'));

    // Another project that asks for the same skill takes the pass as it is.
    let b = server.project(label_schema(), 2).await;
    server.import(b, &items("g", 6, true)).await;
    server.import(b, &items("r", 5, false)).await;
    set_quality(&server, b, rules).await;
    let (status, _) = server
        .call(
            &server.admin_token,
            Method::POST,
            &format!("/api/v1/projects/{b}/members"),
            Some(json!({"user": "good", "role": "annotator"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(text(&next(&server, &good, b).await.unwrap().unwrap()).starts_with('r'));
    let new = server.rater("new", b, "annotator", &[]).await;
    assert!(text(&next(&server, &new, b).await.unwrap().unwrap()).starts_with('g'));
}

#[tokio::test]
async fn reviews_reject_and_correct_and_consensus_follows() {
    let server = Server::start().await;
    let p = server.project(label_schema(), 3).await;
    server.import(p, &items("r", 2, false)).await;
    set_quality(&server, p, json!({"review": {"disagreement": true}})).await;
    let mut tokens = Vec::new();
    for name in ["a1", "a2", "a3"] {
        let token = server.rater(name, p, "annotator", &[]).await;
        while let Some(assignment) = next(&server, &token, p).await.unwrap() {
            // a3 disagrees on r0 only.
            let label = if name == "a3" && text(&assignment) == "r0" {
                "neg"
            } else {
                "pos"
            };
            answer(&server, &token, &assignment, label, 1500).await;
        }
        tokens.push(token);
    }
    let reviewer = server.rater("rev", p, "reviewer", &[]).await;
    let (status, _) = get(
        &server,
        &tokens[0],
        &format!("/api/v1/projects/{p}/review-queue"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "annotators do not review");
    let (status, body) = get(
        &server,
        &reviewer,
        &format!("/api/v1/projects/{p}/review-queue"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let queue = body["items"].as_array().unwrap();
    assert_eq!(queue.len(), 1, "only the disputed item: {body}");
    assert_eq!(queue[0]["external_id"], "r0");
    assert_eq!(queue[0]["reasons"], json!(["disagreement"]));
    let item_id = queue[0]["item_id"].as_i64().unwrap();
    let responses = queue[0]["responses"].as_array().unwrap();
    let id_of = |name: &str| {
        responses
            .iter()
            .find(|r| r["user_name"] == name)
            .map(|r| r["response_id"].as_i64().unwrap())
            .unwrap()
    };
    let consensus_of_r0 = || async {
        let (_, body) = get(
            &server,
            &server.admin_token,
            &format!("/api/v1/projects/{p}/consensus"),
        )
        .await;
        body["consensus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["external_id"] == "r0")
            .cloned()
            .unwrap()
    };
    assert_eq!(consensus_of_r0().await["responses"], 3);

    // Bad verdicts are refused whole, naming the verdict.
    let reviews = format!("/api/v1/projects/{p}/reviews");
    let (status, body) = server
        .call(
            &reviewer,
            Method::POST,
            &reviews,
            Some(json!({"item_id": item_id, "verdicts": [
                {"response_id": id_of("a3"), "verdict": "reject"},
                {"response_id": id_of("a1"), "verdict": "correct"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"]["field"], "verdicts[1]", "{body}");
    assert_eq!(
        consensus_of_r0().await["responses"],
        3,
        "nothing was written"
    );

    // A rejected response leaves the consensus.
    let (status, body) = server
        .call(
            &reviewer,
            Method::POST,
            &reviews,
            Some(json!({"item_id": item_id, "verdicts": [{"response_id": id_of("a3"), "verdict": "reject"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let c = consensus_of_r0().await;
    assert_eq!(c["responses"], 2, "{c}");
    assert!(c["confidence"].as_f64().unwrap() > 0.999, "{c}");

    // A correction becomes the adjudicated answer.
    let (status, body) = server
        .call(
            &reviewer,
            Method::POST,
            &reviews,
            Some(json!({"item_id": item_id, "verdicts": [
                {"response_id": id_of("a1"), "verdict": "correct", "answers": {"label": "neg"}},
                {"response_id": id_of("a2"), "verdict": "accept"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let c = consensus_of_r0().await;
    assert_eq!(
        (c["answer"].as_str(), c["method"].as_str()),
        (Some("neg"), Some("adjudicated")),
        "{c}"
    );
    let (_, body) = get(
        &server,
        &reviewer,
        &format!("/api/v1/projects/{p}/review-queue"),
    )
    .await;
    assert_eq!(body["items"], json!([]), "every response judged");
    let (_, body) = get(
        &server,
        &server.admin_token,
        &format!("/api/v1/projects/{p}/raters"),
    )
    .await;
    let a3 = body["raters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "a3")
        .unwrap()
        .clone();
    assert_eq!(a3["reviews_rejected"], 1, "{a3}");
}
