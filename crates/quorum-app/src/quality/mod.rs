//! Consensus and agreement over a project's collected responses, per question, computed by the
//! engine.
//!
//! Consensus per question kind:
//! - `label`: a truth-inference method over every rater's answers (Dawid–Skene by default, so a
//!   careful rater counts for more than a careless one); confidence = the posterior of the
//!   chosen label.
//! - `pairwise`: Bradley–Terry between the two sides, ties (and "both bad") as half a win each:
//!   `p = (A wins + ½ ties) / votes`; the answer is `a` above ½, `b` below, `tie` at ½;
//!   confidence = `max(p, 1 − p)`. When "both bad" is the most frequent verdict it is the answer.
//! - `rating`: the median; confidence = the share of ratings within one point of it.
//! - `multi_label`: each option chosen by more than half of the raters; confidence = the mean
//!   over options of the share of raters on the winning side.
//!
//! Free text, ranking and spans have no single consensus value and are not listed.
//!
//! Agreement per question: Krippendorff's alpha (nominal for labels and pairwise verdicts,
//! interval for ratings) with a bootstrap interval, overall and within each rater locale, plus
//! the mean pairwise percent agreement of raters from the same locale and from different
//! locales, so a manager sees whether countries disagree with each other more than within.

mod agreement;
mod consensus;
pub mod control;
pub(crate) mod overlap;
mod reliability;
pub mod review;
mod spill;
mod tally;
mod tallying;

pub use agreement::{GroupAgreement, QuestionAgreement, RaterPair, agreement_of};
pub(crate) use consensus::ConsensusRows;
pub use consensus::consensus_of;
pub use reliability::{RaterReliability, reliability_of};
pub use tally::{RaterTally, Tally};
pub use tallying::FOLD_ON_READ;

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use quorum_core::Role;
use quorum_core::schema::QuestionKind;
use quorum_stats::DuplicatePolicy;

use quorum_stats::answers::{Answer, Answers};
use quorum_stats::classification::Method;
use quorum_store::{ExportRow, Store};

use crate::{App, AppError, Caller};

/// One item's consensus on one question.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ItemConsensus {
    pub item_id: i64,
    pub external_id: Option<String>,
    pub question: String,
    pub answer: Value,
    pub confidence: f64,
    pub method: &'static str,
    pub responses: usize,
}
/// A categorical or numeric reading of one answer, for the engine.
fn category(kind: &QuestionKind, value: &Value) -> Option<String> {
    match kind {
        QuestionKind::Label { .. } | QuestionKind::Pairwise { .. } => {
            value.as_str().map(str::to_string)
        }
        QuestionKind::Rating { .. } => value.as_i64().map(|v| v.to_string()),
        _ => None,
    }
}

/// Dense ids in first-seen order, for the engine's index spaces.
#[derive(Debug, Clone)]
pub(crate) struct Ids<K> {
    ids: HashMap<K, u32>,
    keys: Vec<K>,
}

