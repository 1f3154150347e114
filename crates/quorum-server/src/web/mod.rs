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
use quorum_app::auth::{csrf_token, same_secret};
use quorum_app::{AppError, Caller};
use quorum_core::Role;
use quorum_store::{ProjectStats, Store};
use serde::Deserialize;

use crate::AppState;

const COOKIE: &str = "quorum_session";
/// The sign-in form's own CSRF token, set with the form (double-submit: a page on another
/// origin can neither read nor set it).
const LOGIN_COOKIE: &str = "quorum_login";

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(&format!("{name}="))
                .map(str::to_string)
        })
        .filter(|v| !v.is_empty())
}

/// The session secret in the request's cookie, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// The session cookie: as long-lived as a session may be (its end is decided by the server),
/// and `Secure` when the server is reached over HTTPS.
fn session_set_cookie(session: &str, https: bool) -> HeaderValue {
    let max_age = quorum_app::auth::SESSION_MAX_MS / 1000;
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
        let csrf = csrf_token(&session);
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
    let status = match &error {
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Unauthenticated => return Redirect::to("/login").into_response(),
        AppError::Invalid { .. } | AppError::Conflict(_) | AppError::LeaseExpired => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(source) => {
            tracing::error!(error = %source, "internal error on a page");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error_page(status, &error.to_string(), Some(who))
}

pub fn routes<S: Store>() -> axum::Router<AppState<S>> {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/home") }))
        .route("/login", get(login_form::<S>).post(login::<S>))
        .route("/logout", post(logout::<S>))
        .route("/account", get(account::account::<S>))
        .route("/account/password", post(account::change_password::<S>))
        .route(
            "/account/tokens/{id}/revoke",
            post(account::revoke_token::<S>),
        )
        .route("/users", get(account::users::<S>))
        .route("/users/{id}/{action}", post(account::set_disabled::<S>))
        .route("/home", get(home::<S>))
        .route("/projects/new", get(new_project::<S>))
        .route("/projects/{id}", get(dashboard::<S>))
        .route("/projects/{id}/work", get(work::<S>))
        .route("/projects/{id}/leaderboard", get(leaderboard::<S>))
        .route("/projects/{id}/review", get(review::<S>))
        .route("/standards", get(standards::<S>))
        .route("/standards/{hash}/report", get(standard_report::<S>))
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

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    user: Option<String>,
    csrf: String,
    login_csrf: String,
    name: String,
    message: Option<String>,
}

/// The sign-in page, with a fresh form token in a cookie and in the form.
fn login_page(name: &str, message: Option<String>, status: StatusCode, https: bool) -> Response {
    let token = quorum_app::auth::new_password();
    let mut response = render(
        &LoginPage {
            user: None,
            csrf: String::new(),
            login_csrf: token.clone(),
            name: name.to_string(),
            message,
        },
        status,
    );
    let secure = if https { "; Secure" } else { "" };
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn login_form<S: Store>(State(state): State<AppState<S>>, headers: HeaderMap) -> Response {
    if let Some(session) = session_cookie(&headers)
        && state.app.authenticate_token(&session).await.is_ok()
    {
        return Redirect::to("/home").into_response();
    }
    login_page("", None, StatusCode::OK, state.settings.https)
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    login_csrf: String,
}

async fn login<S: Store>(
    State(state): State<AppState<S>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let address = state.settings.client_address(peer.ip(), &headers);
    let now = state.app.now();
    let https = state.settings.https;
    let again = |message: String, status| login_page(&form.name, Some(message), status, https);
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&form.login_csrf, &expected) {
        return again(
            "This sign-in form is out of date; please sign in again.".into(),
            StatusCode::FORBIDDEN,
        );
    }
    if let Some(wait_ms) = state.sign_ins.blocked(&form.name, address, now) {
        return again(
            format!(
                "Too many failed attempts. Try again in {} minute(s).",
                (wait_ms as u64).div_ceil(60_000)
            ),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    match state.app.sign_in(form.name.trim(), &form.password).await {
        Ok((_, session)) => {
            state.sign_ins.succeeded(&form.name, address);
            let mut response = Redirect::to("/home").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session_set_cookie(&session, state.settings.https),
            );
            response
        }
        Err(AppError::Unauthenticated) => {
            state.sign_ins.failed(&form.name, address, now);
            again("Wrong name or password.".into(), StatusCode::UNAUTHORIZED)
        }
        Err(error) => {
            tracing::error!(%error, "sign-in failed");
            again(
                "Signing in is not possible right now; try again shortly.".into(),
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

mod account;

async fn logout<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !same_secret(&form.csrf, &who.csrf) {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form is out of date (its security token does not match). Reload the page and try again.",
            Some(&who),
        );
    }
    if let Err(error) = state.app.sign_out(&who.session).await {
        return app_error(error, &who);
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("quorum_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    response
}

struct HomeRow {
    id: i64,
    name: String,
    role: &'static str,
    open_items: i64,
    mine_today: i64,
    mine_total: i64,
    can_manage: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    user: Option<String>,
    csrf: String,
    is_admin: bool,
    projects: Vec<HomeRow>,
}

async fn home<S: Store>(State(state): State<AppState<S>>, who: Page) -> Response {
    let now = state.app.now();
    let midnight = now - now.rem_euclid(86_400_000);
    match state.app.home(&who.caller, midnight).await {
        Ok(projects) => render(
            &HomePage {
                user: Some(who.caller.user.name.clone()),
                csrf: who.csrf.clone(),
                is_admin: who.caller.user.is_admin,
                projects: projects
                    .into_iter()
                    .map(|p| HomeRow {
                        id: p.id,
                        name: p.name,
                        role: p.role.as_str(),
                        open_items: p.open_items,
                        mine_today: p.mine_since,
                        mine_total: p.mine_total,
                        can_manage: p.role >= Role::Reviewer,
                    })
                    .collect(),
            },
            StatusCode::OK,
        ),
        Err(error) => app_error(error, &who),
    }
}

/// JSON for a `<script type="application/json">` block: `<` escaped so nothing in the data
/// can close the element.
fn script_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
}

#[derive(Template)]
#[template(path = "work.html")]
struct WorkPage {
    user: Option<String>,
    csrf: String,
    project_id: i64,
    name: String,
    instructions: String,
    schema_json: String,
}

async fn work<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
) -> Response {
    match state.app.project(&who.caller, id).await {
        Ok((project, _)) => {
            let images = image_policy(&project.schema);
            let mut page = render(
                &WorkPage {
                    user: Some(who.caller.user.name.clone()),
                    csrf: who.csrf.clone(),
                    project_id: project.id,
                    name: project.name,
                    instructions: project.instructions,
                    schema_json: script_json(&project.schema),
                },
                StatusCode::OK,
            );
            page.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, images);
            page
        }
        Err(error) => app_error(error, &who),
    }
}

/// The Content-Security-Policy of a page showing a project's items: images only from the
/// hosts its image fields list, when they all list some.
fn image_policy(schema: &serde_json::Value) -> HeaderValue {
    let hosts = serde_json::from_value::<quorum_core::schema::Schema>(schema.clone())
        .ok()
        .and_then(|s| s.image_hosts());
    HeaderValue::from_str(&crate::headers::policy_for_images(hosts.as_deref()))
        .unwrap_or_else(|_| HeaderValue::from_static(crate::headers::DEFAULT_POLICY))
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    user: Option<String>,
    csrf: String,
    project_id: i64,
    name: String,
}

async fn review<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
) -> Response {
    match state.app.project(&who.caller, id).await {
        Ok((_, role)) if role < Role::Reviewer => app_error(
            AppError::Forbidden("only reviewers and managers review".into()),
            &who,
        ),
        Ok((project, _)) => {
            let images = image_policy(&project.schema);
            let mut page = render(
                &ReviewPage {
                    user: Some(who.caller.user.name.clone()),
                    csrf: who.csrf.clone(),
                    project_id: project.id,
                    name: project.name,
                },
                StatusCode::OK,
            );
            page.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, images);
            page
        }
        Err(error) => app_error(error, &who),
    }
}

#[derive(Template)]
#[template(path = "standards.html")]
struct StandardsPage {
    user: Option<String>,
    csrf: String,
    is_admin: bool,
    standards: Vec<quorum_app::standard::run::StandardOverview>,
}

async fn standards<S: Store>(State(state): State<AppState<S>>, who: Page) -> Response {
    match state.app.standards(&who.caller).await {
        Ok(standards) => render(
            &StandardsPage {
                user: Some(who.caller.user.name.clone()),
                csrf: who.csrf.clone(),
                is_admin: who.caller.user.is_admin,
                standards,
            },
            StatusCode::OK,
        ),
        Err(error) => app_error(error, &who),
    }
}

/// The HTML twin of a standard's signed report.
async fn standard_report<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(hash): Path<String>,
) -> Response {
    let report = async {
        let standard = state.app.stored_standard(&hash).await?;
        state.app.report_standard(&who.caller, &standard).await
    };
    match report.await {
        Ok(signed) => Html(crate::standard_report_html(&signed)).into_response(),
        Err(error) => app_error(error, &who),
    }
}

/// Templates for new projects: a name and a schema each.
fn templates() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "classification",
            "Classification",
            json!({
                "fields": [{"name": "text", "kind": "text"}],
                "questions": [{"name": "label", "kind": "label", "options": ["positive", "negative", "neutral"], "required": true, "instructions": "Choose the label that fits the text best."}]
            }),
        ),
        (
            "multi_label",
            "Multi-label",
            json!({
                "fields": [{"name": "text", "kind": "text"}],
                "questions": [{"name": "topics", "kind": "multi_label", "options": ["politics", "sport", "science", "culture"], "required": true}]
            }),
        ),
        (
            "rubric",
            "Rating rubric",
            json!({
                "fields": [{"name": "prompt", "kind": "text"}, {"name": "answer", "kind": "markdown"}],
                "questions": [
                    {"name": "correctness", "kind": "rating", "min": 1, "max": 5, "required": true},
                    {"name": "helpfulness", "kind": "rating", "min": 1, "max": 5, "required": true},
                    {"name": "comment", "kind": "text"}
                ]
            }),
        ),
        (
            "pairwise",
            "Pairwise preference (two model responses)",
            json!({
                "fields": [{"name": "prompt", "kind": "chat"}, {"name": "responses", "kind": "responses"}],
                "questions": [{"name": "preference", "kind": "pairwise", "allow_both_bad": true, "required": true, "instructions": "Which response is better? Tie when equally good; both bad when neither is acceptable."}]
            }),
        ),
        (
            "ranking",
            "Ranking of N responses",
            json!({
                "fields": [{"name": "prompt", "kind": "text"}, {"name": "responses", "kind": "responses"}],
                "questions": [{"name": "ranking", "kind": "ranking", "field": "responses", "required": true}]
            }),
        ),
        (
            "demonstration",
            "Demonstration writing",
            json!({
                "fields": [{"name": "conversation", "kind": "chat"}],
                "questions": [{"name": "reply", "kind": "text", "min_length": 1, "required": true, "instructions": "Write the reply an excellent assistant would give."}]
            }),
        ),
        (
            "ner",
            "Named-entity spans",
            json!({
                "fields": [{"name": "text", "kind": "text"}],
                "questions": [{"name": "entities", "kind": "spans", "field": "text", "labels": ["PERSON", "ORG", "PLACE", "DATE"]}]
            }),
        ),
    ]
}

