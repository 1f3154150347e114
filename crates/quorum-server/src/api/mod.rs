//! `/api/v1` routes, `/healthz` and `/metrics`: the route table, authentication and the
//! helpers every context shares; the handlers live in one module per context.

mod accounts;
mod evaluation;
mod jobs;
pub(crate) mod openapi;
mod projects;
mod quality;
mod standards;
mod webhooks;
mod work;

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::{StreamExt, stream};
use quorum_app::evaluation::arena::{ReportOptions, parse_anchor};
use quorum_app::evaluation::judges::JudgeRequest;
use quorum_app::evaluation::llm::RetryPolicy;
use quorum_app::evaluation::runs::RunRequest;
use quorum_app::export::Export;
use quorum_app::{AddMember, Caller, ImportFormat, ImportOutcome, SubmitAnswers};
use quorum_store::Store;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

/// The header an analysis read from a read replica carries: how far behind the primary the
/// replica was, in milliseconds (absent when the primary answered).
pub const REPLICA_LAG_HEADER: &str = "quorum-replica-lag-ms";

type ReplicaLag = Option<(&'static str, String)>;

/// [`REPLICA_LAG_HEADER`] for an analysis run with `app`.
fn replica_lag<S: Store>(app: &quorum_app::App<S>) -> AppendHeaders<ReplicaLag> {
    AppendHeaders(
        app.replica_lag_ms()
            .map(|ms| (REPLICA_LAG_HEADER, ms.to_string())),
    )
}

use crate::wire::{ErrorBody, Health};
use crate::{ApiError, AppState, OPENAPI, credentials};

/// Bodies above this are refused with 413, except item imports.
const BODY_LIMIT: usize = 1 << 20;
/// JSON Lines imports are read line by line as they arrive, up to this.
const IMPORT_LIMIT: usize = 512 << 20;
/// Imports read whole (JSON arrays, CSV, preference pairs) and generations, up to this.
const WHOLE_IMPORT_LIMIT: usize = 64 << 20;

/// The 422 of an import with refused rows: the first ones (at most
/// [`quorum_app::MAX_REJECTED`]) and how many there were in all.
fn rows_rejected(
    rejected: &[quorum_app::Rejected],
    total: u64,
    rows: &str,
    done: &str,
) -> ApiError {
    let mut error = ApiError::invalid(
        quorum_app::rejected_summary(total, rejected.len(), rows, done),
        json!({"rejected": rejected, "rejected_total": total}),
    );
    error.code = "rows_rejected";
    error
}

pub fn routes<S: Store>(state: AppState<S>) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/projects",
            post(projects::create_project::<S>).get(projects::list_projects::<S>),
        )
        .route("/api/v1/projects/{id}", get(projects::get_project::<S>))
        .route(
            "/api/v1/projects/{id}/members",
            post(projects::add_member::<S>),
        )
        .route(
            "/api/v1/projects/{id}/items",
            post(projects::import_items::<S>).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/projects/{id}/next", post(work::next::<S>))
        .route("/api/v1/projects/{id}/export", get(projects::export::<S>))
        .route("/api/v1/projects/{id}/stats", get(projects::stats::<S>))
        .route("/api/v1/projects/{id}/card", get(projects::card::<S>))
        .route(
            "/api/v1/projects/{id}/generations",
            post(evaluation::import_generations::<S>)
                .layer(DefaultBodyLimit::max(WHOLE_IMPORT_LIMIT)),
        )
        .route(
            "/api/v1/projects/{id}/battles",
            post(evaluation::build_battles::<S>),
        )
        .route(
            "/api/v1/projects/{id}/leaderboard",
            get(evaluation::leaderboard::<S>),
        )
        .route(
            "/api/v1/projects/{id}/consensus",
            get(quality::consensus::<S>),
        )
        .route(
            "/api/v1/projects/{id}/agreement",
            get(quality::agreement::<S>),
        )
        .route(
            "/api/v1/projects/{id}/raters",
            get(quality::rater_reliability::<S>),
        )
        .route(
            "/api/v1/projects/{id}/quality",
            put(quality::set_quality::<S>),
        )
        .route(
            "/api/v1/projects/{id}/rater-events",
            get(quality::rater_events::<S>),
        )
        .route(
            "/api/v1/projects/{id}/raters/{user_id}/standing",
            post(quality::change_standing::<S>),
        )
        .route(
            "/api/v1/projects/{id}/review-queue",
            get(quality::review_queue::<S>),
        )
        .route(
            "/api/v1/projects/{id}/reviews",
            post(quality::submit_review::<S>),
        )
        .route(
            "/api/v1/projects/{id}/runs",
            post(evaluation::start_run::<S>).get(evaluation::run_progress::<S>),
        )
        .route(
            "/api/v1/models",
            post(evaluation::register_model::<S>).get(evaluation::list_models::<S>),
        )
        .route(
            "/api/v1/projects/{id}/judges",
            post(evaluation::start_judge::<S>).get(evaluation::judge_reports::<S>),
        )
        .route("/api/v1/jobs", get(jobs::list_jobs::<S>))
        .route("/api/v1/jobs/{id}", get(jobs::get_job::<S>))
        .route("/api/v1/projects/{id}/jobs", get(jobs::project_jobs::<S>))
        .route(
            "/api/v1/standards",
            post(standards::run_standard::<S>).get(standards::list_standards::<S>),
        )
        .route(
            "/api/v1/standards/{hash}/report",
            get(standards::standard_report::<S>),
        )
        .route("/api/v1/leases/{id}/response", post(work::submit::<S>))
        .route("/api/v1/leases/{id}/skip", post(work::skip::<S>))
        .route("/api/v1/me", get(accounts::me))
        .route("/api/v1/me/password", post(accounts::change_password::<S>))
        .route(
            "/api/v1/users",
            post(accounts::create_user::<S>).get(accounts::list_users::<S>),
        )
        .route(
            "/api/v1/users/{id}/tokens",
            post(accounts::create_token::<S>).get(accounts::list_tokens::<S>),
        )
        .route(
            "/api/v1/users/{id}/tokens/{token_id}",
            axum::routing::delete(accounts::revoke_token::<S>),
        )
        .route(
            "/api/v1/users/{id}/disable",
            post(accounts::disable_user::<S>),
        )
        .route(
            "/api/v1/users/{id}/enable",
            post(accounts::enable_user::<S>),
        )
        .route(
            "/api/v1/webhooks",
            post(webhooks::create_instance_webhook::<S>).get(webhooks::instance_webhooks::<S>),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::get_webhook::<S>).delete(webhooks::delete_webhook::<S>),
        )
        .route(
            "/api/v1/webhooks/{id}/rotate",
            post(webhooks::rotate_secret::<S>),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries::<S>),
        )
        .route(
            "/api/v1/webhooks/{id}/redeliver",
            post(webhooks::redeliver::<S>),
        )
        .route(
            "/api/v1/projects/{id}/webhooks",
            post(webhooks::create_project_webhook::<S>).get(webhooks::project_webhooks::<S>),
        )
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::<S>))
        .merge(crate::web::routes::<S>())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    api.layer(middleware::from_fn_with_state(
        state.clone(),
        crate::headers::security_headers::<S>,
    ))
    .layer(middleware::from_fn_with_state(state.clone(), observe::<S>))
    .with_state(state)
}

