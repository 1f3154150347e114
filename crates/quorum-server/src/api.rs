//! `/api/v1` routes, `/healthz` and `/metrics`.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::{StreamExt, stream};
use quorum_app::arena::{ReportOptions, parse_anchor};
use quorum_app::evaluation::{BuildBattles, SliceBy};
use quorum_app::export::{EXPORT_PAGE, ExportFormat};
use quorum_app::judges::JudgeRequest;
use quorum_app::llm::RetryPolicy;
use quorum_app::runs::RunRequest;
use quorum_app::{AddMember, Caller, CreateProject, ImportFormat, SubmitAnswers};
use quorum_store::ModelSpec;
use quorum_store::Store;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

use crate::{ApiError, AppState, OPENAPI};

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
    let listed = if total as usize > rejected.len() {
        format!(" (the first {} are listed)", rejected.len())
    } else {
        String::new()
    };
    let mut error = ApiError::invalid(
        format!("{total} {rows} were rejected; nothing was {done}{listed}"),
        json!({"rejected": rejected, "rejected_total": total}),
    );
    error.code = "rows_rejected";
    error
}

pub fn routes<S: Store>(state: AppState<S>) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/projects",
            post(create_project::<S>).get(list_projects::<S>),
        )
        .route("/api/v1/projects/{id}", get(get_project::<S>))
        .route("/api/v1/projects/{id}/members", post(add_member::<S>))
        .route(
            "/api/v1/projects/{id}/items",
            post(import_items::<S>).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/projects/{id}/next", post(next::<S>))
        .route("/api/v1/projects/{id}/export", get(export::<S>))
        .route("/api/v1/projects/{id}/stats", get(stats::<S>))
        .route(
            "/api/v1/projects/{id}/generations",
            post(import_generations::<S>).layer(DefaultBodyLimit::max(WHOLE_IMPORT_LIMIT)),
        )
        .route("/api/v1/projects/{id}/battles", post(build_battles::<S>))
        .route("/api/v1/projects/{id}/leaderboard", get(leaderboard::<S>))
        .route("/api/v1/projects/{id}/consensus", get(consensus::<S>))
        .route("/api/v1/projects/{id}/agreement", get(agreement::<S>))
        .route("/api/v1/projects/{id}/raters", get(rater_reliability::<S>))
        .route("/api/v1/projects/{id}/quality", put(set_quality::<S>))
        .route("/api/v1/projects/{id}/rater-events", get(rater_events::<S>))
        .route(
            "/api/v1/projects/{id}/raters/{user_id}/standing",
            post(change_standing::<S>),
        )
        .route("/api/v1/projects/{id}/review-queue", get(review_queue::<S>))
        .route("/api/v1/projects/{id}/reviews", post(submit_review::<S>))
        .route(
            "/api/v1/projects/{id}/runs",
            post(start_run::<S>).get(run_progress::<S>),
        )
        .route(
            "/api/v1/models",
            post(register_model::<S>).get(list_models::<S>),
        )
        .route(
            "/api/v1/projects/{id}/judges",
            post(start_judge::<S>).get(judge_reports::<S>),
        )
        .route(
            "/api/v1/standards",
            post(run_standard::<S>).get(list_standards::<S>),
        )
        .route("/api/v1/standards/{hash}/report", get(standard_report::<S>))
        .route("/api/v1/leases/{id}/response", post(submit::<S>))
        .route("/api/v1/leases/{id}/skip", post(skip::<S>))
        .route("/api/v1/me", get(me))
        .route("/api/v1/me/password", post(change_password::<S>))
        .route("/api/v1/users", post(create_user::<S>).get(list_users::<S>))
        .route(
            "/api/v1/users/{id}/tokens",
            post(create_token::<S>).get(list_tokens::<S>),
        )
        .route(
            "/api/v1/users/{id}/tokens/{token_id}",
            axum::routing::delete(revoke_token::<S>),
        )
        .route("/api/v1/users/{id}/disable", post(disable_user::<S>))
        .route("/api/v1/users/{id}/enable", post(enable_user::<S>))
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

/// The caller, from `Authorization: Bearer <token>`.
pub struct Authenticated(pub Caller);

impl<S: Store> FromRequestParts<AppState<S>> for Authenticated {
    type Rejection = ApiError;

    /// A bearer token, or the web session cookie — then a request that changes anything must
    /// also carry the session's CSRF token in `X-CSRF-Token`.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(token) = bearer {
            return Ok(Authenticated(
                state.app.authenticate_token(token.trim()).await?,
            ));
        }
        let session = crate::web::session_cookie(&parts.headers)
            .ok_or_else(|| ApiError::from(quorum_app::AppError::Unauthenticated))?;
        if !parts.method.is_safe() {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !quorum_app::auth::same_secret(sent, &quorum_app::auth::csrf_token(&session)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "this request needs the page's CSRF token (X-CSRF-Token)",
                ));
            }
        }
        Ok(Authenticated(state.app.authenticate_token(&session).await?))
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

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Prometheus metrics; with a metrics token set, only for `Authorization: Bearer <it>`.
async fn metrics<S: Store>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.settings.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !quorum_app::auth::same_secret(sent.trim(), expected) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "/metrics needs the metrics token",
            ));
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response())
}

