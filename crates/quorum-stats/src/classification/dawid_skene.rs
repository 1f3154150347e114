//! Dawid–Skene (1979) and its one-coin special case, fitted by expectation–maximisation.
//!
//! Both follow crowd-kit's documented procedure so their labels can be compared one for one:
//! start from majority-vote posteriors, alternate M-step (class priors and worker error
//! matrices from the posteriors) and E-step (posteriors from priors and error matrices), and
//! stop when the evidence lower bound per answer improves by less than `tolerance`. Error
//! entries a worker could produce are floored at 1e-10 so a log never sees zero.

use super::{Classification, argmax_rows, majority_vote};
use crate::answers::Answers;

const EPS: f64 = 1e-10;

/// Which error model the M-step fits.
#[derive(Clone, Copy, PartialEq)]
enum ErrorModel {
    /// A full K×K confusion matrix per worker.
    Full,
    /// One accuracy per worker; errors spread evenly over the other K−1 labels.
    OneCoin,
}

/// Full Dawid–Skene. Worker skill: the probability that the worker's answer is correct under
/// the fitted class priors, `Σ_k prior_k · P(answer k | truth k)`. Also returns each worker's
/// confusion matrix.
pub fn dawid_skene(answers: &Answers, max_iterations: usize, tolerance: f64) -> Classification {
    fit(answers, max_iterations, tolerance, ErrorModel::Full)
}

/// One-coin Dawid–Skene: each worker has a single accuracy `s`, the probability of the true
/// label; a wrong answer is any other label with probability `(1 − s)/(K − 1)`. Worker skill: `s`.
pub fn one_coin_dawid_skene(
    answers: &Answers,
    max_iterations: usize,
    tolerance: f64,
) -> Classification {
    fit(answers, max_iterations, tolerance, ErrorModel::OneCoin)
}

struct State {
    k: usize,
    /// Class priors, floored at EPS.
    priors: Vec<f64>,
    /// `errors[(w * K + observed) * K + truth]`.
    errors: Vec<f64>,
    /// One-coin accuracies (only for the one-coin model).
    accuracy: Vec<f64>,
}

/// What the M-step needs from a set of posteriors: for every (worker, observed label) row the
/// summed posterior of each true label, and the summed posterior per class.
struct Sufficient {
    counts: Vec<f64>,
    class_totals: Vec<f64>,
}

impl Sufficient {
    fn new(answers: &Answers) -> Self {
        let k = answers.n_labels();
        Self {
            counts: vec![0.0; answers.n_workers() * k * k],
            class_totals: vec![0.0; k],
        }
    }
}

/// The per-answer indices the passes read: `worker * K + label`, and each worker's answer count.
struct Layout {
    rows: Vec<u32>,
    used: Vec<bool>,
    answers_per_worker: Vec<f64>,
    answered_tasks: usize,
}

impl Layout {
    fn new(answers: &Answers) -> Self {
        let k = answers.n_labels();
        let rows: Vec<u32> = answers
            .workers()
            .iter()
            .zip(answers.labels())
            .map(|(&w, &l)| w * k as u32 + l)
            .collect();
        let mut used = vec![false; answers.n_workers() * k];
        rows.iter().for_each(|&r| used[r as usize] = true);
        let answers_per_worker = answers
            .worker_counts()
            .into_iter()
            .map(|c| c as f64)
            .collect();
        let answered_tasks = (0..answers.n_tasks())
            .filter(|&t| !answers.task_range(t).is_empty())
            .count();
        Self {
            rows,
            used,
            answers_per_worker,
            answered_tasks,
        }
    }
}

