//! KOS (Karger, Oh and Shah, NIPS 2011): belief-propagation-like message passing for binary
//! tasks. Task messages sum the other workers' signed reliabilities; worker messages sum the
//! signed task messages of the worker's other tasks.
//!
//! The paper starts worker messages from N(1, 1); here they start at 1, which makes the first
//! round a majority vote and the result independent of how workers are numbered. Messages are
//! rescaled every round (the labels depend only on signs and ratios), so the iteration never
//! overflows. Stops when the labels have not changed for 5 rounds, or at the cap.
//!
//! KOS has no probabilistic model: the probabilities it reports are the logistic of each task's
//! score divided by the root mean square score. They rank tasks by certainty but are not
//! calibrated. Worker skill: accuracy against the KOS labels.

use super::{Classification, accuracy_against};
use crate::answers::Answers;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KosError {
    #[error("KOS is for binary tasks only, but the answers use {0} labels")]
    NotBinary(usize),
}

const STABLE_ROUNDS: usize = 5;

pub fn kos(answers: &Answers, max_iterations: usize) -> Result<Classification, KosError> {
    let k = answers.n_labels();
    if k > 2 {
        return Err(KosError::NotBinary(k));
    }
    let sign: Vec<f64> = answers
        .labels()
        .iter()
        .map(|&l| if l == 0 { 1.0 } else { -1.0 })
        .collect();
    let (start, positions) = answers.by_worker();
    let mut y = vec![1.0; answers.len()];
    let mut x = vec![0.0; answers.len()];
    let mut previous_y = y.clone();
    let mut scores = task_scores(answers, &sign, &y);
    let mut labels = labels_from(&scores);
    let mut stable = 0;
    let mut iterations = 0;
    let mut converged = false;
    for _ in 0..max_iterations {
        iterations += 1;
        for t in 0..answers.n_tasks() {
            let range = answers.task_range(t);
            let total: f64 = range.clone().map(|i| sign[i] * y[i]).sum();
            for i in range {
                x[i] = total - sign[i] * y[i];
            }
        }
        for w in 0..answers.n_workers() {
            let edges = &positions[start[w]..start[w + 1]];
            let total: f64 = edges
                .iter()
                .map(|&i| sign[i as usize] * x[i as usize])
                .sum();
            for &i in edges {
                y[i as usize] = total - sign[i as usize] * x[i as usize];
            }
        }
        let scale = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if scale < 1e-9 {
            // Every message cancelled out (e.g. each worker has one task): what is left is
            // rounding noise, which rescaling would blow up. Keep the previous round.
            y.copy_from_slice(&previous_y);
            converged = true;
            break;
        }
        y.iter_mut().for_each(|v| *v /= scale);
        previous_y.copy_from_slice(&y);
        scores = task_scores(answers, &sign, &y);
        let new_labels = labels_from(&scores);
        stable = if new_labels == labels { stable + 1 } else { 0 };
        labels = new_labels;
        if stable >= STABLE_ROUNDS {
            converged = true;
            break;
        }
    }
    let rms = (scores.iter().map(|s| s * s).sum::<f64>() / scores.len().max(1) as f64).sqrt();
    let mut probabilities = vec![0.0; answers.n_tasks() * k];
    for (t, &s) in scores.iter().enumerate() {
        let p0 = if rms > 1e-12 {
            1.0 / (1.0 + (-s / rms).exp())
        } else {
            0.5
        };
        probabilities[t * k] = if k == 1 { 1.0 } else { p0 };
        if k == 2 {
            probabilities[t * k + 1] = 1.0 - p0;
        }
    }
    // The labels follow the reported probabilities, so the two can never disagree.
    let labels = super::argmax_rows(&probabilities, k);
    let worker_skill = accuracy_against(answers, &labels);
    Ok(Classification {
        n_labels: k,
        probabilities,
        labels,
        worker_skill,
        confusion: None,
        iterations,
        converged,
    })
}

fn task_scores(answers: &Answers, sign: &[f64], y: &[f64]) -> Vec<f64> {
    (0..answers.n_tasks())
        .map(|t| answers.task_range(t).map(|i| sign[i] * y[i]).sum())
        .collect()
}

fn labels_from(scores: &[f64]) -> Vec<u32> {
    scores
        .iter()
        .map(|&s| if s < 0.0 { 1 } else { 0 })
        .collect()
}