async fn me(Authenticated(caller): Authenticated) -> Json<Value> {
    Json(json!({"user": caller.user}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

async fn create_user<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: NewUserBody = parse_body(&body)?;
    let user = state
        .app
        .create_user(&caller, &request.name, &request.password, request.admin)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"user": user}))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    #[serde(default = "default_token_name")]
    name: String,
    /// Unix milliseconds; none: the token does not expire.
    #[serde(default)]
    expires_at: Option<i64>,
}

fn default_token_name() -> String {
    "api".into()
}

async fn create_token<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: NewTokenBody = if body.is_empty() {
        NewTokenBody {
            name: default_token_name(),
            expires_at: None,
        }
    } else {
        parse_body(&body)?
    };
    let token = state
        .app
        .create_token(&caller, id, &request.name, request.expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"token": token}))))
}

async fn list_users<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"users": state.app.users(&caller).await?})))
}

async fn list_tokens<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"tokens": state.app.tokens(&caller, id).await?}),
    ))
}

async fn revoke_token<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path((id, token_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    state.app.revoke_token(&caller, id, token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn disable_user<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let user = state.app.set_disabled(&caller, id, true).await?;
    Ok(Json(json!({"user": user})))
}

async fn enable_user<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let user = state.app.set_disabled(&caller, id, false).await?;
    Ok(Json(json!({"user": user})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; every web session of theirs ends (API tokens stay).
async fn change_password<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request: PasswordChange = parse_body(&body)?;
    state
        .app
        .change_password(&caller, &request.current_password, &request.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_project<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: CreateProject = parse_body(&body)?;
    let project = state.app.create_project(&caller, request).await?;
    Ok((StatusCode::CREATED, Json(json!({"project": project}))))
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

async fn list_projects<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.clamp(1, 500);
    let projects = state.app.list_projects(&caller, page.after, limit).await?;
    let next = if projects.len() as i64 == limit {
        projects.last().map(|p| p.id)
    } else {
        None
    };
    Ok(Json(json!({"projects": projects, "next_after": next})))
}

async fn get_project<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let (project, role) = state.app.project(&caller, id).await?;
    Ok(Json(json!({"project": project, "role": role})))
}

async fn add_member<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: AddMember = parse_body(&body)?;
    let member = state.app.add_member(&caller, id, request).await?;
    Ok((StatusCode::CREATED, Json(json!({"member": member}))))
}

/// Imports a JSON array, JSON Lines or CSV body. JSON Lines is read as it arrives, line by
/// line, so a large import never holds its whole body in memory.
#[derive(Debug, Deserialize)]
struct ImportQuery {
    /// `dpo`: preference pairs `{id, prompt, chosen, rejected}` per line.
    format: Option<String>,
}

async fn import_items<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let dpo = match query.format.as_deref() {
        None => false,
        Some("dpo") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                format!("unknown import format `{other}`; leave it out, or use dpo"),
                json!({"field": "format"}),
            ));
        }
    };
    let too_large = |limit: usize, what: &str| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{what} are limited to {limit} bytes"),
        )
    };
    let not_utf8 = |line: u64| ApiError::invalid("the body is not UTF-8", json!({"line": line}));
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let mut session = state.app.begin_import(&caller, id).await?;
    let mut chunks = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    // Bytes of `pending` already looked at: every chunk is scanned once, never again.
    let mut scanned = 0usize;
    let mut received = 0usize;
    let mut line = 0u64;
    // Until the first non-blank byte tells, the body may be JSON Lines (streamed) or a format
    // that is read whole (a JSON array, CSV, preference pairs).
    let mut streaming = None::<bool>;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid(format!("the body could not be read: {e}"), Value::Null)
        })?;
        received += chunk.len();
        if received > IMPORT_LIMIT {
            return Err(too_large(IMPORT_LIMIT, "imports"));
        }
        pending.extend_from_slice(&chunk);
        if streaming.is_none() {
            match pending[scanned..].iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') if !csv && !dpo => streaming = Some(true),
                Some(_) => streaming = Some(false),
                None => scanned = pending.len(),
            }
        }
        if streaming != Some(true) {
            if received > WHOLE_IMPORT_LIMIT {
                return Err(too_large(
                    WHOLE_IMPORT_LIMIT,
                    "JSON array, CSV and preference-pair imports (read whole; send JSON Lines for more)",
                ));
            }
            continue;
        }
        let mut start = 0;
        while let Some(end) = memchr_newline(&pending[scanned..]) {
            let end = scanned + end;
            line += 1;
            let text = std::str::from_utf8(&pending[start..end]).map_err(|_| not_utf8(line))?;
            session.push_json_line(line, text);
            start = end + 1;
            scanned = start;
        }
        pending.drain(..start);
        scanned = pending.len();
    }
    let outcome = if streaming == Some(true) {
        line += 1;
        let text = std::str::from_utf8(&pending).map_err(|_| not_utf8(line))?;
        session.push_json_line(line, text);
        state.app.finish_import(session).await?
    } else {
        let text = std::str::from_utf8(&pending).map_err(|_| not_utf8(0))?;
        let format = if dpo {
            ImportFormat::Dpo
        } else if csv {
            ImportFormat::Csv
        } else {
            ImportFormat::Json
        };
        state.app.import(&caller, id, format, text).await?
    };
    if !outcome.rejected.is_empty() {
        return Err(rows_rejected(
            &outcome.rejected,
            outcome.rejected_total,
            "rows",
            "imported",
        ));
    }
    state
        .metrics
        .items_imported
        .fetch_add(outcome.created + outcome.updated, Ordering::Relaxed);
    Ok((StatusCode::OK, Json(json!(outcome))).into_response())
}