/// Records every request's route, status and latency.
async fn observe<S: Store>(
    State(state): State<AppState<S>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // A label value per method the API knows, one for all others: clients choose methods, and
    // every new label value would be kept forever.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state.metrics.record(
        method,
        &route,
        response.status().as_u16(),
        response
            .extensions()
            .get::<crate::error::ErrorCode>()
            .map(|c| c.0),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Unknown API paths answer in JSON; anything else gets the web app's 404 page.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
    } else {
        crate::web::error_page(
            StatusCode::NOT_FOUND,
            "There is no page at this address.",
            None,
        )
    }
}

/// The caller, from `Authorization: Bearer <token>` or the web session cookie.
pub struct Authenticated(pub Caller);

impl<S: Store> FromRequestParts<AppState<S>> for Authenticated {
    type Rejection = ApiError;

    /// A bearer token, or the web session cookie — then a request that changes anything must
    /// also carry the session's CSRF token in `X-CSRF-Token`.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = credentials::bearer(&parts.headers) {
            return Ok(Authenticated(state.app.authenticate_token(token).await?));
        }
        let session = credentials::session_cookie(&parts.headers)
            .ok_or_else(|| ApiError::from(quorum_app::AppError::Unauthenticated))?;
        if !parts.method.is_safe() && !credentials::csrf_header_ok(&parts.headers, &session) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "this request needs the page's CSRF token (X-CSRF-Token)",
            ));
        }
        Ok(Authenticated(state.app.authenticate_token(&session).await?))
    }
}

