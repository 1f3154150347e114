//! Webhooks: subscriptions (a project's, or instance-wide), secrets, the delivery log.

use super::*;
use crate::wire::webhooks::{
    Deliveries, NewWebhook, Redelivered, Redelivery, Rotation, WebhookEnvelope, WebhookWithSecret,
    Webhooks,
};

async fn create<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    project_id: Option<i64>,
    body: &Bytes,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    let request: NewWebhook = parse_body(body)?;
    let events = request
        .events
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    let created = state
        .app
        .create_webhook(caller, project_id, &request.url, events)
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

async fn list<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    project_id: Option<i64>,
) -> Result<Json<Webhooks>, ApiError> {
    let webhooks = state.app.webhooks(caller, project_id).await?;
    Ok(Json(Webhooks {
        webhooks: webhooks.into_iter().map(Into::into).collect(),
    }))
}

/// Subscribe to a project's events (managers).
///
/// Each event is written with the change that causes it and delivered at least once, signed
/// (`Quorum-Signature`), retried with exponential back-off for 24 hours. The secret is in
/// this reply only.
#[utoipa::path(post, path = "/api/v1/projects/{id}/webhooks", tag = "webhooks",
    params(("id" = i64, Path, description = "The project")), request_body = NewWebhook,
    responses((status = 201, body = WebhookWithSecret), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 409, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn create_project_webhook<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    create(&state, &caller, Some(id), &body).await
}

/// A project's webhook subscriptions (managers).
#[utoipa::path(get, path = "/api/v1/projects/{id}/webhooks", tag = "webhooks",
    params(("id" = i64, Path, description = "The project")),
    responses((status = 200, body = Webhooks), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn project_webhooks<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Webhooks>, ApiError> {
    list(&state, &caller, Some(id)).await
}

/// Subscribe to every project's events (administrators).
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = WebhookWithSecret), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 409, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn create_instance_webhook<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    create(&state, &caller, None, &body).await
}

/// The instance-wide webhook subscriptions (administrators).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Webhooks), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody)))]
pub(super) async fn instance_webhooks<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Webhooks>, ApiError> {
    list(&state, &caller, None).await
}

/// One subscription (its project's managers; administrators for instance-wide ones).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The subscription")),
    responses((status = 200, body = WebhookEnvelope), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn get_webhook<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<WebhookEnvelope>, ApiError> {
    let webhook = state.app.webhook(&caller, id).await?;
    Ok(Json(WebhookEnvelope {
        webhook: webhook.into(),
    }))
}

/// End a subscription; its pending deliveries are dropped.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The subscription")),
    responses((status = 204, description = "Deleted"), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn delete_webhook<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_webhook(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate the signing secret.
///
/// The old secret keeps signing beside the new one (two `v1=` in `Quorum-Signature`) for the
/// overlap, 24 hours by default, so receivers switch without dropping a delivery.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate", tag = "webhooks",
    params(("id" = i64, Path, description = "The subscription")),
    request_body(content = Option<Rotation>, description = "May be empty: a 24-hour overlap"),
    responses((status = 200, body = WebhookWithSecret), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn rotate_secret<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    let request: Rotation = if body.is_empty() {
        Rotation::default()
    } else {
        parse_body(&body)?
    };
    let rotated = state
        .app
        .rotate_webhook_secret(&caller, id, request.overlap_ms)
        .await?;
    Ok(Json(rotated.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveriesQuery {
    /// Only deliveries with a smaller id: the next page starts below the last id of this one.
    before: Option<i64>,
    /// 1 to 1000.
    #[serde(default = "default_deliveries_limit")]
    #[param(default = 100, minimum = 1, maximum = 1000)]
    limit: i64,
}

fn default_deliveries_limit() -> i64 {
    100
}

/// The delivery log, newest first: state, attempts, the receiver's last status and latency,
/// the next attempt.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path, description = "The subscription"), DeliveriesQuery),
    responses((status = 200, body = Deliveries), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn deliveries<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Deliveries>, ApiError> {
    let deliveries = state
        .app
        .webhook_deliveries(&caller, id, query.before.unwrap_or(i64::MAX), query.limit)
        .await?;
    Ok(Json(Deliveries {
        deliveries: deliveries.into_iter().map(Into::into).collect(),
    }))
}

/// Queue failed deliveries again: one, or every failed one of the subscription.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/redeliver", tag = "webhooks",
    params(("id" = i64, Path, description = "The subscription")),
    request_body(content = Option<Redelivery>, description = "May be empty: every failed delivery"),
    responses((status = 200, body = Redelivered), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 409, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn redeliver<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Redelivered>, ApiError> {
    let request: Redelivery = if body.is_empty() {
        Redelivery::default()
    } else {
        parse_body(&body)?
    };
    let queued = state
        .app
        .redeliver(&caller, id, request.delivery_id)
        .await?;
    Ok(Json(Redelivered { queued }))
}
