//! The rater loop: next item, answer, skip.

use super::*;
use crate::wire::work::SubmitReply;
use quorum_app::Assignment;

/// Lease the caller's next item (their live lease if they have one).
///
/// 403 when the rater is paused or failed the qualification (the message says why).
#[utoipa::path(post, path = "/api/v1/projects/{id}/next", tag = "work",
    params(("id" = i64, Path, description = "The project")),
    responses((status = 200, description = "A lease and the item (never its gold answer)", body = Assignment),
        (status = 204, description = "Nothing left for this rater"),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody)))]
pub(super) async fn next<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    match state.app.next(&caller, id).await? {
        Some(assignment) => {
            state.metrics.leases_granted.fetch_add(1, Ordering::Relaxed);
            Ok(Json(assignment).into_response())
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SubmitQuery {
    /// Also lease the rater's next item in the project and return it as `next` (null when
    /// none is left): one round trip per answer. When the project now holds the rater back
    /// (paused, not qualified), `next` is null and `next_refused` says why.
    #[serde(default)]
    next: bool,
}

/// Answer a leased item.
///
/// With an `Idempotency-Key` header a retry returns the first response (200, `replayed`
/// true) instead of storing a second. 409 `lease_expired` when the lease expired and its slot
/// was taken. With gold feedback on, a reply to a gold item carries
/// `feedback: {expected, correct}`.
#[utoipa::path(post, path = "/api/v1/leases/{id}/response", tag = "work",
    params(("id" = i64, Path, description = "The lease"),
        ("Idempotency-Key" = Option<String>, Header, max_length = 200,
            description = "The same key on a retry replays the first response"),
        SubmitQuery),
    request_body = SubmitAnswers,
    responses((status = 201, description = "The stored response", body = SubmitReply),
        (status = 200, description = "A replayed response", body = SubmitReply),
        (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody), (status = 409, response = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn submit<S: Store>(
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
    let created = submitted.created;
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
    let project_id = submitted.response.project_id;
    let mut reply = SubmitReply {
        response: submitted.response,
        replayed: !created,
        feedback: submitted.feedback,
        next: None,
        next_refused: None,
    };
    if query.next {
        // The answer is stored whatever happens here: a rater the answer paused gets the reason.
        match state.app.next(&caller, project_id).await {
            Ok(next) => {
                if next.is_some() {
                    state.metrics.leases_granted.fetch_add(1, Ordering::Relaxed);
                }
                reply.next = Some(next);
            }
            Err(quorum_app::AppError::Forbidden(reason)) => {
                reply.next = Some(None);
                reply.next_refused = Some(reason);
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok((status, Json(reply)).into_response())
}

/// Skip a leased item; it is never offered to the caller again.
#[utoipa::path(post, path = "/api/v1/leases/{id}/skip", tag = "work",
    params(("id" = i64, Path, description = "The lease")),
    responses((status = 204, description = "Skipped"), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody),
        (status = 409, response = ErrorBody)))]
pub(super) async fn skip<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.app.skip(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
