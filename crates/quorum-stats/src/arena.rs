//! Arena leaderboards: Bradley–Terry ratings on the Elo scale with bootstrap intervals, the
//! method of Chatbot Arena / LMArena, plus style control, online Elo and the comparison of two
//! boards (how far two rater populations agree on the ranking).
//!
//! Scale: `P(a beats b) = 1 / (1 + 10^((R_b − R_a) / 400))`, ratings centred on a mean of 1000
//! over the rated models (or shifted so that an anchor model has a given rating). Both kinds
//! of tie count as half a win for each side.
//!
//! Speed: battles are tallied per unordered pair of models into three cells (first model
//! wins, second wins, tie). Resampling the battles with replacement is then exactly a
//! multinomial draw over those cells ([`Resampler`]), so a bootstrap round costs a few
//! nanoseconds per cell and a fit over the pairs, whatever the number of battles; each fit starts from the point
//! estimate, and rounds run on every core (each with its own random stream, so the result does
//! not depend on the number of threads).

use std::fmt;

use crate::rng::{Resampler, SplitMix64};

/// Who won a battle between `a` and `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Winner {
    A,
    B,
    Tie,
    /// A tie in which both answers were bad: the same half win for each side.
    BothBad,
}

impl Winner {
    /// The score of side A: 1, 0 or ½.
    pub fn score_a(self) -> f64 {
        match self {
            Winner::A => 1.0,
            Winner::B => 0.0,
            Winner::Tie | Winner::BothBad => 0.5,
        }
    }
}

/// One battle between models `a` and `b` (indices `0..n_models`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Battle {
    pub a: u32,
    pub b: u32,
    pub winner: Winner,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArenaError {
    ModelOutOfRange {
        battle: usize,
        model: u32,
    },
    SelfBattle {
        battle: usize,
        model: u32,
    },
    AnchorOutOfRange(u32),
    /// The anchor model has no battles, so no rating to pin.
    AnchorUnrated(u32),
    FeatureShape {
        expected: usize,
        got: usize,
    },
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArenaError::ModelOutOfRange { battle, model } => {
                write!(f, "battle {battle}: model {model} is out of range")
            }
            ArenaError::SelfBattle { battle, model } => {
                write!(f, "battle {battle}: model {model} battles itself")
            }
            ArenaError::AnchorOutOfRange(model) => {
                write!(f, "anchor model {model} is out of range")
            }
            ArenaError::AnchorUnrated(model) => {
                write!(f, "anchor model {model} has no battles to rate it by")
            }
            ArenaError::FeatureShape { expected, got } => {
                write!(f, "expected {expected} style features per side, got {got}")
            }
        }
    }
}

impl std::error::Error for ArenaError {}

/// How a board is computed.
#[derive(Debug, Clone)]
pub struct ArenaOptions {
    /// Bootstrap rounds (0: no intervals).
    pub rounds: usize,
    pub seed: u64,
    /// Pin this model's rating instead of centring the mean on 1000.
    pub anchor: Option<(u32, f64)>,
    /// Models with fewer battles are provisional: rated, but not ranked with the others.
    pub min_battles: u64,
    /// Worker threads for the bootstrap (0: one per core).
    pub threads: usize,
}

impl Default for ArenaOptions {
    fn default() -> Self {
        Self {
            rounds: 1000,
            seed: 0,
            anchor: None,
            min_battles: 0,
            threads: 0,
        }
    }
}

/// A leaderboard: one entry per model index (models without battles have `NaN` ratings).
#[derive(Debug, Clone)]
pub struct Leaderboard {
    pub ratings: Vec<f64>,
    /// 2.5% and 97.5% percentiles of the bootstrap ratings (`NaN` without rounds).
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    /// Rank (UB): 1 + the number of ranked models whose lower bound is above this model's upper
    /// bound (by point rating without rounds); `None` for provisional and unrated models.
    pub rank: Vec<Option<usize>>,
    pub battles: Vec<u64>,
    pub provisional: Vec<bool>,
    /// Online Elo (K = 4, in the order given), for comparison.
    pub online_elo: Vec<f64>,
    /// Bootstrap ratings, `rounds × models`, row-major.
    pub samples: Vec<f64>,
    pub rounds: usize,
}

impl Leaderboard {
    pub fn n_models(&self) -> usize {
        self.ratings.len()
    }

    /// One bootstrap round's ratings.
    pub fn round(&self, round: usize) -> &[f64] {
        let m = self.n_models();
        &self.samples[round * m..(round + 1) * m]
    }
}

/// The per-pair tallies: for each unordered pair `first < second`, how many battles the first
/// won, the second won, and were tied.
#[derive(Debug, Clone, Default)]
struct Tally {
    pairs: Vec<(u32, u32)>,
    /// `3 × pairs`: first wins, second wins, ties.
    cells: Vec<f64>,
}

