//! Quality: consensus, agreement, rater reliability and standing, rules, the review queue.

use super::*;
use crate::wire::projects::{ProjectEnvelope, QualityPolicy};
use crate::wire::quality::{
    AgreementList, ConsensusList, RaterEvents, RaterList, ReviewInput, ReviewQueue, Reviews,
    StandingChanged,
};
use quorum_app::quality::control::StandingChange;
use quorum_stats::classification::Method;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ConsensusQuery {
    /// The truth-inference method for label questions (Dawid–Skene when absent).
    #[param(schema_with = label_methods)]
    method: Option<String>,
}

/// The label methods, from the engine's one registry.
fn label_methods() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(Method::ALL.map(Method::short_name)))
        .default(Some(Value::from(Method::DawidSkene.short_name())))
        .build()
}

fn label_method(name: Option<&str>) -> Result<Method, ApiError> {
    match name {
        None => Ok(Method::DawidSkene),
        Some(name) => Method::parse(name).ok_or_else(|| {
            ApiError::invalid(
                format!("unknown method `{name}`; use one of {}", Method::names()),
                json!({"field": "method"}),
            )
        }),
    }
}

/// Each item's consensus per question (reviewers and managers).
///
/// Label questions by a truth-inference method (Dawid–Skene by default), pairwise by
/// Bradley–Terry between the sides, ratings by the median, multi-label per option; with
/// confidence and the number of responses.
#[utoipa::path(get, path = "/api/v1/projects/{id}/consensus", tag = "quality",
    params(("id" = i64, Path, description = "The project"), ConsensusQuery),
    responses((status = 200, body = ConsensusList, headers(("quorum-replica-lag-ms" = i64, description = "Read from a read replica this many milliseconds behind the primary (absent when the primary answered)"))), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn consensus<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<ConsensusQuery>,
) -> Result<(AppendHeaders<ReplicaLag>, Json<ConsensusList>), ApiError> {
    let method = label_method(query.method.as_deref())?;
    let app = state.app.analytics();
    let lag = replica_lag(&app);
    let consensus = state
        .app
        .analysis(async move { app.consensus(&caller, id, method).await })
        .await?;
    Ok((lag, Json(ConsensusList { consensus })))
}

