//! Your projects (home) and a new project from a template.

use super::*;

pub(super) struct HomeRow {
    id: i64,
    name: String,
    role: &'static str,
    open_items: i64,
    mine_today: i64,
    mine_total: i64,
    /// Reviewers and managers see the dashboard.
    can_review: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
pub(super) struct HomePage {
    user: Option<String>,
    csrf: String,
    is_admin: bool,
    projects: Vec<HomeRow>,
}

pub(super) async fn home<S: Store>(State(state): State<AppState<S>>, who: Page) -> Response {
    let now = state.app.now();
    let midnight = now - now.rem_euclid(86_400_000);
    match state.app.home(&who.caller, midnight).await {
        Ok(projects) => render(
            &HomePage {
                user: Some(who.caller.user.name.clone()),
                csrf: who.csrf.clone(),
                is_admin: who.caller.user.is_admin,
                projects: projects
                    .into_iter()
                    .map(|p| HomeRow {
                        id: p.id,
                        name: p.name,
                        role: p.role.as_str(),
                        open_items: p.open_items,
                        mine_today: p.mine_since,
                        mine_total: p.mine_total,
                        can_review: p.role.can_review(),
                    })
                    .collect(),
            },
            StatusCode::OK,
        ),
        Err(error) => app_error(error, &who),
    }
}

/// Templates for new projects: a name and a schema each.
pub(super) fn templates() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "classification",
            "Classification",
            json!({
                "fields": [{"name": "text", "kind": "text"}],
                "questions": [{"name": "label", "kind": "label", "options": ["positive", "negative", "neutral"], "required": true, "instructions": "Choose the label that fits the text best."}]
            }),
        ),
        (
            "multi_label",
            "Multi-label",
            json!({
                "fields": [{"name": "text", "kind": "text"}],
                "questions": [{"name": "topics", "kind": "multi_label", "options": ["politics", "sport", "science", "culture"], "required": true}]
            }),
        ),
        (
            "rubric",
            "Rating rubric",
            json!({
                "fields": [{"name": "prompt", "kind": "text"}, {"name": "answer", "kind": "markdown"}],
                "questions": [
                    {"name": "correctness", "kind": "rating", "min": 1, "max": 5, "required": true},
                    {"name": "helpfulness", "kind": "rating", "min": 1, "max": 5, "required": true},
                    {"name": "comment", "kind": "text"}
                ]
            }),
        ),
        (
            "pairwise",
            "Pairwise preference (two model responses)",
            json!({
                "fields": [{"name": "prompt", "kind": "chat"}, {"name": "responses", "kind": "responses"}],
                "questions": [{"name": "preference", "kind": "pairwise", "allow_both_bad": true, "required": true, "instructions": "Which response is better? Tie when equally good; both bad when neither is acceptable."}]
            }),
        ),
        (
            "ranking",
            "Ranking of N responses",
            json!({
                "fields": [{"name": "prompt", "kind": "text"}, {"name": "responses", "kind": "responses"}],
                "questions": [{"name": "ranking", "kind": "ranking", "field": "responses", "required": true}]
            }),
        ),
        (
            "demonstration",
            "Demonstration writing",
            json!({
                "fields": [{"name": "conversation", "kind": "chat"}],
                "questions": [{"name": "reply", "kind": "text", "min_length": 1, "required": true, "instructions": "Write the reply an excellent assistant would give."}]
            }),
        ),
        (
            "ner",
            "Named-entity spans",
            json!({
                "fields": [{"name": "text", "kind": "text"}],
                "questions": [{"name": "entities", "kind": "spans", "field": "text", "labels": ["PERSON", "ORG", "PLACE", "DATE"]}]
            }),
        ),
    ]
}

#[derive(Template)]
#[template(path = "new_project.html")]
pub(super) struct NewProjectPage {
    user: Option<String>,
    csrf: String,
    templates: Vec<(&'static str, &'static str)>,
    templates_json: String,
}

pub(super) async fn new_project<S: Store>(State(_): State<AppState<S>>, who: Page) -> Response {
    if !who.caller.user.is_admin {
        return error_page(
            StatusCode::FORBIDDEN,
            "Only administrators create projects.",
            Some(&who),
        );
    }
    let all = templates();
    let schemas: serde_json::Map<String, serde_json::Value> = all
        .iter()
        .map(|(id, _, schema)| (id.to_string(), schema.clone()))
        .collect();
    render(
        &NewProjectPage {
            user: Some(who.caller.user.name.clone()),
            csrf: who.csrf.clone(),
            templates: all.iter().map(|(id, name, _)| (*id, *name)).collect(),
            templates_json: script_json(&schemas),
        },
        StatusCode::OK,
    )
}