impl Tally {
    fn new(n_models: usize, battles: &[Battle]) -> Self {
        let mut slot = std::collections::HashMap::new();
        let mut tally = Tally::default();
        for battle in battles {
            let (first, second, first_won) = if battle.a < battle.b {
                (battle.a, battle.b, battle.winner == Winner::A)
            } else {
                (battle.b, battle.a, battle.winner == Winner::B)
            };
            let key = first as usize * n_models + second as usize;
            let index = *slot.entry(key).or_insert_with(|| {
                tally.pairs.push((first, second));
                tally.cells.extend([0.0; 3]);
                tally.pairs.len() - 1
            });
            let cell = match battle.winner {
                Winner::Tie | Winner::BothBad => 2,
                _ if first_won => 0,
                _ => 1,
            };
            tally.cells[3 * index + cell] += 1.0;
        }
        tally
    }
}

/// A Bradley–Terry problem over pairs: games and the first model's score per pair.
struct Fit<'a> {
    n_models: usize,
    pairs: &'a [(u32, u32)],
    /// Per model: the total score (wins + ½ ties), plus the regulariser's share.
    scores: Vec<f64>,
    games: Vec<f64>,
    played: Vec<bool>,
    /// See [`Fit::connected`].
    connected: bool,
}

/// Each observed pair also plays this many virtual games, tied. It keeps every rating finite
/// (a model that never won, or a group that never lost to the rest, has no maximum-likelihood
/// rating) and moves ratings of real data by well under 0.001 Elo.
const VIRTUAL_TIES: f64 = 1e-6;
/// Natural log-strength to Elo points: 400 / ln 10.
const ELO_PER_NAT: f64 = 400.0 / std::f64::consts::LN_10;

impl<'a> Fit<'a> {
    fn new(n_models: usize, pairs: &'a [(u32, u32)], cells: &[f64]) -> Self {
        let mut scores = vec![0.0; n_models];
        let mut games = Vec::with_capacity(pairs.len());
        let mut played = vec![false; n_models];
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let (won, lost, tied) = (cells[3 * k], cells[3 * k + 1], cells[3 * k + 2]);
            let n = won + lost + tied;
            if n == 0.0 {
                games.push(0.0);
                continue;
            }
            games.push(n + VIRTUAL_TIES);
            scores[i as usize] += won + 0.5 * (tied + VIRTUAL_TIES);
            scores[j as usize] += lost + 0.5 * (tied + VIRTUAL_TIES);
            played[i as usize] = true;
            played[j as usize] = true;
        }
        let connected = connected(n_models, pairs, cells, &played);
        Self {
            n_models,
            pairs,
            scores,
            games,
            played,
            connected,
        }
    }

    /// The iteration cap for a fit asked for `wanted`: a tenth of it on separable data.
    fn iterations(&self, wanted: usize) -> usize {
        if self.connected { wanted } else { wanted / 10 }
    }

    /// Minorisation–maximisation (Hunter 2004) from `strengths` until no strength moves by
    /// more than `tolerance` (relative), then the ratings centred on 1000 over played models.
    fn solve(&self, strengths: &mut [f64], tolerance: f64, max_iterations: usize) -> Vec<f64> {
        let mut denominators = vec![0.0; self.n_models];
        for _ in 0..max_iterations {
            denominators.fill(0.0);
            for (&(i, j), &n) in self.pairs.iter().zip(&self.games) {
                let (i, j) = (i as usize, j as usize);
                let t = n / (strengths[i] + strengths[j]);
                denominators[i] += t;
                denominators[j] += t;
            }
            let mut change: f64 = 0.0;
            let mut log_sum = 0.0;
            let mut played = 0;
            for m in 0..self.n_models {
                if !self.played[m] {
                    continue;
                }
                let next = self.scores[m] / denominators[m];
                change = change.max((next / strengths[m] - 1.0).abs());
                strengths[m] = next;
                log_sum += next.ln();
                played += 1;
            }
            // Keep the geometric mean at 1: the likelihood does not see the scale.
            let scale = (-log_sum / f64::from(played.max(1))).exp();
            for (m, s) in strengths.iter_mut().enumerate() {
                if self.played[m] {
                    *s *= scale;
                }
            }
            if change < tolerance {
                break;
            }
        }
        strengths
            .iter()
            .zip(&self.played)
            .map(|(s, &p)| {
                if p {
                    1000.0 + ELO_PER_NAT * s.ln()
                } else {
                    f64::NAN
                }
            })
            .collect()
    }
}

