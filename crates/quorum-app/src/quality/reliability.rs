//! How far each rater can be trusted in a project: gold answers, reviewers' verdicts and
//! agreement with the consensus.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use quorum_core::schema::{QuestionKind, Schema};
use quorum_stats::classification::{self, Method, Settings};
use quorum_store::{ExportRow, Verdict};

use crate::AppError;

use super::{consensus_of, counted, index_question, matches_gold};

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

/// Rater reliability from `rows`, the items' `gold` and reviewers' `verdicts` by response
/// (pure: no store). Rejected and corrected responses leave the consensus and count against
/// their rater like a wrong gold answer; accepted ones count like a right one.
pub fn reliability_of(
    schema: &Schema,
    rows: &[ExportRow],
    gold: &HashMap<i64, Value>,
    verdicts: &HashMap<i64, Verdict>,
) -> Result<Vec<RaterReliability>, AppError> {
    use quorum_stats::special::beta_quantile;
    let data = counted(
        rows.iter().cloned(),
        |item| gold.contains_key(&item),
        verdicts,
    );
    // Consensus on items without gold, with Dawid–Skene for labels.
    let consensus = consensus_of(schema, &data, Method::DawidSkene)?;
    let agreed: HashMap<(i64, &str), &Value> = consensus
        .iter()
        .filter(|c| matches!(c.method, "ds" | "bradley_terry"))
        .map(|c| ((c.item_id, c.question.as_str()), &c.answer))
        .collect();
    let mut raters: BTreeMap<i64, RaterReliability> = BTreeMap::new();
    let mut agreement: HashMap<i64, (usize, usize)> = HashMap::new();
    for row in rows {
        let r = raters
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
        match verdicts.get(&row.response_id) {
            Some(Verdict::Accept) => r.reviews_accepted += 1,
            Some(_) => r.reviews_rejected += 1,
            None => {}
        }
        if let Some(expected) = gold.get(&row.item_id) {
            r.gold_answered += 1;
            r.gold_correct += usize::from(matches_gold(&row.answers, expected));
            continue;
        }
        for (question, value) in row.answers.as_object().into_iter().flatten() {
            if let Some(consensus) = agreed.get(&(row.item_id, question.as_str())) {
                let entry = agreement.entry(row.user_id).or_default();
                entry.0 += usize::from(value == *consensus);
                entry.1 += 1;
            }
        }
    }
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
    }
    // Dawid–Skene skill and confusion on the first label question.
    let first_label = schema.questions.iter().find_map(|q| match &q.kind {
        QuestionKind::Label { options } => Some((q.name.as_str(), options)),
        _ => None,
    });
    if let Some((question, options)) = first_label
        && let Some(indexed) = index_question(&data, question, options)?
    {
        let k = options.len();
        let result =
            classification::aggregate(Method::DawidSkene, &indexed.answers, &Settings::default())
                .map_err(|e| AppError::invalid(e.to_string()))?;
        for (w, user) in indexed.raters.keys().iter().enumerate() {
            if let Some(r) = raters.get_mut(user) {
                r.skill = result.worker_skill.get(w).copied();
                r.confusion = result.confusion.as_ref().map(|c| {
                    (0..k)
                        .map(|t| c[(w * k + t) * k..(w * k + t + 1) * k].to_vec())
                        .collect()
                });
            }
        }
    }
    Ok(raters.into_values().collect())
}
