//! The web app: server-rendered pages (askama templates bound to the structs below), a little
//! hand-written JavaScript that talks to `/api/v1`, no build step and nothing from a CDN.
//!
//! Sessions are API tokens named `web session` carried in an HttpOnly, SameSite=Lax cookie;
//! every state-changing request made with the cookie must carry the session's CSRF token (a
//! form field, or `X-CSRF-Token` from scripts). Failed sign-ins are limited per name.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use quorum_app::{AppError, Caller};
use quorum_store::{ProjectStats, Store};
use serde::Deserialize;

use crate::AppState;

mod account;
mod dashboard;
mod leaderboard;
mod projects;
mod session;
mod standards;
mod webhooks;
mod work;

use crate::credentials::{LOGIN_COOKIE, SESSION_COOKIE as COOKIE, cookie, csrf_of, session_cookie};

/// The session cookie: as long-lived as a session may be (its end is decided by the server),
/// and `Secure` when the server is reached over HTTPS.
fn session_set_cookie(session: &str, https: bool) -> HeaderValue {
    let max_age = quorum_app::accounts::SESSION_MAX_MS / 1000;
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A signed-in person on a page: who, and the CSRF token their forms carry.
pub(crate) struct Page {
    caller: Caller,
    session: String,
    csrf: String,
}

impl<S: Store> axum::extract::FromRequestParts<AppState<S>> for Page {
    /// Not signed in (or the session ended): to the sign-in page.
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let session =
            session_cookie(&parts.headers).ok_or_else(|| Redirect::to("/login").into_response())?;
        let caller = state
            .app
            .authenticate_token(&session)
            .await
            .map_err(|_| Redirect::to("/login").into_response())?;
        let csrf = csrf_of(&session);
        Ok(Page {
            caller,
            session,
            csrf,
        })
    }
}

fn render(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    user: Option<String>,
    csrf: String,
    title: String,
    message: String,
}

/// An error page that says what happened and nothing of the internals.
pub(crate) fn error_page(status: StatusCode, message: &str, who: Option<&Page>) -> Response {
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        _ => "Something went wrong",
    };
    let message = if status.is_server_error() {
        "The server could not complete this request. Try again; if it keeps happening, tell your administrator.".to_string()
    } else {
        message.to_string()
    };
    render(
        &ErrorPage {
            user: who.map(|p| p.caller.user.name.clone()),
            csrf: who.map(|p| p.csrf.clone()).unwrap_or_default(),
            title: title.into(),
            message,
        },
        status,
    )
}

fn app_error(error: AppError, who: &Page) -> Response {
    if matches!(error, AppError::Unauthenticated) {
        return Redirect::to("/login").into_response();
    }
    // The API's table decides the status, so a page and a script see the same answer.
    let error = crate::ApiError::from(error);
    error_page(error.status, &error.message, Some(who))
}

pub fn routes<S: Store>() -> axum::Router<AppState<S>> {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/home") }))
        .route(
            "/login",
            get(session::login_form::<S>).post(session::login::<S>),
        )
        .route("/logout", post(session::logout::<S>))
        .route("/account", get(account::account::<S>))
        .route("/account/password", post(account::change_password::<S>))
        .route(
            "/account/tokens/{id}/revoke",
            post(account::revoke_token::<S>),
        )
        .route("/users", get(account::users::<S>))
        .route("/users/{id}/{action}", post(account::set_disabled::<S>))
        .route("/home", get(projects::home::<S>))
        .route("/projects/new", get(projects::new_project::<S>))
        .route("/projects/{id}", get(dashboard::dashboard::<S>))
        .route("/projects/{id}/work", get(work::work::<S>))
        .route(
            "/projects/{id}/leaderboard",
            get(leaderboard::leaderboard::<S>),
        )
        .route("/projects/{id}/review", get(work::review::<S>))
        .route(
            "/projects/{id}/webhooks",
            get(webhooks::webhooks::<S>).post(webhooks::create::<S>),
        )
        .route(
            "/projects/{id}/webhooks/{hook}/{action}",
            post(webhooks::act::<S>),
        )
        .route("/standards", get(standards::standards::<S>))
        .route(
            "/standards/{hash}/report",
            get(standards::standard_report::<S>),
        )
        .route("/assets/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (
            include_str!("../../assets/app.css"),
            "text/css; charset=utf-8",
        ),
        "work.js" => (
            include_str!("../../assets/work.js"),
            "text/javascript; charset=utf-8",
        ),
        "manage.js" => (
            include_str!("../../assets/manage.js"),
            "text/javascript; charset=utf-8",
        ),
        "review.js" => (
            include_str!("../../assets/review.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return error_page(StatusCode::NOT_FOUND, "There is no such file.", None),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// JSON for a `<script type="application/json">` block: `<` escaped so nothing in the data
/// can close the element.
fn script_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
}

/// On a page of figures read from a replica: how far behind the primary they may be.
fn replica_note<S: Store>(app: &quorum_app::App<S>) -> Option<String> {
    app.replica_lag_ms().map(|ms| {
        format!(
            "Figures from a read replica, {:.1} s behind the primary when last measured.",
            ms as f64 / 1000.0
        )
    })
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time in milliseconds.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (hour, minute) = (secs.rem_euclid(86_400) / 3600, secs.rem_euclid(3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_answer_with_the_api_status_table() {
        let who = Page {
            caller: Caller {
                user: quorum_store::User {
                    id: 1,
                    name: "ann".into(),
                    password_hash: String::new(),
                    is_admin: false,
                    created_at: 0,
                    disabled_at: None,
                },
            },
            session: String::new(),
            csrf: String::new(),
        };
        let errors: [fn() -> AppError; 6] = [
            || AppError::Conflict("taken".into()),
            || AppError::invalid("bad"),
            || AppError::NotFound("project"),
            || AppError::Forbidden("no".into()),
            || AppError::LeaseExpired,
            || AppError::Unavailable,
        ];
        for make in errors {
            let api = crate::ApiError::from(make()).status;
            assert_eq!(app_error(make(), &who).status(), api, "{}", make());
        }
        // The case that differed: a conflict is 409 on pages too.
        let conflict = app_error(AppError::Conflict("taken".into()), &who);
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        let redirect = app_error(AppError::Unauthenticated, &who);
        assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_000_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn script_json_cannot_close_the_script_element() {
        let text = script_json(&serde_json::json!({"x": "</script><script>alert(1)</script>"}));
        assert!(!text.contains("</script>"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; quorum_session=qrm_abc; b=2"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("qrm_abc"));
    }
}