#[derive(Template)]
#[template(path = "new_project.html")]
struct NewProjectPage {
    user: Option<String>,
    csrf: String,
    templates: Vec<(&'static str, &'static str)>,
    templates_json: String,
}

async fn new_project<S: Store>(State(_): State<AppState<S>>, who: Page) -> Response {
    if !who.caller.user.is_admin {
        return error_page(
            StatusCode::FORBIDDEN,
            "Only administrators create projects.",
            Some(&who),
        );
    }
    let all = templates();
    let schemas: serde_json::Map<String, serde_json::Value> = all
        .iter()
        .map(|(id, _, schema)| (id.to_string(), schema.clone()))
        .collect();
    render(
        &NewProjectPage {
            user: Some(who.caller.user.name.clone()),
            csrf: who.csrf.clone(),
            templates: all.iter().map(|(id, name, _)| (*id, *name)).collect(),
            templates_json: script_json(&schemas),
        },
        StatusCode::OK,
    )
}

struct AgreementPlot {
    plot: String,
    caption: String,
    /// The least agreeing rater pairs: a, b, items in common, percent, Cohen's kappa.
    pairs: Vec<(String, String, usize, String, String)>,
}

struct RaterLine {
    user_id: i64,
    name: String,
    /// `paused: …`, `not qualified`, `qualified` or empty.
    standing: String,
    paused: bool,
    unqualified: bool,
    role: String,
    gold: String,
    consensus: String,
    skill: String,
    responses: i64,
    skips: i64,
    median: String,
    last_active: String,
}

