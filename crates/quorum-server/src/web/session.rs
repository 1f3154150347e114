//! Signing in and out: the sign-in form with its own CSRF cookie, the limits on failed attempts, the session cookie.

use super::*;

#[derive(Template)]
#[template(path = "login.html")]
pub(super) struct LoginPage {
    user: Option<String>,
    csrf: String,
    login_csrf: String,
    name: String,
    message: Option<String>,
}

/// The sign-in page, with a fresh form token in a cookie and in the form.
pub(super) fn login_page(
    name: &str,
    message: Option<String>,
    status: StatusCode,
    https: bool,
) -> Response {
    let token = quorum_app::accounts::new_password();
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

pub(super) async fn login_form<S: Store>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
) -> Response {
    if let Some(session) = session_cookie(&headers)
        && state.app.authenticate_token(&session).await.is_ok()
    {
        return Redirect::to("/home").into_response();
    }
    login_page("", None, StatusCode::OK, state.settings.https)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    login_csrf: String,
}

pub(super) async fn login<S: Store>(
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
    if expected.is_empty() || !crate::credentials::matches(&form.login_csrf, &expected) {
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

pub(super) async fn logout<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !crate::credentials::matches(&form.csrf, &who.csrf) {
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
