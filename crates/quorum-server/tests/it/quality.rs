//! Consensus and agreement over the API, from answers collected through the rater loop.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Server;

async fn answer_all(
    server: &Server,
    token: &str,
    project: i64,
    pick: impl Fn(&str) -> &'static str,
) {
    server
        .answer_all(
            token,
            project,
            |body| json!({"label": pick(body["item"]["fields"]["text"].as_str().unwrap())}),
        )
        .await;
}

#[tokio::test]
async fn consensus_and_agreement_by_locale() {
    let server = Server::start().await;
    let p = server.project(crate::support::label_schema(), 3).await;
    let lines: String = (0..12)
        .map(|i| {
            format!(
                "{{\"external_id\": \"e{i}\", \"fields\": {{\"text\": \"{}\"}}}}\n",
                if i % 2 == 0 { "good" } else { "bad" }
            )
        })
        .collect();
    assert_eq!(server.import(p, &lines).await.0, StatusCode::OK);
    let truth = |text: &str| if text == "good" { "pos" } else { "neg" };
    let contrary = |text: &str| if text == "good" { "neg" } else { "pos" };
    for (name, locale) in [("qa1", "ar-QA"), ("qa2", "ar-QA")] {
        let token = server.rater(name, p, "annotator", &[locale]).await;
        answer_all(&server, &token, p, truth).await;
    }
    let gb = server.rater("gb1", p, "annotator", &["en-GB"]).await;
    answer_all(&server, &gb, p, contrary).await;

    let (status, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{p}/consensus?method=mv"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let consensus = body["consensus"].as_array().unwrap();
    assert_eq!(consensus.len(), 12);
    for c in consensus {
        let even = c["external_id"].as_str().unwrap()[1..]
            .parse::<u32>()
            .unwrap()
            % 2
            == 0;
        assert_eq!(c["answer"], if even { "pos" } else { "neg" }, "{c}");
        assert_eq!(c["responses"], 3);
        assert!((c["confidence"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    }
    let (status, _) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{p}/consensus?method=nope"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{p}/agreement"),
            None,
        )
        .await;
    let label = &body["agreement"][0];
    assert_eq!(label["question"], "label");
    assert_eq!(label["within_locale"], 1.0, "{label}");
    assert_eq!(label["across_locales"], 0.0, "{label}");
    let groups: Vec<&Value> = label["groups"].as_array().unwrap().iter().collect();
    assert_eq!(groups[0]["group"], "(all)");
    assert!(
        groups
            .iter()
            .any(|g| g["group"] == "ar-QA" && g["alpha"] == 1.0),
        "{label}"
    );

    // Reliability: the contrary rater agrees with the consensus on nothing.
    let (_, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{p}/raters"),
            None,
        )
        .await;
    let raters = body["raters"].as_array().unwrap();
    let of = |name: &str| raters.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(of("qa1")["agreement_with_consensus"], 1.0, "{body}");
    assert_eq!(of("gb1")["agreement_with_consensus"], 0.0, "{body}");
    assert!(of("qa1")["skill"].as_f64().unwrap() > of("gb1")["skill"].as_f64().unwrap());

    // The consensus export, and the dashboard's agreement section.
    let text = server.export(p, "consensus").await;
    assert_eq!(text.lines().count(), 12);
    let cookie = crate::web::sign_in(&server, "admin", "administrator")
        .await
        .unwrap();
    let (_, page) = crate::web::get(&server, &cookie, &format!("/projects/{p}")).await;
    assert!(
        page.contains("Agreement") && page.contains("ar-QA"),
        "{page}"
    );
}

/// Dynamic overlap: an item stops taking answers once its consensus is confident enough, and
/// keeps taking them (up to the overlap) while raters disagree.
#[tokio::test]
async fn confident_items_settle_and_contested_ones_keep_taking_answers() {
    let server = Server::start().await;
    let create = |body: Value| {
        server.call(
            &server.admin_token,
            Method::POST,
            "/api/v1/projects",
            Some(body),
        )
    };
    let (status, body) = create(json!({"name": "x", "schema": crate::support::label_schema(), "overlap": 5, "min_overlap": 2})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = create(json!({
        "name": "dynamic", "schema": crate::support::label_schema(),
        "overlap": 5, "min_overlap": 2, "target_confidence": 0.9
    }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let p = body["project"]["id"].as_i64().unwrap();
    assert_eq!(body["project"]["min_overlap"], 2);
    let lines = "{\"external_id\": \"easy\", \"fields\": {\"text\": \"easy\"}, \"priority\": 2}\n{\"external_id\": \"hard\", \"fields\": {\"text\": \"hard\"}, \"priority\": 1}\n";
    assert_eq!(server.import(p, lines).await.0, StatusCode::OK);
    // Raters answer `easy` unanimously and split on `hard`.
    let mut tokens = Vec::new();
    for r in 0..5 {
        tokens.push(server.rater(&format!("r{r}"), p, "annotator", &[]).await);
    }
    let mut easy_answers = 0;
    let mut hard_answers = 0;
    for (r, token) in tokens.iter().enumerate() {
        server
            .answer_all(token, p, |body| {
                let easy = body["item"]["fields"]["text"] == "easy";
                if easy {
                    easy_answers += 1;
                } else {
                    hard_answers += 1;
                }
                json!({"label": if easy || r % 2 == 0 { "pos" } else { "neg" }})
            })
            .await;
    }
    // With no evidence yet raters count as 70% accurate: three agreeing answers give
    // 0.7³ / (0.7³ + 0.3³) = 0.93 ≥ 0.9, two give 0.84.
    assert_eq!(
        easy_answers, 3,
        "the easy item settled after three agreeing answers"
    );
    assert_eq!(
        hard_answers, 5,
        "the contested item took every answer it could"
    );
    let (_, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{p}/stats"),
            None,
        )
        .await;
    assert_eq!(body["stats"]["items_complete"], 2, "{body}");
}

/// The consensus methods the OpenAPI document lists are the engine's registry, and the API's
/// message for an unknown one names them all.
#[tokio::test]
async fn consensus_methods_come_from_the_engines_registry() {
    use quorum_stats::classification::Method as Inference;
    let document: Value = serde_json::from_str(quorum_server::OPENAPI).unwrap();
    let parameters = document["paths"]["/api/v1/projects/{id}/consensus"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let documented: Vec<&str> =
        parameters.iter().find(|p| p["name"] == "method").unwrap()["schema"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
    let registered: Vec<&str> = Inference::ALL.iter().map(|m| m.short_name()).collect();
    assert_eq!(documented, registered);
    let server = Server::start().await;
    let p = server.project(crate::support::label_schema(), 1).await;
    let (status, body) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{p}/consensus?method=nope"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with(&Inference::names()),
        "{body}"
    );
}
