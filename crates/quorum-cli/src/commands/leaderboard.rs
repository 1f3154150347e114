//! `quorum leaderboard`: an arena leaderboard from a battles CSV, overall and per slice, with
//! the divergence between slices.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use quorum_stats::arena::{
    self, ArenaOptions, Battle, Divergence, Leaderboard, Style, StyleBoard, Winner,
};

use super::{csv_output, number};
use crate::cli::{BoardFormat, LeaderboardArgs};
use crate::tables::{InputError, Interner, for_each_row, parse_number, read_header};

/// Style features, by the column stem their `_a`/`_b` pair uses; the first length column found
/// is the length feature.
const LENGTH_STEMS: [&str; 3] = ["len_words", "len_tokens", "len_chars"];
const MARKDOWN_STEMS: [&str; 3] = ["header_count", "list_count", "bold_count"];

/// The battles of a CSV, with the optional style and slice columns.
struct Battles {
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

fn read(args: &LeaderboardArgs) -> Result<Battles, InputError> {
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
    let mut out = Battles {
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

/// One board: its name, what it was computed on, and the style coefficients if controlled.
struct Board {
    slice: Option<String>,
    battles: usize,
    board: Leaderboard,
    style: Option<(Vec<String>, StyleBoard)>,
}

fn compute(
    data: &Battles,
    indices: Option<&[usize]>,
    options: &ArenaOptions,
) -> anyhow::Result<(Leaderboard, Option<StyleBoard>)> {
    let n = data.models.len();
    let k = data.style_names.len();
    let (battles, style_a, style_b): (Vec<Battle>, Vec<f64>, Vec<f64>) = match indices {
        None => (
            data.battles.clone(),
            data.style_a.clone(),
            data.style_b.clone(),
        ),
        Some(indices) => (
            indices.iter().map(|&i| data.battles[i]).collect(),
            indices
                .iter()
                .flat_map(|&i| data.style_a[i * k..(i + 1) * k].iter().copied())
                .collect(),
            indices
                .iter()
                .flat_map(|&i| data.style_b[i * k..(i + 1) * k].iter().copied())
                .collect(),
        ),
    };
    if k == 0 {
        return Ok((arena::leaderboard(n, &battles, options)?, None));
    }
    let names: Vec<&str> = data.style_names.iter().map(String::as_str).collect();
    let style = Style {
        names: &names,
        a: &style_a,
        b: &style_b,
    };
    let controlled = arena::style_controlled(n, &battles, &style, options)?;
    Ok((controlled.board.clone(), Some(controlled)))
}

pub fn run(args: &LeaderboardArgs) -> anyhow::Result<()> {
    let data = read(args)?;
    if data.self_battles > 0 {
        note(&format!(
            "note: left out {} battle(s) of a model against itself",
            data.self_battles
        ));
    }
    let anchor = match &args.anchor {
        None => None,
        Some(text) => {
            let bad = |problem: String| InputError::new(&args.input, None, problem);
            let (model, rating) = text
                .rsplit_once('=')
                .ok_or_else(|| bad(format!("--anchor must be MODEL=RATING, got `{text}`")))?;
            let rating: f64 = rating
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite())
                .ok_or_else(|| bad(format!("--anchor: `{rating}` is not a number")))?;
            let id = data
                .models
                .get(model.as_bytes())
                .ok_or_else(|| bad(format!("--anchor: model `{model}` is not in the battles")))?;
            Some((id, rating))
        }
    };
    let options = ArenaOptions {
        rounds: args.bootstrap,
        seed: args.seed,
        anchor,
        min_battles: args.min_battles,
        threads: args.threads,
    };
    let mut boards = Vec::new();
    let (board, style) = compute(&data, None, &options)?;
    boards.push(Board {
        slice: None,
        battles: data.battles.len(),
        board,
        style: style.map(|s| (data.style_names.clone(), s)),
    });
    if args.slice_by.is_some() {
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); data.slices.len()];
        for (i, &s) in data.slice_of.iter().enumerate() {
            members[s as usize].push(i);
        }
        // Slices in name order; each has its own bootstrap stream.
        let mut order: Vec<u32> = (0..data.slices.len() as u32).collect();
        order.sort_by(|&x, &y| data.slices.name(x).cmp(data.slices.name(y)));
        for s in order {
            let name = data.slices.name(s).to_string();
            let slice_options = ArenaOptions {
                seed: args.seed.wrapping_add(1 + u64::from(s)),
                // An anchor absent from a slice cannot pin it: such slices stay centred.
                anchor: anchor.filter(|&(m, _)| {
                    members[s as usize]
                        .iter()
                        .any(|&i| data.battles[i].a == m || data.battles[i].b == m)
                }),
                ..options.clone()
            };
            let (board, style) = compute(&data, Some(&members[s as usize]), &slice_options)?;
            boards.push(Board {
                slice: Some(name),
                battles: members[s as usize].len(),
                board,
                style: style.map(|st| (data.style_names.clone(), st)),
            });
        }
    }
    let mut divergences = Vec::new();
    for i in 1..boards.len() {
        for j in i + 1..boards.len() {
            let d = arena::divergence(&boards[i].board, &boards[j].board);
            if d.models.len() >= 2 {
                divergences.push((i, j, d));
            }
        }
    }
    match args.format {
        BoardFormat::Csv => write_csv(args.output.as_deref(), &data, &boards),
        BoardFormat::Json => {
            let value = to_json(&data, &boards, &divergences);
            write_text(
                args.output.as_deref(),
                &(serde_json::to_string_pretty(&value)? + "\n"),
            )
        }
        BoardFormat::Table => write_text(
            args.output.as_deref(),
            &to_table(&data, &boards, &divergences, args.min_battles),
        ),
    }
}

