//! `quorum agreement`: agreement statistics overall and per worker group.

use std::collections::BTreeMap;

use quorum_stats::Answers;
use quorum_stats::agreement::{self, AgreementError, Level};
use quorum_stats::answers::Answer;

use super::{csv_output, number};
use crate::cli::{AgreementArgs, Metric};
use crate::tables::{InputError, LabelTable, for_each_row};

const OVERALL: &str = "(all)";

pub fn run(args: &AgreementArgs) -> anyhow::Result<()> {
    let table = LabelTable::read(&args.input)?;
    let level = match args.metric {
        Metric::AlphaOrdinal => Some(Level::Ordinal),
        Metric::AlphaInterval => Some(Level::Interval),
        Metric::AlphaNominal => Some(Level::Nominal),
        _ => None,
    };
    let values = match level {
        Some(Level::Ordinal | Level::Interval) => numeric_labels(args, &table)?,
        _ => Vec::new(),
    };

    // Each slice is a name and the answers it keeps: everything, then each group.
    let mut slices: Vec<(String, Vec<Answer>)> = vec![(OVERALL.to_string(), table.answers.clone())];
    if let Some(path) = &args.group_by {
        let mut group_of: Vec<Option<String>> = vec![None; table.workers.len()];
        for_each_row(path, &["worker", "group"], |_, f| {
            if let Some(w) = table.workers.get(f[0]) {
                let group = String::from_utf8(f[1].to_vec())
                    .map_err(|_| "`group` is not valid UTF-8".to_string())?;
                if group_of[w as usize].replace(group).is_some() {
                    return Err(format!(
                        "worker `{}` is listed twice",
                        String::from_utf8_lossy(f[0])
                    ));
                }
            }
            Ok(())
        })?;
        let mut groups: BTreeMap<&str, Vec<Answer>> = BTreeMap::new();
        for a in &table.answers {
            if let Some(group) = &group_of[a.worker as usize] {
                groups.entry(group.as_str()).or_default().push(*a);
            }
        }
        slices.extend(groups.into_iter().map(|(g, a)| (g.to_string(), a)));
    }

    let mut out = csv_output(args.output.as_deref())?;
    if args.metric == Metric::Cohen {
        out.write_record([
            "group",
            "worker_a",
            "worker_b",
            "common_tasks",
            "percent",
            "kappa",
        ])?;
    } else {
        out.write_record([
            "group", "metric", "value", "lower", "upper", "tasks", "workers", "answers",
        ])?;
    }
    let names = &table.workers;
    for (group, slice) in slices {
        let answers = Answers::new(
            table.tasks.len(),
            table.workers.len(),
            table.labels.len(),
            &slice,
            args.duplicates.into(),
        )?;
        if args.metric == Metric::Cohen {
            for pair in agreement::cohen_kappa_pairs(&answers, args.min_common) {
                out.write_record([
                    group.as_str(),
                    names.name(pair.worker_a),
                    names.name(pair.worker_b),
                    &pair.common_tasks.to_string(),
                    &number(pair.percent),
                    &pair.kappa.map(number).unwrap_or_default(),
                ])?;
            }
            continue;
        }
        let value = match (args.metric, level) {
            (_, Some(level)) => agreement::krippendorff_alpha(&answers, level, &values),
            (Metric::Fleiss, _) => agreement::fleiss_kappa(&answers),
            _ => agreement::percent_agreement(&answers),
        };
        let (value, interval) = match value {
            Ok(v) => {
                let interval = match level {
                    Some(level) if args.bootstrap > 0 => agreement::krippendorff_alpha_interval(
                        &answers,
                        level,
                        &values,
                        args.bootstrap,
                        0.95,
                        args.seed,
                    )?,
                    _ => None,
                };
                (v, interval)
            }
            // A group where the statistic is undefined gets an empty value, not a failure,
            // unless it is the whole data set.
            Err(AgreementError::NoPairableUnits | AgreementError::NoVariation)
                if group != OVERALL =>
            {
                (f64::NAN, None)
            }
            Err(e) => return Err(InputError::new(&args.input, None, e.to_string()).into()),
        };
        let tasks = (0..answers.n_tasks())
            .filter(|&t| !answers.task_range(t).is_empty())
            .count();
        let workers = answers.worker_counts().iter().filter(|&&c| c > 0).count();
        out.write_record([
            group.as_str(),
            metric_name(args.metric),
            &number(value),
            &interval.map(|i| number(i.lower)).unwrap_or_default(),
            &interval.map(|i| number(i.upper)).unwrap_or_default(),
            &tasks.to_string(),
            &workers.to_string(),
            &answers.len().to_string(),
        ])?;
    }
    out.flush()?;
    Ok(())
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::AlphaNominal => "alpha-nominal",
        Metric::AlphaOrdinal => "alpha-ordinal",
        Metric::AlphaInterval => "alpha-interval",
        Metric::Fleiss => "fleiss",
        Metric::Cohen => "cohen",
        Metric::Percent => "percent",
    }
}

/// The number of each label, for the ordinal and interval levels.
fn numeric_labels(args: &AgreementArgs, table: &LabelTable) -> Result<Vec<f64>, InputError> {
    table
        .labels
        .names()
        .map(|name| {
            name.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                InputError::new(
                    &args.input,
                    None,
                    format!("label `{name}` is not a number; ordinal and interval alpha need numeric labels"),
                )
            })
        })
        .collect()
}