/// Whether every model can be reached from every other along "beat or tied" edges (Hunter
/// 2004's condition for finite maximum-likelihood strengths). When it fails, some group of
/// models never lost to the rest: the fit only creeps towards infinity, held back by the
/// virtual ties alone, so it is worth only a bounded number of iterations.
fn connected(n_models: usize, pairs: &[(u32, u32)], cells: &[f64], played: &[bool]) -> bool {
    let mut forward = vec![Vec::new(); n_models];
    let mut backward = vec![Vec::new(); n_models];
    for (k, &(i, j)) in pairs.iter().enumerate() {
        let (i, j) = (i as usize, j as usize);
        let (won, lost, tied) = (cells[3 * k], cells[3 * k + 1], cells[3 * k + 2]);
        if won + tied > 0.0 {
            forward[i].push(j);
            backward[j].push(i);
        }
        if lost + tied > 0.0 {
            forward[j].push(i);
            backward[i].push(j);
        }
    }
    let Some(start) = played.iter().position(|&p| p) else {
        return true;
    };
    let reaches_all = |edges: &[Vec<usize>]| {
        let mut seen = vec![false; n_models];
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(m) = stack.pop() {
            for &next in &edges[m] {
                if !seen[next] {
                    seen[next] = true;
                    stack.push(next);
                }
            }
        }
        played.iter().zip(&seen).all(|(&p, &s)| !p || s)
    };
    reaches_all(&forward) && reaches_all(&backward)
}

fn validate(n_models: usize, battles: &[Battle]) -> Result<(), ArenaError> {
    for (index, battle) in battles.iter().enumerate() {
        for model in [battle.a, battle.b] {
            if model as usize >= n_models {
                return Err(ArenaError::ModelOutOfRange {
                    battle: index,
                    model,
                });
            }
        }
        if battle.a == battle.b {
            return Err(ArenaError::SelfBattle {
                battle: index,
                model: battle.a,
            });
        }
    }
    Ok(())
}

/// Shifts ratings so the anchor has its rating (the mean stays 1000 without one).
fn anchor(ratings: &mut [f64], anchor: Option<(u32, f64)>) {
    if let Some((model, rating)) = anchor {
        let shift = rating - ratings[model as usize];
        for r in ratings.iter_mut() {
            *r += shift;
        }
    }
}

/// The number of worker threads to use.
fn threads(requested: usize, rounds: usize) -> usize {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = if requested == 0 { available } else { requested };
    wanted.clamp(1, rounds.max(1))
}

/// Runs `round(r, row)` for every round on `threads` threads; `rows` is `rounds × width`.
fn parallel_rounds<F>(rows: &mut [f64], width: usize, threads: usize, round: F)
where
    F: Fn(usize, &mut [f64]) + Sync,
{
    if width == 0 {
        return;
    }
    let rounds = rows.len() / width;
    let per_thread = rounds.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (chunk_index, chunk) in rows.chunks_mut(per_thread * width).enumerate() {
            let round = &round;
            scope.spawn(move || {
                for (offset, row) in chunk.chunks_mut(width).enumerate() {
                    round(chunk_index * per_thread + offset, row);
                }
            });
        }
    });
}

/// Linear-interpolated quantile of sorted finite values (NumPy's default method).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

/// 2.5% and 97.5% percentiles of each column of `rounds × width` samples, ignoring `NaN`s.
fn intervals(samples: &[f64], width: usize) -> (Vec<f64>, Vec<f64>) {
    let mut lower = vec![f64::NAN; width];
    let mut upper = vec![f64::NAN; width];
    let mut column = Vec::new();
    for m in 0..width {
        column.clear();
        column.extend(
            samples
                .iter()
                .skip(m)
                .step_by(width)
                .copied()
                .filter(|x| x.is_finite()),
        );
        column.sort_unstable_by(f64::total_cmp);
        lower[m] = quantile(&column, 0.025);
        upper[m] = quantile(&column, 0.975);
    }
    (lower, upper)
}

/// Rank (UB) among the ranked models, or competition rank by point rating without intervals.
fn ranks(ratings: &[f64], lower: &[f64], upper: &[f64], ranked: &[bool]) -> Vec<Option<usize>> {
    let with_intervals = upper.iter().zip(ranked).any(|(u, &r)| r && u.is_finite());
    (0..ratings.len())
        .map(|m| {
            if !ranked[m] {
                return None;
            }
            let above = (0..ratings.len())
                .filter(|&o| ranked[o])
                .filter(|&o| {
                    if with_intervals {
                        lower[o] > upper[m]
                    } else {
                        ratings[o] > ratings[m]
                    }
                })
                .count();
            Some(1 + above)
        })
        .collect()
}

/// Online Elo: each battle in order moves both ratings by `k` times the surprise, from 1000.
pub fn online_elo(n_models: usize, battles: &[Battle], k: f64) -> Vec<f64> {
    let mut ratings = vec![1000.0; n_models];
    for battle in battles {
        let (a, b) = (battle.a as usize, battle.b as usize);
        let expected_a = 1.0 / (1.0 + 10f64.powf((ratings[b] - ratings[a]) / 400.0));
        let score_a = battle.winner.score_a();
        ratings[a] += k * (score_a - expected_a);
        ratings[b] -= k * (score_a - expected_a);
    }
    ratings
}

