//! A project's schema: the fields a rater sees and the questions they answer.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The most points a rating scale may have: a scale the workspace can show as buttons.
pub const MAX_RATING_POINTS: i64 = 101;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Schema {
    pub fields: Vec<Field>,
    pub questions: Vec<Question>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    pub kind: FieldKind,
    /// Shown above the field; the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Image fields: the only hosts their URLs may name (`https://HOST/…`), so raters'
    /// browsers load images from nowhere else; empty allows any URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

fn valid_host(host: &str) -> bool {
    let (name, port) = host.split_once(':').unwrap_or((host, "1"));
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && port.parse::<u16>().is_ok_and(|p| p > 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Plain text.
    Text,
    /// Markdown, rendered safely (no raw HTML).
    Markdown,
    /// A conversation: a list of `{"role", "content"}` turns.
    Chat,
    /// An image URL.
    Image,
    /// N named model answers to compare: a list of `{"name", "content"}`.
    Responses,
    /// Any JSON object shown as key–value pairs.
    Metadata,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Question {
    pub name: String,
    #[serde(default)]
    pub instructions: String,
    #[serde(default)]
    pub required: bool,
    #[serde(flatten)]
    pub kind: QuestionKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QuestionKind {
    /// One option.
    Label { options: Vec<String> },
    /// Any number of distinct options.
    MultiLabel { options: Vec<String> },
    /// An integer from `min` to `max` (at most [`MAX_RATING_POINTS`] values).
    Rating { min: i64, max: i64 },
    /// An ordering of the responses in `field`, best first, as tiers (ties share a tier).
    Ranking { field: String },
    /// `"a"`, `"b"`, `"tie"`, or `"both_bad"` when allowed.
    Pairwise {
        #[serde(default)]
        allow_both_bad: bool,
    },
    /// Free text (or a rewrite), with optional length bounds in characters.
    Text {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_length: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_length: Option<usize>,
    },
    /// Labelled character ranges over the text of `field`.
    Spans { field: String, labels: Vec<String> },
}

/// A schema problem, naming the field or question at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema: {location}: {problem}")]
pub struct SchemaError {
    pub location: String,
    pub problem: String,
}

fn error(location: impl Into<String>, problem: impl Into<String>) -> SchemaError {
    SchemaError {
        location: location.into(),
        problem: problem.into(),
    }
}

/// Names are identifiers used as JSON keys and CSV columns: `[a-z0-9_]`, starting with a letter.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Schema {
    /// Parses and validates a schema from JSON.
    pub fn parse(value: &serde_json::Value) -> Result<Schema, SchemaError> {
        let schema: Schema =
            serde_json::from_value(value.clone()).map_err(|e| error("schema", e.to_string()))?;
        schema.validate()?;
        Ok(schema)
    }

    pub fn validate(&self) -> Result<(), SchemaError> {
        if self.questions.is_empty() {
            return Err(error("questions", "a schema needs at least one question"));
        }
        let mut names = HashSet::new();
        for field in &self.fields {
            let location = format!("fields.{}", field.name);
            if !valid_name(&field.name) {
                return Err(error(
                    location,
                    "names use a-z, 0-9 and _, starting with a letter",
                ));
            }
            if !names.insert(field.name.as_str()) {
                return Err(error(location, "the name is used twice"));
            }
            if !field.hosts.is_empty() && field.kind != FieldKind::Image {
                return Err(error(location, "only image fields list hosts"));
            }
            if let Some(bad) = field.hosts.iter().find(|h| !valid_host(h)) {
                return Err(error(
                    location,
                    format!("`{bad}` is not a host name such as images.example.org"),
                ));
            }
        }
        for question in &self.questions {
            let location = format!("questions.{}", question.name);
            if !valid_name(&question.name) {
                return Err(error(
                    location,
                    "names use a-z, 0-9 and _, starting with a letter",
                ));
            }
            if !names.insert(question.name.as_str()) {
                return Err(error(
                    location,
                    "the name is used twice (names are shared by fields and questions)",
                ));
            }
            let field_of_kind = |name: &str, kinds: &[FieldKind]| {
                self.fields
                    .iter()
                    .find(|f| f.name == name)
                    .is_some_and(|f| kinds.contains(&f.kind))
            };
            match &question.kind {
                QuestionKind::Label { options } | QuestionKind::MultiLabel { options } => {
                    check_options(&location, options)?;
                }
                QuestionKind::Rating { min, max } => {
                    if min > max {
                        return Err(error(location, format!("min ({min}) is above max ({max})")));
                    }
                    // Widened first: min = i64::MIN, max = i64::MAX must not wrap around.
                    if i128::from(*max) - i128::from(*min) + 1 > i128::from(MAX_RATING_POINTS) {
                        return Err(error(
                            location,
                            format!(
                                "a rating scale has at most {MAX_RATING_POINTS} points (e.g. 0 to 100)"
                            ),
                        ));
                    }
                }
                QuestionKind::Ranking { field } => {
                    if !field_of_kind(field, &[FieldKind::Responses]) {
                        return Err(error(
                            location,
                            format!("`{field}` is not a responses field"),
                        ));
                    }
                }
                QuestionKind::Pairwise { .. } => {}
                QuestionKind::Text {
                    min_length,
                    max_length,
                } => {
                    if let (Some(min), Some(max)) = (min_length, max_length)
                        && min > max
                    {
                        return Err(error(
                            location,
                            format!("min_length ({min}) is above max_length ({max})"),
                        ));
                    }
                }
                QuestionKind::Spans { field, labels } => {
                    if !field_of_kind(field, &[FieldKind::Text, FieldKind::Markdown]) {
                        return Err(error(
                            location,
                            format!("`{field}` is not a text or markdown field"),
                        ));
                    }
                    check_options(&location, labels)?;
                }
            }
        }
        Ok(())
    }

    pub fn question(&self, name: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.name == name)
    }

    /// The prompt field of a prompt project: its first text, markdown or chat field.
    pub fn prompt_field(&self) -> Option<(&str, FieldKind)> {
        self.fields
            .iter()
            .find(|f| {
                matches!(
                    f.kind,
                    FieldKind::Text | FieldKind::Markdown | FieldKind::Chat
                )
            })
            .map(|f| (f.name.as_str(), f.kind))
    }

    /// The first responses field (the answers a ranking or a battle is about).
    pub fn responses_field(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.kind == FieldKind::Responses)
            .map(|f| f.name.as_str())
    }

    /// The first pairwise question (a battle project's vote).
    pub fn pairwise_question(&self) -> Option<&str> {
        self.questions
            .iter()
            .find(|q| matches!(q.kind, QuestionKind::Pairwise { .. }))
            .map(|q| q.name.as_str())
    }

    /// The hosts raters' browsers may load this schema's images from: `None` when some image
    /// field allows any URL.
    pub fn image_hosts(&self) -> Option<Vec<String>> {
        let mut hosts = Vec::new();
        for field in self.fields.iter().filter(|f| f.kind == FieldKind::Image) {
            if field.hosts.is_empty() {
                return None;
            }
            hosts.extend(field.hosts.iter().map(|h| h.to_ascii_lowercase()));
        }
        hosts.sort();
        hosts.dedup();
        Some(hosts)
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

fn check_options(location: &str, options: &[String]) -> Result<(), SchemaError> {
    if options.is_empty() {
        return Err(error(location, "needs at least one option"));
    }
    let mut seen = HashSet::new();
    for option in options {
        if option.is_empty() {
            return Err(error(location, "an option is empty"));
        }
        if !seen.insert(option) {
            return Err(error(
                location,
                format!("option `{option}` is listed twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rating_scales_are_bounded_without_overflow() {
        let scale = |min: i64, max: i64| {
            Schema::parse(&json!({
                "fields": [], "questions": [{"name": "q", "kind": "rating", "min": min, "max": max}]
            }))
        };
        assert!(scale(0, 100).is_ok());
        assert!(scale(-50, 50).is_ok());
        assert!(
            scale(0, 101)
                .unwrap_err()
                .to_string()
                .contains("at most 101 points")
        );
        assert!(scale(i64::MIN, i64::MAX).is_err());
        assert!(scale(i64::MIN, 0).is_err());
        assert!(scale(5, 1).is_err());
    }

    #[test]
    fn parses_every_kind_and_names_the_faulty_question() {
        let schema = Schema::parse(&json!({
            "fields": [
                {"name": "prompt", "kind": "chat"},
                {"name": "answers", "kind": "responses"},
                {"name": "text", "kind": "text"}
            ],
            "questions": [
                {"name": "topic", "kind": "label", "options": ["a", "b"], "required": true},
                {"name": "tags", "kind": "multi_label", "options": ["x", "y"]},
                {"name": "quality", "kind": "rating", "min": 1, "max": 5},
                {"name": "order", "kind": "ranking", "field": "answers"},
                {"name": "better", "kind": "pairwise", "allow_both_bad": true},
                {"name": "rewrite", "kind": "text", "max_length": 500},
                {"name": "entities", "kind": "spans", "field": "text", "labels": ["PER", "LOC"]}
            ]
        }))
        .unwrap();
        assert_eq!(schema.questions.len(), 7);
        let bad = Schema::parse(&json!({
            "fields": [{"name": "text", "kind": "text"}],
            "questions": [{"name": "order", "kind": "ranking", "field": "text"}]
        }))
        .unwrap_err();
        assert_eq!(
            bad.to_string(),
            "schema: questions.order: `text` is not a responses field"
        );
        let dup = Schema::parse(&json!({
            "fields": [], "questions": [{"name": "q", "kind": "label", "options": ["a", "a"]}]
        }))
        .unwrap_err();
        assert!(dup.to_string().contains("option `a` is listed twice"));
        assert!(Schema::parse(&json!({"fields": [], "questions": []})).is_err());
        let unknown =
            Schema::parse(&json!({"fields": [], "questions": [{"name": "q", "kind": "dial"}]}));
        assert!(unknown.unwrap_err().to_string().contains("dial"));
    }
}
