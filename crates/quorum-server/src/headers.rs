//! Headers every response carries so browsers hold the line too: a Content-Security-Policy (no
//! inline or foreign script, no framing by other sites), no MIME sniffing, no referrer sent to
//! other sites (image hosts never learn project addresses), and HSTS when served over HTTPS.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use quorum_store::Store;

use crate::AppState;

/// The policy of every page but the workspace; images may come from anywhere an item names.
pub(crate) const DEFAULT_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: https: http:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The policy of a page showing items whose images may come only from `hosts`
/// (`None`: from anywhere).
pub(crate) fn policy_for_images(hosts: Option<&[String]>) -> String {
    match hosts {
        None => DEFAULT_POLICY.to_string(),
        Some(hosts) => {
            let sources: String = hosts.iter().map(|h| format!(" https://{h}")).collect();
            DEFAULT_POLICY.replace(
                "img-src 'self' data: https: http:",
                &format!("img-src 'self' data:{sources}"),
            )
        }
    }
}

pub(crate) async fn security_headers<S: Store>(
    State(state): State<AppState<S>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_POLICY),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if state.settings.https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}