/// Bradley–Terry leaderboard with bootstrap intervals (battles resampled with replacement).
pub fn leaderboard(
    n_models: usize,
    battles: &[Battle],
    options: &ArenaOptions,
) -> Result<Leaderboard, ArenaError> {
    validate(n_models, battles)?;
    let tally = Tally::new(n_models, battles);
    let fit = Fit::new(n_models, &tally.pairs, &tally.cells);
    if let Some((model, _)) = options.anchor {
        if model as usize >= n_models {
            return Err(ArenaError::AnchorOutOfRange(model));
        }
        if !fit.played[model as usize] {
            return Err(ArenaError::AnchorUnrated(model));
        }
    }
    let mut point_strengths = vec![1.0; n_models];
    let mut ratings = fit.solve(&mut point_strengths, 1e-12, fit.iterations(100_000));
    anchor(&mut ratings, options.anchor);

    let mut samples = vec![f64::NAN; options.rounds * n_models];
    let resampler = Resampler::new(&tally.cells.iter().map(|&c| c as u64).collect::<Vec<_>>());
    parallel_rounds(
        &mut samples,
        n_models,
        threads(options.threads, options.rounds),
        |round, row| {
            let mut rng = SplitMix64::stream(options.seed, round as u64);
            let mut counts = vec![0u64; tally.cells.len()];
            resampler.draw(&mut rng, &mut counts);
            let cells: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
            let resampled = Fit::new(n_models, &tally.pairs, &cells);
            let mut strengths = point_strengths.clone();
            let cap = resampled.iterations(10_000);
            let mut round_ratings = resampled.solve(&mut strengths, 1e-7, cap);
            if let Some((model, _)) = options.anchor
                && !resampled.played[model as usize]
            {
                // The anchor drew no battles this round: nothing to pin the round to.
                round_ratings.fill(f64::NAN);
            }
            anchor(&mut round_ratings, options.anchor);
            row.copy_from_slice(&round_ratings);
        },
    );
    let (lower, upper) = intervals(&samples, n_models);

    let mut games = vec![0u64; n_models];
    for battle in battles {
        games[battle.a as usize] += 1;
        games[battle.b as usize] += 1;
    }
    let provisional: Vec<bool> = games.iter().map(|&g| g < options.min_battles).collect();
    let ranked: Vec<bool> = (0..n_models)
        .map(|m| fit.played[m] && !provisional[m])
        .collect();
    Ok(Leaderboard {
        rank: ranks(&ratings, &lower, &upper, &ranked),
        ratings,
        lower,
        upper,
        battles: games,
        provisional,
        online_elo: online_elo(n_models, battles, 4.0),
        samples,
        rounds: options.rounds,
    })
}

/// Per-battle style of both answers: `k` raw counts per side (e.g. words, headers, lists,
/// bold), row-major `battles × k`.
#[derive(Debug, Clone)]
pub struct Style<'a> {
    pub names: &'a [&'a str],
    pub a: &'a [f64],
    pub b: &'a [f64],
}

/// A style-controlled board and the fitted style coefficients (per z-scored covariate).
#[derive(Debug, Clone)]
pub struct StyleBoard {
    pub board: Leaderboard,
    pub coefficients: Vec<f64>,
    pub coefficient_lower: Vec<f64>,
    pub coefficient_upper: Vec<f64>,
}

/// The style covariates: `(a − b) / (a + b + 1)` per feature, z-scored over battles (a feature
/// that never varies gets zeros).
fn style_covariates(style: &Style<'_>, n: usize) -> Vec<f64> {
    let k = style.names.len();
    let mut x: Vec<f64> = style
        .a
        .iter()
        .zip(style.b)
        .map(|(a, b)| (a - b) / (a + b + 1.0))
        .collect();
    for f in 0..k {
        let column = || x.iter().skip(f).step_by(k);
        let mean = column().sum::<f64>() / n as f64;
        let var = column().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let sd = var.sqrt();
        for v in x.iter_mut().skip(f).step_by(k) {
            *v = if sd > 0.0 { (*v - mean) / sd } else { 0.0 };
        }
    }
    x
}

/// L2-regularised logistic regression (penalty `½‖w‖²`, loss weight `c`) on model strengths
/// (columns ±ln 10 for the two sides) and style covariates, as LMArena's style control fits
/// it: each battle counts twice, a tie as one win for each side. `weights` multiplies each
/// battle (bootstrap counts). Newton's method from `w`.
struct StyleFit<'a> {
    n_models: usize,
    battles: &'a [Battle],
    covariates: &'a [f64],
    k: usize,
    c: f64,
}

