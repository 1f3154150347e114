//! `quorum aggregate`: truth inference, pairwise ranking and rating aggregation on CSV files.

use std::path::Path;

use anyhow::Context;
use rustc_hash::FxHashMap;

use quorum_stats::classification::{self, Method, Settings};
use quorum_stats::pairwise::{self, Comparison};
use quorum_stats::ratings::{self, RatingMethod};

use super::{csv_output, number};
use crate::cli::{AggregateArgs, AggregateMethod};
use crate::tables::{InputError, Interner, LabelTable, for_each_row, parse_number};

pub fn run(args: &AggregateArgs) -> anyhow::Result<()> {
    // The engine's registry decides which --method values are truth inference.
    let classification = clap::ValueEnum::to_possible_value(&args.method)
        .and_then(|value| Method::parse(value.get_name()));
    if let Some(method) = classification {
        return classify(args, method);
    }
    match args.method {
        AggregateMethod::Bt | AggregateMethod::Noisybt => rank(args),
        AggregateMethod::Mean => rate(args, RatingMethod::Mean),
        AggregateMethod::Median => rate(args, RatingMethod::Median),
        AggregateMethod::Trimmed => {
            if !(0.0..0.5).contains(&args.trim) {
                return Err(InputError::new(
                    &args.input,
                    None,
                    format!("--trim must be in [0, 0.5), got {}", args.trim),
                )
                .into());
            }
            rate(
                args,
                RatingMethod::TrimmedMean {
                    proportion: args.trim,
                },
            )
        }
        _ => unreachable!("classification methods are handled above"),
    }
}

fn only_for_classification(args: &AggregateArgs) -> anyhow::Result<()> {
    if args.gold.is_some() {
        return Err(
            InputError::new(&args.input, None, "--gold applies to label methods only").into(),
        );
    }
    Ok(())
}

fn classify(args: &AggregateArgs, method: Method) -> anyhow::Result<()> {
    let table = LabelTable::read(&args.input)?;
    let answers = table
        .to_answers(args.duplicates.into())
        .context("building the answer index")?;
    let settings = Settings {
        seed: args.seed,
        max_iterations: args.max_iterations,
        tolerance: args.tolerance,
        restarts: args.restarts,
    };
    let result = classification::aggregate(method, &answers, &settings)
        .map_err(|e| InputError::new(&args.input, None, e.to_string()))?;

    let mut out = csv_output(args.output.as_deref())?;
    out.write_record(["task", "label", "confidence"])?;
    for (t, task) in table.tasks.names().enumerate() {
        let label = table.labels.name(result.labels[t]);
        out.write_record([task, label, &number(result.confidence(t))])?;
    }
    out.flush()?;

    if let Some(path) = &args.workers {
        let counts = answers.worker_counts();
        let mut out = csv_output(Some(path))?;
        out.write_record(["worker", "skill", "answers"])?;
        for (w, name) in table.workers.names().enumerate() {
            out.write_record([
                name,
                &number(result.worker_skill[w]),
                &counts[w].to_string(),
            ])?;
        }
        out.flush()?;
    }
    if let Some(gold) = &args.gold {
        let (correct, total) = gold_accuracy(gold, &table, &result.labels)?;
        let line = format!(
            "accuracy on gold: {:.4} ({correct}/{total} gold tasks with answers)",
            if total > 0 {
                correct as f64 / total as f64
            } else {
                f64::NAN
            }
        );
        report(args.output.is_some(), &line);
    }
    Ok(())
}

