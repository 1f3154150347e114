//! Agreement per question: Krippendorff's alpha with a bootstrap interval, overall and within
//! each rater locale, percent agreement within and across locales, Fleiss' and Cohen's kappa.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use quorum_core::schema::{QuestionKind, Schema};
use quorum_stats::DuplicatePolicy;
use quorum_stats::agreement::{self, Level};
use quorum_stats::answers::{Answer, Answers};
use quorum_store::ExportRow;

use crate::AppError;

use super::{Ids, category};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupAgreement {
    /// A rater locale, or `(all)`.
    pub group: String,
    pub raters: usize,
    pub alpha: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuestionAgreement {
    pub question: String,
    /// `nominal`, `ordinal` or `interval`.
    pub level: String,
    pub groups: Vec<GroupAgreement>,
    /// Mean percent agreement over pairs of raters who share items: same locale, and not.
    pub within_locale: Option<f64>,
    pub across_locales: Option<f64>,
    /// Fleiss' kappa, for nominal questions whose items all have the same number of raters.
    pub fleiss_kappa: Option<f64>,
    /// Cohen's kappa per pair of raters with at least 5 items in common (nominal questions).
    pub pairs: Vec<RaterPair>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RaterPair {
    pub a: String,
    pub b: String,
    pub common_items: usize,
    pub percent_agreement: f64,
    pub cohen_kappa: Option<f64>,
}

/// How a report names a level of measurement.
pub(crate) fn level_name(level: Level) -> &'static str {
    match level {
        Level::Interval => "interval",
        Level::Ordinal => "ordinal",
        Level::Nominal => "nominal",
    }
}

/// Agreement of `rows` under `schema`, raters grouped by `locale_of` (pure: no store).
pub fn agreement_of(
    schema: &Schema,
    rows: &[ExportRow],
    locale_of: &HashMap<i64, String>,
) -> Result<Vec<QuestionAgreement>, AppError> {
    let mut reports = Vec::new();
    for question in &schema.questions {
        let level = match question.kind {
            QuestionKind::Label { .. } | QuestionKind::Pairwise { .. } => Level::Nominal,
            QuestionKind::Rating { .. } => Level::Interval,
            _ => continue,
        };
        let mut tasks: Ids<i64> = Ids::default();
        let mut workers: Ids<i64> = Ids::default();
        let mut labels: Ids<String> = Ids::default();
        let mut data = Vec::new();
        let mut group_of_worker: Vec<String> = Vec::new();
        for row in rows {
            let Some(label) = row
                .answers
                .get(&question.name)
                .and_then(|v| category(&question.kind, v))
            else {
                continue;
            };
            let worker = workers.id(&row.user_id);
            if group_of_worker.len() <= worker as usize {
                group_of_worker.push(
                    locale_of
                        .get(&row.user_id)
                        .cloned()
                        .unwrap_or_else(|| "(none)".into()),
                );
            }
            data.push(Answer {
                task: tasks.id(&row.item_id),
                worker,
                label: labels.id(&label),
            });
        }
        if data.is_empty() {
            continue;
        }
        let values: Vec<f64> = labels
            .keys()
            .iter()
            .map(|l| l.parse().unwrap_or(0.0))
            .collect();
        let alpha_of = |subset: &[Answer]| -> GroupAgreement {
            let raters = subset
                .iter()
                .map(|a| a.worker)
                .collect::<std::collections::HashSet<_>>()
                .len();
            let answers = Answers::new(
                tasks.len(),
                workers.len(),
                labels.len(),
                subset,
                DuplicatePolicy::KeepLast,
            );
            let (alpha, interval) = match answers {
                Ok(answers) => (
                    agreement::krippendorff_alpha(&answers, level, &values).ok(),
                    agreement::krippendorff_alpha_interval(&answers, level, &values, 500, 0.95, 0)
                        .ok()
                        .flatten(),
                ),
                Err(_) => (None, None),
            };
            GroupAgreement {
                group: String::new(),
                raters,
                alpha: alpha.filter(|a| a.is_finite()),
                lower: interval.map(|i| i.lower),
                upper: interval.map(|i| i.upper),
            }
        };
        let mut groups = vec![GroupAgreement {
            group: "(all)".into(),
            ..alpha_of(&data)
        }];
        let (mut fleiss_kappa, mut pairs) = (None, Vec::new());
        if level == Level::Nominal
            && let Ok(answers) = Answers::new(
                tasks.len(),
                workers.len(),
                labels.len(),
                &data,
                DuplicatePolicy::KeepLast,
            )
        {
            fleiss_kappa = agreement::fleiss_kappa(&answers)
                .ok()
                .filter(|k| k.is_finite());
            let name_of: HashMap<i64, &str> = rows
                .iter()
                .map(|r| (r.user_id, r.user_name.as_str()))
                .collect();
            let name = |w: u32| {
                name_of
                    .get(&workers.keys()[w as usize])
                    .copied()
                    .unwrap_or_default()
                    .to_string()
            };
            pairs = agreement::cohen_kappa_pairs(&answers, 5)
                .into_iter()
                .map(|p| RaterPair {
                    a: name(p.worker_a),
                    b: name(p.worker_b),
                    common_items: p.common_tasks,
                    percent_agreement: p.percent,
                    cohen_kappa: p.kappa.filter(|k| k.is_finite()),
                })
                .collect();
        }
        let mut names: Vec<&String> = group_of_worker.iter().collect();
        names.sort();
        names.dedup();
        for name in names {
            let subset: Vec<Answer> = data
                .iter()
                .copied()
                .filter(|a| &group_of_worker[a.worker as usize] == name)
                .collect();
            groups.push(GroupAgreement {
                group: name.clone(),
                ..alpha_of(&subset)
            });
        }
        // Pairwise percent agreement, within and across locales.
        let mut by_task: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
        for a in &data {
            by_task.entry(a.task).or_default().push((a.worker, a.label));
        }
        let (mut same, mut same_n, mut cross, mut cross_n) = (0.0, 0usize, 0.0, 0usize);
        for answers in by_task.values() {
            for i in 0..answers.len() {
                for j in i + 1..answers.len() {
                    let agree = f64::from(u8::from(answers[i].1 == answers[j].1));
                    if group_of_worker[answers[i].0 as usize]
                        == group_of_worker[answers[j].0 as usize]
                    {
                        same += agree;
                        same_n += 1;
                    } else {
                        cross += agree;
                        cross_n += 1;
                    }
                }
            }
        }
        reports.push(QuestionAgreement {
            question: question.name.clone(),
            level: level_name(level).into(),
            groups,
            within_locale: (same_n > 0).then(|| same / same_n as f64),
            across_locales: (cross_n > 0).then(|| cross / cross_n as f64),
            fleiss_kappa,
            pairs,
        });
    }
    Ok(reports)
}