impl StyleFit<'_> {
    fn solve(&self, weights: &[f64], w: &mut [f64]) {
        let p = self.n_models + self.k;
        let ln10 = std::f64::consts::LN_10;
        let mut gradient = vec![0.0; p];
        let mut hessian = vec![0.0; p * p];
        let mut columns: Vec<(usize, f64)> = Vec::with_capacity(2 + self.k);
        for _ in 0..100 {
            gradient.copy_from_slice(w);
            hessian.fill(0.0);
            for d in 0..p {
                hessian[d * p + d] = 1.0;
            }
            for (index, battle) in self.battles.iter().enumerate() {
                let weight = weights[index];
                if weight == 0.0 {
                    continue;
                }
                columns.clear();
                columns.push((battle.a as usize, ln10));
                columns.push((battle.b as usize, -ln10));
                for f in 0..self.k {
                    columns.push((self.n_models + f, self.covariates[index * self.k + f]));
                }
                let z: f64 = columns.iter().map(|&(d, x)| w[d] * x).sum();
                let prob = 1.0 / (1.0 + (-z).exp());
                // Two rows per battle: y = 1 twice for a win by A, 0 twice for B, one of each
                // for a tie.
                let residual = 2.0 * prob - 2.0 * battle.winner.score_a();
                let curvature = 2.0 * prob * (1.0 - prob);
                let (g, h) = (self.c * weight * residual, self.c * weight * curvature);
                for &(d, x) in &columns {
                    gradient[d] += g * x;
                    for &(e, y) in &columns {
                        hessian[d * p + e] += h * x * y;
                    }
                }
            }
            let step = cholesky_solve(&mut hessian, &gradient, p);
            // Damped Newton: halve the step until the objective does not rise.
            let before = self.objective(weights, w);
            let mut trial = w.to_vec();
            let mut scale = 1.0;
            for _ in 0..30 {
                for ((t, wd), sd) in trial.iter_mut().zip(w.iter()).zip(&step) {
                    *t = wd - scale * sd;
                }
                if self.objective(weights, &trial) <= before {
                    break;
                }
                scale *= 0.5;
            }
            let largest = w
                .iter()
                .zip(&trial)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            w.copy_from_slice(&trial);
            if largest < 1e-10 {
                break;
            }
        }
    }

    /// `½‖w‖² + c · Σ weight · (2·softplus(z) − 2·s_a·z)`: the two rows of each battle.
    fn objective(&self, weights: &[f64], w: &[f64]) -> f64 {
        let ln10 = std::f64::consts::LN_10;
        let mut loss = 0.0;
        for (index, battle) in self.battles.iter().enumerate() {
            let weight = weights[index];
            if weight == 0.0 {
                continue;
            }
            let mut z = ln10 * (w[battle.a as usize] - w[battle.b as usize]);
            for f in 0..self.k {
                z += w[self.n_models + f] * self.covariates[index * self.k + f];
            }
            let softplus = if z > 0.0 {
                z + (-z).exp().ln_1p()
            } else {
                z.exp().ln_1p()
            };
            loss += weight * (2.0 * softplus - 2.0 * battle.winner.score_a() * z);
        }
        0.5 * w.iter().map(|x| x * x).sum::<f64>() + self.c * loss
    }
}

/// Solves `H x = g` for a symmetric positive-definite `p × p` matrix `H` (overwritten by its
/// Cholesky factor).
fn cholesky_solve(h: &mut [f64], g: &[f64], p: usize) -> Vec<f64> {
    for j in 0..p {
        let mut d = h[j * p + j];
        for k in 0..j {
            d -= h[j * p + k] * h[j * p + k];
        }
        let d = d.max(f64::MIN_POSITIVE).sqrt();
        h[j * p + j] = d;
        for i in j + 1..p {
            let mut s = h[i * p + j];
            for k in 0..j {
                s -= h[i * p + k] * h[j * p + k];
            }
            h[i * p + j] = s / d;
        }
    }
    let mut y = g.to_vec();
    for i in 0..p {
        for k in 0..i {
            y[i] -= h[i * p + k] * y[k];
        }
        y[i] /= h[i * p + i];
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            y[i] -= h[k * p + i] * y[k];
        }
        y[i] /= h[i * p + i];
    }
    y
}

