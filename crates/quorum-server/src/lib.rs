//! The HTTP edge: routes, authentication, the one error type, metrics. Only this crate knows
//! status codes.

mod api;
mod credentials;
mod error;
mod headers;
mod metrics;
mod report;
mod serve;
mod svg;
mod web;
mod wire;

use std::sync::Arc;

use axum::Router;
use quorum_app::App;
use quorum_store::Store;

pub use error::ApiError;
pub use metrics::Metrics;
pub use report::standard_report_html;
pub use serve::{Timeouts, serve};

/// The OpenAPI document of `/api/v1`, served at `/api/v1/openapi.json`: the checked-in copy of
/// [`openapi_document`], which a test keeps equal to it.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The OpenAPI document generated from the handlers and the wire types.
pub fn openapi_document() -> String {
    api::openapi::document()
}

/// How this server meets the network: set once at start-up (`quorum serve` flags).
#[derive(Clone, Default)]
pub struct HttpSettings {
    /// Addresses of reverse proxies whose `X-Forwarded-For` names the real client (for the
    /// sign-in limits); from any other peer the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// When set, `/metrics` answers only `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
    /// Served to browsers over HTTPS (behind a proxy): cookies are `Secure` and pages send
    /// `Strict-Transport-Security`.
    pub https: bool,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("https", &self.https)
            .finish()
    }
}

impl HttpSettings {
    /// The client's address: the peer's, or — when the peer is a trusted proxy — the last
    /// address it put in `X-Forwarded-For` (the one it saw; earlier ones the client may forge).
    pub fn client_address(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .next_back()
            .unwrap_or(peer)
    }
}

/// What every handler gets.
pub struct AppState<S> {
    pub app: App<S>,
    pub metrics: Arc<Metrics>,
    pub sign_ins: Arc<quorum_app::accounts::SignInLimiter>,
    pub settings: Arc<HttpSettings>,
}

impl<S> std::fmt::Debug for AppState<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            metrics: Arc::clone(&self.metrics),
            sign_ins: Arc::clone(&self.sign_ins),
            settings: Arc::clone(&self.settings),
        }
    }
}

/// The whole HTTP application, with default settings.
pub fn router<S: Store>(app: App<S>) -> Router {
    router_with(app, HttpSettings::default())
}

/// The whole HTTP application.
pub fn router_with<S: Store>(app: App<S>, settings: HttpSettings) -> Router {
    let state = AppState {
        app,
        metrics: Arc::new(Metrics::default()),
        sign_ins: Arc::new(quorum_app::accounts::SignInLimiter::default()),
        settings: Arc::new(settings),
    };
    api::routes(state)
}
