//! `quorum leaderboard`: an arena leaderboard from a battles CSV, overall and per slice, with
//! the divergence between slices.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use quorum_app::evaluation::arena::{Battles, Report, ReportOptions, parse_anchor, report};
use quorum_stats::arena::{Battle, Winner};

use super::csv_output;
use crate::cli::{BoardFormat, LeaderboardArgs};
use crate::tables::{InputError, Interner, for_each_row, parse_number, read_header};

/// Style features, by the column stem their `_a`/`_b` pair uses; the first length column found
/// is the length feature.
const LENGTH_STEMS: [&str; 3] = ["len_words", "len_tokens", "len_chars"];
const MARKDOWN_STEMS: [&str; 3] = ["header_count", "list_count", "bold_count"];

/// The battles of a CSV as they are read, with the optional style and slice columns.
struct Table {
    models: Interner,
    battles: Vec<Battle>,
    style_names: Vec<String>,
    style_a: Vec<f64>,
    style_b: Vec<f64>,
    slices: Interner,
    slice_of: Vec<u32>,
    /// Rows where a model met itself, left out.
    self_battles: u64,
}

pub fn parse_winner(field: &[u8]) -> Result<Winner, String> {
    match field {
        b"model_a" | b"a" | b"A" => Ok(Winner::A),
        b"model_b" | b"b" | b"B" => Ok(Winner::B),
        b"tie" => Ok(Winner::Tie),
        b"tie (bothbad)" | b"both_bad" | b"bothbad" => Ok(Winner::BothBad),
        other => Err(format!(
            "`winner` must be model_a, model_b, tie or tie (bothbad), found `{}`",
            String::from_utf8_lossy(other)
        )),
    }
}

fn read(args: &LeaderboardArgs) -> Result<Table, InputError> {
    let path = args.input.as_path();
    let header = read_header(path)?;
    let has = |column: &str| header.iter().any(|h| h == column);
    let pair = |stem: &str| has(&format!("{stem}_a")) && has(&format!("{stem}_b"));
    let mut style_names: Vec<String> = Vec::new();
    if args.style_control {
        style_names.extend(LENGTH_STEMS.iter().find(|s| pair(s)).map(|s| s.to_string()));
        style_names.extend(
            MARKDOWN_STEMS
                .iter()
                .filter(|s| pair(s))
                .map(|s| s.to_string()),
        );
        if style_names.is_empty() {
            return Err(InputError::new(
                path,
                Some(1),
                format!(
                    "--style-control needs style columns: one of {} and any of {}, each as a `_a`/`_b` pair",
                    LENGTH_STEMS.join(", "),
                    MARKDOWN_STEMS.join(", ")
                ),
            ));
        }
    }
    if let Some(column) = &args.slice_by
        && !has(column)
    {
        return Err(InputError::new(
            path,
            Some(1),
            format!("--slice-by: the header has no column `{column}`"),
        ));
    }
    let mut columns: Vec<String> = vec!["model_a".into(), "model_b".into(), "winner".into()];
    for stem in &style_names {
        columns.push(format!("{stem}_a"));
        columns.push(format!("{stem}_b"));
    }
    columns.extend(args.slice_by.clone());
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let k = style_names.len();
    let mut out = Table {
        models: Interner::default(),
        battles: Vec::new(),
        style_names,
        style_a: Vec::new(),
        style_b: Vec::new(),
        slices: Interner::default(),
        slice_of: Vec::new(),
        self_battles: 0,
    };
    for_each_row(path, &names, |_, fields| {
        if fields[0].is_empty() || fields[1].is_empty() {
            return Err("a model name is empty".into());
        }
        if fields[0] == fields[1] {
            // A model against itself says nothing about any rating (the arena drops these).
            out.self_battles += 1;
            return Ok(());
        }
        let a = out.models.intern(fields[0])?;
        let b = out.models.intern(fields[1])?;
        let winner = parse_winner(fields[2])?;
        for f in 0..k {
            out.style_a
                .push(parse_number(fields[3 + 2 * f], names[3 + 2 * f])?);
            out.style_b
                .push(parse_number(fields[4 + 2 * f], names[4 + 2 * f])?);
        }
        if args.slice_by.is_some() {
            out.slice_of.push(out.slices.intern(fields[3 + 2 * k])?);
        }
        out.battles.push(Battle { a, b, winner });
        Ok(())
    })?;
    if out.battles.is_empty() {
        return Err(InputError::new(path, None, "no battles"));
    }
    Ok(out)
}

