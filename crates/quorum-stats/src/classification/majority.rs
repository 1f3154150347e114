//! Majority vote and the methods built on weighted votes (Wawa, zero-based skill).

use super::{Classification, accuracy_against, argmax_rows};
use crate::answers::Answers;

/// Vote shares per task. Worker skill: accuracy against the majority label.
pub fn majority_vote(answers: &Answers) -> Classification {
    let weights = vec![1.0; answers.n_workers()];
    let mut result = weighted_majority_vote(answers, &weights);
    result.worker_skill = accuracy_against(answers, &result.labels);
    result
}

/// Vote shares weighted by `weights[worker]` (weights must be non-negative). A task whose
/// voters all have weight zero falls back to unweighted shares, so every row is a distribution.
/// The returned `worker_skill` is `weights`.
pub fn weighted_majority_vote(answers: &Answers, weights: &[f64]) -> Classification {
    let k = answers.n_labels();
    let mut probabilities = vec![0.0; answers.n_tasks() * k];
    let (workers, labels) = (answers.workers(), answers.labels());
    for t in 0..answers.n_tasks() {
        let row = &mut probabilities[t * k..(t + 1) * k];
        let range = answers.task_range(t);
        let mut total = 0.0;
        for i in range.clone() {
            let w = weights[workers[i] as usize];
            row[labels[i] as usize] += w;
            total += w;
        }
        if total <= 0.0 {
            row.iter_mut().for_each(|x| *x = 0.0);
            for i in range.clone() {
                row[labels[i] as usize] += 1.0;
            }
            total = range.len() as f64;
        }
        if total > 0.0 {
            row.iter_mut().for_each(|x| *x /= total);
        } else {
            row.iter_mut().for_each(|x| *x = 1.0 / k as f64);
        }
    }
    let labels = argmax_rows(&probabilities, k);
    Classification {
        n_labels: k,
        probabilities,
        labels,
        worker_skill: weights.to_vec(),
        confusion: None,
        iterations: 0,
        converged: true,
    }
}

/// Wawa ("worker agreement with aggregate"): each worker's weight is their accuracy against
/// the majority vote; the answer is the vote weighted by it. Worker skill: that weight.
pub fn wawa(answers: &Answers) -> Classification {
    let mv = majority_vote(answers);
    weighted_majority_vote(answers, &mv.worker_skill)
}

/// Zero-based skill: starts every worker at skill 1/K + 1e-5 and moves each skill towards the
/// worker's accuracy against the current weighted vote, `skill += rate · (accuracy − skill)`,
/// for `iterations` rounds; the rate starts at 1 and halves every 20 rounds.
pub fn zero_based_skill(answers: &Answers, iterations: usize) -> Classification {
    let distinct_labels = {
        let mut seen = vec![false; answers.n_labels()];
        answers
            .labels()
            .iter()
            .for_each(|&l| seen[l as usize] = true);
        seen.iter().filter(|&&s| s).count().max(1)
    };
    let mut skills = vec![1.0 / distinct_labels as f64 + 1e-5; answers.n_workers()];
    let mut rate = 1.0;
    for iteration in 1..=iterations {
        if iteration % 20 == 0 {
            rate *= 0.5;
        }
        let vote = weighted_majority_vote(answers, &skills);
        let accuracy = accuracy_against(answers, &vote.labels);
        for (s, a) in skills.iter_mut().zip(accuracy) {
            *s += rate * (a - *s);
        }
    }
    let mut result = weighted_majority_vote(answers, &skills);
    result.iterations = iterations;
    result
}
