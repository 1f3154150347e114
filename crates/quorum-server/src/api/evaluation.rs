//! Evaluation: generations, battles, the model registry, runs, judges and the leaderboard.

use super::*;
use crate::wire::evaluation::{
    BuildBattles, GenerationsStored, JudgeReports, JudgeStarted, Leaderboard, Model,
    ModelRegistered, Models, RunProgress, RunStarted, StartJudge, StartRun,
};
use crate::wire::projects::ProjectEnvelope;

/// Import models' answers to the project's prompts (managers).
///
/// JSON Lines of `{prompt_id, model, response}` (`prompt_id`: an item's external id); all
/// lines or none.
#[utoipa::path(post, path = "/api/v1/projects/{id}/generations", tag = "evaluation",
    params(("id" = i64, Path, description = "The project of prompts")),
    request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = GenerationsStored), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 413, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn import_generations<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<GenerationsStored>, ApiError> {
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
    Ok(Json(GenerationsStored {
        stored: outcome.stored,
    }))
}

/// Build a battle project from the models' answers (managers).
///
/// Pairwise items with randomised, recorded sides and hidden model names.
#[utoipa::path(post, path = "/api/v1/projects/{id}/battles", tag = "evaluation",
    params(("id" = i64, Path, description = "The project of prompts")), request_body = BuildBattles,
    responses((status = 201, description = "The new battle project", body = ProjectEnvelope),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn build_battles<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<ProjectEnvelope>), ApiError> {
    let request: BuildBattles = parse_body(&body)?;
    let project = state.app.build_battles(&caller, id, request.into()).await?;
    Ok((StatusCode::CREATED, Json(project.into())))
}

/// Register or update a model (administrators).
#[utoipa::path(post, path = "/api/v1/models", tag = "evaluation", request_body = Model,
    responses((status = 201, body = ModelRegistered), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn register_model<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<ModelRegistered>), ApiError> {
    let model: Model = parse_body(&body)?;
    let name = model.name.clone();
    state.app.register_model(&caller, model.into()).await?;
    Ok((StatusCode::CREATED, Json(ModelRegistered { model: name })))
}

/// The model registry (no secrets: API keys are named by their environment variable).
#[utoipa::path(get, path = "/api/v1/models", tag = "evaluation",
    responses((status = 200, body = Models), (status = 401, response = ErrorBody)))]
pub(super) async fn list_models<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Models>, ApiError> {
    let models = state.app.models(&caller).await?;
    Ok(Json(Models {
        models: models.into_iter().map(Into::into).collect(),
    }))
}

/// Queue a run of the models on the project's prompts as background jobs, one per model
/// (managers).
///
/// Any server's job runner runs them; another server resumes a run whose server stops.
/// Bounded concurrency per model, retries with backoff honouring `Retry-After`; only prompts
/// without an answer are called. 409 while one of the models is already queued or running
/// here.
#[utoipa::path(post, path = "/api/v1/projects/{id}/runs", tag = "evaluation",
    params(("id" = i64, Path, description = "The project of prompts")), request_body = StartRun,
    responses((status = 202, description = "The queued jobs", body = RunStarted),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody), (status = 409, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn start_run<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<RunStarted>), ApiError> {
    let request: StartRun = parse_body(&body)?;
    check_concurrency(request.concurrency)?;
    let run = RunRequest {
        models: request.models,
        concurrency: request.concurrency,
        policy: RetryPolicy::default(),
    };
    let jobs = state.app.start_model_run(&caller, id, &run).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunStarted {
            started: true,
            jobs: jobs.into_iter().map(Into::into).collect(),
        }),
    ))
}

