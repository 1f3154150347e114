//! Account pages: your password, API tokens and web sessions (`/account`), and for
//! administrators every account with disable and enable (`/users`). Plain forms, each with the
//! page's CSRF token; the rules live in `quorum_app::accounts`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use quorum_store::Store;
use serde::Deserialize;

use super::{CsrfForm, Page, app_error, error_page, render, session_set_cookie, utc};
use crate::AppState;

struct TokenLine {
    id: i64,
    name: String,
    session: bool,
    created: String,
    expires: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    user: Option<String>,
    csrf: String,
    is_admin: bool,
    message: Option<String>,
    tokens: Vec<TokenLine>,
}

struct UserLine {
    id: i64,
    name: String,
    is_admin: bool,
    disabled: Option<String>,
    is_you: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    user: Option<String>,
    csrf: String,
    users: Vec<UserLine>,
}

fn stale_form(who: &Page) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form is out of date (its security token does not match). Reload the page and try again.",
        Some(who),
    )
}

async fn account_page<S: Store>(
    state: &AppState<S>,
    who: &Page,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let optional = |at: Option<i64>, none: &str| at.map_or_else(|| none.to_string(), utc);
    match state.app.tokens(&who.caller, who.caller.user.id).await {
        Ok(tokens) => render(
            &AccountPage {
                user: Some(who.caller.user.name.clone()),
                csrf: who.csrf.clone(),
                is_admin: who.caller.user.is_admin,
                message,
                tokens: tokens
                    .into_iter()
                    .map(|t| TokenLine {
                        id: t.token.id,
                        name: t.token.name,
                        session: t.session,
                        created: utc(t.token.created_at),
                        expires: optional(t.token.expires_at, "never"),
                        last_used: optional(t.token.last_used_at, "—"),
                    })
                    .collect(),
            },
            status,
        ),
        Err(error) => app_error(error, who),
    }
}

pub(super) async fn account<S: Store>(State(state): State<AppState<S>>, who: Page) -> Response {
    account_page(&state, &who, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    current_password: String,
    new_password: String,
}

/// Changes the password, which ends every web session of the user's — this one gets a new
/// session, so the person stays signed in here only.
pub(super) async fn change_password<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Form(form): Form<PasswordForm>,
) -> Response {
    if !crate::credentials::matches(&form.csrf, &who.csrf) {
        return stale_form(&who);
    }
    let changed = state
        .app
        .change_password(&who.caller, &form.current_password, &form.new_password)
        .await;
    if let Err(error) = changed {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return match error {
            quorum_app::AppError::Invalid { message, .. } => {
                account_page(&state, &who, Some(message), status).await
            }
            other => app_error(other, &who),
        };
    }
    match state.app.start_session(&who.caller.user).await {
        Ok(session) => {
            let mut response = Redirect::to("/account").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session_set_cookie(&session, state.settings.https),
            );
            response
        }
        Err(error) => app_error(error, &who),
    }
}

pub(super) async fn revoke_token<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(token_id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !crate::credentials::matches(&form.csrf, &who.csrf) {
        return stale_form(&who);
    }
    match state
        .app
        .revoke_token(&who.caller, who.caller.user.id, token_id)
        .await
    {
        Ok(()) => Redirect::to("/account").into_response(),
        Err(error) => app_error(error, &who),
    }
}

pub(super) async fn users<S: Store>(State(state): State<AppState<S>>, who: Page) -> Response {
    match state.app.users(&who.caller).await {
        Ok(users) => render(
            &UsersPage {
                user: Some(who.caller.user.name.clone()),
                csrf: who.csrf.clone(),
                users: users
                    .into_iter()
                    .map(|u| UserLine {
                        is_you: u.id == who.caller.user.id,
                        id: u.id,
                        name: u.name,
                        is_admin: u.is_admin,
                        disabled: u.disabled_at.map(utc),
                    })
                    .collect(),
            },
            StatusCode::OK,
        ),
        Err(error) => app_error(error, &who),
    }
}

pub(super) async fn set_disabled<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path((user_id, action)): Path<(i64, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !crate::credentials::matches(&form.csrf, &who.csrf) {
        return stale_form(&who);
    }
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => {
            return error_page(
                StatusCode::NOT_FOUND,
                "There is no page at this address.",
                Some(&who),
            );
        }
    };
    match state.app.set_disabled(&who.caller, user_id, disabled).await {
        Ok(_) => Redirect::to("/users").into_response(),
        Err(error) => app_error(error, &who),
    }
}
