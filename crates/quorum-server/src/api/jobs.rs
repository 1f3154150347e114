//! Background jobs: what the job runners of every server are doing and have done.

use super::*;
use crate::wire::jobs::{JobEnvelope, Jobs};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct JobsQuery {
    /// Only jobs with a smaller id: the next page starts below the last id of this one.
    before: Option<i64>,
    /// 1 to 1000.
    #[serde(default = "default_jobs_limit")]
    #[param(default = 100, minimum = 1, maximum = 1000)]
    limit: i64,
}

fn default_jobs_limit() -> i64 {
    100
}

fn jobs_reply(jobs: Vec<quorum_store::Job>) -> Json<Jobs> {
    Json(Jobs {
        jobs: jobs.into_iter().map(Into::into).collect(),
    })
}

/// Every background job, newest first (administrators).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, description = "Newest first", body = Jobs),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn list_jobs<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Query(query): Query<JobsQuery>,
) -> Result<Json<Jobs>, ApiError> {
    let jobs = state
        .app
        .jobs(&caller, None, query.before.unwrap_or(i64::MAX), query.limit)
        .await?;
    Ok(jobs_reply(jobs))
}

/// The project's background jobs, newest first (reviewers and managers).
#[utoipa::path(get, path = "/api/v1/projects/{id}/jobs", tag = "jobs",
    params(("id" = i64, Path, description = "The project"), JobsQuery),
    responses((status = 200, description = "Newest first", body = Jobs),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn project_jobs<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<Jobs>, ApiError> {
    let jobs = state
        .app
        .jobs(
            &caller,
            Some(id),
            query.before.unwrap_or(i64::MAX),
            query.limit,
        )
        .await?;
    Ok(jobs_reply(jobs))
}

/// One background job (whoever may see its project's jobs; administrators for the rest).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "The job")),
    responses((status = 200, body = JobEnvelope), (status = 401, response = ErrorBody),
        (status = 404, response = ErrorBody)))]
pub(super) async fn get_job<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<JobEnvelope>, ApiError> {
    Ok(Json(JobEnvelope {
        job: state.app.job(&caller, id).await?.into(),
    }))
}
