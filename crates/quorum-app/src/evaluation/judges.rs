//! LLM judges: a registered model answers each battle of a battle project twice, with the
//! sides swapped, through the same client as model runs. Each raw output is kept (as a
//! generation of the battle item under `judge:MODEL:ab` / `judge:MODEL:ba`, so a judge never
//! takes a human's slot and never mixes into the human board); the verdict is parsed from it,
//! and an output without one clear verdict is recorded as unparseable, never guessed.
//!
//! The report gives, per judge: how many battles it judged, its unparseable outputs, how often
//! its two orders agree, its position bias (how often a decisive verdict picks the answer shown
//! first), and its agreement with the human consensus (percent and Cohen's kappa) — the
//! project's consensus of the pairwise question (see [`crate::quality`]), both ties as one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use futures_util::stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use quorum_core::Role;
use quorum_stats::DuplicatePolicy;
use quorum_stats::agreement::cohen_kappa_pairs;
use quorum_stats::answers::{Answer, Answers};
use quorum_stats::classification::Method;
use quorum_store::{Generation, ModelSpec, Store, StoredItem};

use crate::evaluation::llm::{ChatClient, RetryPolicy};
use crate::{App, AppError, Caller};

/// The default judge prompt: `{prompt}`, `{a}` and `{b}` are replaced.
pub const DEFAULT_TEMPLATE: &str = "Please act as an impartial judge and evaluate the quality of \
the two responses to the user prompt below. Consider helpfulness, accuracy, safety and \
appropriateness for the user. Do not let the order of the responses, their length or the \
assistants' names influence you.\n\n[User prompt]\n{prompt}\n\n[The start of assistant A's \
answer]\n{a}\n[The end of assistant A's answer]\n\n[The start of assistant B's answer]\n{b}\n\
[The end of assistant B's answer]\n\nAfter a short explanation, give your final verdict \
strictly in this format: \"[[A]]\" if A is better, \"[[B]]\" if B is better, \"[[TIE]]\" if they \
are equally good, \"[[BOTH_BAD]]\" if neither is acceptable.";

/// A judge's verdict on one ordering, in terms of the sides as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    First,
    Second,
    Tie,
    BothBad,
}

/// The one verdict token (`[[A]]`, `[[B]]`, `[[TIE]]`, `[[BOTH_BAD]]`, any case) in an
/// output; `None` when there is none, or several that disagree.
pub fn parse_verdict(output: &str) -> Option<Verdict> {
    let upper = output.to_uppercase();
    let mut found: Option<Verdict> = None;
    let mut rest = upper.as_str();
    while let Some(start) = rest.find("[[") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("]]") else { break };
        let token: String = after[..end]
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
            .collect();
        let verdict = match token.as_str() {
            "A" => Some(Verdict::First),
            "B" => Some(Verdict::Second),
            "TIE" | "C" => Some(Verdict::Tie),
            "BOTHBAD" => Some(Verdict::BothBad),
            _ => None,
        };
        if let Some(v) = verdict {
            if found.is_some_and(|f| f != v) {
                return None;
            }
            found = Some(v);
        }
        rest = &after[end + 2..];
    }
    found
}

/// A battle's outcome in the original order: `"a"`, `"b"`, `"tie"` or `"both_bad"`.
fn original(verdict: Verdict, swapped: bool) -> &'static str {
    match (verdict, swapped) {
        (Verdict::First, false) | (Verdict::Second, true) => "a",
        (Verdict::Second, false) | (Verdict::First, true) => "b",
        (Verdict::Tie, _) => "tie",
        (Verdict::BothBad, _) => "both_bad",
    }
}