/// Run progress per model: prompts, answered, failed (reviewers and managers).
#[utoipa::path(get, path = "/api/v1/projects/{id}/runs", tag = "evaluation",
    params(("id" = i64, Path, description = "The project of prompts")),
    responses((status = 200, body = RunProgress), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn run_progress<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<RunProgress>, ApiError> {
    Ok(Json(RunProgress {
        models: state.app.run_progress(&caller, id).await?,
    }))
}

/// Start an LLM judge on a battle project as a background job (managers).
///
/// A registered model answers every battle twice with the sides swapped; outputs without one
/// clear `[[A]]`/`[[B]]`/`[[TIE]]`/`[[BOTH_BAD]]` verdict are recorded as unparseable;
/// starting again resumes. 409 while the same judge is queued or running.
#[utoipa::path(post, path = "/api/v1/projects/{id}/judges", tag = "evaluation",
    params(("id" = i64, Path, description = "The battle project")), request_body = StartJudge,
    responses((status = 202, description = "The queued job", body = JudgeStarted),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody), (status = 409, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn start_judge<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<JudgeStarted>), ApiError> {
    let request: StartJudge = parse_body(&body)?;
    check_concurrency(request.concurrency)?;
    let judge = JudgeRequest {
        model: request.model,
        template: request.template,
        concurrency: request.concurrency,
        policy: RetryPolicy::default(),
    };
    let job = state.app.start_judge(&caller, id, &judge).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(JudgeStarted {
            started: true,
            job: job.into(),
        }),
    ))
}

/// Each LLM judge against the humans (reviewers and managers).
///
/// Per judge: battles judged, unparseable outputs, consistency across orders, position bias,
/// agreement with the human consensus (percent, Cohen's kappa).
#[utoipa::path(get, path = "/api/v1/projects/{id}/judges", tag = "evaluation",
    params(("id" = i64, Path, description = "The battle project")),
    responses((status = 200, body = JudgeReports, headers(("quorum-replica-lag-ms" = i64, description = "Read from a read replica this many milliseconds behind the primary (absent when the primary answered)"))), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn judge_reports<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<(AppendHeaders<ReplicaLag>, Json<JudgeReports>), ApiError> {
    let app = state.app.analytics();
    let lag = replica_lag(&app);
    let judges = state
        .app
        .analysis(async move { app.judge_reports(&caller, id).await })
        .await?;
    Ok((lag, Json(JudgeReports { judges })))
}

/// What a board is sliced by.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum SliceBy {
    /// The rater's first locale in the project.
    RaterLocale,
    /// The prompt's category.
    Category,
    /// The prompt's language (the language subtag of its locale).
    Language,
}

impl From<SliceBy> for quorum_app::evaluation::SliceBy {
    fn from(slice: SliceBy) -> Self {
        match slice {
            SliceBy::RaterLocale => quorum_app::evaluation::SliceBy::RaterLocale,
            SliceBy::Category => quorum_app::evaluation::SliceBy::Category,
            SliceBy::Language => quorum_app::evaluation::SliceBy::Language,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LeaderboardQuery {
    /// Bootstrap rounds for the intervals, at most 10000.
    #[serde(default = "default_bootstrap")]
    #[param(default = 1000, maximum = 10000)]
    bootstrap: usize,
    #[serde(default)]
    seed: u64,
    /// `MODEL=RATING`: the rating one model is pinned to.
    anchor: Option<String>,
    /// Models with fewer battles are provisional (listed after the ranked ones).
    #[serde(default)]
    min_battles: u64,
    /// Boards per slice too, and where they diverge.
    #[param(inline)]
    slice_by: Option<SliceBy>,
}

fn default_bootstrap() -> usize {
    1000
}

/// The arena leaderboard of a battle project's votes (reviewers and managers).
///
/// Bradley–Terry ratings (Elo scale) with bootstrap intervals, rank (UB), online Elo; boards
/// per slice and their divergence.
#[utoipa::path(get, path = "/api/v1/projects/{id}/leaderboard", tag = "evaluation",
    params(("id" = i64, Path, description = "The battle project"), LeaderboardQuery),
    responses((status = 200, body = Leaderboard, headers(("quorum-replica-lag-ms" = i64, description = "Read from a read replica this many milliseconds behind the primary (absent when the primary answered)"))), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn leaderboard<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<LeaderboardQuery>,
) -> Result<(AppendHeaders<ReplicaLag>, Json<Leaderboard>), ApiError> {
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
    let slice_by = query.slice_by.map(Into::into);
    let app = state.app.analytics();
    let lag = replica_lag(&app);
    let leaderboard = state
        .app
        .analysis(async move {
            app.project_leaderboard(&caller, id, slice_by, options)
                .await
        })
        .await?;
    Ok((lag, Json(Leaderboard { leaderboard })))
}