fn fit(
    answers: &Answers,
    max_iterations: usize,
    tolerance: f64,
    model: ErrorModel,
) -> Classification {
    let k = answers.n_labels();
    let layout = Layout::new(answers);
    // Iteration i computes p_i = E(state_{i−1}) and state_i = M(p_i); crowd-kit's ELBO_i needs
    // p_i and state_i. One pass over the answers does all of it: while computing p_i for a task
    // it adds p_i to the M-step sums for state_i, and it evaluates ELBO_{i−1}'s joint term from
    // the same log sums. The stopping test for iteration i − 1 therefore happens during
    // iteration i, with p_{i−1} and state_{i−1} kept aside until it passes.
    let mut accepted = majority_vote(answers).probabilities;
    let mut sufficient = Sufficient::new(answers);
    with_label_count!(
        k,
        K,
        accumulate::<K>(answers, &layout, &accepted, &mut sufficient)
    );
    let mut state = m_step(&layout, &sufficient, model, k);
    let mut candidate = vec![0.0; accepted.len()];
    let mut table = vec![0.0; 2 * state.errors.len()];
    let mut accepted_entropy = 0.0;
    let mut loss = f64::NEG_INFINITY;
    let mut iterations = 0;
    let mut converged = false;
    for i in 1..=max_iterations {
        fill_table(&state, &mut table);
        let mut next_sufficient = Sufficient::new(answers);
        let (joint, entropy) = with_label_count!(
            k,
            K,
            pass::<K>(
                answers,
                &layout,
                &state,
                &table,
                &accepted,
                &mut candidate,
                &mut next_sufficient
            )
        );
        if i >= 2 {
            let new_loss = (joint + accepted_entropy) / answers.len().max(1) as f64;
            if new_loss - loss < tolerance {
                // Iteration i − 1 met the stopping rule: its posteriors and parameters stand.
                converged = true;
                break;
            }
            loss = new_loss;
        }
        iterations = i;
        accepted_entropy = entropy;
        std::mem::swap(&mut accepted, &mut candidate);
        state = m_step(&layout, &next_sufficient, model, k);
    }
    let probabilities = accepted;
    let labels = argmax_rows(&probabilities, k);
    let n_workers = answers.n_workers();
    let (worker_skill, confusion) = match model {
        ErrorModel::OneCoin => (state.accuracy.clone(), None),
        ErrorModel::Full => {
            let mut confusion = vec![0.0; n_workers * k * k];
            let mut skill = vec![0.0; n_workers];
            for w in 0..n_workers {
                for observed in 0..k {
                    for truth in 0..k {
                        let e = state.errors[(w * k + observed) * k + truth];
                        confusion[(w * k + truth) * k + observed] = e;
                        if observed == truth {
                            skill[w] += state.priors[truth] * e;
                        }
                    }
                }
            }
            (skill, Some(confusion))
        }
    };
    Classification {
        n_labels: k,
        probabilities,
        labels,
        worker_skill,
        confusion,
        iterations,
        converged,
    }
}

/// Runs `$body` with the const generic `$K` set to `$k` for the common small label counts
/// (so the per-label loops unroll and vectorise) and to 0, meaning "read it at run time",
/// otherwise.
macro_rules! with_label_count {
    ($k:expr, $K:ident, $body:expr) => {
        match $k {
            2 => {
                const $K: usize = 2;
                $body
            }
            3 => {
                const $K: usize = 3;
                $body
            }
            4 => {
                const $K: usize = 4;
                $body
            }
            5 => {
                const $K: usize = 5;
                $body
            }
            6 => {
                const $K: usize = 6;
                $body
            }
            _ => {
                const $K: usize = 0;
                $body
            }
        }
    };
}
use with_label_count;

/// Adds `probabilities` to the M-step sums (used once, for the majority-vote start).
fn accumulate<const K: usize>(
    answers: &Answers,
    layout: &Layout,
    probabilities: &[f64],
    into: &mut Sufficient,
) {
    let k = if K == 0 { answers.n_labels() } else { K };
    for (t, p) in probabilities.chunks_exact(k).enumerate() {
        let range = answers.task_range(t);
        if range.is_empty() {
            continue;
        }
        let p = &p[..k];
        for (total, q) in into.class_totals.iter_mut().zip(p) {
            *total += q;
        }
        for &row in &layout.rows[range] {
            for (c, q) in into.counts[row as usize * k..][..k].iter_mut().zip(p) {
                *c += q;
            }
        }
    }
}

/// The M-step from summed posteriors. Full model: each error column normalised over the rows
/// the worker used, after flooring them at EPS. One-coin: a worker's accuracy is the mean
/// posterior of the labels they gave.
fn m_step(layout: &Layout, sufficient: &Sufficient, model: ErrorModel, k: usize) -> State {
    let n_workers = layout.answers_per_worker.len();
    let priors = sufficient
        .class_totals
        .iter()
        .map(|total| (total / layout.answered_tasks.max(1) as f64).max(EPS))
        .collect();
    let used = &layout.used;
    let mut errors = sufficient.counts.clone();
    let mut accuracy = Vec::new();
    match model {
        ErrorModel::Full => {
            let mut column = vec![0.0; k];
            for w in 0..n_workers {
                column.iter_mut().for_each(|c| *c = 0.0);
                for observed in 0..k {
                    if used[w * k + observed] {
                        let row = &mut errors[(w * k + observed) * k..][..k];
                        for (e, c) in row.iter_mut().zip(column.iter_mut()) {
                            *e = e.max(EPS);
                            *c += *e;
                        }
                    }
                }
                for observed in 0..k {
                    if used[w * k + observed] {
                        let row = &mut errors[(w * k + observed) * k..][..k];
                        for (e, c) in row.iter_mut().zip(&column) {
                            *e /= c;
                        }
                    }
                }
            }
        }
        ErrorModel::OneCoin => {
            accuracy = (0..n_workers)
                .map(|w| {
                    let agreeing: f64 =
                        (0..k).map(|l| sufficient.counts[(w * k + l) * k + l]).sum();
                    let n = layout.answers_per_worker[w];
                    if n > 0.0 { agreeing / n } else { 0.0 }
                })
                .collect();
            let wrong_share = |s: f64| {
                if k > 1 {
                    (1.0 - s) / (k - 1) as f64
                } else {
                    0.0
                }
            };
            for w in 0..n_workers {
                for observed in 0..k {
                    let row = &mut errors[(w * k + observed) * k..][..k];
                    if used[w * k + observed] {
                        for (truth, e) in row.iter_mut().enumerate() {
                            let value = if truth == observed {
                                accuracy[w]
                            } else {
                                wrong_share(accuracy[w])
                            };
                            *e = value.clamp(EPS, 1.0 - EPS);
                        }
                    } else {
                        row.iter_mut().for_each(|e| *e = 0.0);
                    }
                }
            }
        }
    }
    State {
        k,
        priors,
        errors,
        accuracy,
    }
}