/// Where the first newline of `bytes` is.
fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

async fn next<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    match state.app.next(&caller, id).await? {
        Some(assignment) => {
            state.metrics.leases_granted.fetch_add(1, Ordering::Relaxed);
            Ok(Json(json!(assignment)).into_response())
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Debug, Deserialize)]
struct SubmitQuery {
    /// Also lease the rater's next item in the same project and return it as `next`.
    #[serde(default)]
    next: bool,
}

async fn submit<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<SubmitQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SubmitAnswers = parse_body(&body)?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map(str::to_string).map_err(|_| {
                ApiError::invalid("the Idempotency-Key header is not text", Value::Null)
            })
        })
        .transpose()?;
    let submitted = state.app.submit(&caller, id, request, key).await?;
    let (created, response) = (submitted.created, &submitted.response);
    if created {
        state
            .metrics
            .responses_stored
            .fetch_add(1, Ordering::Relaxed);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut reply = json!({"response": response, "replayed": !created});
    if let Some(feedback) = &submitted.feedback {
        reply["feedback"] = feedback.clone();
    }
    if query.next {
        // The answer is stored whatever happens here: a rater the answer paused gets the reason.
        match state.app.next(&caller, response.project_id).await {
            Ok(next) => {
                if next.is_some() {
                    state.metrics.leases_granted.fetch_add(1, Ordering::Relaxed);
                }
                reply["next"] = json!(next);
            }
            Err(quorum_app::AppError::Forbidden(reason)) => {
                reply["next"] = Value::Null;
                reply["next_refused"] = json!(reason);
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok((status, Json(reply)).into_response())
}

async fn skip<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.app.skip(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stats<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"stats": state.app.stats(&caller, id).await?})))
}

