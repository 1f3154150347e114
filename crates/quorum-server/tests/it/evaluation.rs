//! Model evaluation over the API: answers imported, battles built, votes collected in the
//! normal rater loop, leaderboards per rater locale, preference pairs exported.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Server;

/// Posts a body of JSON Lines to a path as the administrator.
async fn post_lines(server: &Server, path: &str, body: &str) -> (StatusCode, Value) {
    let response = server
        .client
        .post(format!("{}{path}", server.base))
        .bearer_auth(&server.admin_token)
        .header("content-type", "application/x-ndjson")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// A rater answers every battle they are given, preferring the answer `prefers` picks.
async fn vote_all(
    server: &Server,
    token: &str,
    project: i64,
    prefers: impl Fn(&str, &str) -> &'static str,
) -> usize {
    let mut answered = 0;
    loop {
        let (status, body) = server
            .call(
                token,
                Method::POST,
                &format!("/api/v1/projects/{project}/next"),
                None,
            )
            .await;
        if status == StatusCode::NO_CONTENT || body["item"].is_null() {
            return answered;
        }
        let text = body.to_string();
        for hidden in ["m-good", "m-local", "m-weak"] {
            assert!(
                !text.contains(hidden),
                "a model name reached a rater: {text}"
            );
        }
        let responses = &body["item"]["fields"]["responses"];
        assert_eq!(responses[0]["name"], "A");
        let verdict = prefers(
            responses[0]["content"].as_str().unwrap(),
            responses[1]["content"].as_str().unwrap(),
        );
        let lease = body["lease"]["id"].as_i64().unwrap();
        let (status, body) = server
            .call(
                token,
                Method::POST,
                &format!("/api/v1/leases/{lease}/response"),
                Some(json!({"answers": {"preference": verdict}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        answered += 1;
    }
}

/// The side whose answer comes from the model `best`, then the one from `second`.
fn prefer(best: &'static str, second: &'static str) -> impl Fn(&str, &str) -> &'static str {
    move |a, b| {
        let rank = |text: &str| {
            if text.starts_with(best) {
                0
            } else if text.starts_with(second) {
                1
            } else {
                2
            }
        };
        if rank(a) < rank(b) { "a" } else { "b" }
    }
}

#[tokio::test]
async fn answers_become_battles_votes_become_boards_per_locale_and_dpo_pairs() {
    let server = Server::start().await;
    let prompts = server
        .project(
            json!({
                "fields": [{"name": "question", "kind": "text"}],
                "questions": [{"name": "ok", "kind": "label", "options": ["yes", "no"]}]
            }),
            1,
        )
        .await;
    let mut items = String::new();
    for i in 0..6 {
        items.push_str(&format!(
            "{{\"external_id\": \"p{i}\", \"fields\": {{\"question\": \"question {i}\"}}, \"metadata\": {{\"locale\": \"en-GB\", \"category\": \"c{}\"}}}}\n",
            i % 2
        ));
    }
    let (status, body) = server.import(prompts, &items).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A bad line refuses the whole import and names its line.
    let (status, body) = post_lines(
        &server,
        &format!("/api/v1/projects/{prompts}/generations"),
        "{\"prompt_id\": \"p0\", \"model\": \"m-good\", \"response\": \"x\"}\n{\"prompt_id\": \"nope\", \"model\": \"m-good\", \"response\": \"x\"}\n",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["rejected"][0]["row"], 2);
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::POST,
            &format!("/api/v1/projects/{prompts}/battles"),
            Some(json!({"name": "arena", "sampling": {"kind": "all_pairs"}})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nothing was stored: {body}"
    );

    let mut lines = String::new();
    for i in 0..6 {
        for model in ["m-good", "m-local", "m-weak"] {
            let answer = model.trim_start_matches("m-");
            lines.push_str(&format!(
                "{{\"prompt_id\": \"p{i}\", \"model\": \"{model}\", \"response\": \"{answer} answer to {i}\"}}\n"
            ));
        }
    }
    let (status, body) = post_lines(
        &server,
        &format!("/api/v1/projects/{prompts}/generations"),
        &lines,
    )
    .await;
    assert_eq!(
        (status, body["stored"].as_i64()),
        (StatusCode::OK, Some(18)),
        "{body}"
    );

    let (status, body) = server
        .call(
            &server.admin_token,
            Method::POST,
            &format!("/api/v1/projects/{prompts}/battles"),
            Some(json!({"name": "arena", "sampling": {"kind": "all_pairs"}, "seed": 3, "overlap": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let arena = body["project"]["id"].as_i64().unwrap();
    let british = server.rater("brit", arena, "annotator", &["en-GB"]).await;
    let qatari = server.rater("qatari", arena, "annotator", &["ar-QA"]).await;
    // Raters in each locale order the models differently.
    assert_eq!(
        vote_all(&server, &british, arena, prefer("good", "local")).await,
        18
    );
    assert_eq!(
        vote_all(&server, &qatari, arena, prefer("local", "good")).await,
        18
    );

    let (status, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{arena}/leaderboard?bootstrap=200&slice_by=rater_locale"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let boards = body["leaderboard"]["boards"].as_array().unwrap();
    let slices: Vec<&Value> = boards.iter().map(|b| &b["slice"]).collect();
    assert_eq!(slices, [&Value::Null, &json!("ar-QA"), &json!("en-GB")]);
    assert_eq!(boards[0]["battles"], 36);
    let top = |b: &Value| b["models"][0]["model"].as_str().unwrap().to_string();
    assert_eq!(top(&boards[1]), "m-local");
    assert_eq!(top(&boards[2]), "m-good");
    assert_eq!(
        boards[0]["models"][2]["model"], "m-weak",
        "both locales rank m-weak last"
    );
    let divergence = &body["leaderboard"]["divergence"][0];
    assert_eq!(
        (divergence["a"].as_str(), divergence["b"].as_str()),
        (Some("ar-QA"), Some("en-GB"))
    );

    let (status, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{arena}/leaderboard?anchor=bad"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Preference pairs: the two raters agree on the 12 items with m-weak in them and split on
    // the 6 of m-good against m-local, which are left out.
    let text = server
        .client
        .get(format!(
            "{}/api/v1/projects/{arena}/export?format=dpo",
            server.base
        ))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pairs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(pairs.len(), 12, "{text}");
    for pair in &pairs {
        assert!(
            pair["rejected"].as_str().unwrap().starts_with("weak"),
            "{pair}"
        );
        assert_eq!(pair["confidence"], 1.0);
        assert!(pair["prompt"].as_str().unwrap().starts_with("question"));
    }
    // A rater may not see the board.
    let (status, _) = server
        .call(
            &british,
            Method::GET,
            &format!("/api/v1/projects/{arena}/leaderboard"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
