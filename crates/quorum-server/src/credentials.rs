//! Where a request's credentials are read, in one place: the bearer token, the cookies (the web
//! session and the sign-in form's own), and the CSRF token a session must show for anything
//! that changes state. The API's `Authenticated` and the pages' `Page` extractors both read
//! them here.

use axum::http::{HeaderMap, header};

/// The web session's cookie (an API token named `web session`).
pub(crate) const SESSION_COOKIE: &str = "quorum_session";
/// The sign-in form's own CSRF token, set with the form (double-submit: a page on another
/// origin can neither read nor set it).
pub(crate) const LOGIN_COOKIE: &str = "quorum_login";
/// The header a script sends the session's CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The token in `Authorization: Bearer <token>`, trimmed.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// A cookie's value, if it is set and not empty.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
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
    cookie(headers, SESSION_COOKIE)
}

/// The CSRF token of a session: a hash of its secret, so it needs no storage and no other
/// origin can know it.
pub(crate) fn csrf_of(session: &str) -> String {
    quorum_app::accounts::csrf_token(session)
}

/// Whether a secret that was sent is the expected one (in constant time).
pub(crate) fn matches(sent: &str, expected: &str) -> bool {
    quorum_app::accounts::same_secret(sent, expected)
}

/// Whether the CSRF token in the request's header is the session's.
pub(crate) fn csrf_header_ok(headers: &HeaderMap, session: &str) -> bool {
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    matches(sent, &csrf_of(session))
}
