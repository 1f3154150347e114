//! Running a standard: a project of its prompts, the models' answers, a battle project with the
//! standard's questions and rater rules, and the LLM judges it asks for. Humans then answer in
//! the ordinary workspace, under the ordinary quality loop.

use quorum_store::{QualityPolicy, StandardRun, Store};
use serde::Serialize;
use serde_json::json;

use super::{JudgePolicy, Standard, item_json};
use crate::evaluation::judges::JudgeRequest;
use crate::evaluation::llm::RetryPolicy;
use crate::evaluation::runs::RunRequest;
use crate::evaluation::{BuildBattles, Sampling};
use crate::{App, AppError, Caller, CreateProject, ImportFormat};

/// How a run calls the models.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Registered models to compare (at least two).
    pub models: Vec<String>,
    pub concurrency: usize,
    pub policy: RetryPolicy,
}

/// The qualification skill a standard's raters are qualified under.
pub fn skill_of(standard: &Standard) -> String {
    format!("standard {}", standard.spec.standard.name)
}

/// A standard's run as the instance lists it, with what it still needs before its report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StandardOverview {
    pub hash: String,
    pub name: String,
    pub version: String,
    pub prompts_project_id: i64,
    pub battles_project_id: i64,
    pub models: Vec<String>,
    pub created_at: i64,
    /// Empty when the report can be made.
    pub missing: Vec<String>,
}

impl<S: Store> App<S> {
    /// Runs a standard given as TOML text (the web app's upload): its items must be inline.
    pub async fn run_standard_text(
        &self,
        caller: &Caller,
        text: &str,
        options: RunOptions,
    ) -> Result<(Standard, StandardRun), AppError> {
        let standard = super::parse(text, |file| {
            Err(format!(
                "an uploaded standard cannot read `{file}`: put its items inline ([[items.inline]])"
            ))
        })
        .map_err(|problems| AppError::Invalid {
            message: format!(
                "the standard has {} problem(s): {}",
                problems.len(),
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            details: json!({"problems": problems}),
        })?;
        let run = self
            .run_standard(caller, &standard, options, &|_| {})
            .await?;
        Ok((standard, run))
    }

    /// The standards run here whose battles the caller may see, newest first.
    pub async fn standards(&self, caller: &Caller) -> Result<Vec<StandardOverview>, AppError> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for run in self.store().all_standard_runs().await? {
            if !seen.insert(run.hash.clone())
                || self
                    .require(caller, run.battles_project_id, quorum_core::Role::Reviewer)
                    .await
                    .is_err()
            {
                continue;
            }
            let standard = Standard::from_stored(&run.standard).map_err(AppError::invalid)?;
            out.push(StandardOverview {
                missing: self.standard_missing(caller, &standard).await?,
                hash: run.hash,
                name: standard.spec.standard.name.clone(),
                version: standard.spec.standard.version.clone(),
                prompts_project_id: run.prompts_project_id,
                battles_project_id: run.battles_project_id,
                models: run.models,
                created_at: run.created_at,
            });
        }
        Ok(out)
    }

    /// The standard of the latest run with this hash, as kept with the run.
    pub async fn stored_standard(&self, hash: &str) -> Result<Standard, AppError> {
        let run = self
            .store()
            .standard_runs(hash)
            .await?
            .pop()
            .ok_or(AppError::NotFound("standard"))?;
        Standard::from_stored(&run.standard).map_err(AppError::invalid)
    }

    /// Runs a standard (administrators): creates its projects, collects the models' answers,
    /// builds the battles and runs the judges; returns the run (also recorded by the hash).
    pub async fn run_standard(
        &self,
        caller: &Caller,
        standard: &Standard,
        options: RunOptions,
        on_answer: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<StandardRun, AppError> {
        let mut models = options.models.clone();
        models.sort();
        models.dedup();
        if models.len() < 2 {
            return Err(AppError::invalid(
                "a standard compares at least two different models",
            ));
        }
        let spec = &standard.spec;
        let title = format!("{} {}", spec.standard.name, spec.standard.version);
        let prompts = self
            .create_project(
                caller,
                CreateProject {
                    name: format!("{title} · prompts"),
                    instructions: spec.standard.description.clone(),
                    schema: json!({
                        "fields": [{"name": "question", "kind": "text"}],
                        "questions": [{"name": "note", "kind": "text"}]
                    }),
                    overlap: 1,
                    lease_seconds: 1800,
                    locale_policy: Default::default(),
                    min_overlap: None,
                    target_confidence: None,
                    quality: QualityPolicy::default(),
                },
            )
            .await?;
        let lines: String = standard
            .items
            .iter()
            .map(|item| format!("{}\n", item_json(item)))
            .collect();
        self.import(caller, prompts.id, ImportFormat::Json, &lines)
            .await?;
        let progress = self
            .run_models(
                caller,
                prompts.id,
                RunRequest {
                    models: models.clone(),
                    concurrency: options.concurrency,
                    policy: options.policy.clone(),
                },
                on_answer,
            )
            .await?;
        // Every model must answer every prompt, or the battles would not be the standard's.
        let unanswered: Vec<String> = progress
            .iter()
            .filter(|p| p.answered < p.prompts)
            .map(|p| format!("{} answered {} of {}", p.model, p.answered, p.prompts))
            .collect();
        if !unanswered.is_empty() {
            return Err(AppError::Conflict(format!(
                "not every model answered every prompt ({}); the answers so far are in project {}: run the standard again when the models respond",
                unanswered.join(", "),
                prompts.id
            )));
        }
        let battles = self
            .build_battles(
                caller,
                prompts.id,
                BuildBattles {
                    name: format!("{title} · battles"),
                    models: models.clone(),
                    sampling: Sampling::AllPairs,
                    seed: spec.scoring.seed,
                    overlap: spec.raters.min_ratings_per_item as i32,
                    locale_policy: Default::default(),
                    questions: Some(spec.questions.clone()),
                },
            )
            .await?;
        if let Some(q) = &spec.raters.qualification {
            let policy = QualityPolicy {
                qualification: Some(quorum_store::Qualification {
                    gold_items: q.gold_items,
                    min_accuracy: q.min_accuracy,
                    skill: Some(skill_of(standard)),
                }),
                ..QualityPolicy::default()
            };
            self.set_quality(caller, battles.id, policy).await?;
        }
        if spec.judges.policy != JudgePolicy::Humans
            && let Some(judge) = &spec.judges.model
        {
            self.run_judge(
                caller,
                battles.id,
                JudgeRequest {
                    model: judge.clone(),
                    template: spec.judges.prompt.clone(),
                    concurrency: options.concurrency,
                    policy: options.policy,
                },
                &|| {},
            )
            .await?;
        }
        let run = StandardRun {
            hash: standard.hash.clone(),
            prompts_project_id: prompts.id,
            battles_project_id: battles.id,
            models,
            private: spec.exposure.policy == super::ExposurePolicy::Private,
            standard: standard.stored(),
            created_at: self.now(),
        };
        self.store().put_standard_run(run.clone()).await?;
        Ok(run)
    }
}
