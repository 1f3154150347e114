//! Evaluation standards: a TOML file that says what is evaluated, by whom and how it is
//! scored, identified by a content hash.
//!
//! The hash is a tree: each item's hash is SHA-256 over its canonical JSON, and the standard's
//! hash is SHA-256 over the canonical JSON of everything else with the items replaced by their
//! hashes (in id order). Canonical JSON has sorted keys, no whitespace and every default filled
//! in, so key order, formatting, comments, and whether items are inline or in a JSON Lines file
//! change nothing, while any change of meaning changes the hash. A report can therefore carry
//! the item hashes without the items' text and still be checked against the standard's hash.

mod parse;
pub mod report;
pub mod run;

pub use parse::{load, parse};

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use quorum_core::schema::Schema;
use quorum_stats::classification::Method;

/// A problem found in a standard, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `line L, column C` for syntax, a key path (`questions[1].options`) or `FILE line N`.
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// A standard as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StandardFile {
    standard: Header,
    #[serde(default)]
    items: ItemsSpec,
    questions: Vec<Value>,
    raters: Raters,
    #[serde(default)]
    judges: Judges,
    #[serde(default)]
    scoring: Scoring,
    #[serde(default)]
    report: ReportSpec,
    #[serde(default)]
    exposure: Exposure,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemsSpec {
    /// A JSON Lines file of items, relative to the standard's file.
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    inline: Vec<Value>,
}

