//! Review: a queue of items for reviewers (low consensus confidence, disagreement, a random
//! sample, as the project sets), their verdicts on each response, and the consensus those
//! verdicts change: rejected and corrected responses leave it, and a correction becomes the
//! item's adjudicated answer (confidence 1, method `adjudicated`).

use std::collections::{HashMap, HashSet};

use quorum_core::Role;
use quorum_core::answer::{self, Completeness};
use quorum_core::schema::Schema;
use quorum_stats::classification::Method;
use quorum_stats::rng::SplitMix64;
use quorum_store::{ExportRow, Review, Store, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::quality::ItemConsensus;
use crate::{App, AppError, Caller};

/// One response as a reviewer sees it, with any verdict it already has.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReviewedResponse {
    pub response_id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub answers: Value,
    #[schema(schema_with = verdict_schema)]
    pub verdict: Option<Verdict>,
}

/// A verdict on the wire (`accept`, `reject`, `correct`), or none yet.
fn verdict_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(
            [Verdict::Accept, Verdict::Reject, Verdict::Correct].map(Verdict::as_str),
        ))
        .into()
}

/// An item waiting for review and why it is in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReviewTask {
    pub item_id: i64,
    pub external_id: Option<String>,
    pub fields: Value,
    /// `low_confidence`, `disagreement`, `sample`.
    pub reasons: Vec<&'static str>,
    pub consensus: Vec<ItemConsensus>,
    pub responses: Vec<ReviewedResponse>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    pub item_id: i64,
    pub verdicts: Vec<VerdictInput>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictInput {
    pub response_id: i64,
    pub verdict: Verdict,
    /// The corrected answers (only with `correct`): every required question.
    #[serde(default)]
    pub answers: Option<Map<String, Value>>,
}

/// Whether a random sample at `rate` takes the item (the same answer every time).
fn sampled(project_id: i64, item_id: i64, rate: f64) -> bool {
    rate > 0.0 && SplitMix64::stream(project_id as u64, item_id as u64).next_f64() < rate
}

impl<S: Store> App<S> {
    /// The project's consensus as every report uses it: gold items left out, rejected and
    /// corrected responses left out, corrections as adjudicated answers.
    pub(crate) async fn project_consensus(
        &self,
        project_id: i64,
        schema: &Schema,
        method: Method,
    ) -> Result<Vec<ItemConsensus>, AppError> {
        self.consensus_run(project_id, schema, method)
            .await?
            .collect()
    }

