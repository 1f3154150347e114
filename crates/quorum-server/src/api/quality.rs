//! Quality: rules, rater standing and its audit log, consensus, agreement, reliability and review.

use super::*;

#[derive(Debug, Deserialize)]
pub(super) struct ConsensusQuery {
    /// The truth-inference method for label questions (`ds` by default).
    method: Option<String>,
}

fn label_method(name: Option<&str>) -> Result<quorum_stats::classification::Method, ApiError> {
    use quorum_stats::classification::Method;
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

pub(super) async fn consensus<S: Store>(
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

pub(super) async fn agreement<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"agreement": state.app.analysis({ let app = state.app.clone(); async move { app.agreement(&caller, id).await } }).await?}),
    ))
}

pub(super) async fn rater_reliability<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"raters": state.app.analysis({ let app = state.app.clone(); async move { app.rater_reliability(&caller, id).await } }).await?}),
    ))
}

pub(super) async fn set_quality<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let policy: quorum_store::QualityPolicy = parse_body(&body)?;
    let project = state.app.set_quality(&caller, id, policy).await?;
    Ok(Json(json!({"project": project})))
}

pub(super) async fn rater_events<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"events": state.app.rater_events(&caller, id).await?}),
    ))
}

pub(super) async fn change_standing<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path((id, user_id)): Path<(i64, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let change: quorum_app::quality::control::StandingChange = parse_body(&body)?;
    let changed = state
        .app
        .change_standing(&caller, id, user_id, change)
        .await?;
    Ok(Json(json!({"changed": changed})))
}

#[derive(Debug, Deserialize)]
pub(super) struct QueueQuery {
    #[serde(default = "default_queue")]
    limit: usize,
}

fn default_queue() -> usize {
    20
}

pub(super) async fn review_queue<S: Store>(
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

pub(super) async fn submit_review<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let input: quorum_app::quality::review::ReviewInput = parse_body(&body)?;
    let reviews = state.app.submit_review(&caller, id, input).await?;
    Ok((StatusCode::CREATED, Json(json!({"reviews": reviews}))))
}