#[derive(Template)]
#[template(path = "project.html")]
struct DashboardPage {
    user: Option<String>,
    csrf: String,
    project_id: i64,
    name: String,
    stats: ProjectStats,
    complete_percent: i64,
    items_by_state: String,
    over_time: String,
    per_rater: String,
    time_per_item: String,
    raters: Vec<RaterLine>,
    can_manage: bool,
    pairwise: bool,
    free_text: bool,
    models: Vec<quorum_app::runs::ModelProgress>,
    agreement: Vec<AgreementPlot>,
    /// Judge, judged, unparseable, consistency, position bias, agreement, kappa (as text).
    judges: Vec<(String, usize, usize, String, String, String, String)>,
    can_review: bool,
    /// The project's quality rules as JSON, for the settings form.
    quality_json: String,
    /// When, who, what, why, by whom.
    events: Vec<(String, String, String, String, String)>,
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

async fn dashboard<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
) -> Response {
    let (project, role) = match state.app.project(&who.caller, id).await {
        Ok(found) => found,
        Err(error) => return app_error(error, &who),
    };
    let (app, caller) = (state.app.clone(), who.caller.clone());
    let data = match state
        .app
        .analysis(async move { app.dashboard(&caller, id).await })
        .await
    {
        Ok(data) => data,
        Err(error) => return app_error(error, &who),
    };
    let stats = data.stats;
    // Model runs (prompt projects) and judges (battle projects), when there are any; judge
    // outputs are kept as `judge:` generations, so they are not listed as models.
    let models: Vec<_> = state
        .app
        .run_progress(&who.caller, id)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !m.model.starts_with("judge:"))
        .collect();
    let percent = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0));
    let judges = state
        .app
        .judge_reports(&who.caller, id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|j| {
            (
                j.judge,
                j.judged,
                j.unparseable,
                percent(j.consistency),
                percent(j.position_bias),
                percent(j.percent_agreement),
                j.cohen_kappa
                    .map_or_else(|| "–".into(), |k| format!("{k:.2}")),
            )
        })
        .collect();
    let reliability: HashMap<i64, &quorum_app::quality::RaterReliability> =
        data.reliability.iter().map(|r| (r.user_id, r)).collect();
    // Krippendorff's alpha per rater locale (and overall), one chart per question.
    let agreement = data
        .agreement
        .iter()
        .map(|q| {
            let rows: Vec<(String, f64, Option<f64>, Option<f64>)> = q
                .groups
                .iter()
                .filter_map(|g| g.alpha.map(|a| (format!("{} ({})", g.group, g.raters), a, g.lower, g.upper)))
                .collect();
            let pct = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0));
            let mut pairs: Vec<&quorum_app::quality::RaterPair> = q.pairs.iter().collect();
            pairs.sort_by(|a, b| {
                a.cohen_kappa
                    .unwrap_or(1.0)
                    .total_cmp(&b.cohen_kappa.unwrap_or(1.0))
            });
            AgreementPlot {
                plot: crate::svg::intervals(&rows, true),
                caption: format!(
                    "{}: Krippendorff's alpha ({}) by rater locale, with 95% intervals. Raters agree {} of the time with raters of their own locale, {} across locales.{}",
                    q.question,
                    q.level,
                    pct(q.within_locale),
                    pct(q.across_locales),
                    q.fleiss_kappa
                        .map(|k| format!(" Fleiss' kappa {k:.2}."))
                        .unwrap_or_default()
                ),
                pairs: pairs
                    .into_iter()
                    .take(8)
                    .map(|p| {
                        (
                            p.a.clone(),
                            p.b.clone(),
                            p.common_items,
                            pct(Some(p.percent_agreement)),
                            p.cohen_kappa
                                .map_or_else(|| "–".into(), |k| format!("{k:.2}")),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    let names: HashMap<i64, String> = data
        .raters
        .iter()
        .map(|r| (r.activity.user_id, r.activity.name.clone()))
        .collect();
    let name_of = |id: Option<i64>| match id {
        None => "the rules".to_string(),
        Some(id) => names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}")),
    };
    let events = state
        .app
        .rater_events(&who.caller, id)
        .await
        .unwrap_or_default()
        .into_iter()
        .rev()
        .take(50)
        .map(|e| {
            let (action, reason) = match &e.change {
                quorum_store::RaterChange::Paused { reason } => ("paused", reason),
                quorum_store::RaterChange::Reinstated { reason } => ("reinstated", reason),
                quorum_store::RaterChange::Qualified { reason, .. } => ("qualified", reason),
                quorum_store::RaterChange::NotQualified { reason, .. } => ("not qualified", reason),
            };
            (
                utc(e.at),
                name_of(Some(e.user_id)),
                action.to_string(),
                reason.clone(),
                name_of(e.actor_id),
            )
        })
        .collect();
    let kinds: Vec<&str> = project.schema["questions"]
        .as_array()
        .map(|qs| qs.iter().filter_map(|q| q["kind"].as_str()).collect())
        .unwrap_or_default();
    let labels = |v: &[(String, f64)]| crate::svg::bars(v);
    let hours: Vec<(String, f64)> = data
        .per_hour
        .iter()
        .rev()
        .take(48)
        .rev()
        .map(|(hour, n)| (utc(*hour)[11..16].to_string(), *n as f64))
        .collect();
    let by_rater: Vec<(String, f64)> = data
        .raters
        .iter()
        .filter(|r| r.activity.responses > 0)
        .map(|r| (r.activity.name.clone(), r.activity.responses as f64))
        .collect();
    render(
        &DashboardPage {
            user: Some(who.caller.user.name.clone()),
            csrf: who.csrf.clone(),
            project_id: id,
            name: project.name.clone(),
            complete_percent: if stats.items > 0 {
                stats.items_complete * 100 / stats.items
            } else {
                0
            },
            items_by_state: labels(&[
                ("complete".into(), stats.items_complete as f64),
                ("in progress".into(), stats.items_in_progress as f64),
                ("untouched".into(), stats.items_untouched as f64),
            ]),
            over_time: labels(&hours),
            per_rater: labels(&by_rater),
            time_per_item: crate::svg::histogram(
                &data
                    .times_ms
                    .iter()
                    .map(|ms| *ms as f64 / 1000.0)
                    .collect::<Vec<_>>(),
                12,
            ),
            raters: data
                .raters
                .iter()
                .map(|r| RaterLine {
                    user_id: r.activity.user_id,
                    name: r.activity.name.clone(),
                    standing: match reliability.get(&r.activity.user_id) {
                        Some(q) if q.paused.is_some() => {
                            format!("paused: {}", q.paused.as_deref().unwrap_or_default())
                        }
                        Some(q) if q.qualified == Some(false) => "not qualified".into(),
                        Some(q) if q.qualified == Some(true) => "qualified".into(),
                        _ => String::new(),
                    },
                    paused: reliability
                        .get(&r.activity.user_id)
                        .is_some_and(|q| q.paused.is_some()),
                    unqualified: reliability
                        .get(&r.activity.user_id)
                        .is_some_and(|q| q.qualified == Some(false)),
                    role: r
                        .activity
                        .role
                        .clone()
                        .unwrap_or_else(|| "former member".into()),
                    gold: reliability
                        .get(&r.activity.user_id)
                        .and_then(|q| {
                            Some(format!(
                                "{:.0}% [{:.0}–{:.0}%] of {}",
                                q.gold_accuracy? * 100.0,
                                q.gold_lower? * 100.0,
                                q.gold_upper? * 100.0,
                                q.gold_answered
                            ))
                        })
                        .unwrap_or_else(|| "–".into()),
                    consensus: reliability
                        .get(&r.activity.user_id)
                        .and_then(|q| q.agreement_with_consensus)
                        .map_or_else(|| "–".into(), |a| format!("{:.0}%", a * 100.0)),
                    skill: reliability
                        .get(&r.activity.user_id)
                        .and_then(|q| q.skill)
                        .map_or_else(|| "–".into(), |k| format!("{k:.2}")),
                    responses: r.activity.responses,
                    skips: r.activity.skips,
                    median: r.median_time_ms.map(seconds).unwrap_or_else(|| "–".into()),
                    last_active: r
                        .activity
                        .last_active
                        .map(utc)
                        .unwrap_or_else(|| "–".into()),
                })
                .collect(),
            stats,
            can_review: role >= Role::Reviewer,
            quality_json: script_json(&serde_json::to_value(&project.quality).unwrap_or_default()),
            events,
            can_manage: role >= Role::Manager,
            pairwise: kinds.contains(&"pairwise"),
            free_text: kinds.contains(&"text"),
            models,
            judges,
            agreement,
        },
        StatusCode::OK,
    )
}

struct BoardRow {
    rank: String,
    model: String,
    rating: String,
    interval: String,
    battles: u64,
    online: String,
    provisional: bool,
}

struct BoardView {
    title: String,
    battles: usize,
    plot: String,
    rows: Vec<BoardRow>,
}

struct DivergenceLine {
    title: String,
    a: String,
    b: String,
    spearman: String,
    models: usize,
    summary: String,
    plot: String,
}

#[derive(Template)]
#[template(path = "leaderboard.html")]
struct LeaderboardPage {
    user: Option<String>,
    csrf: String,
    name: String,
    rounds: usize,
    slice_by: String,
    slice_options: Vec<(&'static str, &'static str)>,
    message: Option<String>,
    boards: Vec<BoardView>,
    divergences: Vec<DivergenceLine>,
}

#[derive(Deserialize)]
struct LeaderboardQuery {
    #[serde(default)]
    slice_by: String,
}

/// A battle project's leaderboard: the board, a board per slice, and where slices diverge.
async fn leaderboard<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
    axum::extract::Query(query): axum::extract::Query<LeaderboardQuery>,
) -> Response {
    use quorum_app::evaluation::SliceBy;
    let (project, _) = match state.app.project(&who.caller, id).await {
        Ok(found) => found,
        Err(error) => return app_error(error, &who),
    };
    let slice_by = match query.slice_by.as_str() {
        "rater_locale" => Some(SliceBy::RaterLocale),
        "category" => Some(SliceBy::Category),
        "language" => Some(SliceBy::Language),
        _ => None,
    };
    let rounds = 1000;
    let options = quorum_app::arena::ReportOptions {
        bootstrap: rounds,
        seed: 0,
        anchor: None,
        min_battles: 0,
        threads: quorum_app::analysis_threads(),
    };
    let caller = who.caller.clone();
    let app = state.app.clone();
    let boards = async move {
        app.project_leaderboard(&caller, id, slice_by, options)
            .await
    };
    let (report, message) = match state.app.analysis(boards).await {
        Ok(report) => (Some(report), None),
        Err(AppError::Invalid { message, .. }) => (None, Some(message)),
        Err(error) => return app_error(error, &who),
    };
    let fmt = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"));
    let boards = report
        .iter()
        .flat_map(|r| r.boards.iter())
        .map(|b| BoardView {
            title: b.slice.clone().unwrap_or_else(|| "All raters".to_string()),
            battles: b.battles,
            plot: crate::svg::intervals(
                &b.models
                    .iter()
                    .map(|m| (m.model.clone(), m.rating, m.lower, m.upper))
                    .collect::<Vec<_>>(),
                false,
            ),
            rows: b
                .models
                .iter()
                .map(|m| BoardRow {
                    rank: m.rank.map_or_else(|| "–".into(), |r| r.to_string()),
                    model: m.model.clone(),
                    rating: format!("{:.1}", m.rating),
                    interval: format!("{} – {}", fmt(m.lower), fmt(m.upper)),
                    battles: m.battles,
                    online: format!("{:.1}", m.online_elo),
                    provisional: m.provisional,
                })
                .collect(),
        })
        .collect();
    let divergences = report
        .iter()
        .flat_map(|r| r.divergence.iter())
        .map(|d| {
            let significant: Vec<String> = d
                .differences
                .iter()
                .filter(|x| x.significant)
                .map(|x| {
                    let higher = if x.difference > 0.0 { &d.a } else { &d.b };
                    format!(
                        "{} ({:+.0} Elo, higher with {higher})",
                        x.model, x.difference
                    )
                })
                .collect();
            DivergenceLine {
                title: format!("{} vs {}", d.a, d.b),
                a: d.a.clone(),
                b: d.b.clone(),
                spearman: match (d.spearman, d.spearman_lower, d.spearman_upper) {
                    (Some(r), Some(lo), Some(hi)) => format!("{r:.2} [{lo:.2}, {hi:.2}]"),
                    (Some(r), _, _) => format!("{r:.2}"),
                    _ => "–".into(),
                },
                models: d.models,
                summary: if significant.is_empty() {
                    "No model is rated differently beyond its interval.".into()
                } else {
                    format!("Rated differently: {}.", significant.join("; "))
                },
                plot: crate::svg::intervals(
                    &d.differences
                        .iter()
                        .map(|x| (x.model.clone(), x.difference, x.lower, x.upper))
                        .collect::<Vec<_>>(),
                    true,
                ),
            }
        })
        .collect();
    render(
        &LeaderboardPage {
            user: Some(who.caller.user.name.clone()),
            csrf: who.csrf.clone(),
            name: project.name,
            rounds,
            slice_by: query.slice_by.clone(),
            slice_options: vec![
                ("", "nothing (one board)"),
                ("rater_locale", "rater locale"),
                ("category", "prompt category"),
                ("language", "prompt language"),
            ],
            message,
            boards,
            divergences,
        },
        StatusCode::OK,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
