//! Evaluation: registered models, their generations, and battles between them.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::{ImportReport, ItemBatch, Result};

/// A registered model: how to call it (an OpenAI-compatible chat-completions endpoint), or
/// nothing when its answers are imported. The API key is never stored: only the name of the
/// environment variable that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ModelSpec {
    pub name: String,
    #[serde(default)]
    pub base_url: Option<String>,
    /// The provider's model id (defaults to `name` when calling).
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Generation parameters sent with every request (temperature, max_tokens, …).
    #[serde(default = "empty_object")]
    pub parameters: Value,
    #[serde(default)]
    pub created_at: i64,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A model's answer to one prompt item (or the error of its last attempt).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub project_id: i64,
    pub item_id: i64,
    pub model: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub attempts: i64,
    pub created_at: i64,
}

/// Which model is behind each side of a pairwise battle item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BattleSides {
    pub model_a: String,
    pub model_b: String,
    /// The prompt item the two answers respond to.
    pub prompt_item_id: Option<i64>,
}

/// One response to a battle item, with what a leaderboard slices by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BattleVote {
    pub response_id: i64,
    pub item_id: i64,
    pub model_a: String,
    pub model_b: String,
    pub user_name: String,
    pub answers: Value,
    pub category: Option<String>,
    pub item_locale: Option<String>,
    /// The rater's locales in this project (first = primary).
    pub rater_locales: Vec<String>,
}

#[async_trait]
pub trait Evaluation {
    /// Registers a model, or updates the one of that name.
    async fn upsert_model(&self, model: ModelSpec) -> Result<()>;
    async fn models(&self) -> Result<Vec<ModelSpec>>;
    /// Stores models' answers to prompt items, replacing earlier attempts', in one transaction.
    async fn put_generations(&self, generations: Vec<Generation>) -> Result<()>;
    /// A project's generations, by item then model.
    async fn generations(&self, project_id: i64) -> Result<Vec<Generation>>;
    /// Imports battle items and records the models behind their sides, all in one transaction.
    /// `sides[i]` belongs to the i-th item, which must have an external id.
    async fn import_battles(
        &self,
        project_id: i64,
        items: ItemBatch,
        sides: Vec<BattleSides>,
        now: i64,
    ) -> Result<ImportReport>;
    /// Responses to battle items with `id > after`, in id order.
    async fn battle_votes(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<BattleVote>>;
}
