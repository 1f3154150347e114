//! Model evaluation use-cases: models' answers to a project of prompts, battle projects built
//! from them (sides randomised and recorded, model names hidden from raters), and arena
//! leaderboards over the votes raters give.

pub mod arena;
pub mod judges;
pub mod llm;
pub mod runs;

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Value, json};

use quorum_core::Role;
use quorum_core::item::{Item, ItemInput};
use quorum_core::schema::{QuestionKind, Schema};
use quorum_stats::arena::{Battle, Winner};
use quorum_stats::rng::SplitMix64;
use quorum_store::{BattleSides, Generation, ItemBatch, LocalePolicy, Store, StoredItem};

use crate::evaluation::arena::{Battles, Report, ReportOptions, report};
use crate::quality::Ids;
use crate::{App, AppError, Caller, CreateProject, Rejected};

/// One line of a generations import: a model's answer to the prompt item `prompt_id`
/// (its external id).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationLine {
    pub prompt_id: String,
    pub model: String,
    pub response: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerationsOutcome {
    pub stored: usize,
    /// The first [`crate::MAX_REJECTED`] lines refused.
    pub rejected: Vec<Rejected>,
    /// Every line refused.
    pub rejected_total: u64,
}

/// How pairs of models are chosen for each prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Sampling {
    /// Every pair of models that both answered.
    AllPairs,
    /// `per_prompt` pairs per prompt, keeping each model's number of battles as even as
    /// possible.
    Balanced { per_prompt: usize },
}

#[derive(Debug, Clone, Deserialize)]
pub struct BuildBattles {
    pub name: String,
    /// The models to pit against each other (all that answered when empty).
    #[serde(default)]
    pub models: Vec<String>,
    pub sampling: Sampling,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_overlap")]
    pub overlap: i32,
    #[serde(default)]
    pub locale_policy: LocalePolicy,
    /// The questions raters answer about each pair (at least one pairwise question; the first
    /// one makes the board); one preference question when absent.
    #[serde(default)]
    pub questions: Option<Vec<Value>>,
}

fn default_overlap() -> i32 {
    1
}

/// What a battle board is sliced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SliceBy {
    /// The rater's first locale in the project.
    RaterLocale,
    /// The prompt's category.
    Category,
    /// The prompt's language (the language subtag of its locale).
    Language,
}

fn winner(verdict: &str) -> Option<Winner> {
    match verdict {
        "a" => Some(Winner::A),
        "b" => Some(Winner::B),
        "tie" => Some(Winner::Tie),
        "both_bad" => Some(Winner::BothBad),
        _ => None,
    }
}

impl<S: Store> App<S> {
    /// Imports models' answers (JSON Lines of `prompt_id, model, response`) into a project of
    /// prompts: all lines or none. Re-importing an answer replaces it.
    pub async fn import_generations(
        &self,
        caller: &Caller,
        project_id: i64,
        body: &str,
    ) -> Result<GenerationsOutcome, AppError> {
        let project = self.require(caller, project_id, Role::Manager).await?;
        if project.schema.prompt_field().is_none() {
            return Err(AppError::invalid(
                "the project has no text, markdown or chat field to use as the prompt",
            ));
        }
        let by_external: HashMap<String, i64> = self
            .all_items(project_id)
            .await?
            .into_iter()
            .filter_map(|i| i.external_id.map(|e| (e, i.id)))
            .collect();
        let now = self.now();
        let mut rejected = crate::projects::Rejections::default();
        let mut generations = Vec::new();
        for (index, line) in body.lines().enumerate() {
            let row = index as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: GenerationLine = match serde_json::from_str(line) {
                Ok(parsed) => parsed,
                Err(e) => {
                    rejected.push(
                        row,
                        format!("not a generation (prompt_id, model, response): {e}"),
                    );
                    continue;
                }
            };
            let Some(&item_id) = by_external.get(&parsed.prompt_id) else {
                rejected.push(
                    row,
                    format!("no item has external id `{}`", parsed.prompt_id),
                );
                continue;
            };
            if parsed.model.trim().is_empty() {
                rejected.push(row, "model must not be empty".into());
                continue;
            }
            generations.push(Generation {
                project_id,
                item_id,
                model: parsed.model,
                output: Some(parsed.response),
                error: None,
                latency_ms: 0,
                prompt_tokens: None,
                completion_tokens: None,
                attempts: 0,
                created_at: now,
            });
        }
        if !rejected.is_empty() {
            return Ok(GenerationsOutcome {
                stored: 0,
                rejected_total: rejected.total,
                rejected: rejected.kept,
            });
        }
        let stored = generations.len();
        self.store().put_generations(generations).await?;
        Ok(GenerationsOutcome {
            stored,
            rejected: Vec::new(),
            rejected_total: 0,
        })
    }

