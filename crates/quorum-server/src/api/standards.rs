//! Evaluation standards: run, list, signed report.

use super::evaluation::default_concurrency;
use super::*;

#[derive(Debug, Deserialize)]
pub(super) struct RunStandardQuery {
    /// Registered model names, comma-separated.
    models: String,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
}

/// Runs a standard sent as TOML (items inline); answers when the models have answered.
pub(super) async fn run_standard<S: Store>(
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
        Json(json!({
            "hash": standard.hash,
            "prompts_project_id": run.prompts_project_id,
            "battles_project_id": run.battles_project_id,
            "models": run.models,
        })),
    ))
}

pub(super) async fn list_standards<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"standards": state.app.standards(&caller).await?}),
    ))
}

/// The signed report of a standard run here (409 saying what is missing until it may be made).
pub(super) async fn standard_report<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let standard = state.app.stored_standard(&hash).await?;
    let signed = state.app.report_standard(&caller, &standard).await?;
    Ok(Json(json!(signed)))
}