async fn import_generations<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid("the body is not UTF-8", Value::Null))?;
    let outcome = state.app.import_generations(&caller, id, text).await?;
    if !outcome.rejected.is_empty() {
        return Err(rows_rejected(
            &outcome.rejected,
            outcome.rejected_total,
            "lines",
            "stored",
        ));
    }
    Ok(Json(json!({"stored": outcome.stored})))
}

async fn build_battles<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: BuildBattles = parse_body(&body)?;
    let project = state.app.build_battles(&caller, id, request).await?;
    Ok((StatusCode::CREATED, Json(json!({"project": project}))))
}

async fn register_model<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let model: ModelSpec = parse_body(&body)?;
    let name = model.name.clone();
    state.app.register_model(&caller, model).await?;
    Ok((StatusCode::CREATED, Json(json!({"model": name}))))
}

async fn list_models<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"models": state.app.models(&caller).await?})))
}

#[derive(Debug, Deserialize)]
struct StartRun {
    models: Vec<String>,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
}

fn default_concurrency() -> usize {
    4
}

/// Starts a run in the background (it can take hours); progress is read from the store, so
/// any server can report it. A run interrupted by a restart is resumed by starting it again.
async fn start_run<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: StartRun = parse_body(&body)?;
    if !(1..=64).contains(&request.concurrency) {
        return Err(ApiError::invalid(
            "concurrency must be 1 to 64",
            json!({"field": "concurrency"}),
        ));
    }
    let run = RunRequest {
        models: request.models,
        concurrency: request.concurrency,
        policy: RetryPolicy::default(),
    };
    // Check everything that can be checked before answering: the project, the models, keys.
    state.app.check_run(&caller, id, &run).await?;
    let claim = state.app.claim_run(id, &run.models)?;
    let app = state.app.clone();
    tokio::spawn(async move {
        if let Err(error) = app.run_claimed(claim, &caller, id, run, &|_| {}).await {
            tracing::warn!(project = id, %error, "a model run stopped");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({"started": true}))))
}

async fn run_progress<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"models": state.app.run_progress(&caller, id).await?}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartJudge {
    model: String,
    template: Option<String>,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
}

/// Starts an LLM judge on a battle project in the background; starting it again resumes.
async fn start_judge<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: StartJudge = parse_body(&body)?;
    if !(1..=64).contains(&request.concurrency) {
        return Err(ApiError::invalid(
            "concurrency must be 1 to 64",
            json!({"field": "concurrency"}),
        ));
    }
    let judge = JudgeRequest {
        model: request.model,
        template: request.template,
        concurrency: request.concurrency,
        policy: RetryPolicy::default(),
    };
    state.app.check_judge(&caller, id, &judge).await?;
    let app = state.app.clone();
    tokio::spawn(async move {
        if let Err(error) = app.run_judge(&caller, id, judge, &|| {}).await {
            tracing::warn!(project = id, %error, "a judge run stopped");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({"started": true}))))
}

