//! Model runs: collect registered models' answers to a project of prompts through their
//! OpenAI-compatible endpoints. Bounded concurrency per model, retries as [`crate::evaluation::llm`]
//! describes, and resumable: a run calls only what has no answer yet (missing or failed).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use futures_util::stream;
use serde::Serialize;
use serde_json::{Value, json};

use quorum_core::Role;
use quorum_core::schema::FieldKind;
use quorum_store::{Generation, ModelSpec, Store, StoredItem};

use crate::evaluation::llm::{ChatClient, RetryPolicy};
use crate::{App, AppError, Caller};

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub models: Vec<String>,
    /// Requests in flight per model.
    pub concurrency: usize,
    pub policy: RetryPolicy,
}

/// Where a model stands on a project of prompts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ModelProgress {
    pub model: String,
    pub prompts: usize,
    pub answered: usize,
    pub failed: usize,
    /// Calls made by this run (0 when reporting progress only).
    pub calls: usize,
}

/// The chat messages for a prompt item: its chat turns, or its text as one user turn.
pub fn messages(item: &StoredItem, field: &str, kind: FieldKind) -> Option<Vec<Value>> {
    let value = item.fields.get(field)?;
    match kind {
        FieldKind::Chat => value.as_array().cloned(),
        _ => Some(vec![json!({"role": "user", "content": value.as_str()?})]),
    }
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl<S: Store> App<S> {
    /// Registers (or updates) a model. Administrators only.
    pub async fn register_model(
        &self,
        caller: &Caller,
        mut model: ModelSpec,
    ) -> Result<(), AppError> {
        if !caller.user.is_admin {
            return Err(AppError::Forbidden(
                "only administrators register models".into(),
            ));
        }
        let bad = |field: &str, message: &str| AppError::Invalid {
            message: message.to_string(),
            details: json!({"field": field}),
        };
        model.name = model.name.trim().to_string();
        if model.name.is_empty() || model.name.len() > 200 {
            return Err(bad("name", "the name must be 1 to 200 characters"));
        }
        if let Some(url) = &model.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(bad(
                "base_url",
                "base_url must be an http:// or https:// URL",
            ));
        }
        if let Some(variable) = &model.api_key_env {
            if !valid_env_name(variable) {
                return Err(bad(
                    "api_key_env",
                    "api_key_env is the name of an environment variable (letters, digits, _), not the key",
                ));
            }
            if !self.egress().key_allowed(variable) {
                return Err(bad(
                    "api_key_env",
                    &format!(
                        "{variable} may not hold a model key: name a variable starting with {} or one the operator lists in QUORUM_MODEL_KEYS_ALLOW",
                        crate::evaluation::llm::KEY_PREFIX
                    ),
                ));
            }
        }
        if let Some(refused) = model
            .base_url
            .as_deref()
            .and_then(|u| self.egress().refuse_url(u))
        {
            return Err(bad("base_url", &refused));
        }
        if !model.parameters.is_object() {
            return Err(bad("parameters", "parameters must be a JSON object"));
        }
        model.created_at = self.now();
        Ok(self.store().upsert_model(model).await?)
    }

    /// The model registry (no secrets are in it, but endpoints and parameters are): for
    /// administrators and whoever manages a project.
    pub async fn models(&self, caller: &Caller) -> Result<Vec<ModelSpec>, AppError> {
        if !caller.user.is_admin && !self.manages_a_project(caller).await? {
            return Err(AppError::Forbidden(
                "the model registry is for administrators and project managers".into(),
            ));
        }
        Ok(self.store().models().await?)
    }

    /// Whether the caller is a manager of some project.
    async fn manages_a_project(&self, caller: &Caller) -> Result<bool, AppError> {
        for project in self.all_projects(Some(caller.user.id)).await? {
            let member = self.cached_member(project.id, caller.user.id).await?;
            if member.is_some_and(|m| m.role.can_manage()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Each model's answered and failed prompts in a prompt project.
    pub async fn run_progress(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Vec<ModelProgress>, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        let prompts = self
            .store()
            .stats(project_id, project.overlap, self.now())
            .await?
            .items as usize;
        let mut by_model: HashMap<String, ModelProgress> = HashMap::new();
        for g in self.store().generations(project_id).await? {
            let entry = by_model.entry(g.model.clone()).or_insert(ModelProgress {
                model: g.model,
                prompts,
                answered: 0,
                failed: 0,
                calls: 0,
            });
            if g.output.is_some() {
                entry.answered += 1;
            } else {
                entry.failed += 1;
            }
        }
        let mut progress: Vec<ModelProgress> = by_model.into_values().collect();
        progress.sort_by(|a, b| a.model.cmp(&b.model));
        Ok(progress)
    }

    /// Checks a run can start: the caller manages the project, it has a prompt field, and every
    /// model is registered with an endpoint and its key in the environment. Returns the prompt
    /// field and the models.
    pub async fn check_run(
        &self,
        caller: &Caller,
        project_id: i64,
        request: &RunRequest,
    ) -> Result<(String, FieldKind, Vec<ModelSpec>), AppError> {
        let project = self.require(caller, project_id, Role::Manager).await?;
        let schema = &project.schema;
        let (field, kind) = schema.prompt_field().ok_or_else(|| {
            AppError::invalid(
                "the project has no text, markdown or chat field to use as the prompt",
            )
        })?;
        if request.models.is_empty() {
            return Err(AppError::invalid("name at least one model"));
        }
        let registry: HashMap<String, ModelSpec> = self
            .store()
            .models()
            .await?
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect();
        let mut models = Vec::new();
        for name in &request.models {
            let model = registry.get(name).ok_or_else(|| {
                AppError::invalid(format!("no model named `{name}` is registered"))
            })?;
            if model.base_url.is_none() {
                return Err(AppError::invalid(format!(
                    "model `{name}` has no endpoint; import its answers instead"
                )));
            }
            ChatClient::api_key(model, self.egress()).map_err(AppError::invalid)?;
            if let Some(refused) = self
                .egress()
                .refuse_url(model.base_url.as_deref().unwrap_or_default())
            {
                return Err(AppError::invalid(refused));
            }
            models.push(model.clone());
        }
        Ok((field.to_string(), kind, models))
    }

    /// Calls each model on every prompt it has no answer to yet; `on_answer(model)` is called
    /// after each call (for progress). Managers of the project. The CLI runs this in the
    /// foreground; a server queues it as jobs ([`App::start_model_run`]).
    pub async fn run_models(
        &self,
        caller: &Caller,
        project_id: i64,
        request: RunRequest,
        on_answer: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Vec<ModelProgress>, AppError> {
        let (field, kind, models) = self.check_run(caller, project_id, &request).await?;
        let field = field.as_str();
        let items = self.all_items(project_id).await?;
        let answered: HashSet<(i64, String)> = self
            .store()
            .generations(project_id)
            .await?
            .into_iter()
            .filter(|g| g.output.is_some())
            .map(|g| (g.item_id, g.model))
            .collect();
        let client = ChatClient::new(self.egress());
        let concurrency = request.concurrency.max(1);
        let runs = models.iter().map(|model| {
            // Owned items: a closure over borrowed ones is not `Send` enough for `tokio::spawn`.
            let todo: Vec<StoredItem> = items
                .iter()
                .filter(|i| !answered.contains(&(i.id, model.name.clone())))
                .cloned()
                .collect();
            let calls = AtomicUsize::new(0);
            let client = &client;
            let policy = &request.policy;
            async move {
                let results = stream::iter(todo)
                    .map(|item| {
                        let calls = &calls;
                        async move {
                            let Some(messages) = messages(&item, field, kind) else {
                                return Ok::<(), AppError>(());
                            };
                            calls.fetch_add(1, Ordering::Relaxed);
                            let outcome = client.complete(model, &messages, policy).await;
                            let generation = match outcome {
                                Ok(reply) => Generation {
                                    project_id,
                                    item_id: item.id,
                                    model: model.name.clone(),
                                    output: Some(reply.content),
                                    error: None,
                                    latency_ms: reply.latency_ms,
                                    prompt_tokens: reply.prompt_tokens,
                                    completion_tokens: reply.completion_tokens,
                                    attempts: i64::from(reply.attempts),
                                    created_at: self.now(),
                                },
                                Err(failure) => Generation {
                                    project_id,
                                    item_id: item.id,
                                    model: model.name.clone(),
                                    output: None,
                                    error: Some(failure.message),
                                    latency_ms: 0,
                                    prompt_tokens: None,
                                    completion_tokens: None,
                                    attempts: i64::from(failure.attempts),
                                    created_at: self.now(),
                                },
                            };
                            self.store().put_generations(vec![generation]).await?;
                            on_answer(&model.name);
                            Ok(())
                        }
                    })
                    .buffer_unordered(concurrency)
                    .collect::<Vec<_>>()
                    .await;
                results.into_iter().collect::<Result<Vec<()>, AppError>>()?;
                Ok::<usize, AppError>(calls.into_inner())
            }
        });
        let calls = futures_util::future::join_all(runs).await;
        let mut progress = self.run_progress(caller, project_id).await?;
        for (model, made) in models.iter().zip(calls) {
            let made = made?;
            match progress.iter_mut().find(|p| p.model == model.name) {
                Some(p) => p.calls = made,
                None => progress.push(ModelProgress {
                    model: model.name.clone(),
                    prompts: items.len(),
                    answered: 0,
                    failed: 0,
                    calls: made,
                }),
            }
        }
        Ok(progress)
    }
}
