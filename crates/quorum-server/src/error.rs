use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quorum_app::AppError;
use serde_json::Value;

use crate::wire::{ErrorBody, ErrorDetail};

/// The API's one error type: a status, a stable machine code, a message for people and
/// details that locate the problem. Internal errors are logged, never shown.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn invalid(message: impl Into<String>, details: Value) -> Self {
        Self {
            details,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
        }
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid API token is required",
            ),
            AppError::Forbidden(message) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            AppError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            AppError::Invalid { message, details } => ApiError::invalid(message, details),
            AppError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            e @ AppError::LeaseExpired => {
                ApiError::new(StatusCode::CONFLICT, "lease_expired", e.to_string())
            }
            AppError::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is shutting down",
            ),
            e @ AppError::DatabaseUnreachable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unreachable",
                e.to_string(),
            ),
            e @ AppError::StorageFull => {
                tracing::error!("the database's storage is full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    format!(
                        "{e}: nothing of this request was stored; try again once an operator has freed space"
                    ),
                )
            }
            e @ AppError::StorageReadOnly => {
                tracing::error!("the database's filesystem has turned read-only");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_read_only",
                    format!(
                        "{e}: nothing of this request was stored; an operator must repair the server's disk"
                    ),
                )
            }
            AppError::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

/// An error response's code, kept on the response for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        // For the metrics: which error this was.
        response.extensions_mut().insert(ErrorCode(self.code));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Worth trying again soon: the server is draining or the database is away.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