async fn judge_reports<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"judges": state.app.analysis({ let app = state.app.clone(); async move { app.judge_reports(&caller, id).await } }).await?}),
    ))
}

#[derive(Debug, Deserialize)]
struct ConsensusQuery {
    /// The truth-inference method for label questions (`ds` by default).
    method: Option<String>,
}

fn label_method(name: Option<&str>) -> Result<quorum_stats::classification::Method, ApiError> {
    use quorum_stats::classification::Method;
    match name {
        None => Ok(Method::DawidSkene),
        Some(name) => Method::ALL
            .into_iter()
            .find(|m| m.short_name() == name)
            .ok_or_else(|| {
                ApiError::invalid(
                    format!("unknown method `{name}`; use mv, wawa, zbs, ds, onecoin, glad, mace, kos or mmsr"),
                    json!({"field": "method"}),
                )
            }),
    }
}

async fn consensus<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<ConsensusQuery>,
) -> Result<Json<Value>, ApiError> {
    let method = label_method(query.method.as_deref())?;
    Ok(Json(
        json!({"consensus": state.app.analysis({ let app = state.app.clone(); async move { app.consensus(&caller, id, method).await } }).await?}),
    ))
}

async fn agreement<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"agreement": state.app.analysis({ let app = state.app.clone(); async move { app.agreement(&caller, id).await } }).await?}),
    ))
}

async fn rater_reliability<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"raters": state.app.analysis({ let app = state.app.clone(); async move { app.rater_reliability(&caller, id).await } }).await?}),
    ))
}

async fn set_quality<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let policy: quorum_store::QualityPolicy = parse_body(&body)?;
    let project = state.app.set_quality(&caller, id, policy).await?;
    Ok(Json(json!({"project": project})))
}

async fn rater_events<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"events": state.app.rater_events(&caller, id).await?}),
    ))
}

async fn change_standing<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path((id, user_id)): Path<(i64, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let change: quorum_app::control::StandingChange = parse_body(&body)?;
    let changed = state
        .app
        .change_standing(&caller, id, user_id, change)
        .await?;
    Ok(Json(json!({"changed": changed})))
}

#[derive(Debug, Deserialize)]
struct QueueQuery {
    #[serde(default = "default_queue")]
    limit: usize,
}

fn default_queue() -> usize {
    20
}

async fn review_queue<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.clamp(1, 1000);
    Ok(Json(
        json!({"items": state.app.analysis({ let app = state.app.clone(); async move { app.review_queue(&caller, id, limit).await } }).await?}),
    ))
}

async fn submit_review<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: quorum_app::review::ReviewInput = parse_body(&body)?;
    let reviews = state.app.submit_review(&caller, id, input).await?;
    Ok((StatusCode::CREATED, Json(json!({"reviews": reviews}))))
}

#[derive(Debug, Deserialize)]
struct RunStandardQuery {
    /// Registered model names, comma-separated.
    models: String,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
}

/// Runs a standard sent as TOML (items inline); answers when the models have answered.
async fn run_standard<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Query(query): Query<RunStandardQuery>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid("the standard is not UTF-8 text", Value::Null))?;
    if !(1..=64).contains(&query.concurrency) {
        return Err(ApiError::invalid(
            "concurrency must be 1 to 64",
            json!({"field": "concurrency"}),
        ));
    }
    let options = quorum_app::standard::run::RunOptions {
        models: query
            .models
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect(),
        concurrency: query.concurrency,
        policy: RetryPolicy::default(),
    };
    let (standard, run) = state.app.run_standard_text(&caller, text, options).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "hash": standard.hash,
            "prompts_project_id": run.prompts_project_id,
            "battles_project_id": run.battles_project_id,
            "models": run.models,
        })),
    ))
}

async fn list_standards<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"standards": state.app.standards(&caller).await?}),
    ))
}