/// Prints a summary line: to standard output when the results went to a file, otherwise to
/// standard error so that piped CSV stays clean.
#[expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI's summary line"
)]
fn report(results_in_file: bool, line: &str) {
    if results_in_file {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
}

fn gold_accuracy(
    path: &Path,
    table: &LabelTable,
    predicted: &[u32],
) -> Result<(usize, usize), InputError> {
    let (mut correct, mut total) = (0, 0);
    let mut seen = vec![false; table.tasks.len()];
    for_each_row(path, &["task", "label"], |_, fields| {
        if let Some(t) = table.tasks.get(fields[0]) {
            if std::mem::replace(&mut seen[t as usize], true) {
                return Err(format!(
                    "task `{}` has a second gold answer",
                    String::from_utf8_lossy(fields[0])
                ));
            }
            total += 1;
            if table.labels.get(fields[1]) == Some(predicted[t as usize]) {
                correct += 1;
            }
        }
        Ok(())
    })?;
    Ok((correct, total))
}

fn rank(args: &AggregateArgs) -> anyhow::Result<()> {
    only_for_classification(args)?;
    let mut items = Interner::default();
    let mut workers = Interner::default();
    let mut comparisons = Vec::new();
    for_each_row(
        &args.input,
        &["worker", "left", "right", "label"],
        |_, f| {
            let left = items.intern(f[1])?;
            let right = items.intern(f[2])?;
            if left == right {
                return Err(format!(
                    "`left` and `right` are the same item `{}`",
                    String::from_utf8_lossy(f[1])
                ));
            }
            let left_won = if f[3] == f[1] {
                true
            } else if f[3] == f[2] {
                false
            } else {
                return Err(format!(
                    "`label` must name the winner, `{}` or `{}`, found `{}`",
                    String::from_utf8_lossy(f[1]),
                    String::from_utf8_lossy(f[2]),
                    String::from_utf8_lossy(f[3])
                ));
            };
            comparisons.push(Comparison {
                worker: workers.intern(f[0])?,
                left,
                right,
                left_won,
            });
            Ok(())
        },
    )?;
    if comparisons.is_empty() {
        return Err(InputError::new(
            &args.input,
            None,
            "the file has a header but no comparisons",
        )
        .into());
    }
    let iterations = args.max_iterations;
    let ranking = if args.method == AggregateMethod::Bt {
        pairwise::bradley_terry(
            items.len(),
            workers.len(),
            &comparisons,
            iterations.unwrap_or(10_000),
            args.tolerance.unwrap_or(1e-10),
        )
    } else {
        pairwise::noisy_bradley_terry(
            items.len(),
            workers.len(),
            &comparisons,
            iterations.unwrap_or(1_000),
            // Per-comparison log likelihood. On the 50,000-comparison benchmark, 1e-8 leaves
            // every score within 0.007% of a fit run to 1e-12, with the same ranks.
            args.tolerance.unwrap_or(1e-8),
        )
    }
    .context("ranking the comparisons")?;
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (ranking.ranks[i], i));
    let mut out = csv_output(args.output.as_deref())?;
    out.write_record(["item", "score", "rank"])?;
    for i in order {
        out.write_record([
            items.name(i as u32),
            &number(ranking.scores[i]),
            &ranking.ranks[i].to_string(),
        ])?;
    }
    out.flush()?;
    if let (Some(path), Some(skill)) = (&args.workers, &ranking.worker_skill) {
        let bias = ranking.worker_left_bias.as_deref().unwrap_or_default();
        let mut out = csv_output(Some(path))?;
        out.write_record(["worker", "skill", "left_bias"])?;
        for (w, name) in workers.names().enumerate() {
            out.write_record([name, &number(skill[w]), &number(bias[w])])?;
        }
        out.flush()?;
    }
    Ok(())
}

fn rate(args: &AggregateArgs, method: RatingMethod) -> anyhow::Result<()> {
    only_for_classification(args)?;
    let mut tasks = Interner::default();
    let mut workers = Interner::default();
    let mut rows: Vec<(u32, u32, f64)> = Vec::new();
    for_each_row(&args.input, &["task", "worker", "label"], |_, f| {
        rows.push((
            tasks.intern(f[0])?,
            workers.intern(f[1])?,
            parse_number(f[2], "label")?,
        ));
        Ok(())
    })?;
    if rows.is_empty() {
        return Err(
            InputError::new(&args.input, None, "the file has a header but no ratings").into(),
        );
    }
    // Resolve duplicates (worker, task) by the chosen policy.
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); tasks.len()];
    let mut slot: FxHashMap<(u32, u32), usize> = FxHashMap::default();
    for (task, worker, value) in rows {
        let list = &mut values[task as usize];
        match args.duplicates {
            crate::cli::Duplicates::KeepAll => list.push(value),
            policy => match slot.get(&(task, worker)) {
                Some(&i) if policy == crate::cli::Duplicates::KeepLast => list[i] = value,
                Some(_) => {}
                None => {
                    slot.insert((task, worker), list.len());
                    list.push(value);
                }
            },
        }
    }
    let mut out = csv_output(args.output.as_deref())?;
    out.write_record(["task", "value", "dispersion", "count"])?;
    for (t, name) in tasks.names().enumerate() {
        if let Some(s) = ratings::summarise(&mut values[t], method) {
            out.write_record([
                name,
                &number(s.value),
                &number(s.dispersion),
                &s.count.to_string(),
            ])?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every truth-inference method of the engine is a `--method` value, under its own name.
    #[test]
    fn every_registered_method_is_a_cli_method() {
        for method in Method::ALL {
            let value = <AggregateMethod as clap::ValueEnum>::from_str(method.short_name(), false)
                .unwrap_or_else(|e| panic!("{}: {e}", method.short_name()));
            let name = clap::ValueEnum::to_possible_value(&value).map(|v| v.get_name().to_string());
            assert_eq!(name.as_deref().and_then(Method::parse), Some(method));
        }
    }
}
