//! Reading a standard: the TOML file and its items (inline or a JSON Lines file beside it),
//! every problem reported with its line and column.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use quorum_core::schema::QuestionKind;
use quorum_stats::classification::Method;

use super::*;

/// Where the items' file is, relative to the standard.
fn items_path(standard: &Path, file: &str) -> PathBuf {
    standard
        .parent()
        .map_or_else(|| PathBuf::from(file), |dir| dir.join(file))
}

/// Line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Reads and checks a standard file; on failure, every problem found, each with its location.
pub fn load(path: &Path) -> Result<Standard, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            location: path.display().to_string(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse(&text, |file| {
        let full = items_path(path, file);
        std::fs::read_to_string(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))
    })
}

/// Parses and checks a standard's text; `read_items` reads the items' file when it names one.
pub fn parse(
    text: &str,
    read_items: impl Fn(&str) -> Result<String, String>,
) -> Result<Standard, Vec<Problem>> {
    let file: StandardFile = toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("line {line}, column {column}")
            }
            None => "the file".into(),
        };
        vec![Problem {
            location,
            message: e.message().to_string(),
        }]
    })?;
    let mut problems = Vec::new();
    let mut problem = |location: String, message: String| {
        problems.push(Problem { location, message });
    };
    if file.standard.name.trim().is_empty() {
        problem("standard.name".into(), "must not be empty".into());
    }
    if file.standard.version.trim().is_empty() {
        problem("standard.version".into(), "must not be empty".into());
    }

    // Items, inline and from the file, each checked where it is.
    let mut items: Vec<StandardItem> = Vec::new();
    let read = |location: String, value: Value| match serde_json::from_value::<StandardItem>(value)
    {
        Ok(item) if item.id.trim().is_empty() => {
            Err((format!("{location}.id"), "must not be empty".to_string()))
        }
        Ok(item) if item.prompt.trim().is_empty() => Err((
            format!("{location}.prompt"),
            "must not be empty".to_string(),
        )),
        Ok(item) => Ok(item),
        Err(e) => Err((location, e.to_string())),
    };
    let mut raw: Vec<(String, Value)> = file
        .items
        .inline
        .iter()
        .enumerate()
        .map(|(i, value)| (format!("items.inline[{i}]"), value.clone()))
        .collect();
    if let Some(name) = &file.items.file {
        match read_items(name) {
            Err(message) => problem("items.file".into(), message),
            Ok(lines) => {
                for (n, line) in lines.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let location = format!("{name} line {}", n + 1);
                    match serde_json::from_str::<Value>(line) {
                        Ok(value) => raw.push((location, value)),
                        Err(e) => problem(location, e.to_string()),
                    }
                }
            }
        }
    }
    for (location, value) in raw {
        match read(location, value) {
            Ok(item) => items.push(item),
            Err((location, message)) => problem(location, message),
        }
    }
    if items.is_empty() {
        problem(
            "items".into(),
            "the standard has no items (inline or file)".into(),
        );
    }
    let mut seen = BTreeSet::new();
    for item in &items {
        if !seen.insert(item.id.clone()) {
            problem(format!("items[{}]", item.id), "the id is used twice".into());
        }
    }
    items.sort_by(|a, b| a.id.cmp(&b.id));

    // Questions, as the project schema reads them; at least one pairwise question.
    let mut spec = Spec {
        standard: file.standard,
        questions: file.questions,
        raters: file.raters,
        judges: file.judges,
        scoring: file.scoring,
        report: file.report,
        exposure: file.exposure,
        items: items.iter().map(|i| (i.id.clone(), hash_of(i))).collect(),
    };
    match spec.schema() {
        Err(message) => problem("questions".into(), message),
        Ok(schema) => {
            if !schema
                .questions
                .iter()
                .any(|q| matches!(q.kind, QuestionKind::Pairwise { .. }))
            {
                problem(
                    "questions".into(),
                    "needs a pairwise question (the models are compared in pairs)".into(),
                );
            }
            for (name, method) in &spec.scoring.methods {
                let Some(question) = schema.questions.iter().find(|q| &q.name == name) else {
                    problem(
                        format!("scoring.methods.{name}"),
                        "no question has this name".into(),
                    );
                    continue;
                };
                let labels: Vec<&str> = Method::ALL.iter().map(|m| m.short_name()).collect();
                let allowed: &[&str] = match question.kind {
                    QuestionKind::Pairwise { .. } => &["bradley_terry"],
                    QuestionKind::Rating { .. } => &["median"],
                    QuestionKind::Label { .. } => &labels,
                    _ => &[],
                };
                if !allowed.contains(&method.as_str()) {
                    problem(
                        format!("scoring.methods.{name}"),
                        format!("`{method}` is not one of: {}", allowed.join(", ")),
                    );
                }
            }
        }
    }
    if !(1..=1000).contains(&spec.raters.min_ratings_per_item) {
        problem(
            "raters.min_ratings_per_item".into(),
            "must be 1 to 1000".into(),
        );
    }
    let mut locales = BTreeSet::new();
    for (i, requirement) in spec.raters.locales.iter().enumerate() {
        if !quorum_core::valid_locale(&requirement.locale) {
            problem(
                format!("raters.locales[{i}].locale"),
                format!("`{}` is not a BCP 47 locale", requirement.locale),
            );
        }
        if !locales.insert(requirement.locale.to_ascii_lowercase()) {
            problem(
                format!("raters.locales[{i}].locale"),
                "is listed twice".into(),
            );
        }
        if requirement.min_raters == 0 {
            problem(
                format!("raters.locales[{i}].min_raters"),
                "must be at least 1".into(),
            );
        }
    }
    if let Some(q) = &spec.raters.qualification {
        if q.gold_items == 0 {
            problem(
                "raters.qualification.gold_items".into(),
                "must be at least 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&q.min_accuracy) {
            problem(
                "raters.qualification.min_accuracy".into(),
                "must be 0 to 1".into(),
            );
        }
    }
    if spec.judges.policy != JudgePolicy::Humans && spec.judges.model.is_none() {
        problem(
            "judges.model".into(),
            "an LLM judge policy needs the judge's model".into(),
        );
    }
    if !(1..=100_000).contains(&spec.scoring.bootstrap) {
        problem("scoring.bootstrap".into(), "must be 1 to 100000".into());
    }
    for (i, slice) in spec.report.slices.iter().enumerate() {
        if !["rater_locale", "category", "language"].contains(&slice.as_str()) {
            problem(
                format!("report.slices[{i}]"),
                format!("`{slice}` is not one of: rater_locale, category, language"),
            );
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    spec.standard.name = spec.standard.name.trim().to_string();
    let hash = spec.hash();
    Ok(Standard { spec, items, hash })
}
