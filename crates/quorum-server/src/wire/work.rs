//! The rater loop: the reply to an answer.

use quorum_app::{Assignment, ResponseView};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A stored (or replayed) response; with `?next=true`, the rater's next assignment too.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmitReply {
    pub response: ResponseView,
    /// True when the `Idempotency-Key` replayed an earlier response (status 200, not 201).
    pub replayed: bool,
    /// After a gold item, when the project shows feedback: `{expected, correct}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Value>,
    /// With `?next=true` only: the next assignment, or null when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Assignment>, required = false)]
    pub next: Option<Option<Assignment>>,
    /// With `?next=true`, when the answer paused the rater: why no next item is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_refused: Option<String>,
}
