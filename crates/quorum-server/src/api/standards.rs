//! Evaluation standards: run one, list them, their signed reports.

use super::*;
use crate::wire::evaluation::default_concurrency;
use crate::wire::standards::{StandardStarted, Standards};
use quorum_app::standards::report::SignedReport;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RunStandardQuery {
    /// Registered model names, comma-separated (at least two).
    models: String,
    /// Requests in flight per model, 1 to 64.
    #[serde(default = "default_concurrency")]
    #[param(default = 4, minimum = 1, maximum = 64)]
    concurrency: usize,
}

/// Run an evaluation standard sent as TOML (administrators).
///
/// Items inline (see `docs/standard.schema.json`): a project of its prompts, the models'
/// answers, a battle project with its questions and rater rules, its LLM judge. Answers when
/// the models have answered. 422 lists every problem of the file in `details.problems`
/// (`{location, message}`).
#[utoipa::path(post, path = "/api/v1/standards", tag = "standards", params(RunStandardQuery),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 201, body = StandardStarted), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 409, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn run_standard<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Query(query): Query<RunStandardQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<StandardStarted>), ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid("the standard is not UTF-8 text", Value::Null))?;
    check_concurrency(query.concurrency)?;
    let options = quorum_app::standards::run::RunOptions {
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
        Json(StandardStarted {
            hash: standard.hash,
            prompts_project_id: run.prompts_project_id,
            battles_project_id: run.battles_project_id,
            models: run.models,
        }),
    ))
}

/// The standards run here whose battles the caller may see, newest first.
///
/// Each with `missing`: what it still needs before its report (empty when it may be made).
#[utoipa::path(get, path = "/api/v1/standards", tag = "standards",
    responses((status = 200, body = Standards), (status = 401, response = ErrorBody)))]
pub(super) async fn list_standards<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Standards>, ApiError> {
    Ok(Json(Standards {
        standards: state.app.standards(&caller).await?,
    }))
}

/// The signed report of the standard's latest run here (as `quorum standard report`).
///
/// 409 saying what is missing until the rater requirements are met.
#[utoipa::path(get, path = "/api/v1/standards/{hash}/report", tag = "standards",
    params(("hash" = String, Path, description = "The standard's hash, `sha256:…`")),
    responses((status = 200, body = SignedReport), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 409, response = ErrorBody)))]
pub(super) async fn standard_report<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(hash): Path<String>,
) -> Result<Json<SignedReport>, ApiError> {
    let standard = state.app.stored_standard(&hash).await?;
    let signed = state.app.report_standard(&caller, &standard).await?;
    Ok(Json(signed))
}
