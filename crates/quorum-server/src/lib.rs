//! The HTTP edge: routes, authentication, the one error type, metrics. Only this crate knows
//! status codes.

mod api;
mod error;
mod metrics;
mod report;
mod svg;
mod web;

use std::sync::Arc;

use axum::Router;
use quorum_app::App;
use quorum_store::Store;

pub use error::ApiError;
pub use metrics::Metrics;
pub use report::standard_report_html;

/// The OpenAPI document of `/api/v1`, served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What every handler gets.
pub struct AppState<S> {
    pub app: App<S>,
    pub metrics: Arc<Metrics>,
    pub sign_ins: Arc<web::SignInLimiter>,
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
        }
    }
}

/// The whole HTTP application.
pub fn router<S: Store>(app: App<S>) -> Router {
    let state = AppState {
        app,
        metrics: Arc::new(Metrics::default()),
        sign_ins: Arc::new(web::SignInLimiter::default()),
    };
    api::routes(state)
}
