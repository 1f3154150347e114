//! A dataset card for an export, as the Hugging Face Hub reads one: a README.md whose YAML
//! front matter gives the licence, languages, size and tags, and whose body says how the data
//! was collected, by how many raters of which locales, and how far they agreed.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use quorum_core::schema::QuestionKind;
use quorum_store::Store;

use super::{Aggregate, Export, ExportFormat};
use crate::{App, AppError, Caller};

/// The Hub's size buckets, by the number of rows.
fn size_category(rows: usize) -> &'static str {
    match rows {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        10_000_000..100_000_000 => "10M<n<100M",
        _ => "100M<n<1B",
    }
}

/// A licence id as the Hub takes them (`cc-by-4.0`, `apache-2.0`, `other`…).
fn check_license(license: &str) -> Result<(), AppError> {
    let fine = !license.is_empty()
        && license.len() <= 64
        && license
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '+'));
    if fine {
        Ok(())
    } else {
        Err(AppError::Invalid {
            message: format!(
                "`{license}` is not a licence id (letters, digits, `-`, `.`, `+`; e.g. cc-by-4.0)"
            ),
            details: serde_json::json!({"field": "license"}),
        })
    }
}

/// Text for a Markdown table cell: no line breaks or pipes.
fn cell(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('|', "\\|")
}

/// What each format's rows hold.
fn columns(export: Export) -> &'static str {
    match export {
        Export::Responses(ExportFormat::Parquet) => {
            "One row per response: `response_id`, `item_id`, `external_id`, `user`, `answers` (JSON), `answer_<question>` (typed, one per question), `time_spent_ms`, `created_at` (UTC)."
        }
        Export::Responses(_) => {
            "One row per response: `response_id`, `item_id`, `external_id`, `user`, `answers`, `time_spent_ms`, `created_at` (Unix ms)."
        }
        Export::Aggregate(Aggregate::Dpo, _) => {
            "One row per prompt: `id`, `prompt`, `chosen`, `rejected` (the columns TRL's DPO trainer reads), `confidence`, `votes`, `source`."
        }
        Export::Aggregate(Aggregate::Sft, _) => {
            "One row per rater's text: `id`, `messages` (the prompt's turns, then the rater's text as the assistant), `user`."
        }
        Export::Aggregate(Aggregate::Consensus, _) => {
            "One row per item and question: `item_id`, `external_id`, `question`, `answer`, `confidence`, `method`, `responses`."
        }
    }
}

