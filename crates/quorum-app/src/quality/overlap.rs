//! Dynamic overlap: after each answer on a project that sets `min_overlap` and
//! `target_confidence`, the item's consensus posterior is computed (one-coin model, each rater
//! weighted by their estimated accuracy); once it reaches the target on every label and
//! pairwise question, after at least `min_overlap` answers, the item settles and takes no more.
//! Until then it keeps being offered, up to the project's `overlap`.
//!
//! Rater accuracies come from one-coin Dawid–Skene over the project's answers, each shrunk
//! towards the project's mean (itself shrunk towards a prior of 70%), re-estimated in each
//! server after 50 submissions and then whenever the answers grow by a tenth: an occasional
//! pass over the project's responses, amortised over many submissions. Until the first
//! estimate every rater counts as 70% accurate.

use std::collections::HashMap;

use quorum_core::schema::{QuestionKind, Schema};
use quorum_stats::classification::{self, Method, Settings, one_coin_posterior};
use quorum_store::Store;
use serde_json::Value;

use crate::quality::index_question;
use crate::{App, AppError};

/// A rater accuracy before there is evidence (and for raters the estimate has not seen).
const PRIOR_ACCURACY: f64 = 0.7;
/// Each estimate is shrunk towards the project's mean as if the rater had also given this many
/// answers of average quality: a rater seen on three items cannot look perfect.
const PRIOR_ANSWERS: f64 = 4.0;
/// No rater is trusted beyond these bounds, so one answer never settles an item alone.
const ACCURACY_BOUNDS: (f64, f64) = (0.5, 0.98);

/// The project's mean accuracy is likewise shrunk towards [`PRIOR_ACCURACY`] as if this many
/// answers backed the prior.
const PRIOR_PROJECT_ANSWERS: f64 = 20.0;
/// Submissions (in this server) before the first estimate, and at least between estimates.
const REESTIMATE_AFTER: usize = 50;

/// One project's accuracy estimates in this server.
#[derive(Debug, Clone)]
pub(crate) struct Accuracies {
    by_user: HashMap<i64, f64>,
    default: f64,
    /// Responses the last estimate saw, and submissions since.
    seen: usize,
    since: usize,
}

impl Default for Accuracies {
    fn default() -> Self {
        Self {
            by_user: HashMap::new(),
            default: PRIOR_ACCURACY,
            seen: 0,
            since: 0,
        }
    }
}

/// The options of each question that has a categorical consensus.
fn categorical(schema: &Schema) -> Vec<(&str, Vec<String>)> {
    schema
        .questions
        .iter()
        .filter_map(|q| match &q.kind {
            QuestionKind::Label { options } => Some((q.name.as_str(), options.clone())),
            QuestionKind::Pairwise { .. } => Some((
                q.name.as_str(),
                ["a", "b", "tie", "both_bad"].map(String::from).to_vec(),
            )),
            _ => None,
        })
        .collect()
}

impl<S: Store> App<S> {
    /// Re-estimates the project's rater accuracies when enough new answers have arrived.
    async fn accuracies(&self, project_id: i64, schema: &Schema) -> Result<Accuracies, AppError> {
        let current = self.caches().accuracies.lock().ok().and_then(|mut all| {
            let entry = all.entry(project_id).or_default();
            entry.since += 1;
            (entry.since < REESTIMATE_AFTER.max(entry.seen / 10)).then(|| entry.clone())
        });
        if let Some(current) = current {
            return Ok(current);
        }
        let rows = self.all_responses(project_id).await?;
        let mut estimate = Accuracies {
            by_user: HashMap::new(),
            default: PRIOR_ACCURACY,
            seen: rows.len(),
            since: 0,
        };
        if let Some((question, options)) = categorical(schema).into_iter().next()
            && let Some(indexed) = index_question(&rows, question, &options)?
        {
            let fit = classification::aggregate(
                Method::OneCoinDawidSkene,
                &indexed.answers,
                &Settings::default(),
            )
            .map_err(|e| AppError::Internal(Box::new(e)))?;
            let counts = &indexed.counts;
            let total: f64 = counts.iter().sum();
            let mean = (fit
                .worker_skill
                .iter()
                .zip(counts)
                .map(|(s, n)| s * n)
                .sum::<f64>()
                + PRIOR_ACCURACY * PRIOR_PROJECT_ANSWERS)
                / (total + PRIOR_PROJECT_ANSWERS);
            for (w, user) in indexed.raters.keys().iter().enumerate() {
                let shrunk = (fit.worker_skill[w] * counts[w] + mean * PRIOR_ANSWERS)
                    / (counts[w] + PRIOR_ANSWERS);
                estimate
                    .by_user
                    .insert(*user, shrunk.clamp(ACCURACY_BOUNDS.0, ACCURACY_BOUNDS.1));
            }
            estimate.default = mean.clamp(ACCURACY_BOUNDS.0, ACCURACY_BOUNDS.1);
        }
        if let Ok(mut all) = self.caches().accuracies.lock() {
            all.insert(project_id, estimate.clone());
        }
        Ok(estimate)
    }

    /// Settles the item once its consensus is confident: after at least `min_overlap` answers,
    /// a posterior of at least `target` on every label and pairwise question.
    pub(crate) async fn settle_if_confident(
        &self,
        project_id: i64,
        schema: &Schema,
        item_id: i64,
        min_overlap: i32,
        target: f64,
    ) -> Result<bool, AppError> {
        let questions = categorical(schema);
        if questions.is_empty() {
            return Ok(false);
        }
        let answers = self.store().item_answers(item_id).await?;
        if (answers.len() as i32) < min_overlap {
            return Ok(false);
        }
        let accuracies = self.accuracies(project_id, schema).await?;
        let confident = questions.iter().all(|(question, options)| {
            let votes: Vec<(u32, f64)> = answers
                .iter()
                .filter_map(|answer| {
                    let label = answer
                        .answers
                        .get(*question)
                        .and_then(Value::as_str)
                        .and_then(|v| options.iter().position(|o| o == v))?;
                    let accuracy = accuracies
                        .by_user
                        .get(&answer.user_id)
                        .copied()
                        .unwrap_or(accuracies.default);
                    Some((label as u32, accuracy))
                })
                .collect();
            let posterior = one_coin_posterior(&votes, options.len());
            posterior.iter().copied().fold(0.0, f64::max) >= target
        });
        if confident {
            self.store().settle_item(item_id, self.now()).await?;
        }
        Ok(confident)
    }
}
