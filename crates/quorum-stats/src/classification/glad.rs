//! GLAD (Whitehill, Ruvolo, Wu, Bergsma and Movellan, NIPS 2009): a worker's ability α and a
//! task's inverse difficulty β = e^b jointly set the probability of a correct answer,
//! `P(correct) = σ(α·β)`; a wrong answer picks any other label evenly.
//!
//! Fitted by EM with uniform class priors and the paper's Gaussian priors α ~ N(1, 1),
//! b ~ N(1, 1). The M-step maximises the expected log posterior by alternating Fisher-scoring
//! steps on all α (each α has its own one-dimensional problem given b) and on all b, each step
//! halved until it does not lower the objective; that is the paper's objective with a faster
//! optimiser than its conjugate gradient. Stops when the
//! expected log posterior per answer improves by less than `tolerance`.
//!
//! Worker skill: α.

use super::{Classification, argmax_rows, softmax_in_place};
use crate::answers::Answers;

const M_STEP_ROUNDS: usize = 2;
const MAX_STEP: f64 = 2.0;

/// `ln σ(x)` without overflow.
fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

pub fn glad(answers: &Answers, max_iterations: usize, tolerance: f64) -> Classification {
    let k = answers.n_labels();
    let n_tasks = answers.n_tasks();
    let mut alpha = vec![1.0; answers.n_workers()];
    let mut b = vec![1.0; n_tasks];
    let mut probabilities = vec![1.0 / k as f64; n_tasks * k];
    // Posterior probability that each answer is correct, from the last E-step.
    let mut p_correct = vec![0.0; answers.len()];
    let (by_worker_start, by_worker) = answers.by_worker();
    let log_wrong_share = if k > 1 { ((k - 1) as f64).ln() } else { 0.0 };
    let mut previous = f64::NEG_INFINITY;
    let mut iterations = 0;
    let mut converged = false;
    for _ in 0..max_iterations {
        iterations += 1;
        e_step(
            answers,
            &alpha,
            &b,
            log_wrong_share,
            &mut probabilities,
            &mut p_correct,
        );
        for _ in 0..M_STEP_ROUNDS {
            update_alpha(
                answers,
                &by_worker_start,
                &by_worker,
                &p_correct,
                &mut alpha,
                &b,
                log_wrong_share,
            );
            update_b(answers, &p_correct, &alpha, &mut b, log_wrong_share);
        }
        let q = objective(answers, &p_correct, &alpha, &b, log_wrong_share)
            / answers.len().max(1) as f64;
        if (q - previous).abs() < tolerance {
            converged = true;
            break;
        }
        previous = q;
    }
    e_step(
        answers,
        &alpha,
        &b,
        log_wrong_share,
        &mut probabilities,
        &mut p_correct,
    );
    let labels = argmax_rows(&probabilities, k);
    Classification {
        n_labels: k,
        probabilities,
        labels,
        worker_skill: alpha,
        confusion: None,
        iterations,
        converged,
    }
}

fn e_step(
    answers: &Answers,
    alpha: &[f64],
    b: &[f64],
    log_wrong_share: f64,
    probabilities: &mut [f64],
    p_correct: &mut [f64],
) {
    let k = answers.n_labels();
    let (workers, labels) = (answers.workers(), answers.labels());
    for t in 0..answers.n_tasks() {
        let beta = b[t].exp();
        let row = &mut probabilities[t * k..(t + 1) * k];
        // Every label gets the "wrong" term of every answer, and the observed label swaps that
        // answer's wrong term for its right term: ln σ(x) − (ln σ(−x) − ln(K−1)) = x + ln(K−1).
        // Terms shared by all labels (and the uniform prior) cancel in the softmax.
        row.iter_mut().for_each(|x| *x = 0.0);
        for i in answers.task_range(t) {
            row[labels[i] as usize] += alpha[workers[i] as usize] * beta + log_wrong_share;
        }
        softmax_in_place(row);
        for i in answers.task_range(t) {
            p_correct[i] = row[labels[i] as usize];
        }
    }
}

