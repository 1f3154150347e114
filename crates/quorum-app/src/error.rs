use quorum_store::StoreError;
use serde_json::Value;

/// What went wrong in a use-case, in terms a client can act on. The HTTP edge maps each kind
/// to a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Bad input; `details` locates the problem (a field, a row).
    #[error("{message}")]
    Invalid { message: String, details: Value },
    #[error("{0}")]
    Conflict(String),
    #[error("the lease expired and the item has since been given to other raters")]
    LeaseExpired,
    #[error("the service is shutting down")]
    Unavailable,
    /// The database cannot be reached for now; the request may be tried again shortly.
    #[error("the database cannot be reached; try again shortly")]
    DatabaseUnreachable,
    /// The server's storage is full: nothing of the request was stored.
    #[error("the server's storage is full")]
    StorageFull,
    /// The server's storage has turned read-only: nothing of the request was stored.
    #[error("the server's storage has become read-only")]
    StorageReadOnly,
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::Invalid {
            message: message.into(),
            details: Value::Null,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => AppError::NotFound(what),
            StoreError::Conflict(message) => AppError::Conflict(message),
            StoreError::LeaseExpired => AppError::LeaseExpired,
            StoreError::Closed => AppError::Unavailable,
            StoreError::StorageFull => AppError::StorageFull,
            StoreError::StorageReadOnly => AppError::StorageReadOnly,
            StoreError::Unreachable(reason) => {
                tracing::warn!(error = %reason, "the database cannot be reached");
                AppError::DatabaseUnreachable
            }
            StoreError::Database(source) => AppError::Internal(source),
        }
    }
}