/// Requests in flight per model (runs, judges, standards): 1 to 64.
fn check_concurrency(concurrency: usize) -> Result<(), ApiError> {
    if (1..=64).contains(&concurrency) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "concurrency must be 1 to 64",
            json!({"field": "concurrency"}),
        ))
    }
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            format!("the body is not valid: {e}"),
            json!({"line": e.line(), "column": e.column()}),
        )
    })
}

/// Health: 200 `ok`, or 503 `storage_full` while the last write found the database's disk full,
/// `storage_read_only` while it found its filesystem read-only (each until a write succeeds
/// again), `database_unreachable` while the database does not answer (asked on each call, at
/// most 2 s), so a load balancer or orchestrator can take the server out.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The server is up", body = Health),
        (status = 503, description = "The database's disk is full or read-only, or it does not answer", body = Health)))]
async fn healthz<S: Store>(State(state): State<AppState<S>>) -> Response {
    let unavailable = |status| (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status }));
    for (fault, status) in [
        (&state.metrics.storage_read_only, "storage_read_only"),
        (&state.metrics.storage_full, "storage_full"),
    ] {
        if fault.load(Ordering::Relaxed) {
            return unavailable(status).into_response();
        }
    }
    if let Err(quorum_store::StoreError::Unreachable(_)) = state.app.store().ping().await {
        return unavailable("database_unreachable").into_response();
    }
    Json(Health { status: "ok" }).into_response()
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Prometheus metrics (requests, latencies, leases, responses).
///
/// With a metrics token set (`--metrics-token`), only for `Authorization: Bearer <it>`.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Text exposition format",
            content((String = "text/plain; version=0.0.4"))),
        (status = 401, response = ErrorBody)))]
async fn metrics<S: Store>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.settings.metrics_token {
        let sent = credentials::bearer(&headers).unwrap_or_default();
        if !credentials::matches(sent, expected) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "/metrics needs the metrics token",
            ));
        }
    }
    // The outbox is read from the primary: it is what this server's runner delivers from.
    let outbox = state
        .app
        .store()
        .outbox_backlog()
        .await
        .ok()
        .map(|(pending, oldest_due)| {
            let age = oldest_due.map_or(0, |due| (state.app.now() - due).max(0));
            (pending, age as f64 / 1000.0)
        });
    let tally_wait = state.app.store().tally_oldest().await.ok().map(|oldest| {
        let age = oldest.map_or(0, |stored| (state.app.now() - stored).max(0));
        age as f64 / 1000.0
    });
    let database = crate::metrics::DatabaseFigures {
        leases_expired: quorum_store::LEASES_EXPIRED.load(Ordering::Relaxed),
        outbox,
        tally_wait,
        replicas: state.app.replica_lags(),
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&database),
    )
        .into_response())
}
