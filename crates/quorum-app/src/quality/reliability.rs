//! How far each rater can be trusted in a project: gold answers, reviewers' verdicts and
//! agreement with the consensus. Computed on the consensus's spill (see `consensus.rs`), in
//! memory that does not grow with the project.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use quorum_core::schema::Schema;
use quorum_stats::classification::Method;
use quorum_store::{ExportRow, Store, Verdict};

use crate::{App, AppError};

use super::consensus::{
    ConsensusBuilder, Fit, Planned, ProjectConsensus, SIDES, label_of, pairwise_consensus,
};
use super::matches_gold;

/// How far one rater can be trusted in a project.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RaterReliability {
    pub user_id: i64,
    pub name: String,
    pub responses: usize,
    /// Gold items answered, and answered exactly as the gold says (every gold question).
    pub gold_answered: usize,
    pub gold_correct: usize,
    /// Their responses reviewers accepted, and rejected or corrected.
    pub reviews_accepted: usize,
    pub reviews_rejected: usize,
    /// Accuracy on checked answers (gold answers and reviewed responses): the posterior mean
    /// under a uniform Beta(1, 1) prior, and its 95% equal-tailed credible interval.
    pub gold_accuracy: Option<f64>,
    pub gold_lower: Option<f64>,
    pub gold_upper: Option<f64>,
    /// Share of their answers (label and pairwise questions, items without gold) that match
    /// the item's consensus.
    pub agreement_with_consensus: Option<f64>,
    /// Dawid–Skene on the first label question: the rater's skill (mean probability of
    /// answering the true label) and confusion matrix `[true][answered]`, in option order.
    pub skill: Option<f64>,
    pub confusion: Option<Vec<Vec<f64>>>,
    /// Why the auto-pause rules paused them, while they are paused.
    pub paused: Option<String>,
    /// Whether they passed the project's qualification (`None`: undecided, or none).
    pub qualified: Option<bool>,
}

/// A rater's Dawid–Skene skill and confusion rows.
pub(crate) type Skill = (f64, Option<Vec<Vec<f64>>>);

/// What a reliability report counts per rater while the spill is written.
#[derive(Debug, Default)]
pub(crate) struct RaterTallies {
    /// The gold answers of the project's gold items.
    gold: HashMap<i64, Value>,
    raters: BTreeMap<i64, RaterReliability>,
}

impl RaterTallies {
    pub(crate) fn add_gold(&mut self, gold: impl IntoIterator<Item = (i64, Value)>) {
        self.gold.extend(gold);
    }

    /// Whether an item has a gold answer.
    pub(crate) fn is_gold(&self, item_id: i64) -> bool {
        self.gold.contains_key(&item_id)
    }

    /// Counts one response: its rater's responses, reviews and gold answers.
    pub(crate) fn see(&mut self, row: &ExportRow, verdict: Option<Verdict>) {
        let r = self
            .raters
            .entry(row.user_id)
            .or_insert_with(|| RaterReliability {
                user_id: row.user_id,
                name: row.user_name.clone(),
                responses: 0,
                gold_answered: 0,
                gold_correct: 0,
                reviews_accepted: 0,
                reviews_rejected: 0,
                gold_accuracy: None,
                gold_lower: None,
                gold_upper: None,
                agreement_with_consensus: None,
                skill: None,
                confusion: None,
                paused: None,
                qualified: None,
            });
        r.responses += 1;
        match verdict {
            Some(Verdict::Accept) => r.reviews_accepted += 1,
            Some(_) => r.reviews_rejected += 1,
            None => {}
        }
        if let Some(expected) = self.gold.get(&row.item_id) {
            r.gold_answered += 1;
            r.gold_correct += usize::from(matches_gold(&row.answers, expected));
        }
    }

    /// The report: `agreement` (answers matching the consensus, answers compared) and
    /// Dawid–Skene `skills` (skill, confusion rows) by rater.
    pub(crate) fn report(
        self,
        agreement: &HashMap<i64, (usize, usize)>,
        mut skills: HashMap<i64, Skill>,
    ) -> Vec<RaterReliability> {
        use quorum_stats::special::beta_quantile;
        let mut raters = self.raters;
        for r in raters.values_mut() {
            let right = r.gold_correct + r.reviews_accepted;
            let wrong = r.gold_answered - r.gold_correct + r.reviews_rejected;
            if right + wrong > 0 {
                let (a, b) = (1.0 + right as f64, 1.0 + wrong as f64);
                r.gold_accuracy = Some(a / (a + b));
                r.gold_lower = Some(beta_quantile(0.025, a, b));
                r.gold_upper = Some(beta_quantile(0.975, a, b));
            }
            if let Some(&(same, all)) = agreement.get(&r.user_id) {
                r.agreement_with_consensus = (all > 0).then(|| same as f64 / all as f64);
            }
            if let Some((skill, confusion)) = skills.remove(&r.user_id) {
                r.skill = Some(skill);
                r.confusion = confusion;
            }
        }
        raters.into_values().collect()
    }
}