#[derive(Debug, Clone)]
pub struct JudgeRequest {
    pub model: String,
    pub template: Option<String>,
    pub concurrency: usize,
    pub policy: RetryPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JudgeReport {
    pub judge: String,
    pub battles: usize,
    /// Battles with a verdict from at least one order.
    pub judged: usize,
    /// Outputs without one clear verdict (of `2 × battles` at most).
    pub unparseable: usize,
    /// Share of battles judged in both orders where the two agree.
    pub consistency: Option<f64>,
    /// Share of decisive verdicts (A or B) that picked the answer shown first; 0.5 is unbiased.
    pub position_bias: Option<f64>,
    /// Battles with both a judge verdict and a human consensus.
    pub compared_with_humans: usize,
    pub percent_agreement: Option<f64>,
    pub cohen_kappa: Option<f64>,
}

fn key(model: &str, swapped: bool) -> String {
    format!("judge:{model}:{}", if swapped { "ba" } else { "ab" })
}

/// The prompt field of a battle item as text (chat turns as `role: content` lines).
fn prompt_text(item: &StoredItem) -> String {
    match item.fields.get("prompt") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(turns)) => turns
            .iter()
            .map(|t| {
                format!(
                    "{}: {}",
                    t.get("role").and_then(Value::as_str).unwrap_or("user"),
                    t.get("content").and_then(Value::as_str).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn response_text(item: &StoredItem, index: usize) -> String {
    item.fields
        .get("responses")
        .and_then(|r| r.get(index))
        .and_then(|r| r.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A pairwise outcome as a label for Cohen's kappa: both kinds of tie are one label.
fn label(outcome: &str) -> u32 {
    match outcome {
        "a" => 0,
        "b" => 1,
        _ => 2,
    }
}

impl<S: Store> App<S> {
    /// Has a registered model judge every battle of a battle project in both orders (only the
    /// orders without an output yet are called). Managers of the project.
    pub async fn run_judge(
        &self,
        caller: &Caller,
        project_id: i64,
        request: JudgeRequest,
        on_call: &(dyn Fn() + Send + Sync),
    ) -> Result<usize, AppError> {
        let model = self.check_judge(caller, project_id, &request).await?;
        let template = request.template.as_deref().unwrap_or(DEFAULT_TEMPLATE);
        let done: std::collections::HashSet<(i64, String)> = self
            .store()
            .generations(project_id)
            .await?
            .into_iter()
            .filter(|g| g.output.is_some())
            .map(|g| (g.item_id, g.model))
            .collect();
        let mut todo = Vec::new();
        for item in self.all_items(project_id).await? {
            for swapped in [false, true] {
                if !done.contains(&(item.id, key(&model.name, swapped))) {
                    todo.push((item.clone(), swapped));
                }
            }
        }
        let client = ChatClient::new(self.egress());
        let calls = AtomicUsize::new(0);
        let results = stream::iter(todo)
            .map(|(item, swapped)| {
                let (client, model, calls, policy) = (&client, &model, &calls, &request.policy);
                async move {
                    let (first, second) = if swapped { (1, 0) } else { (0, 1) };
                    let text = template
                        .replace("{prompt}", &prompt_text(&item))
                        .replace("{a}", &response_text(&item, first))
                        .replace("{b}", &response_text(&item, second));
                    let messages = [json!({"role": "user", "content": text})];
                    calls.fetch_add(1, Ordering::Relaxed);
                    let outcome = client.complete(model, &messages, policy).await;
                    let (output, error, latency_ms, prompt_tokens, completion_tokens, attempts) =
                        match outcome {
                            Ok(r) => (
                                Some(r.content),
                                None,
                                r.latency_ms,
                                r.prompt_tokens,
                                r.completion_tokens,
                                r.attempts,
                            ),
                            Err(f) => (None, Some(f.message), 0, None, None, f.attempts),
                        };
                    self.store()
                        .put_generations(vec![Generation {
                            project_id,
                            item_id: item.id,
                            model: key(&model.name, swapped),
                            output,
                            error,
                            latency_ms,
                            prompt_tokens,
                            completion_tokens,
                            attempts: i64::from(attempts),
                            created_at: self.now(),
                        }])
                        .await?;
                    on_call();
                    Ok::<(), AppError>(())
                }
            })
            .buffer_unordered(request.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        results.into_iter().collect::<Result<Vec<()>, AppError>>()?;
        Ok(calls.into_inner())
    }

    /// Checks a judge can run on a project: a battle project the caller manages, and a
    /// registered model with an endpoint and its key. Returns the model.
    pub async fn check_judge(
        &self,
        caller: &Caller,
        project_id: i64,
        request: &JudgeRequest,
    ) -> Result<ModelSpec, AppError> {
        let project = self.require(caller, project_id, Role::Manager).await?;
        let schema = &project.schema;
        if !schema.fields.iter().any(|f| f.name == "responses") {
            return Err(AppError::invalid(
                "judges work on battle projects (built from models' answers)",
            ));
        }
        if let Some(template) = &request.template
            && !(template.contains("{a}") && template.contains("{b}"))
        {
            return Err(AppError::invalid(
                "the judge template must contain {a} and {b}",
            ));
        }
        let model = self
            .store()
            .models()
            .await?
            .into_iter()
            .find(|m| m.name == request.model)
            .ok_or_else(|| {
                AppError::invalid(format!("no model named `{}` is registered", request.model))
            })?;
        if model.base_url.is_none() {
            return Err(AppError::invalid(format!(
                "model `{}` has no endpoint to judge with",
                model.name
            )));
        }
        ChatClient::api_key(&model, self.egress()).map_err(AppError::invalid)?;
        Ok(model)
    }

    /// Per judge of a battle project: coverage, parse failures, consistency, position bias and
    /// agreement with the human consensus.
    pub async fn judge_reports(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Vec<JudgeReport>, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        let schema = &project.schema;
        // Judge outputs per judge, per item: (verdict as shown first, verdict swapped).
        type Orders = (Option<Option<Verdict>>, Option<Option<Verdict>>);
        let mut judges: BTreeMap<String, HashMap<i64, Orders>> = BTreeMap::new();
        for g in self.store().generations(project_id).await? {
            let Some(rest) = g.model.strip_prefix("judge:") else {
                continue;
            };
            let Some((judge, order)) = rest.rsplit_once(':') else {
                continue;
            };
            let Some(output) = g.output else { continue };
            let entry = judges
                .entry(judge.to_string())
                .or_default()
                .entry(g.item_id)
                .or_default();
            let parsed = Some(parse_verdict(&output));
            if order == "ba" {
                entry.1 = parsed;
            } else {
                entry.0 = parsed;
            }
        }
        if judges.is_empty() {
            // No judge has run: the human consensus (every response) is not needed.
            return Ok(Vec::new());
        }
        let battles = self.store().stats(project_id, 1, self.now()).await?.items as usize;
        // The human consensus of each battle, as the project computes it everywhere.
        let humans: HashMap<i64, u32> = match schema.pairwise_question() {
            None => HashMap::new(),
            Some(question) => self
                .project_consensus(project_id, schema, Method::MajorityVote)
                .await?
                .into_iter()
                .filter(|c| c.question == question)
                .filter_map(|c| Some((c.item_id, label(c.answer.as_str()?))))
                .collect(),
        };
        let mut reports = Vec::new();
        for (judge, items) in judges {
            let (mut judged, mut unparseable, mut both, mut agree) = (0, 0, 0, 0);
            let (mut decisive, mut first) = (0, 0);
            let mut pairs: Vec<Answer> = Vec::new();
            let mut task_of: HashMap<i64, u32> = HashMap::new();
            for (&item, &(ab, ba)) in &items {
                for parsed in [ab, ba] {
                    match parsed {
                        Some(None) => unparseable += 1,
                        Some(Some(v @ (Verdict::First | Verdict::Second))) => {
                            decisive += 1;
                            first += usize::from(v == Verdict::First);
                        }
                        _ => {}
                    }
                }
                let outcomes: Vec<&str> = [(ab, false), (ba, true)]
                    .into_iter()
                    .filter_map(|(p, swapped)| p.flatten().map(|v| original(v, swapped)))
                    .collect();
                let verdict = match outcomes.as_slice() {
                    [] => continue,
                    [one] => *one,
                    [x, y] => {
                        both += 1;
                        if x == y {
                            agree += 1;
                            *x
                        } else {
                            // The two orders disagree: the judge prefers neither.
                            "tie"
                        }
                    }
                    _ => continue,
                };
                judged += 1;
                if let Some(&human) = humans.get(&item) {
                    let next = task_of.len() as u32;
                    let task = *task_of.entry(item).or_insert(next);
                    pairs.push(Answer {
                        task,
                        worker: 0,
                        label: human,
                    });
                    pairs.push(Answer {
                        task,
                        worker: 1,
                        label: label(verdict),
                    });
                }
            }
            let compared = task_of.len();
            let (percent, kappa) = if compared == 0 {
                (None, None)
            } else {
                let answers = Answers::new(compared, 2, 3, &pairs, DuplicatePolicy::KeepFirst)
                    .map_err(|e| AppError::Internal(Box::new(e)))?;
                let pair = cohen_kappa_pairs(&answers, 1).into_iter().next();
                (
                    pair.as_ref().map(|p| p.percent),
                    pair.and_then(|p| p.kappa.filter(|k| k.is_finite())),
                )
            };
            let ratio = |n: usize, d: usize| (d > 0).then(|| n as f64 / d as f64);
            reports.push(JudgeReport {
                judge,
                battles,
                judged,
                unparseable,
                consistency: ratio(agree, both),
                position_bias: ratio(first, decisive),
                compared_with_humans: compared,
                percent_agreement: percent,
                cohen_kappa: kappa,
            });
        }
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_only_when_unambiguous() {
        assert_eq!(parse_verdict("A is better. [[A]]"), Some(Verdict::First));
        assert_eq!(parse_verdict("final: [[ b ]]"), Some(Verdict::Second));
        assert_eq!(parse_verdict("[[Tie]]"), Some(Verdict::Tie));
        assert_eq!(parse_verdict("[[both bad]]"), Some(Verdict::BothBad));
        assert_eq!(parse_verdict("[[BOTH_BAD]]"), Some(Verdict::BothBad));
        assert_eq!(parse_verdict("I think [[A]]... no, [[B]]"), None);
        assert_eq!(parse_verdict("[[A]] and again [[A]]"), Some(Verdict::First));
        assert_eq!(parse_verdict("A is better"), None, "no token, no guess");
        assert_eq!(parse_verdict("[[maybe]]"), None);
        assert_eq!(parse_verdict("[[A"), None);
    }

    #[test]
    fn swapped_verdicts_map_back_to_the_original_sides() {
        assert_eq!(original(Verdict::First, true), "b");
        assert_eq!(original(Verdict::Second, true), "a");
        assert_eq!(original(Verdict::First, false), "a");
        assert_eq!(original(Verdict::BothBad, true), "both_bad");
    }
}