/// A note for the user on standard error, which stays out of piped output.
#[allow(clippy::print_stderr, reason = "the CLI's notes")]
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

/// Rated models, best first: ranked ones, then provisional ones.
fn order(board: &Leaderboard) -> Vec<usize> {
    let mut models: Vec<usize> = (0..board.n_models())
        .filter(|&m| board.ratings[m].is_finite())
        .collect();
    models.sort_by(|&x, &y| {
        board.provisional[x]
            .cmp(&board.provisional[y])
            .then(board.ratings[y].total_cmp(&board.ratings[x]))
    });
    models
}

fn write_csv(path: Option<&Path>, data: &Battles, boards: &[Board]) -> anyhow::Result<()> {
    let mut out = csv_output(path)?;
    let sliced = boards.len() > 1;
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
    for board in boards {
        let b = &board.board;
        for m in order(b) {
            let mut row = vec![
                data.models.name(m as u32).to_string(),
                format!("{:.4}", b.ratings[m]),
                fixed4(b.lower[m]),
                fixed4(b.upper[m]),
                b.rank[m].map(|r| r.to_string()).unwrap_or_default(),
                b.battles[m].to_string(),
                format!("{:.4}", b.online_elo[m]),
                b.provisional[m].to_string(),
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

fn fixed4(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        number(f64::NAN)
    }
}

fn finite(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

fn to_json(data: &Battles, boards: &[Board], divergences: &[(usize, usize, Divergence)]) -> Value {
    let boards: Vec<Value> = boards
        .iter()
        .map(|board| {
            let b = &board.board;
            let models: Vec<Value> = order(b)
                .into_iter()
                .map(|m| {
                    json!({
                        "model": data.models.name(m as u32),
                        "rating": b.ratings[m],
                        "lower": finite(b.lower[m]),
                        "upper": finite(b.upper[m]),
                        "rank": b.rank[m],
                        "battles": b.battles[m],
                        "online_elo": b.online_elo[m],
                        "provisional": b.provisional[m],
                    })
                })
                .collect();
            let style = board.style.as_ref().map(|(names, s)| {
                names
                    .iter()
                    .enumerate()
                    .map(|(f, name)| {
                        json!({
                            "feature": name,
                            "coefficient": s.coefficients[f],
                            "lower": finite(s.coefficient_lower[f]),
                            "upper": finite(s.coefficient_upper[f]),
                        })
                    })
                    .collect::<Vec<_>>()
            });
            json!({
                "slice": board.slice,
                "battles": board.battles,
                "bootstrap_rounds": b.rounds,
                "models": models,
                "style_coefficients": style,
            })
        })
        .collect();
    let divergence: Vec<Value> = divergences
        .iter()
        .map(|(i, j, d)| {
            let differences: Vec<Value> = (0..d.models.len())
                .map(|x| {
                    json!({
                        "model": data.models.name(d.models[x]),
                        "difference": d.difference[x],
                        "lower": finite(d.difference_lower[x]),
                        "upper": finite(d.difference_upper[x]),
                        "significant": d.difference_lower[x] > 0.0 || d.difference_upper[x] < 0.0,
                    })
                })
                .collect();
            json!({
                "a": boards[*i]["slice"],
                "b": boards[*j]["slice"],
                "models": d.models.len(),
                "spearman": finite(d.spearman),
                "spearman_lower": finite(d.spearman_lower),
                "spearman_upper": finite(d.spearman_upper),
                "differences": differences,
            })
        })
        .collect();
    json!({ "boards": boards, "divergence": divergence })
}

fn interval(lower: f64, upper: f64, decimals: usize) -> String {
    if lower.is_finite() && upper.is_finite() {
        format!("[{lower:.decimals$}, {upper:.decimals$}]")
    } else {
        "-".into()
    }
}

fn to_table(
    data: &Battles,
    boards: &[Board],
    divergences: &[(usize, usize, Divergence)],
    min_battles: u64,
) -> String {
    let mut text = String::new();
    let width = data.models.names().map(str::len).max().unwrap_or(5).max(5);
    for board in boards {
        let b = &board.board;
        let name = board.slice.as_deref().unwrap_or("all battles");
        let _ = writeln!(
            text,
            "== {name}: {} battles, {} bootstrap rounds ==",
            board.battles, b.rounds
        );
        let _ = writeln!(
            text,
            "{:>4}  {:<width$}  {:>8}  {:<18}  {:>7}  {:>8}",
            "rank", "model", "rating", "95% interval", "battles", "online"
        );
        let mut apart = false;
        for m in order(b) {
            if b.provisional[m] && !apart {
                apart = true;
                let _ = writeln!(text, "  provisional (fewer than {min_battles} battles):");
            }
            let _ = writeln!(
                text,
                "{:>4}  {:<width$}  {:>8.1}  {:<18}  {:>7}  {:>8.1}",
                b.rank[m]
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into()),
                data.models.name(m as u32),
                b.ratings[m],
                interval(b.lower[m], b.upper[m], 1),
                b.battles[m],
                b.online_elo[m],
            );
        }
        if let Some((names, s)) = &board.style {
            let _ = writeln!(text, "  style coefficients (per standard deviation):");
            for (f, feature) in names.iter().enumerate() {
                let _ = writeln!(
                    text,
                    "    {feature:<14} {:>8.4}  {}",
                    s.coefficients[f],
                    interval(s.coefficient_lower[f], s.coefficient_upper[f], 4)
                );
            }
        }
        text.push('\n');
    }
    for (i, j, d) in divergences {
        let (a, b) = (
            boards[*i].slice.as_deref().unwrap_or_default(),
            boards[*j].slice.as_deref().unwrap_or_default(),
        );
        let _ = writeln!(
            text,
            "== {a} vs {b}: {} shared models, Spearman {:.3} {} ==",
            d.models.len(),
            d.spearman,
            interval(d.spearman_lower, d.spearman_upper, 3)
        );
        let significant: Vec<(u32, f64)> = d.significant().collect();
        if significant.is_empty() {
            let _ = writeln!(text, "  no model is rated differently beyond its interval");
        }
        for (model, difference) in significant {
            let x = d.models.iter().position(|&m| m == model).unwrap_or(0);
            let higher = if difference > 0.0 { a } else { b };
            let _ = writeln!(
                text,
                "  {:<width$}  {:>+8.1}  {}  (rated higher by `{higher}`)",
                data.models.name(model),
                difference,
                interval(d.difference_lower[x], d.difference_upper[x], 1),
            );
        }
        text.push('\n');
    }
    text
}