/// The signed report of a standard run here (409 saying what is missing until it may be made).
async fn standard_report<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let standard = state.app.stored_standard(&hash).await?;
    let signed = state.app.report_standard(&caller, &standard).await?;
    Ok(Json(json!(signed)))
}

#[derive(Debug, Deserialize)]
struct LeaderboardQuery {
    #[serde(default = "default_bootstrap")]
    bootstrap: usize,
    #[serde(default)]
    seed: u64,
    /// `MODEL=RATING`.
    anchor: Option<String>,
    #[serde(default)]
    min_battles: u64,
    slice_by: Option<SliceBy>,
}

fn default_bootstrap() -> usize {
    1000
}

async fn leaderboard<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<LeaderboardQuery>,
) -> Result<Json<Value>, ApiError> {
    if query.bootstrap > 10_000 {
        return Err(ApiError::invalid(
            "bootstrap is at most 10000 rounds",
            json!({"field": "bootstrap"}),
        ));
    }
    let anchor = query
        .anchor
        .as_deref()
        .map(parse_anchor)
        .transpose()
        .map_err(|problem| ApiError::invalid(problem, json!({"field": "anchor"})))?;
    let options = ReportOptions {
        bootstrap: query.bootstrap,
        seed: query.seed,
        anchor,
        min_battles: query.min_battles,
        threads: quorum_app::analysis_threads(),
    };
    let report = state
        .app
        .analysis({
            let app = state.app.clone();
            async move {
                app.project_leaderboard(&caller, id, query.slice_by, options)
                    .await
            }
        })
        .await?;
    Ok(Json(json!({"leaderboard": report})))
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    #[serde(default = "default_format")]
    format: String,
}

fn default_format() -> String {
    "jsonl".into()
}

async fn export<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    if ["dpo", "sft", "consensus"].contains(&query.format.as_str()) {
        let app = state.app.clone();
        let format = query.format.clone();
        // These read and aggregate the whole project: an analysis.
        let lines = state
            .app
            .analysis(async move {
                match format.as_str() {
                    "dpo" => app.dpo_pairs(&caller, id).await,
                    "sft" => app.sft_conversations(&caller, id).await,
                    _ => {
                        app.authorize_export(&caller, id).await?;
                        let method = quorum_stats::classification::Method::DawidSkene;
                        let consensus = app.consensus(&caller, id, method).await?;
                        Ok(consensus.into_iter().map(|c| json!(c)).collect())
                    }
                }
            })
            .await?;
        let mut text = String::new();
        for pair in lines {
            text.push_str(&pair.to_string());
            text.push('\n');
        }
        let mut response = Response::new(Body::from(text));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(ExportFormat::Jsonl.content_type()),
        );
        return Ok(response);
    }
    let format = ExportFormat::parse(&query.format).ok_or_else(|| {
        ApiError::invalid(
            format!(
                "unknown format `{}`; use jsonl, csv, dpo or sft",
                query.format
            ),
            json!({"field": "format"}),
        )
    })?;
    state.app.authorize_export(&caller, id).await?;
    let header = Some(Bytes::from_static(format.header().as_bytes())).filter(|h| !h.is_empty());
    // Page through the responses by id; memory stays at one page whatever the project's size.
    let pages = stream::unfold(Some(0i64), move |cursor| {
        let state = state.clone();
        async move {
            let after = cursor?;
            match state
                .app
                .store()
                .export_responses(id, after, EXPORT_PAGE)
                .await
            {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = if (rows.len() as i64) < EXPORT_PAGE {
                        None
                    } else {
                        rows.last().map(|r| r.response_id)
                    };
                    let mut text = String::with_capacity(rows.len() * 160);
                    format.render(&rows, &mut text);
                    Some((Ok::<Bytes, std::io::Error>(Bytes::from(text)), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let body = stream::iter(header.map(Ok)).chain(pages);
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}