pub fn run(args: &LeaderboardArgs) -> anyhow::Result<()> {
    let table = read(args)?;
    if table.self_battles > 0 {
        note(&format!(
            "note: left out {} battle(s) of a model against itself",
            table.self_battles
        ));
    }
    let anchor = match args.anchor.as_deref().map(parse_anchor).transpose() {
        Ok(Some((model, _))) if table.models.get(model.as_bytes()).is_none() => {
            return Err(InputError::new(
                &args.input,
                None,
                format!("--anchor: model `{model}` is not in the battles"),
            )
            .into());
        }
        Ok(anchor) => anchor,
        Err(problem) => {
            return Err(InputError::new(&args.input, None, format!("--{problem}")).into());
        }
    };
    let style = (!table.style_names.is_empty())
        .then(|| (table.style_names.clone(), table.style_a, table.style_b));
    let data = Battles {
        models: table.models.names().map(str::to_string).collect(),
        battles: table.battles,
        slices: table.slices.names().map(str::to_string).collect(),
        slice_of: table.slice_of,
        style,
    };
    let options = ReportOptions {
        bootstrap: args.bootstrap,
        seed: args.seed,
        anchor,
        min_battles: args.min_battles,
        threads: args.threads,
    };
    let report =
        report(&data, &options).map_err(|e| InputError::new(&args.input, None, e.to_string()))?;
    match args.format {
        BoardFormat::Csv => write_csv(args.output.as_deref(), &report),
        BoardFormat::Json => write_text(
            args.output.as_deref(),
            &(serde_json::to_string_pretty(&report)? + "\n"),
        ),
        BoardFormat::Table => {
            write_text(args.output.as_deref(), &to_table(&report, args.min_battles))
        }
    }
}

/// A note for the user on standard error, which stays out of piped output.
#[expect(clippy::print_stderr, reason = "the CLI's notes")]
fn note(line: &str) {
    eprintln!("{line}");
}

fn write_text(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(path) => std::fs::write(path, text)?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

fn fixed4(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.4}")).unwrap_or_default()
}

fn write_csv(path: Option<&Path>, report: &Report) -> anyhow::Result<()> {
    let mut out = csv_output(path)?;
    let sliced = report.boards.len() > 1;
    let mut header = vec![
        "model",
        "rating",
        "lower",
        "upper",
        "rank",
        "num_battles",
        "online_elo",
        "provisional",
    ];
    if sliced {
        header.insert(0, "slice");
    }
    out.write_record(&header)?;
    for board in &report.boards {
        for m in &board.models {
            let mut row = vec![
                m.model.clone(),
                format!("{:.4}", m.rating),
                fixed4(m.lower),
                fixed4(m.upper),
                m.rank.map(|r| r.to_string()).unwrap_or_default(),
                m.battles.to_string(),
                format!("{:.4}", m.online_elo),
                m.provisional.to_string(),
            ];
            if sliced {
                row.insert(0, board.slice.clone().unwrap_or_else(|| "(all)".into()));
            }
            out.write_record(&row)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn interval(lower: Option<f64>, upper: Option<f64>, decimals: usize) -> String {
    match (lower, upper) {
        (Some(lower), Some(upper)) => format!("[{lower:.decimals$}, {upper:.decimals$}]"),
        _ => "-".into(),
    }
}

fn to_table(report: &Report, min_battles: u64) -> String {
    let mut text = String::new();
    let width = report
        .boards
        .iter()
        .flat_map(|b| b.models.iter().map(|m| m.model.len()))
        .max()
        .unwrap_or(5)
        .max(5);
    for board in &report.boards {
        let name = board.slice.as_deref().unwrap_or("all battles");
        let _ = writeln!(
            text,
            "== {name}: {} battles, {} bootstrap rounds ==",
            board.battles, board.bootstrap_rounds
        );
        let _ = writeln!(
            text,
            "{:>4}  {:<width$}  {:>8}  {:<18}  {:>7}  {:>8}",
            "rank", "model", "rating", "95% interval", "battles", "online"
        );
        let mut apart = false;
        for m in &board.models {
            if m.provisional && !apart {
                apart = true;
                let _ = writeln!(text, "  provisional (fewer than {min_battles} battles):");
            }
            let _ = writeln!(
                text,
                "{:>4}  {:<width$}  {:>8.1}  {:<18}  {:>7}  {:>8.1}",
                m.rank.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                m.model,
                m.rating,
                interval(m.lower, m.upper, 1),
                m.battles,
                m.online_elo,
            );
        }
        if let Some(style) = &board.style_coefficients {
            let _ = writeln!(text, "  style coefficients (per standard deviation):");
            for s in style {
                let _ = writeln!(
                    text,
                    "    {:<14} {:>8.4}  {}",
                    s.feature,
                    s.coefficient,
                    interval(s.lower, s.upper, 4)
                );
            }
        }
        text.push('\n');
    }
    for d in &report.divergence {
        let _ = writeln!(
            text,
            "== {} vs {}: {} shared models, Spearman {} {} ==",
            d.a,
            d.b,
            d.models,
            d.spearman.map_or("-".into(), |r| format!("{r:.3}")),
            interval(d.spearman_lower, d.spearman_upper, 3)
        );
        let significant: Vec<_> = d.differences.iter().filter(|x| x.significant).collect();
        if significant.is_empty() {
            let _ = writeln!(text, "  no model is rated differently beyond its interval");
        }
        for x in significant {
            let higher = if x.difference > 0.0 { &d.a } else { &d.b };
            let _ = writeln!(
                text,
                "  {:<width$}  {:>+8.1}  {}  (rated higher by `{higher}`)",
                x.model,
                x.difference,
                interval(x.lower, x.upper, 1),
            );
        }
        text.push('\n');
    }
    text
}