impl<S: Store> App<S> {
    /// The dataset card of an export of the project (managers), under `license`, for the
    /// export saved as `data_file` next to it (`data.jsonl` or `data.parquet` when `None`).
    pub async fn dataset_card(
        &self,
        caller: &Caller,
        project_id: i64,
        export: Export,
        license: &str,
        data_file: Option<&str>,
    ) -> Result<String, AppError> {
        check_license(license)?;
        let project = self.authorize_export(caller, project_id).await?;
        let rows = self.all_responses(project_id).await?;
        let data: Vec<_> = rows.iter().filter(|r| !r.gold).cloned().collect();
        let size = match export {
            Export::Responses(_) => data.len(),
            Export::Aggregate(aggregate, _) => self
                .export_aggregate(caller, project_id, aggregate)
                .await?
                .len(),
        };
        let items = self.all_items(project_id).await?;
        let languages: BTreeSet<String> = items
            .iter()
            .filter_map(|i| i.locale.as_deref())
            .filter_map(|l| l.split('-').next())
            .map(str::to_ascii_lowercase)
            .collect();
        let locale_of = self.rater_locales(project_id, &data).await?;
        let mut raters_by_locale: BTreeMap<&str, usize> = BTreeMap::new();
        for locale in locale_of.values() {
            *raters_by_locale.entry(locale.as_str()).or_default() += 1;
        }
        let agreement = crate::quality::agreement_of(&project.schema, &data, &locale_of)?;
        let raters: HashSet<i64> = data.iter().map(|r| r.user_id).collect();

        let mut card = String::from("---\n");
        card.push_str(&format!("license: {license}\n"));
        if !languages.is_empty() {
            card.push_str("language:\n");
            for language in &languages {
                card.push_str(&format!("- {language}\n"));
            }
        }
        card.push_str(&format!("size_categories:\n- {}\n", size_category(size)));
        card.push_str(&format!(
            "pretty_name: {}\n",
            serde_json::to_string(&project.name).unwrap_or_default()
        ));
        card.push_str("tags:\n- human-annotated\n- quorum\n");
        let name = export.name();
        let file = data_file.unwrap_or(if export.file() == ExportFormat::Parquet {
            "data.parquet"
        } else {
            "data.jsonl"
        });
        let file = serde_json::to_string(file).unwrap_or_default();
        card.push_str(&format!(
            "configs:\n- config_name: default\n  data_files: {file}\n---\n\n"
        ));
        card.push_str(&format!("# {}\n\n", cell(&project.name)));
        if !project.instructions.is_empty() {
            card.push_str(&format!("{}\n\n", project.instructions.trim()));
        }
        card.push_str(&format!(
            "Exported from [Quorum](https://github.com/quorum-foundry/quorum) as `{name}`: {size} rows.\n\n## Data\n\n{}\n\n",
            columns(export)
        ));
        card.push_str("## How the data was collected\n\n");
        card.push_str(&format!(
            "{} items were answered by {} raters ({} answers; answers to gold items, which test raters, are left out). ",
            items.iter().filter(|i| i.gold.is_none()).count(),
            raters.len(),
            data.len()
        ));
        match (project.min_overlap, project.target_confidence) {
            (Some(min), Some(target)) => card.push_str(&format!(
                "Each item took between {min} and {} answers: it stopped once its consensus reached a confidence of {target}.",
                project.overlap
            )),
            _ => card.push_str(&format!(
                "Each item took {} answers, each from a different rater.",
                project.overlap
            )),
        }
        let quality = &project.quality;
        if quality.gold_rate > 0.0 {
            card.push_str(&format!(
                " Gold items (known answers) made up {:.0}% of each rater's items.",
                quality.gold_rate * 100.0
            ));
        }
        if let Some(q) = &quality.qualification {
            card.push_str(&format!(
                " Raters first qualified on {} gold items with at least {:.0}% right.",
                q.gold_items,
                q.min_accuracy * 100.0
            ));
        }
        card.push_str("\n\nThe questions raters answered:\n\n");
        for question in &project.schema.questions {
            let kind = match &question.kind {
                QuestionKind::Label { options } => format!("one of {}", options.join(", ")),
                QuestionKind::MultiLabel { options } => format!("any of {}", options.join(", ")),
                QuestionKind::Rating { min, max } => format!("a rating from {min} to {max}"),
                QuestionKind::Ranking { field } => format!("a ranking of `{field}`"),
                QuestionKind::Pairwise { .. } => "which of two answers is better".into(),
                QuestionKind::Text { .. } => "free text".into(),
                QuestionKind::Spans { labels, .. } => {
                    format!("spans labelled {}", labels.join(", "))
                }
            };
            card.push_str(&format!("- `{}`: {}", question.name, cell(&kind)));
            if !question.instructions.is_empty() {
                card.push_str(&format!(" — {}", cell(&question.instructions)));
            }
            card.push('\n');
        }
        card.push_str("\n## Raters per locale\n\n| locale | raters |\n|---|---|\n");
        for (locale, count) in &raters_by_locale {
            card.push_str(&format!("| {} | {count} |\n", cell(locale)));
        }
        card.push_str("\n## Agreement\n\nKrippendorff's alpha over all raters, with a 95% bootstrap interval.\n\n| question | level | alpha | interval |\n|---|---|---|---|\n");
        let fixed = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{v:.3}"));
        for question in &agreement {
            let all = question.groups.iter().find(|g| g.group == "(all)");
            card.push_str(&format!(
                "| {} | {} | {} | {} – {} |\n",
                cell(&question.question),
                question.level,
                fixed(all.and_then(|g| g.alpha)),
                fixed(all.and_then(|g| g.lower)),
                fixed(all.and_then(|g| g.upper)),
            ));
        }
        Ok(card)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fall_in_the_hubs_buckets() {
        assert_eq!(size_category(0), "n<1K");
        assert_eq!(size_category(999), "n<1K");
        assert_eq!(size_category(1_000), "1K<n<10K");
        assert_eq!(size_category(1_000_000), "1M<n<10M");
        assert!(check_license("cc-by-4.0").is_ok());
        assert!(check_license("bad licence").is_err());
        assert!(check_license("").is_err());
    }
}
