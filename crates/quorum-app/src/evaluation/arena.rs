//! Arena reports: a leaderboard overall and per slice (rater locale, category, language…),
//! each with its own bootstrap, and the divergence between every pair of slices. Shared by
//! `quorum leaderboard` (battles from a CSV) and the API (battles from collected votes).

use serde::{Deserialize, Serialize};

use quorum_stats::arena::{self, ArenaOptions, Battle, Leaderboard, Style};

use crate::AppError;

/// Battles with everything a report can use.
#[derive(Debug, Clone, Default)]
pub struct Battles {
    /// Model names, by index.
    pub models: Vec<String>,
    pub battles: Vec<Battle>,
    /// Slice names, by index, and each battle's slice (empty when not sliced).
    pub slices: Vec<String>,
    pub slice_of: Vec<u32>,
    /// Style features: names, then `battles × features` raw counts for each side.
    pub style: Option<(Vec<String>, Vec<f64>, Vec<f64>)>,
}

#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub bootstrap: usize,
    pub seed: u64,
    pub anchor: Option<(String, f64)>,
    pub min_battles: u64,
    pub threads: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub boards: Vec<Board>,
    pub divergence: Vec<DivergenceView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Board {
    /// `None` for the board of all battles.
    pub slice: Option<String>,
    pub battles: usize,
    pub bootstrap_rounds: usize,
    /// Rated models, best first: ranked ones, then provisional ones.
    pub models: Vec<ModelRow>,
    pub style_coefficients: Option<Vec<StyleRow>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelRow {
    pub model: String,
    pub rating: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub rank: Option<usize>,
    pub battles: u64,
    pub online_elo: f64,
    pub provisional: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StyleRow {
    pub feature: String,
    pub coefficient: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DivergenceView {
    pub a: String,
    pub b: String,
    pub models: usize,
    pub spearman: Option<f64>,
    pub spearman_lower: Option<f64>,
    pub spearman_upper: Option<f64>,
    pub differences: Vec<DifferenceRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DifferenceRow {
    pub model: String,
    /// Rating on board `a` minus rating on board `b`, both centred on the shared models.
    pub difference: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// The interval excludes zero: the two populations rate this model differently.
    pub significant: bool,
}

/// Reads an anchor written `MODEL=RATING` (the model name may itself contain `=`).
pub fn parse_anchor(text: &str) -> Result<(String, f64), String> {
    let (model, rating) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("anchor must be MODEL=RATING, got `{text}`"))?;
    let rating: f64 = rating
        .trim()
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite())
        .ok_or_else(|| format!("anchor: `{rating}` is not a number"))?;
    Ok((model.to_string(), rating))
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

fn engine_error(error: arena::ArenaError) -> AppError {
    AppError::invalid(error.to_string())
}

/// One board over `indices` of the battles (all when `None`).
fn board(
    data: &Battles,
    slice: Option<String>,
    indices: Option<&[usize]>,
    options: &ArenaOptions,
) -> Result<(Board, Leaderboard), AppError> {
    let n = data.models.len();
    let pick = |i: usize| indices.map_or(i, |ix| ix[i]);
    let count = indices.map_or(data.battles.len(), <[usize]>::len);
    let battles: Vec<Battle> = (0..count).map(|i| data.battles[pick(i)]).collect();
    let (leaderboard, style) = match &data.style {
        None => (
            arena::leaderboard(n, &battles, options).map_err(engine_error)?,
            None,
        ),
        Some((names, a, b)) => {
            let k = names.len();
            let side = |values: &[f64]| -> Vec<f64> {
                (0..count)
                    .flat_map(|i| values[pick(i) * k..(pick(i) + 1) * k].iter().copied())
                    .collect()
            };
            let (a, b) = (side(a), side(b));
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let style = Style {
                names: &name_refs,
                a: &a,
                b: &b,
            };
            let controlled =
                arena::style_controlled(n, &battles, &style, options).map_err(engine_error)?;
            let rows = names
                .iter()
                .enumerate()
                .map(|(f, feature)| StyleRow {
                    feature: feature.clone(),
                    coefficient: controlled.coefficients[f],
                    lower: finite(controlled.coefficient_lower[f]),
                    upper: finite(controlled.coefficient_upper[f]),
                })
                .collect();
            (controlled.board, Some(rows))
        }
    };
    let b = &leaderboard;
    let mut order: Vec<usize> = (0..n).filter(|&m| b.ratings[m].is_finite()).collect();
    order.sort_by(|&x, &y| {
        b.provisional[x]
            .cmp(&b.provisional[y])
            .then(b.ratings[y].total_cmp(&b.ratings[x]))
    });
    let models = order
        .into_iter()
        .map(|m| ModelRow {
            model: data.models[m].clone(),
            rating: b.ratings[m],
            lower: finite(b.lower[m]),
            upper: finite(b.upper[m]),
            rank: b.rank[m],
            battles: b.battles[m],
            online_elo: b.online_elo[m],
            provisional: b.provisional[m],
        })
        .collect();
    Ok((
        Board {
            slice,
            battles: count,
            bootstrap_rounds: options.rounds,
            models,
            style_coefficients: style,
        },
        leaderboard,
    ))
}

/// The board of all battles, then one per slice (in name order, each with its own random
/// stream), then the divergence of every pair of slices that share at least two ranked models.
pub fn report(data: &Battles, options: &ReportOptions) -> Result<Report, AppError> {
    if data.battles.is_empty() {
        return Err(AppError::invalid("there are no battles to rank"));
    }
    let anchor = match &options.anchor {
        None => None,
        Some((name, rating)) => {
            let id = data.models.iter().position(|m| m == name).ok_or_else(|| {
                AppError::invalid(format!("anchor model `{name}` is not in the battles"))
            })?;
            Some((id as u32, *rating))
        }
    };
    let base = ArenaOptions {
        rounds: options.bootstrap,
        seed: options.seed,
        anchor,
        min_battles: options.min_battles,
        threads: options.threads,
    };
    let (overall, _) = board(data, None, None, &base)?;
    let mut boards = vec![overall];
    let mut leaderboards = Vec::new();
    if !data.slice_of.is_empty() {
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); data.slices.len()];
        for (i, &s) in data.slice_of.iter().enumerate() {
            members[s as usize].push(i);
        }
        let mut order: Vec<usize> = (0..data.slices.len()).collect();
        order.sort_by(|&x, &y| data.slices[x].cmp(&data.slices[y]));
        for s in order {
            let indices = &members[s];
            if indices.is_empty() {
                continue;
            }
            let options = ArenaOptions {
                seed: options.seed.wrapping_add(1 + s as u64),
                // An anchor absent from a slice cannot pin it: that slice stays centred.
                anchor: anchor.filter(|&(m, _)| {
                    indices
                        .iter()
                        .any(|&i| data.battles[i].a == m || data.battles[i].b == m)
                }),
                ..base.clone()
            };
            let (view, leaderboard) =
                board(data, Some(data.slices[s].clone()), Some(indices), &options)?;
            boards.push(view);
            leaderboards.push((data.slices[s].clone(), leaderboard));
        }
    }
    let mut divergence = Vec::new();
    for i in 0..leaderboards.len() {
        for j in i + 1..leaderboards.len() {
            let d = arena::divergence(&leaderboards[i].1, &leaderboards[j].1);
            if d.models.len() < 2 {
                continue;
            }
            let differences = (0..d.models.len())
                .map(|x| DifferenceRow {
                    model: data.models[d.models[x] as usize].clone(),
                    difference: d.difference[x],
                    lower: finite(d.difference_lower[x]),
                    upper: finite(d.difference_upper[x]),
                    significant: d.difference_lower[x] > 0.0 || d.difference_upper[x] < 0.0,
                })
                .collect();
            divergence.push(DivergenceView {
                a: leaderboards[i].0.clone(),
                b: leaderboards[j].0.clone(),
                models: d.models.len(),
                spearman: finite(d.spearman),
                spearman_lower: finite(d.spearman_lower),
                spearman_upper: finite(d.spearman_upper),
                differences,
            });
        }
    }
    Ok(Report { boards, divergence })
}
