//! Answers: a rater's values for a project's questions, checked against the schema and item.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::schema::{QuestionKind, Schema};

/// Whether every required question must be answered (a submission) or not (suggestions, gold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    Complete,
    Partial,
}

/// What is wrong with one answer, naming the question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("answer to `{question}`: {problem}")]
pub struct AnswerError {
    pub question: String,
    pub problem: String,
}

fn error(question: &str, problem: impl Into<String>) -> AnswerError {
    AnswerError {
        question: question.to_string(),
        problem: problem.into(),
    }
}

/// The four pairwise verdicts.
pub const PAIRWISE: [&str; 4] = ["a", "b", "tie", "both_bad"];

/// Checks `answers` (question name → value) against `schema` and the item's `fields`.
pub fn validate(
    answers: &Map<String, Value>,
    schema: &Schema,
    fields: &Map<String, Value>,
    completeness: Completeness,
) -> Result<(), AnswerError> {
    for name in answers.keys() {
        if schema.question(name).is_none() {
            return Err(error(name, "the schema has no such question"));
        }
    }
    for question in &schema.questions {
        let name = question.name.as_str();
        let value = match answers.get(name) {
            None | Some(Value::Null) => {
                if question.required && completeness == Completeness::Complete {
                    return Err(error(name, "is required"));
                }
                continue;
            }
            Some(value) => value,
        };
        match &question.kind {
            QuestionKind::Label { options } => {
                let choice = value
                    .as_str()
                    .ok_or_else(|| error(name, "must be one option, as a string"))?;
                if !options.iter().any(|o| o == choice) {
                    return Err(error(name, format!("`{choice}` is not one of the options")));
                }
            }
            QuestionKind::MultiLabel { options } => {
                let list = value
                    .as_array()
                    .ok_or_else(|| error(name, "must be a list of options"))?;
                let mut seen = HashSet::new();
                for choice in list {
                    let choice = choice
                        .as_str()
                        .ok_or_else(|| error(name, "every choice must be a string"))?;
                    if !options.iter().any(|o| o == choice) {
                        return Err(error(name, format!("`{choice}` is not one of the options")));
                    }
                    if !seen.insert(choice) {
                        return Err(error(name, format!("`{choice}` is chosen twice")));
                    }
                }
            }
            QuestionKind::Rating { min, max } => {
                let rating = value
                    .as_i64()
                    .ok_or_else(|| error(name, "must be a whole number"))?;
                if rating < *min || rating > *max {
                    return Err(error(name, format!("{rating} is outside {min}..{max}")));
                }
            }
            QuestionKind::Ranking { field } => {
                let names: Vec<&str> = fields
                    .get(field)
                    .and_then(Value::as_array)
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|r| r.get("name").and_then(Value::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
                check_ranking(name, value, &names)?;
            }
            QuestionKind::Pairwise { allow_both_bad } => {
                let verdict = value.as_str().unwrap_or_default();
                let allowed = if *allow_both_bad {
                    &PAIRWISE[..]
                } else {
                    &PAIRWISE[..3]
                };
                if !allowed.contains(&verdict) {
                    return Err(error(
                        name,
                        format!("must be one of {}", allowed.join(", ")),
                    ));
                }
            }
            QuestionKind::Text {
                min_length,
                max_length,
            } => {
                let text = value
                    .as_str()
                    .ok_or_else(|| error(name, "must be a string"))?;
                let length = text.chars().count();
                if let Some(min) = min_length
                    && length < *min
                {
                    return Err(error(
                        name,
                        format!("is {length} characters, fewer than {min}"),
                    ));
                }
                if let Some(max) = max_length
                    && length > *max
                {
                    return Err(error(
                        name,
                        format!("is {length} characters, more than {max}"),
                    ));
                }
            }
            QuestionKind::Spans { field, labels } => {
                let text_length = fields
                    .get(field)
                    .and_then(Value::as_str)
                    .map(|t| t.chars().count())
                    .unwrap_or(0);
                let spans = value
                    .as_array()
                    .ok_or_else(|| error(name, "must be a list of {start, end, label}"))?;
                for (i, span) in spans.iter().enumerate() {
                    let start = span.get("start").and_then(Value::as_u64);
                    let end = span.get("end").and_then(Value::as_u64);
                    let label = span.get("label").and_then(Value::as_str);
                    let (Some(start), Some(end), Some(label)) = (start, end, label) else {
                        return Err(error(
                            name,
                            format!("span {i} needs start, end (character offsets) and label"),
                        ));
                    };
                    if start >= end || end as usize > text_length {
                        return Err(error(
                            name,
                            format!(
                                "span {i} ({start}..{end}) is not inside the text (0..{text_length})"
                            ),
                        ));
                    }
                    if !labels.iter().any(|l| l == label) {
                        return Err(error(
                            name,
                            format!("span {i}: `{label}` is not one of the labels"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// A ranking is a list of tiers (lists of response names, best tier first); every response
/// appears exactly once.
fn check_ranking(question: &str, value: &Value, responses: &[&str]) -> Result<(), AnswerError> {
    let tiers = value
        .as_array()
        .ok_or_else(|| error(question, "must be a list of tiers, best first"))?;
    let mut seen = HashSet::new();
    for tier in tiers {
        let tier = tier
            .as_array()
            .ok_or_else(|| error(question, "each tier must be a list of response names"))?;
        if tier.is_empty() {
            return Err(error(question, "a tier is empty"));
        }
        for name in tier {
            let name = name
                .as_str()
                .ok_or_else(|| error(question, "response names are strings"))?;
            if !responses.contains(&name) {
                return Err(error(
                    question,
                    format!("`{name}` is not one of the responses"),
                ));
            }
            if !seen.insert(name) {
                return Err(error(question, format!("`{name}` is ranked twice")));
            }
        }
    }
    if seen.len() != responses.len() {
        let missing: Vec<&str> = responses
            .iter()
            .filter(|r| !seen.contains(*r))
            .copied()
            .collect();
        return Err(error(
            question,
            format!("does not rank {}", missing.join(", ")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse(&json!({
            "fields": [{"name": "answers", "kind": "responses"}, {"name": "text", "kind": "text"}],
            "questions": [
                {"name": "topic", "kind": "label", "options": ["a", "b"], "required": true},
                {"name": "tags", "kind": "multi_label", "options": ["x", "y"]},
                {"name": "quality", "kind": "rating", "min": 1, "max": 5},
                {"name": "order", "kind": "ranking", "field": "answers"},
                {"name": "better", "kind": "pairwise"},
                {"name": "note", "kind": "text", "min_length": 2, "max_length": 5},
                {"name": "entities", "kind": "spans", "field": "text", "labels": ["PER"]}
            ]
        }))
        .unwrap()
    }

    fn check(answers: Value) -> Result<(), String> {
        let fields = json!({"answers": [{"name": "m1", "content": ""}, {"name": "m2", "content": ""}, {"name": "m3", "content": ""}], "text": "Ada Lovelace"});
        validate(
            answers.as_object().unwrap(),
            &schema(),
            fields.as_object().unwrap(),
            Completeness::Complete,
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_accepts_good_and_names_bad_answers() {
        check(json!({"topic": "a", "tags": ["x", "y"], "quality": 5, "order": [["m2"], ["m1", "m3"]],
                     "better": "tie", "note": "fine", "entities": [{"start": 0, "end": 3, "label": "PER"}]}))
        .unwrap();
        let cases = [
            (json!({"tags": ["x"]}), "answer to `topic`: is required"),
            (
                json!({"topic": "c"}),
                "answer to `topic`: `c` is not one of the options",
            ),
            (
                json!({"topic": "a", "tags": ["x", "x"]}),
                "answer to `tags`: `x` is chosen twice",
            ),
            (
                json!({"topic": "a", "quality": 6}),
                "answer to `quality`: 6 is outside 1..5",
            ),
            (
                json!({"topic": "a", "order": [["m1"], ["m2"]]}),
                "answer to `order`: does not rank m3",
            ),
            (
                json!({"topic": "a", "order": [["m1", "m1"], ["m2", "m3"]]}),
                "answer to `order`: `m1` is ranked twice",
            ),
            (
                json!({"topic": "a", "better": "both_bad"}),
                "answer to `better`: must be one of a, b, tie",
            ),
            (
                json!({"topic": "a", "note": "too long"}),
                "answer to `note`: is 8 characters, more than 5",
            ),
            (
                json!({"topic": "a", "entities": [{"start": 4, "end": 40, "label": "PER"}]}),
                "answer to `entities`: span 0 (4..40) is not inside the text (0..12)",
            ),
            (
                json!({"topic": "a", "mood": 1}),
                "answer to `mood`: the schema has no such question",
            ),
        ];
        for (answers, message) in cases {
            assert_eq!(check(answers).unwrap_err(), message);
        }
    }
}
