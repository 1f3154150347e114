//! The wire format of `/api/v1`: the request and response bodies of every operation, as types
//! of this crate. Store records never cross the wire: each is mapped here into a type whose
//! shape is the API's, so a change to storage cannot change the API unseen. The app's views
//! and reports built for the outside (an assignment, a leaderboard, a signed report) derive
//! their schemas where they are defined and are embedded here. The OpenAPI document is
//! generated from these types (`crate::api::openapi`) and snapshot-tested against
//! `openapi.json`, so every change to the wire format shows in review.

pub mod accounts;
pub mod evaluation;
pub mod jobs;
pub mod projects;
pub mod quality;
pub mod standards;
pub mod webhooks;
pub mod work;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{ToResponse, ToSchema};

/// Every error: a stable machine code, a message for people, and details that locate the
/// problem (a field, a line, the rejected rows).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    pub details: Value,
}

/// Every refused request gets this response (`response = ErrorBody` in an operation's list).
impl<'s> ToResponse<'s> for ErrorBody {
    fn response() -> (&'s str, RefOr<Response>) {
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build();
        let response = ResponseBuilder::new()
            .description("Refused: `error.code` says why and `error.details` where")
            .content("application/json", content)
            .build();
        ("Error", response.into())
    }
}

/// The health check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`; or, with 503, `storage_full`, `storage_read_only` or `database_unreachable`.
    pub status: &'static str,
}
