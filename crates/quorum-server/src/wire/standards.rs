//! Evaluation standards: runs and their list.

use quorum_app::standards::run::StandardOverview;
use serde::Serialize;
use utoipa::ToSchema;

/// A standard's run: its hash and the projects it made.
#[derive(Debug, Serialize, ToSchema)]
pub struct StandardStarted {
    pub hash: String,
    pub prompts_project_id: i64,
    pub battles_project_id: i64,
    pub models: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Standards {
    pub standards: Vec<StandardOverview>,
}
