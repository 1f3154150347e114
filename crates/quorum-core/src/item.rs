//! Items: the field values a rater sees, checked against the schema.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::answer::{self, Completeness};
use crate::schema::{Field, FieldKind, Schema};

/// An item as imported (a JSON object, a JSONL line or a CSV row turned into one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// Unique per project: importing the same id again updates the item.
    #[serde(default)]
    pub external_id: Option<String>,
    pub fields: Map<String, Value>,
    /// Free-form; `locale` (BCP 47) and `category` (string) have meaning for routing and reports.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Model suggestions, shown to raters as pre-filled answers.
    #[serde(default)]
    pub suggestions: Option<Map<String, Value>>,
    /// The expected answers of a gold item; never shown to raters.
    #[serde(default)]
    pub gold: Option<Map<String, Value>>,
    #[serde(default)]
    pub priority: i32,
}

/// A validated item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub external_id: Option<String>,
    pub fields: Map<String, Value>,
    pub metadata: Map<String, Value>,
    pub locale: Option<String>,
    pub category: Option<String>,
    pub suggestions: Option<Map<String, Value>>,
    pub gold: Option<Map<String, Value>>,
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {problem}")]
pub struct ItemError {
    pub location: String,
    pub problem: String,
}

fn error(location: impl Into<String>, problem: impl Into<String>) -> ItemError {
    ItemError {
        location: location.into(),
        problem: problem.into(),
    }
}

impl Item {
    pub fn validate(input: ItemInput, schema: &Schema) -> Result<Item, ItemError> {
        if let Some(id) = &input.external_id
            && (id.is_empty() || id.len() > 256)
        {
            return Err(error("external_id", "must be 1 to 256 characters"));
        }
        for name in input.fields.keys() {
            if schema.field(name).is_none() {
                return Err(error(
                    format!("fields.{name}"),
                    "the schema has no such field",
                ));
            }
        }
        for field in &schema.fields {
            let location = format!("fields.{}", field.name);
            let Some(value) = input.fields.get(&field.name) else {
                if field.kind == FieldKind::Metadata {
                    continue;
                }
                return Err(error(location, "is missing"));
            };
            check_field(field, value).map_err(|problem| error(location, problem))?;
        }
        let locale = match input.metadata.get("locale") {
            None | Some(Value::Null) => None,
            Some(Value::String(tag)) if crate::valid_locale(tag) => Some(tag.clone()),
            Some(other) => {
                return Err(error(
                    "metadata.locale",
                    format!("`{other}` is not a BCP 47 language tag such as ar-QA"),
                ));
            }
        };
        let category = match input.metadata.get("category") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => return Err(error("metadata.category", "must be a string")),
        };
        for (name, answers) in [("suggestions", &input.suggestions), ("gold", &input.gold)] {
            if let Some(answers) = answers {
                answer::validate(answers, schema, &input.fields, Completeness::Partial)
                    .map_err(|e| error(format!("{name}.{}", e.question), e.problem))?;
            }
        }
        Ok(Item {
            external_id: input.external_id,
            fields: input.fields,
            metadata: input.metadata,
            locale,
            category,
            suggestions: input.suggestions,
            gold: input.gold,
            priority: input.priority,
        })
    }
}

fn check_field(field: &Field, value: &Value) -> Result<(), String> {
    match field.kind {
        FieldKind::Text | FieldKind::Markdown => value
            .as_str()
            .map(|_| ())
            .ok_or_else(|| "must be a string".to_string()),
        FieldKind::Image if !field.hosts.is_empty() => {
            let url = value.as_str().unwrap_or_default();
            let host = url
                .strip_prefix("https://")
                .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
            match host {
                Some(host) if field.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) => Ok(()),
                _ if url.starts_with('/') && !url.starts_with("//") => Ok(()),
                _ => Err(format!(
                    "must be an https:// URL on {} (the field's hosts) or a path starting with /",
                    field.hosts.join(", ")
                )),
            }
        }
        FieldKind::Image => match value.as_str() {
            Some(url)
                if url.starts_with("https://")
                    || url.starts_with("http://")
                    || url.starts_with('/') =>
            {
                Ok(())
            }
            _ => Err("must be an http(s) URL or a path starting with /".into()),
        },
        FieldKind::Chat => {
            let turns = value
                .as_array()
                .ok_or("must be a list of {\"role\", \"content\"} turns")?;
            for (i, turn) in turns.iter().enumerate() {
                let role = turn.get("role").and_then(Value::as_str);
                if !matches!(role, Some("system" | "user" | "assistant" | "tool")) {
                    return Err(format!(
                        "turn {i}: role must be system, user, assistant or tool"
                    ));
                }
                if !turn.get("content").is_some_and(Value::is_string) {
                    return Err(format!("turn {i}: content must be a string"));
                }
            }
            Ok(())
        }
        FieldKind::Responses => {
            let responses = value
                .as_array()
                .ok_or("must be a list of {\"name\", \"content\"} responses")?;
            if responses.is_empty() {
                return Err("needs at least one response".into());
            }
            let mut names = std::collections::HashSet::new();
            for (i, r) in responses.iter().enumerate() {
                let name = r
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or(format!("response {i}: name must be a string"))?;
                if !names.insert(name) {
                    return Err(format!("response name `{name}` is used twice"));
                }
                if !r.get("content").is_some_and(Value::is_string) {
                    return Err(format!("response {i}: content must be a string"));
                }
            }
            Ok(())
        }
        FieldKind::Metadata => value
            .is_object()
            .then_some(())
            .ok_or_else(|| "must be an object".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse(&json!({
            "fields": [{"name": "prompt", "kind": "chat"}, {"name": "answers", "kind": "responses"}],
            "questions": [{"name": "better", "kind": "pairwise"}]
        }))
        .unwrap()
    }

    fn input(value: Value) -> ItemInput {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn validates_fields_locale_and_gold() {
        let ok = Item::validate(
            input(json!({
                "external_id": "x1",
                "fields": {
                    "prompt": [{"role": "user", "content": "hi"}],
                    "answers": [{"name": "a", "content": "1"}, {"name": "b", "content": "2"}]
                },
                "metadata": {"locale": "ar-QA", "category": "greeting"},
                "gold": {"better": "a"}
            })),
            &schema(),
        )
        .unwrap();
        assert_eq!(ok.locale.as_deref(), Some("ar-QA"));
        let missing =
            Item::validate(input(json!({"fields": {"prompt": []}})), &schema()).unwrap_err();
        assert_eq!(missing.to_string(), "fields.answers: is missing");
        let bad_gold = Item::validate(
            input(json!({"fields": {"prompt": [], "answers": [{"name": "a", "content": ""}]}, "gold": {"better": "c"}})),
            &schema(),
        )
        .unwrap_err();
        assert_eq!(bad_gold.location, "gold.better");
        let bad_locale = Item::validate(
            input(json!({"fields": {"prompt": [], "answers": [{"name": "a", "content": ""}]}, "metadata": {"locale": "arabic"}})),
            &schema(),
        )
        .unwrap_err();
        assert_eq!(bad_locale.location, "metadata.locale");
    }
}
