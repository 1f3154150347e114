//! The rater loop: next item, answer, skip.

use super::*;

pub(super) async fn next<S: Store>(
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
pub(super) struct SubmitQuery {
    /// Also lease the rater's next item in the same project and return it as `next`.
    #[serde(default)]
    next: bool,
}

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

pub(super) async fn skip<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.app.skip(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
