//! Model evaluation: generations, battles, the model registry, runs, judges and boards.

use super::*;

pub(super) async fn import_generations<S: Store>(
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

pub(super) async fn build_battles<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: BuildBattles = parse_body(&body)?;
    let project = state.app.build_battles(&caller, id, request).await?;
    Ok((StatusCode::CREATED, Json(json!({"project": project}))))
}

pub(super) async fn register_model<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let model: ModelSpec = parse_body(&body)?;
    let name = model.name.clone();
    state.app.register_model(&caller, model).await?;
    Ok((StatusCode::CREATED, Json(json!({"model": name}))))
}

pub(super) async fn list_models<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"models": state.app.models(&caller).await?})))
}

#[derive(Debug, Deserialize)]
pub(super) struct StartRun {
    models: Vec<String>,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
}

pub(super) fn default_concurrency() -> usize {
    4
}

/// Queues a run as one job per model (it can take hours); any server's job runner takes it,
/// and another server resumes it if that one stops. Progress is read from the store.
pub(super) async fn start_run<S: Store>(
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
    let jobs = state.app.start_model_run(&caller, id, &run).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"started": true, "jobs": jobs})),
    ))
}

pub(super) async fn run_progress<S: Store>(
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
pub(super) struct StartJudge {
    model: String,
    template: Option<String>,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
}

/// Queues an LLM judge on a battle project as a job; starting it again (once that job has
/// ended) resumes it.
pub(super) async fn start_judge<S: Store>(
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
    let job = state.app.start_judge(&caller, id, &judge).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"started": true, "job": job})),
    ))
}

pub(super) async fn judge_reports<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"judges": state.app.analysis({ let app = state.app.clone(); async move { app.judge_reports(&caller, id).await } }).await?}),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct LeaderboardQuery {
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

pub(super) async fn leaderboard<S: Store>(
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