impl<K> Default for Ids<K> {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            keys: Vec::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Ids<K> {
    pub(crate) fn id(&mut self, key: &K) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.keys.len() as u32;
        self.ids.insert(key.clone(), id);
        self.keys.push(key.clone());
        id
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The keys in id order.
    pub(crate) fn keys(&self) -> &[K] {
        &self.keys
    }
}

/// One categorical question's answers as the engine's dense index: items and raters in
/// first-seen order, labels as positions in `options` (other values left out).
pub(crate) struct Indexed {
    pub(crate) raters: Ids<i64>,
    pub(crate) answers: Answers,
    /// Answers per rater, by rater id.
    pub(crate) counts: Vec<f64>,
}

/// `None` when nobody answered the question.
pub(crate) fn index_question<'a>(
    rows: impl IntoIterator<Item = &'a ExportRow>,
    question: &str,
    options: &[String],
) -> Result<Option<Indexed>, AppError> {
    let (mut items, mut raters, mut data) = (Ids::default(), Ids::default(), Vec::new());
    for row in rows {
        let Some(label) = row
            .answers
            .get(question)
            .and_then(Value::as_str)
            .and_then(|v| options.iter().position(|o| o == v))
        else {
            continue;
        };
        data.push(Answer {
            task: items.id(&row.item_id),
            worker: raters.id(&row.user_id),
            label: label as u32,
        });
    }
    if data.is_empty() {
        return Ok(None);
    }
    let mut counts = vec![0.0; raters.len()];
    for a in &data {
        counts[a.worker as usize] += 1.0;
    }
    let answers = Answers::new(
        items.len(),
        raters.len(),
        options.len(),
        &data,
        DuplicatePolicy::KeepLast,
    )
    .map_err(|e| AppError::Internal(Box::new(e)))?;
    Ok(Some(Indexed {
        raters,
        answers,
        counts,
    }))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

impl<S: Store> App<S> {
    /// Each item's consensus on each question that has one (see the module docs); `method`
    /// picks the truth-inference method for label questions.
    pub async fn consensus(
        &self,
        caller: &Caller,
        project_id: i64,
        method: Method,
    ) -> Result<Vec<ItemConsensus>, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        let schema = &project.schema;
        self.project_consensus(project_id, schema, method).await
    }

    /// Each rater's gold accuracy (with a credible interval), agreement with consensus and
    /// Dawid–Skene skill.
    pub async fn rater_reliability(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Vec<RaterReliability>, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        self.reliability_report(&project).await
    }

    /// Reliability of a project's raters from its responses, gold and reviews, with each
    /// rater's standing (paused, qualified).
    pub(crate) async fn reliability_report(
        &self,
        project: &quorum_store::Project,
    ) -> Result<Vec<RaterReliability>, AppError> {
        let mut report = self.reliability_run(project.id, &project.schema).await?;
        let paused: HashMap<i64, String> = self
            .store()
            .rater_states(project.id)
            .await?
            .into_iter()
            .filter_map(|s| Some((s.user_id, s.paused?)))
            .collect();
        let skill = project
            .quality
            .qualification
            .as_ref()
            .map(|q| q.skill_key(project.id));
        for rater in &mut report {
            rater.paused = paused.get(&rater.user_id).cloned();
            if let Some(skill) = &skill {
                rater.qualified = self.store().qualification(rater.user_id, skill).await?;
            }
        }
        Ok(report)
    }

    /// Agreement per question, overall and per rater locale, within and across locales, from
    /// the project's tally.
    pub async fn agreement(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Vec<QuestionAgreement>, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        let (tally, _) = self.current_tally(project_id).await?;
        let names: HashMap<i64, String> = self
            .store()
            .roster(project_id, tally.raters.keys().copied().collect())
            .await?
            .into_iter()
            .map(|a| (a.user_id, a.name))
            .collect();
        Ok(tally.agreement(&project.schema, &names))
    }

    /// Each responder's first locale in the project (`(none)` without one).
    pub(crate) async fn rater_locales(
        &self,
        project_id: i64,
        rows: &[ExportRow],
    ) -> Result<HashMap<i64, String>, AppError> {
        let mut locale_of: HashMap<i64, String> = HashMap::new();
        for row in rows {
            if let std::collections::hash_map::Entry::Vacant(slot) = locale_of.entry(row.user_id) {
                let locale = self
                    .store()
                    .member(project_id, row.user_id)
                    .await?
                    .and_then(|m| m.locales.first().cloned())
                    .unwrap_or_else(|| "(none)".into());
                slot.insert(locale);
            }
        }
        Ok(locale_of)
    }
}

/// Whether `answers` give every gold answer of an item: the one scoring rule, used when an
/// answer arrives and in the reliability report.
pub(crate) fn matches_gold(answers: &Value, gold: &Value) -> bool {
    gold.as_object().is_some_and(|gold| {
        gold.iter()
            .all(|(q, g)| answers.get(q).is_some_and(|a| same_answer(a, g)))
    })
}

