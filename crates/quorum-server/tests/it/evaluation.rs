//! Model evaluation over the API: answers imported, battles built, votes collected in the
//! normal rater loop, leaderboards per rater locale, preference pairs exported.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Server;

/// Posts a body of JSON Lines to a path as the administrator.
pub(crate) async fn post_lines(server: &Server, path: &str, body: &str) -> (StatusCode, Value) {
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
pub(crate) async fn vote_all(
    server: &Server,
    token: &str,
    project: i64,
    prefers: impl Fn(&str, &str) -> &'static str,
) -> usize {
    server
        .answer_all(token, project, |body| {
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
            json!({"preference": verdict})
        })
        .await
}

/// The side whose answer comes from the model `best`, then the one from `second`.
pub(crate) fn prefer(
    best: &'static str,
    second: &'static str,
) -> impl Fn(&str, &str) -> &'static str {
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
    // Nothing of it was stored: no model has an answer on the project.
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{prompts}/runs"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["models"], json!([]), "nothing was stored: {body}");

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
    let text = server.export(arena, "dpo").await;
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
    // An LLM judge on the same battles, over the API, in the background.
    let base = provider().await;
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::POST,
            "/api/v1/models",
            Some(json!({"name": "judge", "base_url": base, "api_key_env": "HOME"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let judges = format!("/api/v1/projects/{arena}/judges");
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::POST,
            &judges,
            Some(json!({"model": "judge"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mut report = Value::Null;
    for _ in 0..100 {
        let (_, body) = server
            .call(&server.admin_token, Method::GET, &judges, None)
            .await;
        report = body["judges"][0].clone();
        if report["judged"] == 18 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(report["judged"], 18, "{report}");
    assert_eq!(report["position_bias"], 1.0, "{report}");
    assert_eq!(report["consistency"], 0.0, "{report}");
    let (status, _) = server
        .call(
            &server.admin_token,
            Method::POST,
            &judges,
            Some(json!({"model": "judge", "template": "no sides"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The leaderboard page: boards per locale, interval plots and the divergence view.
    let cookie = crate::web::sign_in(&server, "admin", "administrator")
        .await
        .unwrap();
    let (status, page) = crate::web::get(
        &server,
        &cookie,
        &format!("/projects/{arena}/leaderboard?slice_by=rater_locale"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for needle in [
        "ar-QA",
        "en-GB",
        "m-local",
        "Where do the slices disagree?",
        "<svg",
        "<circle",
    ] {
        assert!(page.contains(needle), "the page lacks {needle}");
    }

    let (_, dashboard) = crate::web::get(&server, &cookie, &format!("/projects/{arena}")).await;
    assert!(
        dashboard.contains("LLM judges") && dashboard.contains("100%"),
        "{dashboard}"
    );

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

/// A provider that answers every prompt, on loopback.
async fn provider() -> String {
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|axum::Json(body): axum::Json<Value>| async move {
            let prompt = body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            // Asked to judge, it always picks the first answer shown.
            let content = if prompt.contains("assistant A's answer") {
                "[[A]]".to_string()
            } else {
                format!("re: {prompt}")
            };
            axum::Json(json!({
                "choices": [{"message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 3}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test]
async fn models_are_registered_and_runs_collect_their_answers_in_the_background() {
    let server = Server::start().await;
    let base = provider().await;
    let prompts = server
        .project(
            json!({
                "fields": [{"name": "chat", "kind": "chat"}],
                "questions": [{"name": "ok", "kind": "label", "options": ["yes", "no"]}]
            }),
            1,
        )
        .await;
    let items: String = (0..5)
        .map(|i| format!("{{\"external_id\": \"c{i}\", \"fields\": {{\"chat\": [{{\"role\": \"user\", \"content\": \"hello {i}\"}}]}}}}\n"))
        .collect();
    assert_eq!(server.import(prompts, &items).await.0, StatusCode::OK);
    let register = |body: Value| {
        server.call(
            &server.admin_token,
            Method::POST,
            "/api/v1/models",
            Some(body),
        )
    };
    let (status, body) = register(json!({"name": "echo", "base_url": base, "api_key_env": "HOME", "parameters": {"max_tokens": 8}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = register(
        json!({"name": "nokey", "base_url": base, "api_key_env": "QUORUM_KEY_NO_SUCH_KEY"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = register(json!({"name": "x", "base_url": "ftp://nope"})).await;
    assert_eq!(
        (status, &body["error"]["details"]["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("base_url"))
    );
    let (_, body) = server
        .call(&server.admin_token, Method::GET, "/api/v1/models", None)
        .await;
    assert_eq!(body["models"].as_array().unwrap().len(), 2);
    let home = std::env::var("HOME").unwrap();
    assert!(
        !body.to_string().contains(&home),
        "the key's value is never shown"
    );

    let runs = format!("/api/v1/projects/{prompts}/runs");
    let run = |models: Value| {
        server.call(
            &server.admin_token,
            Method::POST,
            &runs,
            Some(json!({"models": models, "concurrency": 2})),
        )
    };
    let (status, body) = run(json!(["nokey"])).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a missing key is refused up front: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("QUORUM_KEY_NO_SUCH_KEY")
    );
    let (status, body) = run(json!(["echo"])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = body["jobs"][0]["id"].as_i64().expect("the run's job");
    assert_eq!(body["jobs"][0]["kind"], "model_run");
    let mut answered = 0;
    for _ in 0..100 {
        let (_, body) = server
            .call(
                &server.admin_token,
                Method::GET,
                &format!("/api/v1/projects/{prompts}/runs"),
                None,
            )
            .await;
        answered = body["models"][0]["answered"].as_i64().unwrap_or(0);
        if answered == 5 {
            assert_eq!(body["models"][0]["prompts"], 5);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(answered, 5, "the background run answered every prompt");
    // Its job is visible: to the project's readers with the project's jobs, by id, and to
    // administrators in the list of every job.
    let mut state = Value::Null;
    for _ in 0..100 {
        let (status, body) = server
            .call(
                &server.admin_token,
                Method::GET,
                &format!("/api/v1/jobs/{job}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        state = body["job"]["state"].clone();
        if state == "done" {
            assert_eq!(body["job"]["attempts"], 1);
            assert!(
                body["job"]["runner"].is_string(),
                "administrators see the runner"
            );
            assert_eq!(body["job"]["project_id"], prompts);
            assert!(body["job"]["error"].is_null(), "{body}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "done");
    let (_, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{prompts}/jobs"),
            None,
        )
        .await;
    assert_eq!(body["jobs"][0]["id"], job, "{body}");
    let (_, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            "/api/v1/jobs?limit=1",
            None,
        )
        .await;
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(1), "{body}");
    // The run's progress is on the project's dashboard.
    let cookie = crate::web::sign_in(&server, "admin", "administrator")
        .await
        .unwrap();
    let (status, page) = crate::web::get(&server, &cookie, &format!("/projects/{prompts}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Model answers") && page.contains("5 / 5"),
        "{page}"
    );
}

#[tokio::test]
async fn demonstrations_export_as_sft_conversations() {
    let server = Server::start().await;
    let project = server
        .project(
            json!({
                "fields": [{"name": "chat", "kind": "chat"}],
                "questions": [{"name": "reply", "kind": "text", "required": true, "min_length": 2}]
            }),
            1,
        )
        .await;
    let items = "{\"external_id\": \"d1\", \"fields\": {\"chat\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": \"hi\"}]}}\n";
    assert_eq!(server.import(project, items).await.0, StatusCode::OK);
    let writer = server.rater("wendy", project, "annotator", &[]).await;
    let (_, body) = server
        .call(
            &writer,
            Method::POST,
            &format!("/api/v1/projects/{project}/next"),
            None,
        )
        .await;
    let lease = body["lease"]["id"].as_i64().unwrap();
    let (status, body) = server
        .call(
            &writer,
            Method::POST,
            &format!("/api/v1/leases/{lease}/response"),
            Some(json!({"answers": {"reply": "Hello! How can I help?"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let text = server.export(project, "sft").await;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(
        lines[0]["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello! How can I help?"}
        ])
    );
    assert_eq!(
        (lines[0]["id"].as_str(), lines[0]["user"].as_str()),
        (Some("d1"), Some("wendy"))
    );
}

const SMALL_STANDARD: &str = r#"
[standard]
name = "small"
version = "1"

[[items.inline]]
id = "q1"
prompt = "What is the capital of Qatar?"

[[items.inline]]
id = "q2"
prompt = "How do I apply for a library card?"

[[questions]]
name = "preference"
kind = "pairwise"
required = true

[raters]
min_ratings_per_item = 2
locales = [{ locale = "ar-QA", min_raters = 1 }, { locale = "en-GB", min_raters = 1 }]
"#;

/// A standard uploaded over the API (what the web page does): problems listed with their
/// locations; the run; the list saying what is missing; the report refused until the raters
/// are there, then signed and verifiable; and the page that lists it.
#[tokio::test]
async fn a_standard_is_run_and_reported_over_the_api() {
    let server = Server::start().await;
    let base = provider().await;
    for name in ["m1", "m2"] {
        let (status, body) = server
            .call(
                &server.admin_token,
                Method::POST,
                "/api/v1/models",
                Some(json!({"name": name, "base_url": base})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let post = |token: String, text: String| {
        let server = &server;
        async move {
            let response = server
                .client
                .post(format!("{}/api/v1/standards?models=m1,m2", server.base))
                .bearer_auth(token)
                .body(text)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let broken = SMALL_STANDARD.replace("min_ratings_per_item = 2", "min_ratings_per_item = 0");
    let (status, body) = post(server.admin_token.clone(), broken).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"]["details"]["problems"][0]["location"], "raters.min_ratings_per_item",
        "{body}"
    );
    let with_file = "[standard]\nname = \"f\"\nversion = \"1\"\n[items]\nfile = \"items.jsonl\"\n[[questions]]\nname = \"p\"\nkind = \"pairwise\"\n[raters]\nmin_ratings_per_item = 1\n";
    let (status, body) = post(server.admin_token.clone(), with_file.into()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.to_string().contains("inline"), "{body}");
    let (status, body) = post(server.admin_token.clone(), SMALL_STANDARD.into()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hash = body["hash"].as_str().unwrap().to_string();
    let battles = body["battles_project_id"].as_i64().unwrap();

    let (_, list) = server
        .call(&server.admin_token, Method::GET, "/api/v1/standards", None)
        .await;
    let missing = list["standards"][0]["missing"].as_array().unwrap();
    assert!(
        missing
            .iter()
            .any(|m| m.as_str().unwrap().contains("en-GB: 0 of the 1")),
        "{list}"
    );
    let report = format!("/api/v1/standards/{hash}/report");
    let (status, body) = server
        .call(&server.admin_token, Method::GET, &report, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    for (name, locale) in [("qa", "ar-QA"), ("gb", "en-GB")] {
        let token = server.rater(name, battles, "annotator", &[locale]).await;
        server
            .answer_all(&token, battles, |_| json!({"preference": "a"}))
            .await;
    }
    let (_, list) = server
        .call(&server.admin_token, Method::GET, "/api/v1/standards", None)
        .await;
    assert_eq!(list["standards"][0]["missing"], json!([]), "{list}");
    let (status, body) = server
        .call(&server.admin_token, Method::GET, &report, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let signed: quorum_app::standards::report::SignedReport = serde_json::from_value(body).unwrap();
    signed.verify().unwrap();
    assert_eq!(signed.report.standard_hash, hash);
    assert_eq!(signed.report.human_ratings, 4);
    // An annotator of its battles, and a stranger, are told there is no such report (finding
    // 20: a 403 confirmed the standard existed).
    let annotator = server.rater("plain", battles, "annotator", &[]).await;
    let stranger = server
        .app
        .create_user_unchecked("stranger", "password123", false)
        .await
        .unwrap();
    let stranger = server.app.create_token_for(&stranger, "t").await.unwrap();
    for token in [&annotator, &stranger] {
        let (status, body) = server.call(token, Method::GET, &report, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }

    // The pages: the list, and the report's HTML twin.
    let cookie = crate::web::sign_in(&server, "admin", "administrator")
        .await
        .unwrap();
    let (status, page) = crate::web::get(&server, &cookie, "/standards").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&hash) && page.contains("requirements are met"),
        "{page}"
    );
    let (status, page) =
        crate::web::get(&server, &cookie, &format!("/standards/{hash}/report")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"standard-hash\""));
}
