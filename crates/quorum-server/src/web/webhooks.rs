//! A project's webhooks (`/projects/{id}/webhooks`, managers): subscriptions, their recent
//! deliveries (state, attempts, the receiver's status and latency, the next attempt), and
//! plain forms to add one, rotate its secret, redeliver what failed, or delete it. The rules
//! live in `quorum_app::webhooks`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use quorum_store::{EVENT_KINDS, Store};

use super::{Page, app_error, error_page, render, utc};
use crate::AppState;

struct DeliveryLine {
    created: String,
    kind: String,
    state: &'static str,
    attempts: i32,
    status: String,
    latency: String,
    next: String,
    error: String,
}

struct WebhookLine {
    id: i64,
    url: String,
    events: String,
    failing_since: Option<String>,
    rotating_until: Option<String>,
    deliveries: Vec<DeliveryLine>,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    user: Option<String>,
    csrf: String,
    project_id: i64,
    name: String,
    kinds: Vec<&'static str>,
    webhooks: Vec<WebhookLine>,
    /// A secret just made, shown this once, and what it is for.
    secret: Option<(String, String)>,
    message: Option<String>,
}

/// Deliveries shown per subscription.
const SHOWN: i64 = 20;

async fn page<S: Store>(
    state: &AppState<S>,
    who: &Page,
    project_id: i64,
    secret: Option<(String, String)>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let (project, _) = match state.app.project(&who.caller, project_id).await {
        Ok(found) => found,
        Err(error) => return app_error(error, who),
    };
    let webhooks = match state.app.webhooks(&who.caller, Some(project_id)).await {
        Ok(webhooks) => webhooks,
        Err(error) => return app_error(error, who),
    };
    let mut lines = Vec::with_capacity(webhooks.len());
    for webhook in webhooks {
        let deliveries = match state
            .app
            .webhook_deliveries(&who.caller, webhook.id, i64::MAX, SHOWN)
            .await
        {
            Ok(deliveries) => deliveries,
            Err(error) => return app_error(error, who),
        };
        lines.push(WebhookLine {
            id: webhook.id,
            url: webhook.url,
            events: webhook.events.join(", "),
            failing_since: webhook.failing_since.map(utc),
            rotating_until: webhook.previous_secret_until.map(utc),
            deliveries: deliveries
                .into_iter()
                .map(|d| {
                    let pending = d.state == quorum_store::DeliveryState::Pending;
                    DeliveryLine {
                        created: utc(d.created_at),
                        kind: d.kind,
                        state: d.state.as_str(),
                        attempts: d.attempts,
                        status: d.last_status.map_or_else(|| "–".into(), |s| s.to_string()),
                        latency: d
                            .last_latency_ms
                            .map_or_else(|| "–".into(), |ms| format!("{ms} ms")),
                        next: if pending {
                            utc(d.next_attempt_at)
                        } else {
                            "–".into()
                        },
                        error: d.last_error.unwrap_or_default(),
                    }
                })
                .collect(),
        });
    }
    render(
        &WebhooksPage {
            user: Some(who.caller.user.name.clone()),
            csrf: who.csrf.clone(),
            project_id,
            name: project.name,
            kinds: EVENT_KINDS.to_vec(),
            webhooks: lines,
            secret,
            message,
        },
        status,
    )
}

pub(super) async fn webhooks<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
) -> Response {
    page(&state, &who, id, None, None, StatusCode::OK).await
}

/// The form's fields as pairs: the event checkboxes repeat one name.
type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

fn stale(who: &Page) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form is out of date (its security token does not match). Reload the page and try again.",
        Some(who),
    )
}

pub(super) async fn create<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
    Form(fields): Form<Fields>,
) -> Response {
    if !crate::credentials::matches(field(&fields, "csrf"), &who.csrf) {
        return stale(&who);
    }
    let events = fields
        .iter()
        .filter(|(key, _)| key == "events")
        .map(|(_, value)| value.clone())
        .collect();
    let url = field(&fields, "url").trim().to_string();
    match state
        .app
        .create_webhook(&who.caller, Some(id), &url, events)
        .await
    {
        Ok(created) => {
            let secret = Some((created.secret, created.webhook.url));
            page(&state, &who, id, secret, None, StatusCode::CREATED).await
        }
        Err(quorum_app::AppError::Invalid { message, .. }) => {
            page(
                &state,
                &who,
                id,
                None,
                Some(message),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(error) => app_error(error, &who),
    }
}

/// Rotate, redeliver or delete one subscription.
pub(super) async fn act<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path((id, hook, action)): Path<(i64, i64, String)>,
    Form(fields): Form<Fields>,
) -> Response {
    if !crate::credentials::matches(field(&fields, "csrf"), &who.csrf) {
        return stale(&who);
    }
    // The subscription must be this project's, whatever the address says.
    match state.app.webhook(&who.caller, hook).await {
        Ok(webhook) if webhook.project_id == Some(id) => {}
        Ok(_) => return app_error(quorum_app::AppError::NotFound("webhook"), &who),
        Err(error) => return app_error(error, &who),
    }
    let back = Redirect::to(&format!("/projects/{id}/webhooks")).into_response();
    match action.as_str() {
        "rotate" => match state
            .app
            .rotate_webhook_secret(&who.caller, hook, None)
            .await
        {
            Ok(rotated) => {
                let secret = Some((rotated.secret, rotated.webhook.url));
                page(&state, &who, id, secret, None, StatusCode::OK).await
            }
            Err(error) => app_error(error, &who),
        },
        "redeliver" => match state.app.redeliver(&who.caller, hook, None).await {
            Ok(queued) => {
                let message = format!("{queued} failed deliveries queued again");
                page(&state, &who, id, None, Some(message), StatusCode::OK).await
            }
            Err(error) => app_error(error, &who),
        },
        "delete" => match state.app.delete_webhook(&who.caller, hook).await {
            Ok(()) => back,
            Err(error) => app_error(error, &who),
        },
        _ => error_page(
            StatusCode::NOT_FOUND,
            "There is no page at this address.",
            Some(&who),
        ),
    }
}