/// The expected log likelihood of one answer as a function of `x = α·β`:
/// `p ln σ(x) + (1 − p)(ln σ(−x) − ln(K−1))`, using `ln σ(−x) = ln σ(x) − x`.
fn answer_term(p_correct: f64, x: f64, log_wrong_share: f64) -> f64 {
    log_sigmoid(x) - (1.0 - p_correct) * (x + log_wrong_share)
}

/// One safeguarded Fisher-scoring step on a one-dimensional concave-or-not objective: the step
/// is halved until the objective does not decrease, so every M-step is an ascent and the EM
/// path does not depend on the order in which parameters are visited.
fn ascend(
    value: f64,
    gradient: f64,
    information: f64,
    current: f64,
    objective: impl Fn(f64) -> f64,
) -> f64 {
    let mut step = (gradient / information).clamp(-MAX_STEP, MAX_STEP);
    for _ in 0..20 {
        let candidate = value + step;
        if objective(candidate) >= current {
            return candidate;
        }
        step *= 0.5;
    }
    value
}

fn update_alpha(
    answers: &Answers,
    start: &[usize],
    positions: &[u32],
    p_correct: &[f64],
    alpha: &mut [f64],
    b: &[f64],
    log_wrong_share: f64,
) {
    let tasks = answers.tasks();
    let beta: Vec<f64> = b.iter().map(|v| v.exp()).collect();
    for w in 0..alpha.len() {
        let edges = &positions[start[w]..start[w + 1]];
        let a = alpha[w];
        let mut gradient = -(a - 1.0);
        let mut information = 1.0;
        let mut current = -0.5 * (a - 1.0) * (a - 1.0);
        for &i in edges {
            let i = i as usize;
            let bt = beta[tasks[i] as usize];
            let x = a * bt;
            let log_s = log_sigmoid(x);
            let s = log_s.exp();
            gradient += (p_correct[i] - s) * bt;
            information += s * (1.0 - s) * bt * bt;
            current += log_s - (1.0 - p_correct[i]) * (x + log_wrong_share);
        }
        let objective = |a: f64| {
            let mut q = -0.5 * (a - 1.0) * (a - 1.0);
            for &i in edges {
                let i = i as usize;
                q += answer_term(p_correct[i], a * beta[tasks[i] as usize], log_wrong_share);
            }
            q
        };
        alpha[w] = ascend(a, gradient, information, current, objective);
    }
}

fn update_b(
    answers: &Answers,
    p_correct: &[f64],
    alpha: &[f64],
    b: &mut [f64],
    log_wrong_share: f64,
) {
    let workers = answers.workers();
    for t in 0..b.len() {
        let beta = b[t].exp();
        let mut gradient = -(b[t] - 1.0);
        let mut information = 1.0;
        let mut current = -0.5 * (b[t] - 1.0) * (b[t] - 1.0);
        for i in answers.task_range(t) {
            let d = alpha[workers[i] as usize] * beta;
            let log_s = log_sigmoid(d);
            let s = log_s.exp();
            gradient += (p_correct[i] - s) * d;
            information += s * (1.0 - s) * d * d;
            current += log_s - (1.0 - p_correct[i]) * (d + log_wrong_share);
        }
        let objective = |v: f64| {
            let mut q = -0.5 * (v - 1.0) * (v - 1.0);
            let beta = v.exp();
            for i in answers.task_range(t) {
                q += answer_term(
                    p_correct[i],
                    alpha[workers[i] as usize] * beta,
                    log_wrong_share,
                );
            }
            q
        };
        b[t] = ascend(b[t], gradient, information, current, objective);
    }
}

/// Expected log posterior of (α, b) given the answer posteriors (up to constants).
fn objective(
    answers: &Answers,
    p_correct: &[f64],
    alpha: &[f64],
    b: &[f64],
    log_wrong_share: f64,
) -> f64 {
    let (workers, tasks) = (answers.workers(), answers.tasks());
    let mut q = 0.0;
    for i in 0..answers.len() {
        let x = alpha[workers[i] as usize] * b[tasks[i] as usize].exp();
        q += answer_term(p_correct[i], x, log_wrong_share);
    }
    q -= alpha
        .iter()
        .map(|a| 0.5 * (a - 1.0) * (a - 1.0))
        .sum::<f64>();
    q -= b.iter().map(|v| 0.5 * (v - 1.0) * (v - 1.0)).sum::<f64>();
    q
}