/// Whether an answer equals a gold value (sets for multi-label, numbers by value).
fn same_answer(answer: &Value, gold: &Value) -> bool {
    match (answer.as_array(), gold.as_array()) {
        (Some(a), Some(g)) => {
            let set = |v: &Vec<Value>| {
                v.iter()
                    .map(Value::to_string)
                    .collect::<std::collections::BTreeSet<_>>()
            };
            set(a) == set(g)
        }
        _ => answer == gold || answer.as_f64().is_some_and(|a| gold.as_f64() == Some(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_core::schema::Schema;
    use serde_json::json;

    fn row(item: i64, user: i64, answers: Value) -> ExportRow {
        ExportRow {
            response_id: item * 100 + user,
            item_id: item,
            external_id: Some(format!("i{item}")),
            user_id: user,
            user_name: format!("u{user}"),
            answers,
            time_spent_ms: 0,
            created_at: 0,
            gold: false,
        }
    }

    fn schema() -> Schema {
        Schema::parse(&json!({
            "fields": [{"name": "t", "kind": "text"}, {"name": "r", "kind": "responses"}],
            "questions": [
                {"name": "label", "kind": "label", "options": ["x", "y"]},
                {"name": "pref", "kind": "pairwise", "allow_both_bad": true},
                {"name": "score", "kind": "rating", "min": 1, "max": 5},
                {"name": "tags", "kind": "multi_label", "options": ["p", "q"]}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn consensus_per_question_kind() {
        let rows = vec![
            row(
                1,
                1,
                json!({"label": "x", "pref": "a", "score": 4, "tags": ["p"]}),
            ),
            row(
                1,
                2,
                json!({"label": "x", "pref": "tie", "score": 5, "tags": ["p", "q"]}),
            ),
            row(
                1,
                3,
                json!({"label": "y", "pref": "a", "score": 1, "tags": ["p"]}),
            ),
        ];
        let c = consensus_of(&schema(), &rows, Method::MajorityVote).unwrap_or_default();
        let get = |q: &str| {
            c.iter()
                .find(|x| x.question == q)
                .cloned()
                .unwrap_or_else(|| panic!("{q}"))
        };
        assert_eq!(get("label").answer, json!("x"));
        assert!((get("label").confidence - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(get("pref").answer, json!("a"));
        assert!((get("pref").confidence - 2.5 / 3.0).abs() < 1e-9);
        assert_eq!(get("score").answer, json!(4.0));
        assert!((get("score").confidence - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(get("tags").answer, json!(["p"]));
        assert_eq!(get("label").responses, 3);
    }

    #[test]
    fn agreement_within_and_across_locales() {
        // Two qatari raters always agree with each other; the british rater always differs.
        let mut rows = Vec::new();
        for item in 0..20 {
            let label = if item % 2 == 0 { "x" } else { "y" };
            let other = if item % 2 == 0 { "y" } else { "x" };
            rows.push(row(item, 1, json!({"label": label})));
            rows.push(row(item, 2, json!({"label": label})));
            rows.push(row(item, 3, json!({"label": other})));
        }
        let locales: HashMap<i64, String> = [(1, "ar-QA"), (2, "ar-QA"), (3, "en-GB")]
            .map(|(u, l)| (u, l.to_string()))
            .into();
        let report = agreement_of(&schema(), &rows, &locales).unwrap_or_default();
        let label = &report[0];
        assert_eq!(label.within_locale, Some(1.0));
        assert_eq!(label.across_locales, Some(0.0));
        let qatar = label.groups.iter().find(|g| g.group == "ar-QA").cloned();
        assert_eq!(qatar.and_then(|g| g.alpha), Some(1.0));
        assert!(
            label.groups[0].alpha.is_some_and(|a| a < 0.2),
            "{:?}",
            label.groups[0]
        );
        // Per rater pair: the two Qatari raters agree perfectly, the British one never does.
        let pair = |a: &str, b: &str| label.pairs.iter().find(|p| p.a == a && p.b == b).cloned();
        assert_eq!(pair("u1", "u2").and_then(|p| p.cohen_kappa), Some(1.0));
        let cross = pair("u1", "u3");
        assert_eq!(
            cross
                .as_ref()
                .map(|p| (p.common_items, p.percent_agreement)),
            Some((20, 0.0))
        );
        assert!(cross.and_then(|p| p.cohen_kappa).is_some_and(|k| k < 0.0));
        // Every item has three raters: Fleiss' kappa applies.
        assert!(
            label.fleiss_kappa.is_some_and(|k| k < 0.2),
            "{:?}",
            label.fleiss_kappa
        );
    }

    #[test]
    fn reliability_from_gold_and_consensus() {
        let mut rows = Vec::new();
        // Items 0..10 have gold `x`; raters 1 and 2 get them right, rater 3 never does.
        let mut gold = HashMap::new();
        for item in 0..10 {
            gold.insert(item, json!({"label": "x"}));
            rows.push(row(item, 1, json!({"label": "x"})));
            rows.push(row(item, 2, json!({"label": "x"})));
            rows.push(row(item, 3, json!({"label": "y"})));
        }
        for item in 10..30 {
            let truth = if item % 2 == 0 { "x" } else { "y" };
            let wrong = if item % 2 == 0 { "y" } else { "x" };
            rows.push(row(item, 1, json!({"label": truth})));
            rows.push(row(item, 2, json!({"label": truth})));
            rows.push(row(item, 3, json!({"label": wrong})));
        }
        let report = reliability_of(&schema(), &rows, &gold, &HashMap::new()).unwrap_or_default();
        let of = |u: i64| {
            report
                .iter()
                .find(|r| r.user_id == u)
                .cloned()
                .unwrap_or_else(|| panic!("{u}"))
        };
        let good = of(1);
        assert_eq!((good.gold_answered, good.gold_correct), (10, 10));
        assert!((good.gold_accuracy.unwrap_or(0.0) - 11.0 / 12.0).abs() < 1e-12);
        // Beta(11, 1): the 2.5% point is 0.025^(1/11).
        assert!((good.gold_lower.unwrap_or(0.0) - 0.025f64.powf(1.0 / 11.0)).abs() < 1e-9);
        assert_eq!(good.agreement_with_consensus, Some(1.0));
        let bad = of(3);
        assert_eq!(bad.gold_correct, 0);
        assert!(bad.gold_upper.unwrap_or(1.0) < 0.3);
        assert_eq!(bad.agreement_with_consensus, Some(0.0));
        assert!(good.skill.unwrap_or(0.0) > bad.skill.unwrap_or(1.0));
        assert_eq!(good.confusion.as_ref().map(Vec::len), Some(2));
    }
}
