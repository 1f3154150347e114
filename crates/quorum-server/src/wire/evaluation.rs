//! Models, generations, battles, runs, judges and the leaderboard.

use quorum_app::evaluation::Sampling;
use quorum_app::evaluation::arena::Report;
use quorum_app::evaluation::judges::JudgeReport;
use quorum_app::evaluation::runs::ModelProgress;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::jobs::Job;
use super::projects::LocalePolicy;

/// A model to register: how to call it (an OpenAI-compatible chat-completions endpoint), or
/// nothing when its answers are imported. The API key is never stored, only the name of the
/// environment variable that holds it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Model {
    pub name: String,
    #[serde(default)]
    pub base_url: Option<String>,
    /// The provider's model id (`name` when absent).
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Generation parameters sent with every request (temperature, max_tokens, …).
    #[serde(default = "empty_object")]
    pub parameters: Value,
    /// When it was registered (set by the server).
    #[serde(default)]
    pub created_at: i64,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl From<quorum_store::ModelSpec> for Model {
    fn from(model: quorum_store::ModelSpec) -> Self {
        Self {
            name: model.name,
            base_url: model.base_url,
            model_id: model.model_id,
            api_key_env: model.api_key_env,
            parameters: model.parameters,
            created_at: model.created_at,
        }
    }
}

impl From<Model> for quorum_store::ModelSpec {
    fn from(model: Model) -> Self {
        Self {
            name: model.name,
            base_url: model.base_url,
            model_id: model.model_id,
            api_key_env: model.api_key_env,
            parameters: model.parameters,
            created_at: model.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Models {
    pub models: Vec<Model>,
}

/// The name a model was registered under.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelRegistered {
    pub model: String,
}

/// Generations stored (all lines or none).
#[derive(Debug, Serialize, ToSchema)]
pub struct GenerationsStored {
    pub stored: usize,
}

/// A battle project from a project of prompts and its models' answers.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BuildBattles {
    pub name: String,
    /// The models to pit against each other (all that answered when empty).
    #[serde(default)]
    pub models: Vec<String>,
    pub sampling: Sampling,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_overlap")]
    #[schema(default = 1)]
    pub overlap: i32,
    #[serde(default)]
    pub locale_policy: LocalePolicy,
    /// The questions raters answer about each pair (at least one pairwise question; the first
    /// one makes the board); one preference question when absent.
    #[serde(default)]
    pub questions: Option<Vec<Value>>,
}

fn default_overlap() -> i32 {
    quorum_app::DEFAULT_OVERLAP
}

impl From<BuildBattles> for quorum_app::evaluation::BuildBattles {
    fn from(request: BuildBattles) -> Self {
        Self {
            name: request.name,
            models: request.models,
            sampling: request.sampling,
            seed: request.seed,
            overlap: request.overlap,
            locale_policy: request.locale_policy.into(),
            questions: request.questions,
        }
    }
}

/// Starts one job per model: each generates the answers its model still lacks.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StartRun {
    pub models: Vec<String>,
    /// Requests in flight per model, 1 to 64.
    #[serde(default = "default_concurrency")]
    #[schema(minimum = 1, maximum = 64, default = 4)]
    pub concurrency: usize,
}

pub fn default_concurrency() -> usize {
    4
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunStarted {
    pub started: bool,
    pub jobs: Vec<Job>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunProgress {
    pub models: Vec<ModelProgress>,
}

/// Starts an LLM judge on every battle of the project, both orders.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartJudge {
    /// The judge's registered model.
    pub model: String,
    /// The prompt template (`{prompt}`, `{a}`, `{b}`); the built-in one when absent.
    pub template: Option<String>,
    #[serde(default = "default_concurrency")]
    #[schema(minimum = 1, maximum = 64, default = 4)]
    pub concurrency: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JudgeStarted {
    pub started: bool,
    pub job: Job,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JudgeReports {
    pub judges: Vec<JudgeReport>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Leaderboard {
    pub leaderboard: Report,
}
