//! Accounts: who the caller is, users, tokens and sessions, passwords.

use super::*;

pub(super) async fn me(Authenticated(caller): Authenticated) -> Json<Value> {
    Json(json!({"user": caller.user}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUserBody {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

pub(super) async fn create_user<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: NewUserBody = parse_body(&body)?;
    let user = state
        .app
        .create_user(&caller, &request.name, &request.password, request.admin)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"user": user}))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTokenBody {
    #[serde(default = "default_token_name")]
    name: String,
    /// Unix milliseconds; none: the token does not expire.
    #[serde(default)]
    expires_at: Option<i64>,
}

fn default_token_name() -> String {
    "api".into()
}

pub(super) async fn create_token<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: NewTokenBody = if body.is_empty() {
        NewTokenBody {
            name: default_token_name(),
            expires_at: None,
        }
    } else {
        parse_body(&body)?
    };
    let token = state
        .app
        .create_token(&caller, id, &request.name, request.expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"token": token}))))
}

pub(super) async fn list_users<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"users": state.app.users(&caller).await?})))
}

pub(super) async fn list_tokens<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"tokens": state.app.tokens(&caller, id).await?}),
    ))
}

pub(super) async fn revoke_token<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path((id, token_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    state.app.revoke_token(&caller, id, token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn disable_user<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let user = state.app.set_disabled(&caller, id, true).await?;
    Ok(Json(json!({"user": user})))
}

pub(super) async fn enable_user<S: Store>(
    State(state): State<AppState<S>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let user = state.app.set_disabled(&caller, id, false).await?;
    Ok(Json(json!({"user": user})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; every web session of theirs ends (API tokens stay).
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
