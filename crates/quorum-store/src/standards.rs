//! Standards: runs of evaluation standards, and instance-wide settings.

use async_trait::async_trait;
use serde::Serialize;

use crate::Result;
use serde_json::Value;

/// One run of an evaluation standard: the projects it made and the models it compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandardRun {
    pub hash: String,
    pub prompts_project_id: i64,
    pub battles_project_id: i64,
    pub models: Vec<String>,
    /// The standard's items are held out: their text is never exported.
    pub private: bool,
    /// The standard itself (spec and items), so it can be reported without its file.
    pub standard: Value,
    pub created_at: i64,
}

#[async_trait]
pub trait Standards {
    async fn put_standard_run(&self, run: StandardRun) -> Result<()>;
    /// The runs of the standard with this hash, oldest first.
    async fn standard_runs(&self, hash: &str) -> Result<Vec<StandardRun>>;
    /// Every standard run, newest first.
    async fn all_standard_runs(&self) -> Result<Vec<StandardRun>>;
    /// The standard run that made this project (its prompts or its battles), if one did.
    async fn standard_run_of(&self, project_id: i64) -> Result<Option<StandardRun>>;
    /// The instance's setting `name`, set to `value` first if it has none (the first writer
    /// wins, on every server).
    async fn instance_setting(&self, name: &str, value: String) -> Result<String>;
}