/// Agreement per question (reviewers and managers).
///
/// Krippendorff's alpha with a bootstrap interval overall and within each rater locale, and
/// mean pairwise percent agreement within and across locales; also Fleiss' kappa (nominal
/// questions whose items have the same number of raters) and `pairs`: Cohen's kappa per rater
/// pair with at least 5 items in common.
#[utoipa::path(get, path = "/api/v1/projects/{id}/agreement", tag = "quality",
    params(("id" = i64, Path, description = "The project")),
    responses((status = 200, body = AgreementList, headers(("quorum-replica-lag-ms" = i64, description = "Read from a read replica this many milliseconds behind the primary (absent when the primary answered)"))), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn agreement<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<(AppendHeaders<ReplicaLag>, Json<AgreementList>), ApiError> {
    let app = state.app.analytics();
    let lag = replica_lag(&app);
    let agreement = state
        .app
        .analysis(async move { app.agreement(&caller, id).await })
        .await?;
    Ok((lag, Json(AgreementList { agreement })))
}

/// How far each rater can be trusted (reviewers and managers).
///
/// Per rater: responses, gold answered and correct, reviews accepted and rejected, accuracy on
/// checked answers (gold and reviewed) as a Beta(1,1) posterior mean with its 95% credible
/// interval, agreement with the consensus, the Dawid–Skene skill and confusion matrix on the
/// first label question, and their standing (`paused` reason, `qualified`).
#[utoipa::path(get, path = "/api/v1/projects/{id}/raters", tag = "quality",
    params(("id" = i64, Path, description = "The project")),
    responses((status = 200, body = RaterList, headers(("quorum-replica-lag-ms" = i64, description = "Read from a read replica this many milliseconds behind the primary (absent when the primary answered)"))), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn rater_reliability<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<(AppendHeaders<ReplicaLag>, Json<RaterList>), ApiError> {
    let app = state.app.analytics();
    let lag = replica_lag(&app);
    let raters = state
        .app
        .analysis(async move { app.rater_reliability(&caller, id).await })
        .await?;
    Ok((lag, Json(RaterList { raters })))
}

/// Replace the project's quality rules: gold mixing, feedback, qualification, auto-pause,
/// review (managers).
#[utoipa::path(put, path = "/api/v1/projects/{id}/quality", tag = "quality",
    params(("id" = i64, Path, description = "The project")), request_body = QualityPolicy,
    responses((status = 200, body = ProjectEnvelope), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn set_quality<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<ProjectEnvelope>, ApiError> {
    let policy: QualityPolicy = parse_body(&body)?;
    let project = state.app.set_quality(&caller, id, policy.into()).await?;
    Ok(Json(project.into()))
}

/// The audit log of pauses, reinstatements and qualification decisions, oldest first
/// (reviewers and managers).
#[utoipa::path(get, path = "/api/v1/projects/{id}/rater-events", tag = "quality",
    params(("id" = i64, Path, description = "The project")),
    responses((status = 200, body = RaterEvents), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn rater_events<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<RaterEvents>, ApiError> {
    let events = state.app.rater_events(&caller, id).await?;
    Ok(Json(RaterEvents {
        events: events.into_iter().map(Into::into).collect(),
    }))
}

/// A manager reinstates a paused rater or decides their qualification.
///
/// `changed` is false when there was nothing to change.
#[utoipa::path(post, path = "/api/v1/projects/{id}/raters/{user_id}/standing", tag = "quality",
    params(("id" = i64, Path, description = "The project"),
        ("user_id" = i64, Path, description = "The rater")),
    request_body = StandingChange,
    responses((status = 200, body = StandingChanged), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn change_standing<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path((id, user_id)): Path<(i64, i64)>,
    body: Bytes,
) -> Result<Json<StandingChanged>, ApiError> {
    let change: StandingChange = parse_body(&body)?;
    let changed = state
        .app
        .change_standing(&caller, id, user_id, change)
        .await?;
    Ok(Json(StandingChanged { changed }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct QueueQuery {
    /// 1 to 1000.
    #[serde(default = "default_queue")]
    #[param(default = 20, minimum = 1, maximum = 1000)]
    limit: usize,
}

fn default_queue() -> usize {
    20
}

/// Items waiting for review (reviewers and managers).
///
/// Done collecting, not gold, with an unjudged response, picked by low consensus confidence,
/// disagreement or the random sample; each with its fields, reasons, consensus and responses.
#[utoipa::path(get, path = "/api/v1/projects/{id}/review-queue", tag = "quality",
    params(("id" = i64, Path, description = "The project"), QueueQuery),
    responses((status = 200, body = ReviewQueue), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn review_queue<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<QueueQuery>,
) -> Result<Json<ReviewQueue>, ApiError> {
    let limit = query.limit.clamp(1, 1000);
    let app = state.app.clone();
    let items = state
        .app
        .analysis(async move { app.review_queue(&caller, id, limit).await })
        .await?;
    Ok(Json(ReviewQueue { items }))
}

/// Judge an item's responses: accept, reject, or correct (reviewers and managers).
///
/// A correction's answers become the item's adjudicated answer. Rejected and corrected
/// responses leave the consensus and count against their rater. All verdicts are stored or
/// none.
#[utoipa::path(post, path = "/api/v1/projects/{id}/reviews", tag = "quality",
    params(("id" = i64, Path, description = "The project")), request_body = ReviewInput,
    responses((status = 201, body = Reviews), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn submit_review<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<Reviews>), ApiError> {
    let input: ReviewInput = parse_body(&body)?;
    let reviews = state.app.submit_review(&caller, id, input.into()).await?;
    Ok((
        StatusCode::CREATED,
        Json(Reviews {
            reviews: reviews.into_iter().map(Into::into).collect(),
        }),
    ))
}
