//! Accounts: who the caller is, users, tokens and sessions, passwords.

use super::*;
use crate::wire::accounts::{
    NewToken, NewTokenSecret, NewUser, PasswordChange, Tokens, UserEnvelope, Users,
};

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts",
    responses((status = 200, body = UserEnvelope), (status = 401, response = ErrorBody)))]
pub(super) async fn me(Authenticated(caller): Authenticated) -> Json<UserEnvelope> {
    Json(caller.user.into())
}

/// Create a user (administrators).
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = NewUser,
    responses((status = 201, body = UserEnvelope), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, response = ErrorBody)))]
pub(super) async fn create_user<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<UserEnvelope>), ApiError> {
    let request: NewUser = parse_body(&body)?;
    let user = state
        .app
        .create_user(&caller, &request.name, &request.password, request.admin)
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Issue an API token for a user (administrators, or the user themself).
///
/// The token is shown once, in this reply, and stored only as a hash.
#[utoipa::path(post, path = "/api/v1/users/{id}/tokens", tag = "accounts",
    params(("id" = i64, Path, description = "The user")),
    request_body(content = Option<NewToken>, description = "May be empty: a token named `api` that does not expire"),
    responses((status = 201, body = NewTokenSecret), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn create_token<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<NewTokenSecret>), ApiError> {
    let request: NewToken = if body.is_empty() {
        NewToken::default()
    } else {
        parse_body(&body)?
    };
    let token = state
        .app
        .create_token(&caller, id, &request.name, request.expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(NewTokenSecret { token })))
}

/// List every account (administrators).
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts",
    responses((status = 200, body = Users), (status = 401, response = ErrorBody), (status = 403, response = ErrorBody)))]
pub(super) async fn list_users<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Users>, ApiError> {
    let users = state.app.users(&caller).await?;
    Ok(Json(Users {
        users: users.into_iter().map(Into::into).collect(),
    }))
}

/// List a user's API tokens and web sessions, never their secrets (administrators, or the user themself).
#[utoipa::path(get, path = "/api/v1/users/{id}/tokens", tag = "accounts",
    params(("id" = i64, Path, description = "The user")),
    responses((status = 200, body = Tokens), (status = 401, response = ErrorBody), (status = 403, response = ErrorBody),
        (status = 404, response = ErrorBody)))]
pub(super) async fn list_tokens<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Tokens>, ApiError> {
    let tokens = state.app.tokens(&caller, id).await?;
    Ok(Json(Tokens {
        tokens: tokens.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke one token or web session (administrators, or the user themself).
///
/// It stops working on this server at once and on the others within 5 s.
#[utoipa::path(delete, path = "/api/v1/users/{id}/tokens/{token_id}", tag = "accounts",
    params(("id" = i64, Path, description = "The user"), ("token_id" = i64, Path, description = "The token")),
    responses((status = 204, description = "Revoked"), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn revoke_token<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path((id, token_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    state.app.revoke_token(&caller, id, token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disable an account (administrators; not their own).
///
/// It cannot sign in, and every token and session of it is revoked.
#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "accounts",
    params(("id" = i64, Path, description = "The user")),
    responses((status = 200, body = UserEnvelope), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody), (status = 422, response = ErrorBody)))]
pub(super) async fn disable_user<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<UserEnvelope>, ApiError> {
    let user = state.app.set_disabled(&caller, id, true).await?;
    Ok(Json(user.into()))
}

/// Enable a disabled account again (administrators); it needs new tokens.
#[utoipa::path(post, path = "/api/v1/users/{id}/enable", tag = "accounts",
    params(("id" = i64, Path, description = "The user")),
    responses((status = 200, body = UserEnvelope), (status = 401, response = ErrorBody),
        (status = 403, response = ErrorBody), (status = 404, response = ErrorBody)))]
pub(super) async fn enable_user<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<UserEnvelope>, ApiError> {
    let user = state.app.set_disabled(&caller, id, false).await?;
    Ok(Json(user.into()))
}

/// Change your own password; every web session of yours ends (API tokens stay).
#[utoipa::path(post, path = "/api/v1/me/password", tag = "accounts", request_body = PasswordChange,
    responses((status = 204, description = "Changed"), (status = 401, response = ErrorBody),
        (status = 422, description = "The current password is wrong, or the new one too short", body = ErrorBody)))]
pub(super) async fn change_password<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request: PasswordChange = parse_body(&body)?;
    state
        .app
        .change_password(&caller, &request.current_password, &request.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