/// Interleaves each (worker, observed label) row of the error matrix with its logarithm,
/// `[e_0 … e_{K−1}, ln e_0 … ln e_{K−1}]`, so a pass reads one contiguous block per answer.
fn fill_table(state: &State, table: &mut [f64]) {
    let k = state.k;
    for (block, row) in table
        .chunks_exact_mut(2 * k)
        .zip(state.errors.chunks_exact(k))
    {
        let (values, logs) = block.split_at_mut(k);
        values.copy_from_slice(row);
        for (l, e) in logs.iter_mut().zip(row) {
            // Rows a worker never used are never read; ln(0) = −inf there is harmless.
            *l = e.ln();
        }
    }
}

/// One pass over the answers, task by task:
///
/// * the E-step: posteriors from `state` into `next`, accumulated twice — as a product of
///   probabilities, rescaled before it can underflow, which gives the probabilities without an
///   `exp` per label; and as a sum of logs, which gives exact log-posteriors (one `ln` per task)
///   for the entropy of `next` (posteriors floored at 1e-10 inside the logarithm);
/// * crowd-kit's joint term of the evidence lower bound for the posteriors `previous` under
///   `state`, from the same log sums (the prior counted once per answer);
/// * the sums of the next M-step, from `next`.
///
/// Returns (joint term, entropy).
fn pass<const K: usize>(
    answers: &Answers,
    layout: &Layout,
    state: &State,
    table: &[f64],
    previous: &[f64],
    next: &mut [f64],
    sufficient: &mut Sufficient,
) -> (f64, f64) {
    const RESCALE_BELOW: f64 = 1e-200;
    const RESCALE_BY: f64 = 1e200;
    let k = if K == 0 { state.k } else { K };
    let log_priors: Vec<f64> = state.priors.iter().map(|p| p.ln()).collect();
    let log_floor = EPS.ln();
    let mut joint = 0.0;
    let mut entropy = 0.0;
    let mut logs = vec![0.0; k];
    for ((t, row), old) in next
        .chunks_exact_mut(k)
        .enumerate()
        .zip(previous.chunks_exact(k))
    {
        let range = answers.task_range(t);
        if range.is_empty() {
            row.copy_from_slice(&state.priors);
            continue;
        }
        let extra_priors = (range.len() - 1) as f64;
        let rows = &layout.rows[range];
        let (row, logs) = (&mut row[..k], &mut logs[..k]);
        row.copy_from_slice(&state.priors);
        logs.copy_from_slice(&log_priors);
        let mut rescalings = 0i32;
        for &r in rows {
            let (e, le) = table[r as usize * 2 * k..][..2 * k].split_at(k);
            let mut largest = 0.0f64;
            for j in 0..k {
                row[j] *= e[j];
                logs[j] += le[j];
                largest = largest.max(row[j]);
            }
            if largest < RESCALE_BELOW {
                row.iter_mut().for_each(|x| *x *= RESCALE_BY);
                rescalings += 1;
            }
        }
        // `logs` holds log prior + Σ log errors; the joint term counts the prior once per answer.
        for ((x, lp), p) in logs.iter().zip(&log_priors).zip(old) {
            joint += p * (x + extra_priors * lp);
        }
        let sum: f64 = row.iter().sum();
        // ln p = logs − ln(sum) + ln(scale), where the product was scaled by RESCALE_BY^n.
        let log_normaliser = sum.ln() - f64::from(rescalings) * RESCALE_BY.ln();
        for (x, l) in row.iter_mut().zip(logs.iter()) {
            *x /= sum;
            entropy -= *x * (l - log_normaliser).max(log_floor);
        }
        for (total, q) in sufficient.class_totals.iter_mut().zip(row.iter()) {
            *total += q;
        }
        for &r in rows {
            for (c, q) in sufficient.counts[r as usize * k..][..k]
                .iter_mut()
                .zip(row.iter())
            {
                *c += q;
            }
        }
    }
    (joint, entropy)
}