/// The style-controlled board: ratings with the effect of answer style (length, markdown)
/// taken out, and how much each style feature sways raters. Bootstrap rounds resample battles.
pub fn style_controlled(
    n_models: usize,
    battles: &[Battle],
    style: &Style<'_>,
    options: &ArenaOptions,
) -> Result<StyleBoard, ArenaError> {
    validate(n_models, battles)?;
    let k = style.names.len();
    for side in [style.a, style.b] {
        if side.len() != battles.len() * k {
            return Err(ArenaError::FeatureShape {
                expected: battles.len() * k,
                got: side.len(),
            });
        }
    }
    let covariates = style_covariates(style, battles.len());
    let fit = StyleFit {
        n_models,
        battles,
        covariates: &covariates,
        k,
        c: 1.0,
    };
    let mut games = vec![0u64; n_models];
    for battle in battles {
        games[battle.a as usize] += 1;
        games[battle.b as usize] += 1;
    }
    let to_ratings = |w: &[f64], present: &[u64]| -> Vec<f64> {
        let mut ratings: Vec<f64> = (0..n_models)
            .map(|m| {
                if present[m] > 0 {
                    1000.0 + 400.0 * w[m]
                } else {
                    f64::NAN
                }
            })
            .collect();
        anchor(&mut ratings, options.anchor);
        ratings
    };
    let mut point = vec![0.0; n_models + k];
    fit.solve(&vec![1.0; battles.len()], &mut point);
    let ratings = to_ratings(&point, &games);

    let width = n_models + k;
    let mut samples = vec![f64::NAN; options.rounds * width];
    parallel_rounds(
        &mut samples,
        width,
        threads(options.threads, options.rounds),
        |round, row| {
            let mut rng = SplitMix64::stream(options.seed, round as u64);
            let mut weights = vec![0.0; battles.len()];
            for _ in 0..battles.len() {
                weights[rng.below(battles.len())] += 1.0;
            }
            let mut present = vec![0u64; n_models];
            for (battle, &weight) in battles.iter().zip(&weights) {
                if weight > 0.0 {
                    present[battle.a as usize] += 1;
                    present[battle.b as usize] += 1;
                }
            }
            let mut w = point.clone();
            fit.solve(&weights, &mut w);
            row[..n_models].copy_from_slice(&to_ratings(&w, &present));
            row[n_models..].copy_from_slice(&w[n_models..]);
        },
    );
    let (lower_all, upper_all) = intervals(&samples, width);
    let mut ratings_samples = Vec::with_capacity(options.rounds * n_models);
    for row in samples.chunks(width) {
        ratings_samples.extend_from_slice(&row[..n_models]);
    }
    let provisional: Vec<bool> = games.iter().map(|&g| g < options.min_battles).collect();
    let ranked: Vec<bool> = (0..n_models)
        .map(|m| games[m] > 0 && !provisional[m])
        .collect();
    let lower = lower_all[..n_models].to_vec();
    let upper = upper_all[..n_models].to_vec();
    Ok(StyleBoard {
        board: Leaderboard {
            rank: ranks(&ratings, &lower, &upper, &ranked),
            ratings,
            lower,
            upper,
            battles: games,
            provisional,
            online_elo: online_elo(n_models, battles, 4.0),
            samples: ratings_samples,
            rounds: options.rounds,
        },
        coefficients: point[n_models..].to_vec(),
        coefficient_lower: lower_all[n_models..].to_vec(),
        coefficient_upper: upper_all[n_models..].to_vec(),
    })
}

/// How two boards (e.g. raters of two locales) agree, over the models ranked on both.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// The models compared (indices into the boards).
    pub models: Vec<u32>,
    /// Spearman's rank correlation of the two boards' ratings, with a bootstrap interval.
    pub spearman: f64,
    pub spearman_lower: f64,
    pub spearman_upper: f64,
    /// Per model (in `models` order): rating on board A minus rating on board B, each board
    /// centred on the compared models, with a bootstrap interval.
    pub difference: Vec<f64>,
    pub difference_lower: Vec<f64>,
    pub difference_upper: Vec<f64>,
}

impl Divergence {
    /// The models whose difference interval excludes zero: where the two populations disagree.
    pub fn significant(&self) -> impl Iterator<Item = (u32, f64)> + '_ {
        (0..self.models.len())
            .filter(|&i| self.difference_lower[i] > 0.0 || self.difference_upper[i] < 0.0)
            .map(|i| (self.models[i], self.difference[i]))
    }
}