    /// Items waiting for review, oldest first: done collecting, not gold, with a response no
    /// reviewer has judged, and picked by the project's review rules.
    pub async fn review_queue(
        &self,
        caller: &Caller,
        project_id: i64,
        limit: usize,
    ) -> Result<Vec<ReviewTask>, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        let schema = &project.schema;
        let rules = &project.quality.review;
        let consensus = self
            .project_consensus(project_id, schema, Method::DawidSkene)
            .await?;
        let mut by_item: HashMap<i64, Vec<ItemConsensus>> = HashMap::new();
        for c in consensus {
            by_item.entry(c.item_id).or_default().push(c);
        }
        let verdicts: HashMap<i64, Verdict> = self
            .store()
            .reviews(project_id)
            .await?
            .into_iter()
            .map(|r| (r.response_id, r.verdict))
            .collect();
        let mut responses: HashMap<i64, Vec<ExportRow>> = HashMap::new();
        for row in self.all_responses(project_id).await? {
            responses.entry(row.item_id).or_default().push(row);
        }
        let done_at = project.min_overlap.unwrap_or(project.overlap);
        let mut tasks = Vec::new();
        for item in self.all_items(project_id).await? {
            if tasks.len() >= limit {
                break;
            }
            let Some(rows) = responses.remove(&item.id) else {
                continue;
            };
            let finished = item.responses >= project.overlap
                || (item.responses >= done_at && item.active_leases == 0);
            if item.gold.is_some()
                || !finished
                || rows.iter().all(|r| verdicts.contains_key(&r.response_id))
            {
                continue;
            }
            let consensus = by_item.remove(&item.id).unwrap_or_default();
            let mut reasons = Vec::new();
            if let Some(below) = rules.below_confidence
                && consensus.iter().any(|c| c.confidence < below)
            {
                reasons.push("low_confidence");
            }
            if rules.disagreement
                && schema.questions.iter().any(|q| {
                    let mut seen = rows.iter().filter_map(|r| r.answers.get(&q.name));
                    seen.next()
                        .is_some_and(|first| seen.any(|other| other != first))
                })
            {
                reasons.push("disagreement");
            }
            if sampled(project_id, item.id, rules.sample_rate) {
                reasons.push("sample");
            }
            if reasons.is_empty() {
                continue;
            }
            tasks.push(ReviewTask {
                item_id: item.id,
                external_id: item.external_id,
                fields: item.fields,
                reasons,
                consensus,
                responses: rows
                    .into_iter()
                    .map(|r| ReviewedResponse {
                        verdict: verdicts.get(&r.response_id).copied(),
                        response_id: r.response_id,
                        user_id: r.user_id,
                        user_name: r.user_name,
                        answers: r.answers,
                    })
                    .collect(),
            });
        }
        Ok(tasks)
    }

    /// Records a reviewer's verdicts on an item's responses, all or nothing, then applies the
    /// pause rules to the raters judged.
    pub async fn submit_review(
        &self,
        caller: &Caller,
        project_id: i64,
        input: ReviewInput,
    ) -> Result<Vec<Review>, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        let schema = &project.schema;
        let item = self
            .store()
            .item(input.item_id)
            .await?
            .filter(|i| i.project_id == project_id)
            .ok_or(AppError::NotFound("item"))?;
        if input.verdicts.is_empty() {
            return Err(AppError::Invalid {
                message: "verdicts must name at least one response".into(),
                details: json!({"field": "verdicts"}),
            });
        }
        let raters: HashMap<i64, i64> = self
            .store()
            .item_answers(item.id)
            .await?
            .into_iter()
            .map(|a| (a.response_id, a.user_id))
            .collect();
        let fields = item.fields.as_object().cloned().unwrap_or_default();
        let now = self.now();
        let mut seen = HashSet::new();
        let mut reviews = Vec::with_capacity(input.verdicts.len());
        for (i, v) in input.verdicts.into_iter().enumerate() {
            let at = |message: String| AppError::Invalid {
                message: format!("verdicts[{i}]: {message}"),
                details: json!({"field": format!("verdicts[{i}]")}),
            };
            let Some(&rater_id) = raters.get(&v.response_id) else {
                return Err(at(format!(
                    "response {} is not a response to item {}",
                    v.response_id, item.id
                )));
            };
            if !seen.insert(v.response_id) {
                return Err(at(format!("response {} is judged twice", v.response_id)));
            }
            if rater_id == caller.user.id {
                return Err(AppError::Forbidden(
                    "reviewers do not judge their own responses".into(),
                ));
            }
            let answers = match (v.verdict, v.answers) {
                (Verdict::Correct, Some(answers)) => {
                    answer::validate(&answers, schema, &fields, Completeness::Complete)
                        .map_err(|e| at(format!("answers: {e}")))?;
                    Some(Value::Object(answers))
                }
                (Verdict::Correct, None) => {
                    return Err(at("a correction needs the corrected answers".into()));
                }
                (_, Some(_)) => return Err(at("only a correction carries answers".into())),
                (_, None) => None,
            };
            reviews.push(Review {
                response_id: v.response_id,
                project_id,
                item_id: item.id,
                rater_id,
                reviewer_id: caller.user.id,
                verdict: v.verdict,
                answers,
                created_at: now,
            });
        }
        self.store().put_reviews(reviews.clone()).await?;
        if project.quality.pause.min_accuracy_upper.is_some() {
            let judged: HashSet<i64> = reviews.iter().map(|r| r.rater_id).collect();
            for rater in judged {
                self.enforce(&project, rater, false).await?;
            }
        }
        Ok(reviews)
    }
}
