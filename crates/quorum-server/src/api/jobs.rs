//! Background jobs: what the job runners of every server are doing and have done.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobsQuery {
    /// Jobs with a smaller id (the next page: the last id of this one).
    before: Option<i64>,
    #[serde(default = "default_jobs_limit")]
    limit: i64,
}

fn default_jobs_limit() -> i64 {
    100
}

/// Every job, newest first (administrators).
pub(super) async fn list_jobs<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Query(query): Query<JobsQuery>,
) -> Result<Json<Value>, ApiError> {
    let jobs = state
        .app
        .jobs(&caller, None, query.before.unwrap_or(i64::MAX), query.limit)
        .await?;
    Ok(Json(json!({"jobs": jobs})))
}

/// A project's jobs, newest first (its reviewers and managers).
pub(super) async fn project_jobs<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<Value>, ApiError> {
    let jobs = state
        .app
        .jobs(
            &caller,
            Some(id),
            query.before.unwrap_or(i64::MAX),
            query.limit,
        )
        .await?;
    Ok(Json(json!({"jobs": jobs})))
}

pub(super) async fn get_job<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"job": state.app.job(&caller, id).await?})))
}