/// One item of the standard: a prompt the models answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StandardItem {
    pub id: String,
    pub prompt: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Raters {
    /// Human ratings each battle needs before the report is made.
    pub min_ratings_per_item: u32,
    #[serde(default)]
    pub locales: Vec<LocaleRequirement>,
    #[serde(default)]
    pub qualification: Option<QualificationSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocaleRequirement {
    pub locale: String,
    pub min_raters: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualificationSpec {
    pub gold_items: u32,
    pub min_accuracy: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JudgePolicy {
    #[default]
    Humans,
    Llm,
    Both,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Judges {
    #[serde(default)]
    pub policy: JudgePolicy,
    /// The judge's registered model name.
    #[serde(default)]
    pub model: Option<String>,
    /// The judge prompt template (`{prompt}`, `{a}`, `{b}`); the built-in one when absent.
    #[serde(default)]
    pub prompt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scoring {
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
    #[serde(default)]
    pub seed: u64,
    /// The aggregation method per question name (defaults by kind).
    #[serde(default)]
    pub methods: BTreeMap<String, String>,
}

fn default_bootstrap() -> usize {
    1000
}

impl Default for Scoring {
    fn default() -> Self {
        Self {
            bootstrap: default_bootstrap(),
            seed: 0,
            methods: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// `rater_locale`, `category`, `language`.
    #[serde(default)]
    pub slices: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExposurePolicy {
    /// Items may be exported and shown in reports.
    #[default]
    Public,
    /// Held-out items: their text never leaves the instance; reports carry their hashes.
    Private,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Exposure {
    #[serde(default)]
    pub policy: ExposurePolicy,
}

/// Everything of a standard except its items, which it names by hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Spec {
    pub standard: Header,
    pub questions: Vec<Value>,
    pub raters: Raters,
    pub judges: Judges,
    pub scoring: Scoring,
    pub report: ReportSpec,
    pub exposure: Exposure,
    /// `(item id, item hash)` in id order.
    #[schema(value_type = Vec<Vec<String>>)]
    pub items: Vec<(String, String)>,
}

/// A valid standard: its spec, its items and its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Standard {
    pub spec: Spec,
    pub items: Vec<StandardItem>,
    pub hash: String,
}

impl Standard {
    /// The standard as kept with its runs: its spec and its items.
    pub fn stored(&self) -> Value {
        json!({"spec": self.spec, "items": self.items})
    }

    /// A standard kept with a run, checked against its own hashes.
    pub fn from_stored(value: &Value) -> Result<Standard, String> {
        let spec: Spec =
            serde_json::from_value(value["spec"].clone()).map_err(|e| e.to_string())?;
        let items: Vec<StandardItem> =
            serde_json::from_value(value["items"].clone()).map_err(|e| e.to_string())?;
        let hashes: Vec<(String, String)> =
            items.iter().map(|i| (i.id.clone(), hash_of(i))).collect();
        if hashes != spec.items {
            return Err("the stored items do not match the standard's item hashes".into());
        }
        let hash = spec.hash();
        Ok(Standard { spec, items, hash })
    }
}

/// JSON with sorted keys and no whitespace.
pub fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                out.push('{');
                let keys: BTreeSet<&String> = map.keys().collect();
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// `sha256:` and the hex digest of a value's canonical JSON.
pub fn hash_of(value: &impl Serialize) -> String {
    let value = serde_json::to_value(value).unwrap_or(Value::Null);
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical_json(&value).as_bytes()))
    )
}

impl Spec {
    /// The standard's hash: over this spec, items by hash.
    pub fn hash(&self) -> String {
        hash_of(self)
    }

    /// The truth-inference method for a label question (Dawid–Skene unless the standard says).
    pub fn label_method(&self, question: &str) -> Method {
        self.scoring
            .methods
            .get(question)
            .and_then(|name| Method::parse(name))
            .unwrap_or(Method::DawidSkene)
    }

    /// The battle items' schema: the prompt, the two answers, and the standard's questions.
    pub fn schema(&self) -> Result<Schema, String> {
        Schema::parse(&json!({
            "fields": [{"name": "prompt", "kind": "text"}, {"name": "responses", "kind": "responses"}],
            "questions": self.questions,
        }))
        .map_err(|e| format!("{}: {}", e.location, e.problem))
    }
}

/// An item as a project item: the prompt, its category and language as metadata.
pub(crate) fn item_json(item: &StandardItem) -> Value {
    let mut metadata = Map::new();
    if let Some(category) = &item.category {
        metadata.insert("category".into(), json!(category));
    }
    if let Some(language) = &item.language {
        metadata.insert("language".into(), json!(language));
    }
    json!({"external_id": item.id, "fields": {"question": item.prompt}, "metadata": metadata})
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: &str = r#"
# A small standard.
[standard]
name = "tutor"
version = "1.0"

[[items.inline]]
id = "q1"
prompt = "What is 2 + 2?"
category = "arithmetic"

[[items.inline]]
id = "q2"
prompt = "Why is the sky blue?"

[[questions]]
name = "correctness"
kind = "pairwise"
instructions = "Which answer is more correct?"

[raters]
min_ratings_per_item = 2
locales = [{ locale = "en-GB", min_raters = 1 }]
"#;

    fn no_file(_: &str) -> Result<String, String> {
        Err("no file".into())
    }

    /// The standard's hash; a text that does not parse fails the test (a string made of the
    /// problems would let `assert_ne!` pass on a parse failure).
    fn hash(text: &str) -> String {
        parse(text, no_file)
            .map(|s| s.hash)
            .unwrap_or_else(|p| panic!("the standard does not parse: {p:?}"))
    }

    #[test]
    fn layout_and_key_order_do_not_change_the_hash() {
        let reordered = r#"
[raters]
locales = [ { min_raters = 1, locale = "en-GB" } ]
min_ratings_per_item = 2

[[questions]]
instructions = "Which answer is more correct?"
kind = "pairwise"
name = "correctness"

[standard]
version = "1.0"
name = "tutor"

[items]
inline = [
  { prompt = "Why is the sky blue?", id = "q2" },
  { id = "q1", category = "arithmetic", prompt = "What is 2 + 2?" },
]

[scoring]
bootstrap = 1000
"#;
        assert!(hash(STANDARD).starts_with("sha256:"));
        assert_eq!(hash(STANDARD), hash(reordered));
        // Items in a JSON Lines file instead of inline: the same standard.
        let with_file = STANDARD
            .split("[[items.inline]]")
            .next()
            .map(|head| {
                format!(
                    "{head}[items]\nfile = \"items.jsonl\"\n{}",
                    &STANDARD[STANDARD.find("[[questions]]").unwrap_or(0)..]
                )
            })
            .unwrap_or_default();
        let lines = "{\"id\": \"q2\", \"prompt\": \"Why is the sky blue?\"}\n{\"id\": \"q1\", \"prompt\": \"What is 2 + 2?\", \"category\": \"arithmetic\"}\n";
        let from_file = parse(&with_file, |_| Ok(lines.to_string()));
        assert_eq!(from_file.map(|s| s.hash).ok(), Some(hash(STANDARD)));
    }

    #[test]
    fn a_change_of_meaning_changes_the_hash() {
        let base = hash(STANDARD);
        for changed in [
            STANDARD.replace("What is 2 + 2?", "What is 2 + 3?"),
            STANDARD.replace("more correct", "more accurate"),
            STANDARD.replace("min_ratings_per_item = 2", "min_ratings_per_item = 3"),
            STANDARD.replace("version = \"1.0\"", "version = \"1.1\""),
            format!("{STANDARD}\n[exposure]\npolicy = \"private\"\n"),
        ] {
            assert_ne!(hash(&changed), base, "{changed}");
        }
        // Only the changed item's hash changes.
        let a = parse(STANDARD, no_file).ok().map(|s| s.spec.items);
        let b = parse(&STANDARD.replace("2 + 2", "2 + 3"), no_file)
            .ok()
            .map(|s| s.spec.items);
        let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
        assert_ne!(a[0].1, b[0].1);
        assert_eq!(a[1].1, b[1].1);
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let bad = STANDARD
            .replace("min_ratings_per_item = 2", "min_ratings_per_item = 0")
            .replace("\"en-GB\"", "\"not a locale!\"")
            .replace(
                "kind = \"pairwise\"",
                "kind = \"label\"\noptions = [\"a\", \"b\"]",
            )
            .replace("id = \"q2\"", "id = \"q1\"");
        let problems = parse(&bad, no_file).err().unwrap_or_default();
        let locations: Vec<&str> = problems.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(
            locations,
            vec![
                "items[q1]",
                "questions",
                "raters.min_ratings_per_item",
                "raters.locales[0].locale"
            ],
            "{problems:?}"
        );
        let syntax = parse("[standard]\nname = \n", no_file)
            .err()
            .unwrap_or_default();
        assert_eq!(syntax[0].location, "line 2, column 8", "{syntax:?}");
    }

    /// The shipped JSON Schema describes what the parser reads: every example validates
    /// against it, and a key the schema does not know is refused by both.
    #[test]
    fn the_json_schema_describes_the_examples() {
        fn check(
            value: &Value,
            schema: &Value,
            root: &Value,
            at: &str,
            problems: &mut Vec<String>,
        ) {
            let schema = match schema.get("$ref").and_then(Value::as_str) {
                Some(reference) => &root["$defs"][reference.trim_start_matches("#/$defs/")],
                None => schema,
            };
            if let Some(options) = schema.get("enum").and_then(Value::as_array)
                && !options.contains(value)
            {
                problems.push(format!("{at}: {value} is not one of {options:?}"));
            }
            if let Some(map) = value.as_object() {
                let properties = schema.get("properties").and_then(Value::as_object);
                for key in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !map.contains_key(key.as_str().unwrap_or_default()) {
                        problems.push(format!("{at}: {key} is required"));
                    }
                }
                for (key, inner) in map {
                    match properties.and_then(|p| p.get(key)) {
                        Some(sub) => check(inner, sub, root, &format!("{at}.{key}"), problems),
                        None if schema["additionalProperties"] == json!(false) => {
                            problems.push(format!("{at}.{key} is not in the schema"));
                        }
                        None => {}
                    }
                }
            }
            if let (Some(items), Some(sub)) = (value.as_array(), schema.get("items")) {
                for (i, item) in items.iter().enumerate() {
                    check(item, sub, root, &format!("{at}[{i}]"), problems);
                }
            }
        }
        let schema: Value =
            serde_json::from_str(include_str!("../../../../docs/standard.schema.json"))
                .unwrap_or_default();
        let examples = [
            include_str!("../../../../examples/standards/ai-tutor.toml"),
            include_str!("../../../../examples/standards/health-information.toml"),
            include_str!("../../../../examples/standards/public-service-assistant.toml"),
            include_str!("../../../../examples/standards/disaster-triage.toml"),
        ];
        let items_file = |name: &str| {
            assert_eq!(name, "public-service-assistant.jsonl");
            Ok(
                include_str!("../../../../examples/standards/public-service-assistant.jsonl")
                    .to_string(),
            )
        };
        for text in examples {
            // Every example is a standard the parser takes, not only one the schema takes.
            let parsed = parse(text, items_file)
                .unwrap_or_else(|p| panic!("an example does not parse: {p:?}"));
            assert!(!parsed.items.is_empty());
            let value: Value = serde_json::to_value(
                toml::from_str::<toml::Value>(text).expect("the example is TOML"),
            )
            .expect("as JSON");
            let mut problems = Vec::new();
            check(&value, &schema, &schema, "", &mut problems);
            assert_eq!(problems, Vec::<String>::new());
            // Unknown keys: refused by the schema and by the parser alike.
            let mut extra = value.clone();
            extra["raters"]["favourite_colour"] = json!("blue");
            let mut problems = Vec::new();
            check(&extra, &schema, &schema, "", &mut problems);
            assert_eq!(
                problems,
                vec![".raters.favourite_colour is not in the schema"]
            );
            let with_extra = format!("{text}\n[exposure.extra]\nx = 1\n");
            assert!(parse(&with_extra, |_| Ok(String::new())).is_err());
        }
        // The schema's methods are the registry's, plus the pairwise and rating ones.
        let listed = &schema["properties"]["scoring"]["properties"]["methods"]["additionalProperties"]
            ["enum"];
        let mut expected = vec![json!("bradley_terry"), json!("median")];
        expected.extend(Method::ALL.map(|m| json!(m.short_name())));
        assert_eq!(listed, &json!(expected));
        let lines = include_str!("../../../../examples/standards/public-service-assistant.jsonl");
        for line in lines.lines() {
            let item: Value = serde_json::from_str(line).unwrap_or_default();
            let mut problems = Vec::new();
            check(
                &item,
                &json!({"$ref": "#/$defs/item"}),
                &schema,
                "item",
                &mut problems,
            );
            assert_eq!(problems, Vec::<String>::new());
        }
    }
}
