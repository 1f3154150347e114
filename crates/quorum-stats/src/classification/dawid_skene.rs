//! Dawid–Skene (1979) and its one-coin special case, fitted by expectation–maximisation.
//!
//! Both follow crowd-kit's documented procedure so their labels can be compared one for one:
//! start from majority-vote posteriors, alternate M-step (class priors and worker error
//! matrices from the posteriors) and E-step (posteriors from priors and error matrices), and
//! stop when the evidence lower bound per answer improves by less than `tolerance`. Error
//! entries a worker could produce are floored at 1e-10 so a log never sees zero.

use super::{Classification, argmax_rows, majority_vote, softmax_in_place};
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

fn fit(
    answers: &Answers,
    max_iterations: usize,
    tolerance: f64,
    model: ErrorModel,
) -> Classification {
    let k = answers.n_labels();
    let mut probabilities = majority_vote(answers).probabilities;
    let mut state = m_step(answers, &probabilities, model);
    let mut loss = f64::NEG_INFINITY;
    let mut iterations = 0;
    let mut converged = false;
    let mut log_errors = vec![0.0; state.errors.len()];
    for _ in 0..max_iterations {
        iterations += 1;
        e_step(answers, &state, &mut log_errors, &mut probabilities);
        state = m_step(answers, &probabilities, model);
        let new_loss = evidence_lower_bound(answers, &state, &mut log_errors, &probabilities)
            / answers.len().max(1) as f64;
        if new_loss - loss < tolerance {
            converged = true;
            break;
        }
        loss = new_loss;
    }
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

/// Which (worker, observed label) rows exist: only those get the EPS floor and the mass.
fn used_rows(answers: &Answers) -> Vec<bool> {
    let k = answers.n_labels();
    let mut used = vec![false; answers.n_workers() * k];
    for (&w, &l) in answers.workers().iter().zip(answers.labels()) {
        used[w as usize * k + l as usize] = true;
    }
    used
}

fn m_step(answers: &Answers, probabilities: &[f64], model: ErrorModel) -> State {
    let k = answers.n_labels();
    let n_workers = answers.n_workers();
    // Priors: mean posterior over tasks that have answers.
    let mut priors = vec![0.0; k];
    let mut answered = 0usize;
    for t in 0..answers.n_tasks() {
        if !answers.task_range(t).is_empty() {
            answered += 1;
            for (p, q) in priors.iter_mut().zip(&probabilities[t * k..(t + 1) * k]) {
                *p += q;
            }
        }
    }
    for p in &mut priors {
        *p = (*p / answered.max(1) as f64).max(EPS);
    }
    let used = used_rows(answers);
    let mut errors = vec![0.0; n_workers * k * k];
    let mut accuracy = Vec::new();
    let (workers, labels, tasks) = (answers.workers(), answers.labels(), answers.tasks());
    match model {
        ErrorModel::Full => {
            for i in 0..answers.len() {
                let base = (workers[i] as usize * k + labels[i] as usize) * k;
                let t = tasks[i] as usize;
                for truth in 0..k {
                    errors[base + truth] += probabilities[t * k + truth];
                }
            }
            let mut column = vec![0.0; k];
            for w in 0..n_workers {
                column.iter_mut().for_each(|c| *c = 0.0);
                for observed in 0..k {
                    if used[w * k + observed] {
                        let row = &mut errors[(w * k + observed) * k..(w * k + observed + 1) * k];
                        for (truth, e) in row.iter_mut().enumerate() {
                            *e = e.max(EPS);
                            column[truth] += *e;
                        }
                    }
                }
                for observed in 0..k {
                    if used[w * k + observed] {
                        let row = &mut errors[(w * k + observed) * k..(w * k + observed + 1) * k];
                        for (truth, e) in row.iter_mut().enumerate() {
                            *e /= column[truth];
                        }
                    }
                }
            }
        }
        ErrorModel::OneCoin => {
            let mut sum = vec![0.0; n_workers];
            let mut count = vec![0.0; n_workers];
            for i in 0..answers.len() {
                let w = workers[i] as usize;
                sum[w] += probabilities[tasks[i] as usize * k + labels[i] as usize];
                count[w] += 1.0;
            }
            accuracy = sum
                .iter()
                .zip(&count)
                .map(|(s, c)| if *c > 0.0 { s / c } else { 0.0 })
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
                    if used[w * k + observed] {
                        for truth in 0..k {
                            let e = if truth == observed {
                                accuracy[w]
                            } else {
                                wrong_share(accuracy[w])
                            };
                            errors[(w * k + observed) * k + truth] = e.clamp(EPS, 1.0 - EPS);
                        }
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

fn fill_log_errors(state: &State, log_errors: &mut [f64]) {
    for (le, e) in log_errors.iter_mut().zip(&state.errors) {
        // Unused rows are never read; ln(0) = -inf there is harmless.
        *le = e.ln();
    }
}

fn e_step(answers: &Answers, state: &State, log_errors: &mut [f64], probabilities: &mut [f64]) {
    let k = state.k;
    fill_log_errors(state, log_errors);
    let log_priors: Vec<f64> = state.priors.iter().map(|p| p.ln()).collect();
    let (workers, labels) = (answers.workers(), answers.labels());
    for t in 0..answers.n_tasks() {
        let row = &mut probabilities[t * k..(t + 1) * k];
        row.copy_from_slice(&log_priors);
        for i in answers.task_range(t) {
            let base = (workers[i] as usize * k + labels[i] as usize) * k;
            for (r, le) in row.iter_mut().zip(&log_errors[base..base + k]) {
                *r += le;
            }
        }
        softmax_in_place(row);
    }
}

/// crowd-kit's evidence lower bound: expected complete-data log likelihood (the prior term
/// counted once per answer) plus the entropy of the posteriors.
fn evidence_lower_bound(
    answers: &Answers,
    state: &State,
    log_errors: &mut [f64],
    probabilities: &[f64],
) -> f64 {
    let k = state.k;
    fill_log_errors(state, log_errors);
    let log_priors: Vec<f64> = state.priors.iter().map(|p| p.ln()).collect();
    let (workers, labels, tasks) = (answers.workers(), answers.labels(), answers.tasks());
    let mut joint = 0.0;
    for i in 0..answers.len() {
        let base = (workers[i] as usize * k + labels[i] as usize) * k;
        let p = &probabilities[tasks[i] as usize * k..(tasks[i] as usize + 1) * k];
        for truth in 0..k {
            joint += p[truth] * (log_errors[base + truth] + log_priors[truth]);
        }
    }
    let mut entropy = 0.0;
    for t in 0..answers.n_tasks() {
        if answers.task_range(t).is_empty() {
            continue;
        }
        for &p in &probabilities[t * k..(t + 1) * k] {
            let p = p.max(EPS);
            entropy -= p * p.ln();
        }
    }
    joint + entropy
}