/// Average ranks (ties share the mean of their positions).
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&x, &y| values[x].total_cmp(&values[y]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end - 1) as f64 / 2.0 + 1.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation (Pearson's on average ranks); `NaN` when either side is
/// constant.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

/// Compares two boards over the models ranked on both (at least two). Bootstrap round `r` of
/// one board is paired with round `r` of the other (they resample different battles, so the
/// pairs are independent draws).
pub fn divergence(a: &Leaderboard, b: &Leaderboard) -> Divergence {
    let shared = |board: &Leaderboard, m: usize| board.rank.get(m).is_some_and(Option::is_some);
    let models: Vec<u32> = (0..a.n_models().min(b.n_models()))
        .filter(|&m| shared(a, m) && shared(b, m))
        .map(|m| m as u32)
        .collect();
    let pick = |ratings: &[f64]| -> Vec<f64> {
        let values: Vec<f64> = models.iter().map(|&m| ratings[m as usize]).collect();
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        values.into_iter().map(|v| v - mean).collect()
    };
    let compare = |ra: &[f64], rb: &[f64]| -> (f64, Vec<f64>) {
        let (x, y) = (pick(ra), pick(rb));
        let difference = x.iter().zip(&y).map(|(p, q)| p - q).collect();
        (spearman(&x, &y), difference)
    };
    let (rho, difference) = compare(&a.ratings, &b.ratings);
    let rounds = a.rounds.min(b.rounds);
    let mut rhos = Vec::with_capacity(rounds);
    let mut differences = Vec::with_capacity(rounds * models.len());
    for r in 0..rounds {
        let (ra, rb) = (a.round(r), b.round(r));
        if models
            .iter()
            .any(|&m| !ra[m as usize].is_finite() || !rb[m as usize].is_finite())
        {
            continue;
        }
        let (rho, d) = compare(ra, rb);
        if rho.is_finite() {
            rhos.push(rho);
        }
        differences.extend(d);
    }
    rhos.sort_unstable_by(f64::total_cmp);
    let (difference_lower, difference_upper) = intervals(&differences, models.len());
    Divergence {
        spearman: rho,
        spearman_lower: quantile(&rhos, 0.025),
        spearman_upper: quantile(&rhos, 0.975),
        models,
        difference,
        difference_lower,
        difference_upper,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn battles(list: &[(u32, u32, Winner, usize)]) -> Vec<Battle> {
        list.iter()
            .flat_map(|&(a, b, winner, times)| std::iter::repeat_n(Battle { a, b, winner }, times))
            .collect()
    }

    #[test]
    fn two_models_rating_gap_is_the_log_odds() {
        // 3 wins to 1: P = 0.75, so the gap is 400·log10(3) ≈ 190.85 Elo around 1000.
        let b = battles(&[(0, 1, Winner::A, 3), (0, 1, Winner::B, 1)]);
        let board = leaderboard(
            2,
            &b,
            &ArenaOptions {
                rounds: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let gap = 400.0 * 3f64.log10();
        assert!(
            (board.ratings[0] - (1000.0 + gap / 2.0)).abs() < 1e-3,
            "{:?}",
            board.ratings
        );
        assert!((board.ratings[1] - (1000.0 - gap / 2.0)).abs() < 1e-3);
        assert_eq!(board.rank, vec![Some(1), Some(2)]);
        assert!(board.lower[0].is_nan());
    }

    #[test]
    fn ties_are_half_wins_and_sides_do_not_matter() {
        let tied = battles(&[(0, 1, Winner::Tie, 2), (1, 0, Winner::BothBad, 2)]);
        let board = leaderboard(
            2,
            &tied,
            &ArenaOptions {
                rounds: 0,
                ..Default::default()
            },
        )
        .unwrap();
        assert!((board.ratings[0] - 1000.0).abs() < 1e-6);
        let swapped = battles(&[(1, 0, Winner::B, 3), (1, 0, Winner::A, 1)]);
        let direct = battles(&[(0, 1, Winner::A, 3), (0, 1, Winner::B, 1)]);
        let options = ArenaOptions {
            rounds: 0,
            ..Default::default()
        };
        let (x, y) = (
            leaderboard(2, &swapped, &options).unwrap(),
            leaderboard(2, &direct, &options).unwrap(),
        );
        assert!((x.ratings[0] - y.ratings[0]).abs() < 1e-9);
    }

    #[test]
    fn a_model_that_never_wins_gets_a_finite_bottom_rating() {
        let b = battles(&[
            (0, 1, Winner::A, 5),
            (1, 2, Winner::A, 2),
            (1, 2, Winner::B, 2),
        ]);
        let board = leaderboard(
            4,
            &b,
            &ArenaOptions {
                rounds: 20,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(board.ratings[0].is_finite() && board.ratings[0] > board.ratings[1]);
        assert!(board.ratings[3].is_nan(), "model 3 never played");
        assert_eq!(board.rank[3], None);
        assert!(board.lower[1].is_finite());
    }

    #[test]
    fn anchor_pins_a_model_in_every_round() {
        let b = battles(&[
            (0, 1, Winner::A, 30),
            (0, 1, Winner::B, 20),
            (1, 2, Winner::A, 25),
            (1, 2, Winner::B, 25),
        ]);
        let options = ArenaOptions {
            rounds: 50,
            anchor: Some((1, 1200.0)),
            ..Default::default()
        };
        let board = leaderboard(3, &b, &options).unwrap();
        assert!((board.ratings[1] - 1200.0).abs() < 1e-9);
        assert!((board.lower[1] - 1200.0).abs() < 1e-9 && (board.upper[1] - 1200.0).abs() < 1e-9);
        assert!(board.lower[0] < board.ratings[0] && board.ratings[0] < board.upper[0]);
        let bad = ArenaOptions {
            anchor: Some((7, 1.0)),
            ..options
        };
        assert_eq!(
            leaderboard(3, &b, &bad).unwrap_err(),
            ArenaError::AnchorOutOfRange(7)
        );
    }

    #[test]
    fn separable_battles_are_recognised() {
        // cells per pair: (first won, second won, tied)
        let pairs = [(0, 1), (1, 2)];
        let played = [true; 3];
        // 0 beats 1 beats 2: nobody ever beat 0.
        assert!(!connected(
            3,
            &pairs,
            &[2.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            &played
        ));
        // 2 also beat 1 once, and 1 beat 0: a cycle both ways.
        assert!(connected(
            3,
            &pairs,
            &[2.0, 1.0, 0.0, 1.0, 1.0, 0.0],
            &played
        ));
        // A tie links both ways.
        assert!(connected(
            3,
            &pairs,
            &[0.0, 0.0, 1.0, 0.0, 0.0, 3.0],
            &played
        ));
        // An unplayed model does not count.
        assert!(connected(
            3,
            &pairs[..1],
            &[1.0, 1.0, 0.0],
            &[true, true, false]
        ));
    }

    #[test]
    fn bootstrap_does_not_depend_on_threads_and_min_battles_sets_models_apart() {
        let b = battles(&[
            (0, 1, Winner::A, 40),
            (0, 1, Winner::B, 30),
            (1, 2, Winner::A, 20),
            (2, 0, Winner::Tie, 10),
            (3, 0, Winner::A, 2),
        ]);
        let one = ArenaOptions {
            rounds: 64,
            seed: 5,
            threads: 1,
            min_battles: 5,
            ..Default::default()
        };
        let two = ArenaOptions {
            threads: 2,
            ..one.clone()
        };
        let (x, y) = (
            leaderboard(4, &b, &one).unwrap(),
            leaderboard(4, &b, &two).unwrap(),
        );
        assert_eq!(x.samples.len(), y.samples.len());
        assert!(
            x.samples
                .iter()
                .zip(&y.samples)
                .all(|(p, q)| p.to_bits() == q.to_bits())
        );
        assert!(x.provisional[3] && x.rank[3].is_none());
        assert_eq!(x.rank[0], Some(1));
    }

    #[test]
    fn the_style_controlled_bootstrap_does_not_depend_on_threads() {
        let b = battles(&[
            (0, 1, Winner::A, 40),
            (0, 1, Winner::B, 30),
            (1, 2, Winner::A, 20),
            (2, 0, Winner::Tie, 10),
            (2, 1, Winner::B, 12),
        ]);
        // One length covariate per battle and side: the winner of each battle wrote more in
        // most of them, so the coefficient is far from zero.
        let (a, bl): (Vec<f64>, Vec<f64>) = b
            .iter()
            .enumerate()
            .map(|(i, battle)| {
                let long = 300.0 + (i % 7) as f64 * 40.0;
                match battle.winner {
                    Winner::A => (long, 120.0),
                    Winner::B => (120.0, long),
                    _ => (200.0, 200.0),
                }
            })
            .unzip();
        let style = Style {
            names: &["length"],
            a: &a,
            b: &bl,
        };
        let one = ArenaOptions {
            rounds: 48,
            seed: 9,
            threads: 1,
            ..Default::default()
        };
        let two = ArenaOptions {
            threads: 2,
            ..one.clone()
        };
        let three = ArenaOptions {
            threads: 3,
            ..one.clone()
        };
        let x = style_controlled(3, &b, &style, &one).unwrap();
        for other in [&two, &three] {
            let y = style_controlled(3, &b, &style, other).unwrap();
            let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&x.board.samples), bits(&y.board.samples));
            assert_eq!(bits(&x.coefficients), bits(&y.coefficients));
            assert_eq!(bits(&x.coefficient_lower), bits(&y.coefficient_lower));
            assert_eq!(bits(&x.coefficient_upper), bits(&y.coefficient_upper));
        }
        assert!(x.coefficients[0] > 0.1, "{:?}", x.coefficients);
        assert!(x.coefficient_lower[0] < x.coefficient_upper[0]);
    }

    #[test]
    fn rank_ub_counts_only_clearly_better_models() {
        let lower = [10.0, 5.0, 0.0];
        let upper = [20.0, 12.0, 4.0];
        let ranked = [true; 3];
        assert_eq!(
            ranks(&[15.0, 8.0, 2.0], &lower, &upper, &ranked),
            vec![Some(1), Some(1), Some(3)]
        );
    }

    #[test]
    fn online_elo_moves_by_k_times_surprise() {
        let b = battles(&[(0, 1, Winner::A, 1)]);
        let r = online_elo(2, &b, 4.0);
        assert_eq!(r, vec![1002.0, 998.0]);
    }

    #[test]
    fn errors_name_the_battle() {
        let b = [Battle {
            a: 0,
            b: 0,
            winner: Winner::A,
        }];
        let error = leaderboard(2, &b, &ArenaOptions::default()).unwrap_err();
        assert_eq!(error.to_string(), "battle 0: model 0 battles itself");
        let b = [Battle {
            a: 0,
            b: 9,
            winner: Winner::A,
        }];
        assert!(
            leaderboard(2, &b, &ArenaOptions::default())
                .unwrap_err()
                .to_string()
                .contains("model 9")
        );
    }

    #[test]
    fn spearman_handles_ties_and_reversal() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 2.0, 4.0], &[1.0, 2.0, 2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!(spearman(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }
}
