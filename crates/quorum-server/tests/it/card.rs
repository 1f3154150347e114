//! Dataset cards: the front matter the Hugging Face Hub reads and the body's figures, from a
//! project answered by raters of two locales.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_says_licence_languages_size_raters_and_agreement() {
    let server = Server::start().await;
    let schema = json!({
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": ["pos", "neg"], "required": true,
                       "instructions": "Is the review positive?"}]
    });
    let project = server.project(schema, 2).await;
    let items: String = (0..6)
        .map(|i| {
            let locale = if i % 2 == 0 { "ar-QA" } else { "en-GB" };
            format!("{{\"external_id\": \"c{i}\", \"fields\": {{\"text\": \"t{i}\"}}, \"metadata\": {{\"locale\": \"{locale}\"}}}}\n")
        })
        .collect();
    assert_eq!(server.import(project, &items).await.0, StatusCode::OK);
    let qatari = server.rater("qa", project, "annotator", &["ar-QA"]).await;
    let british = server.rater("gb", project, "annotator", &["en-GB"]).await;
    server
        .answer_all(&qatari, project, |_| json!({"label": "pos"}))
        .await;
    server
        .answer_all(&british, project, |_| json!({"label": "pos"}))
        .await;

    let card = |query: &str| {
        let url = format!("{}/api/v1/projects/{project}/card?{query}", server.base);
        let request = server.client.get(url).bearer_auth(&server.admin_token);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, text) = card("format=parquet&license=cc-by-4.0").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let front = text.split("---\n").nth(1).unwrap();
    assert!(front.starts_with("license: cc-by-4.0\n"), "{front}");
    assert!(front.contains("language:\n- ar\n- en\n"), "{front}");
    assert!(front.contains("size_categories:\n- n<1K\n"), "{front}");
    assert!(front.contains("data_files: \"data.parquet\""), "{front}");
    assert!(
        text.contains("6 items were answered by 2 raters (12 answers"),
        "{text}"
    );
    assert!(
        text.contains("| ar-QA | 1 |") && text.contains("| en-GB | 1 |"),
        "{text}"
    );
    assert!(
        text.contains("- `label`: one of pos, neg — Is the review positive?"),
        "{text}"
    );
    assert!(text.contains("| label | nominal |"), "{text}");
    assert!(
        text.contains("`answer_<question>`"),
        "the Parquet columns: {text}"
    );

    let (status, refused) = card("license=not%20a%20licence").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.contains("\"field\":\"license\""), "{refused}");
    // Managers only: the project's reviewer gets 403, another project's manager 404.
    let reviewer = server.rater("rev", project, "reviewer", &[]).await;
    let other = server
        .project(
            json!({"fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": ["a"]}]}),
            1,
        )
        .await;
    let outsider = server.rater("out", other, "manager", &[]).await;
    for (token, expected) in [
        (&qatari, StatusCode::FORBIDDEN),
        (&reviewer, StatusCode::FORBIDDEN),
        (&outsider, StatusCode::NOT_FOUND),
    ] {
        let response = server
            .client
            .get(format!("{}/api/v1/projects/{project}/card", server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    let (status, _) = server
        .call(
            &server.admin_token,
            Method::GET,
            &format!("/api/v1/projects/{project}/card?format=xml"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