    /// Builds a battle project from the answers collected in a prompt project: one pairwise
    /// item per chosen pair of models per prompt, sides drawn at random (seeded) and recorded,
    /// the responses shown as "A" and "B" only. Returns the new project.
    pub async fn build_battles(
        &self,
        caller: &Caller,
        prompt_project_id: i64,
        request: BuildBattles,
    ) -> Result<quorum_store::Project, AppError> {
        let source = self
            .require(caller, prompt_project_id, Role::Manager)
            .await?;
        let source_schema = &source.schema;
        let (prompt_name, prompt_kind) = source_schema.prompt_field().ok_or_else(|| {
            AppError::invalid(
                "the project has no text, markdown or chat field to use as the prompt",
            )
        })?;
        if let Sampling::Balanced { per_prompt: 0 } = request.sampling {
            return Err(AppError::invalid("per_prompt must be at least 1"));
        }
        // Answers per prompt item, by model, restricted to the requested models.
        let mut answers: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
        for g in self.store().generations(prompt_project_id).await? {
            if let Some(output) = g.output
                && (request.models.is_empty() || request.models.contains(&g.model))
            {
                answers
                    .entry(g.item_id)
                    .or_default()
                    .insert(g.model, output);
            }
        }
        for model in &request.models {
            if !answers.values().any(|m| m.contains_key(model)) {
                return Err(AppError::invalid(format!(
                    "model `{model}` has no answers in this project"
                )));
            }
        }
        let prompts: HashMap<i64, StoredItem> = self
            .all_items(prompt_project_id)
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();
        let schema = json!({
            "fields": [
                {"name": "prompt", "kind": prompt_kind},
                {"name": "responses", "kind": "responses"}
            ],
            "questions": request.questions.clone().unwrap_or_else(|| vec![json!({
                "name": "preference", "kind": "pairwise", "allow_both_bad": true, "required": true,
                "instructions": "Which response is better? Choose tie when they are equally good, both bad when neither is acceptable."
            })])
        });
        let parsed_schema = Schema::parse(&schema).map_err(|e| AppError::Invalid {
            message: e.to_string(),
            details: json!({"field": format!("questions: {}", e.location)}),
        })?;
        if parsed_schema.pairwise_question().is_none() {
            return Err(AppError::Invalid {
                message: "battles need a pairwise question".into(),
                details: json!({"field": "questions"}),
            });
        }
        let mut rng = SplitMix64::new(request.seed);
        let mut appearances: HashMap<String, usize> = HashMap::new();
        let mut batch = ItemBatch::default();
        let mut sides = Vec::new();
        for (item_id, by_model) in &answers {
            let Some(prompt) = prompts.get(item_id) else {
                continue;
            };
            let models: Vec<&String> = by_model.keys().collect();
            let mut pairs: Vec<(usize, usize)> = Vec::new();
            for i in 0..models.len() {
                for j in i + 1..models.len() {
                    pairs.push((i, j));
                }
            }
            if let Sampling::Balanced { per_prompt } = request.sampling {
                // Shuffle, then take the pairs whose models have battled least so far.
                for k in (1..pairs.len()).rev() {
                    pairs.swap(k, rng.below(k + 1));
                }
                let mut chosen = Vec::new();
                while chosen.len() < per_prompt && !pairs.is_empty() {
                    let load = |&(i, j): &(usize, usize)| {
                        appearances.get(models[i]).copied().unwrap_or(0)
                            + appearances.get(models[j]).copied().unwrap_or(0)
                    };
                    let best = (0..pairs.len())
                        .min_by_key(|&k| load(&pairs[k]))
                        .unwrap_or(0);
                    let pair = pairs.swap_remove(best);
                    *appearances.entry(models[pair.0].clone()).or_default() += 1;
                    *appearances.entry(models[pair.1].clone()).or_default() += 1;
                    chosen.push(pair);
                }
                pairs = chosen;
            }
            for (i, j) in pairs {
                let (a, b) = if rng.next_f64() < 0.5 { (i, j) } else { (j, i) };
                let (model_a, model_b) = (models[a], models[b]);
                let prompt_value = prompt
                    .fields
                    .get(prompt_name)
                    .cloned()
                    .unwrap_or(Value::Null);
                let external = format!(
                    "{}:{}|{}",
                    prompt
                        .external_id
                        .clone()
                        .unwrap_or_else(|| prompt.id.to_string()),
                    models[i.min(j)],
                    models[i.max(j)]
                );
                let mut metadata = serde_json::Map::new();
                if let Some(locale) = &prompt.locale {
                    metadata.insert("locale".into(), json!(locale));
                }
                if let Some(category) = &prompt.category {
                    metadata.insert("category".into(), json!(category));
                }
                let input = ItemInput {
                    external_id: Some(external),
                    fields: json!({
                        "prompt": prompt_value,
                        "responses": [
                            {"name": "A", "content": by_model[model_a]},
                            {"name": "B", "content": by_model[model_b]}
                        ]
                    })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                    metadata,
                    priority: prompt.priority,
                    ..ItemInput::default()
                };
                let item = Item::validate(input, &parsed_schema)
                    .map_err(|e| AppError::invalid(format!("prompt item {}: {e}", prompt.id)))?;
                batch
                    .push(&item)
                    .map_err(|full| AppError::invalid(full.to_string()))?;
                sides.push(BattleSides {
                    model_a: model_a.clone(),
                    model_b: model_b.clone(),
                    prompt_item_id: Some(prompt.id),
                });
            }
        }
        if batch.is_empty() {
            return Err(AppError::invalid(
                "no prompt has answers from two of the chosen models",
            ));
        }
        let project = self
            .create_project(
                caller,
                CreateProject {
                    name: request.name,
                    instructions: format!(
                        "Compare two anonymous answers to the same prompt (from project {}).",
                        source.name
                    ),
                    schema,
                    overlap: request.overlap,
                    lease_seconds: source.lease_seconds,
                    locale_policy: request.locale_policy,
                    min_overlap: None,
                    target_confidence: None,
                    quality: Default::default(),
                },
            )
            .await?;
        self.store()
            .import_battles(project.id, batch, sides, self.now())
            .await?;
        Ok(project)
    }