/// Rater reliability from `rows`, the items' `gold` and reviewers' `verdicts` by response
/// (pure: no store). Rejected and corrected responses leave the consensus and count against
/// their rater like a wrong gold answer; accepted ones count like a right one.
pub fn reliability_of(
    schema: &Schema,
    rows: &[ExportRow],
    gold: &HashMap<i64, Value>,
    verdicts: &HashMap<i64, Verdict>,
) -> Result<Vec<RaterReliability>, AppError> {
    let mut builder = ConsensusBuilder::new(schema, &[], false)?.for_reliability(verdicts.clone());
    builder.add_gold(gold.clone());
    builder.push_all(rows)?;
    builder.finish(Method::DawidSkene)?.reliability()
}

impl<S: Store> App<S> {
    /// The reliability of a project's raters, read item by item from the store.
    pub(crate) async fn reliability_run(
        &self,
        project_id: i64,
        schema: &Schema,
    ) -> Result<Vec<RaterReliability>, AppError> {
        let verdicts = self
            .store()
            .reviews(project_id)
            .await?
            .into_iter()
            .map(|r| (r.response_id, r.verdict))
            .collect();
        let mut builder = ConsensusBuilder::new(schema, &[], true)?.for_reliability(verdicts);
        self.spill_project(project_id, &mut builder).await?;
        tokio::task::spawn_blocking(move || builder.finish(Method::DawidSkene)?.reliability())
            .await
            .map_err(|e| AppError::Internal(Box::new(e)))?
    }
}

impl ProjectConsensus {
    /// The reliability report of a builder made [`ConsensusBuilder::for_reliability`]: one
    /// more pass compares every rater's answers with the consensus (label questions by the
    /// fit, pairwise verdicts by their Bradley–Terry answer); Dawid–Skene skills come from the
    /// first label question's fit.
    pub(crate) fn reliability(mut self) -> Result<Vec<RaterReliability>, AppError> {
        let tallies = self.tallies.take().unwrap_or_default();
        let mut agreement = vec![(0usize, 0usize); self.workers.len()];
        let mut tasks = vec![0usize; self.questions.len()];
        let mut scratch = Vec::new();
        let (questions, fits) = (&self.questions, &self.fits);
        self.spill.pass(|record| {
            for (q, (_, planned)) in questions.iter().enumerate() {
                let votes = &record.votes[q];
                let agreed = match (planned, &fits[q]) {
                    (Some(Planned::Label(options)), Some(fit)) if !votes.counts.is_empty() => {
                        tasks[q] += 1;
                        let k = options.len();
                        Some((
                            label_of(fit, &votes.counts, tasks[q] - 1, k, &mut scratch).0,
                            k,
                        ))
                    }
                    (Some(Planned::Pairwise), _) => {
                        pairwise_consensus(&votes.counts).map(|(side, ..)| (side, SIDES.len()))
                    }
                    _ => None,
                };
                // Answers are packed with a stride of one more than the options (or sides).
                let Some((agreed, m)) = agreed else { continue };
                for &r in &votes.raters {
                    let (worker, value) = (r as usize / (m + 1), r as usize % (m + 1));
                    agreement[worker].0 += usize::from(value == agreed);
                    agreement[worker].1 += 1;
                }
            }
        })?;
        let agreement = self.workers.iter().copied().zip(agreement).collect();
        let mut skills = HashMap::new();
        let first_label = self
            .questions
            .iter()
            .position(|(_, p)| matches!(p, Some(Planned::Label(_))));
        if let Some(q) = first_label
            && let (Some(Planned::Label(options)), Some(Fit::Passes(fit))) =
                (&self.questions[q].1, &self.fits[q])
        {
            let k = options.len();
            let (skill, confusion) = (fit.worker_skill(), fit.confusion());
            for (w, &user) in self.workers.iter().enumerate() {
                if fit.worker_answers()[w] > 0.0 {
                    let rows = confusion.as_ref().map(|c| {
                        (0..k)
                            .map(|t| c[(w * k + t) * k..(w * k + t + 1) * k].to_vec())
                            .collect()
                    });
                    skills.insert(user, (skill[w], rows));
                }
            }
        }
        Ok(tallies.report(&agreement, skills))
    }
}