    /// Exports that carry item text refuse the projects of a standard that holds its items out.
    async fn refuse_held_out(&self, project_id: i64) -> Result<(), AppError> {
        match self.store().standard_run_of(project_id).await? {
            Some(run) if run.private => Err(AppError::Forbidden(format!(
                "this project runs the standard {} whose items are held out: their text is never exported",
                run.hash
            ))),
            _ => Ok(()),
        }
    }

    /// The arena report of a battle project's votes: overall, and per slice when asked.
    pub async fn project_leaderboard(
        &self,
        caller: &Caller,
        project_id: i64,
        slice_by: Option<SliceBy>,
        options: ReportOptions,
    ) -> Result<Report, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        let schema = &project.schema;
        let question = schema
            .pairwise_question()
            .ok_or_else(|| AppError::invalid("the project has no pairwise question"))?
            .to_string();
        let mut data = Battles::default();
        let (mut models, mut slices): (Ids<String>, Ids<String>) = Default::default();
        for vote in self.all_battle_votes(project_id).await? {
            let Some(w) = vote
                .answers
                .get(&question)
                .and_then(Value::as_str)
                .and_then(winner)
            else {
                continue;
            };
            let a = models.id(&vote.model_a);
            let b = models.id(&vote.model_b);
            if a == b {
                continue;
            }
            data.battles.push(Battle { a, b, winner: w });
            if let Some(by) = slice_by {
                let slice = match by {
                    SliceBy::RaterLocale => vote.rater_locales.first().cloned(),
                    SliceBy::Category => vote.category.clone(),
                    SliceBy::Language => vote
                        .item_locale
                        .as_deref()
                        .map(|l| l.split(['-', '_']).next().unwrap_or(l).to_lowercase()),
                }
                .unwrap_or_else(|| "(none)".into());
                data.slice_of.push(slices.id(&slice));
            }
        }
        data.models = models.keys().to_vec();
        data.slices = slices.keys().to_vec();
        // The bootstrap is seconds of CPU on large projects: off the async workers.
        tokio::task::spawn_blocking(move || report(&data, &options))
            .await
            .map_err(|e| AppError::Internal(Box::new(e)))?
    }

    /// Preference pairs for DPO training from a pairwise project: per item, the side the
    /// consensus prefers (Bradley–Terry between the sides, see [`crate::quality`]) as `chosen`,
    /// with its confidence; an item whose consensus is a tie or "both bad" (or that has no
    /// votes) falls back to its gold preference (`source: "gold"`, no confidence), else is left
    /// out.
    pub async fn dpo_pairs(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Vec<Value>, AppError> {
        let project = self.require(caller, project_id, Role::Manager).await?;
        self.refuse_held_out(project_id).await?;
        let schema = &project.schema;
        let question = schema
            .pairwise_question()
            .ok_or_else(|| AppError::invalid("the project has no pairwise question"))?
            .to_string();
        let prompt_name = schema
            .prompt_field()
            .map_or("prompt", |(name, _)| name)
            .to_string();
        let responses_name = schema
            .responses_field()
            .ok_or_else(|| AppError::invalid("the project has no responses field"))?;
        // The method only decides label questions, which are not exported here.
        let consensus: HashMap<i64, crate::quality::ItemConsensus> = self
            .project_consensus(
                project_id,
                schema,
                quorum_stats::classification::Method::MajorityVote,
            )
            .await?
            .into_iter()
            .filter(|c| c.question == question)
            .map(|c| (c.item_id, c))
            .collect();
        let mut pairs = Vec::new();
        for item in self.all_items(project_id).await? {
            let agreed = consensus.get(&item.id);
            let gold = item
                .gold
                .as_ref()
                .and_then(|g| g.get(&question))
                .and_then(Value::as_str);
            // Votes decide; without a preferred side, a known (gold) preference does.
            let (first_wins, confidence, source) =
                match agreed.and_then(|c| c.answer.as_str().map(|a| (a, c.confidence))) {
                    Some(("a", confidence)) => (true, json!(confidence), "votes"),
                    Some(("b", confidence)) => (false, json!(confidence), "votes"),
                    _ => match gold {
                        Some("a") => (true, Value::Null, "gold"),
                        Some("b") => (false, Value::Null, "gold"),
                        _ => continue,
                    },
                };
            let responses = item.fields.get(responses_name).and_then(Value::as_array);
            let content = |i: usize| {
                responses
                    .and_then(|r| r.get(i))
                    .and_then(|r| r.get("content"))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let (chosen, rejected) = if first_wins {
                (content(0), content(1))
            } else {
                (content(1), content(0))
            };
            pairs.push(json!({
                "id": item.external_id,
                "prompt": item.fields.get(&prompt_name).cloned().unwrap_or(Value::Null),
                "chosen": chosen,
                "rejected": rejected,
                "confidence": confidence,
                "votes": agreed.map_or(0, |c| c.responses),
                "source": source,
            }));
        }
        Ok(pairs)
    }
}

impl<S: Store> App<S> {
    /// Supervised fine-tuning conversations from a project with a free-text question (e.g.
    /// demonstration writing): one per response, the prompt's turns (or its text as a user
    /// turn) followed by the rater's text as the assistant's turn.
    pub async fn sft_conversations(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Vec<Value>, AppError> {
        let project = self.require(caller, project_id, Role::Manager).await?;
        self.refuse_held_out(project_id).await?;
        let schema = &project.schema;
        let (prompt, kind) = schema.prompt_field().ok_or_else(|| {
            AppError::invalid("the project has no text, markdown or chat field for the prompt")
        })?;
        let question = schema
            .questions
            .iter()
            .find(|q| matches!(q.kind, QuestionKind::Text { .. }))
            .map(|q| q.name.clone())
            .ok_or_else(|| AppError::invalid("the project has no free-text question"))?;
        let items: HashMap<i64, StoredItem> = self
            .all_items(project_id)
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();
        let mut conversations = Vec::new();
        self.for_each_response(project_id, |row| {
            let (Some(text), Some(item)) = (
                row.answers.get(&question).and_then(Value::as_str),
                items.get(&row.item_id),
            ) else {
                return;
            };
            let Some(mut messages) = runs::messages(item, prompt, kind) else {
                return;
            };
            messages.push(json!({"role": "assistant", "content": text}));
            conversations.push(json!({
                "id": item.external_id,
                "messages": messages,
                "user": row.user_name,
            }));
        })
        .await?;
        Ok(conversations)
    }
}
