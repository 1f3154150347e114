//! Truth inference for single-label answers.
//!
//! Every method returns a [`Classification`]: per task a probability for every label and the
//! most probable label, per worker a skill. Ties in the most probable label always go to the
//! lowest label index; callers that index labels in sorted order (as the CLI does) therefore
//! break ties towards the smallest label name, as crowd-kit does.
//!
//! | method | initialisation | stopping rule | iteration cap |
//! |---|---|---|---|
//! | majority vote | – | – | – |
//! | Wawa | majority vote | – (two passes) | – |
//! | zero-based skill | skill = 1/K + 1e-5 | fixed count, learning rate halved every 20 | 100 |
//! | Dawid–Skene | majority-vote posteriors | ELBO per answer improves by < 1e-5 | 100 |
//! | one-coin Dawid–Skene | majority-vote posteriors | ELBO per answer improves by < 1e-5 | 100 |
//! | GLAD | α = 1, β = e | expected log-posterior per answer improves by < 1e-6 | 100 |
//! | MACE | restart 0 from majority vote, others from seeded random competences | 50 VB iterations per restart | 10 restarts |
//! | KOS | all worker messages 1 | labels unchanged for 5 iterations | 100 |
//! | M-MSR | all ones | change of the rank-one fit < 1e-10 | 1,000 |

mod dawid_skene;
mod glad;
mod kos;
mod mace;
mod majority;
mod mmsr;

pub use dawid_skene::{PassFit, TaskPasses, dawid_skene, dawid_skene_passes, one_coin_dawid_skene};
pub use glad::glad;
pub use kos::{KosError, kos};
pub use mace::mace;
pub use majority::{majority_vote, wawa, weighted_majority_vote, zero_based_skill};
pub use mmsr::mmsr;

use crate::answers::Answers;

/// The result of a classification method.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub n_labels: usize,
    /// Row-major `n_tasks × n_labels`; each row sums to 1.
    pub probabilities: Vec<f64>,
    /// The most probable label of each task (ties to the lowest index).
    pub labels: Vec<u32>,
    /// One number per worker; its meaning depends on the method (see each method's docs), but
    /// higher always means more trustworthy.
    pub worker_skill: Vec<f64>,
    /// Dawid–Skene only: `n_workers × n_labels × n_labels`, entry `[w][true][observed]` is the
    /// probability that worker `w` answers `observed` when the truth is `true`.
    pub confusion: Option<Vec<f64>>,
    /// Iterations run (0 for closed-form methods).
    pub iterations: usize,
    /// Whether the stopping rule was met before the iteration cap.
    pub converged: bool,
}

impl Classification {
    pub fn probabilities_of(&self, task: usize) -> &[f64] {
        &self.probabilities[task * self.n_labels..(task + 1) * self.n_labels]
    }

    /// The probability of the chosen label of `task`.
    pub fn confidence(&self, task: usize) -> f64 {
        self.probabilities_of(task)[self.labels[task] as usize]
    }
}

/// The methods, for callers that choose one at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    MajorityVote,
    Wawa,
    ZeroBasedSkill,
    DawidSkene,
    OneCoinDawidSkene,
    Glad,
    Mace,
    Kos,
    Mmsr,
}

impl Method {
    pub const ALL: [Method; 9] = [
        Method::MajorityVote,
        Method::Wawa,
        Method::ZeroBasedSkill,
        Method::DawidSkene,
        Method::OneCoinDawidSkene,
        Method::Glad,
        Method::Mace,
        Method::Kos,
        Method::Mmsr,
    ];

    /// The method a short name stands for — the one registry the CLI's `--method`, the API's
    /// `method`, the OpenAPI document and evaluation standards are checked against.
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.short_name() == name)
    }

    /// Every short name, for messages: "mv, wawa, …, mmsr".
    pub fn names() -> String {
        Method::ALL.map(Method::short_name).join(", ")
    }

    /// The short name used on the command line.
    pub fn short_name(self) -> &'static str {
        match self {
            Method::MajorityVote => "mv",
            Method::Wawa => "wawa",
            Method::ZeroBasedSkill => "zbs",
            Method::DawidSkene => "ds",
            Method::OneCoinDawidSkene => "onecoin",
            Method::Glad => "glad",
            Method::Mace => "mace",
            Method::Kos => "kos",
            Method::Mmsr => "mmsr",
        }
    }
}

/// The posterior over the labels of one task under the one-coin model: each answer is right
/// with its worker's accuracy and otherwise names any other label with equal chance; uniform
/// prior. `votes` are `(label, accuracy)`; accuracies are kept inside `[0.001, 0.999]` so that
/// one worker can never decide alone.
pub fn one_coin_posterior(votes: &[(u32, f64)], n_labels: usize) -> Vec<f64> {
    if n_labels == 0 {
        return Vec::new();
    }
    let mut log = vec![0.0; n_labels];
    for &(label, accuracy) in votes {
        let s = accuracy.clamp(0.001, 0.999);
        let wrong = ((1.0 - s) / (n_labels.max(2) - 1) as f64).ln();
        for (k, l) in log.iter_mut().enumerate() {
            *l += if k as u32 == label { s.ln() } else { wrong };
        }
    }
    let top = log.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = log.iter().map(|l| (l - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / total).collect()
}

/// Settings shared by the iterative methods; `None` keeps each method's documented default.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Settings {
    pub seed: u64,
    pub max_iterations: Option<usize>,
    pub tolerance: Option<f64>,
    /// Random restarts (MACE).
    pub restarts: Option<usize>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassificationError {
    #[error(transparent)]
    Kos(#[from] KosError),
}

/// Runs `method` with its defaults overridden by `settings`.
pub fn aggregate(
    method: Method,
    answers: &Answers,
    settings: &Settings,
) -> Result<Classification, ClassificationError> {
    let iters = |default: usize| settings.max_iterations.unwrap_or(default);
    let tol = |default: f64| settings.tolerance.unwrap_or(default);
    Ok(match method {
        Method::MajorityVote => majority_vote(answers),
        Method::Wawa => wawa(answers),
        Method::ZeroBasedSkill => zero_based_skill(answers, iters(100)),
        Method::DawidSkene => dawid_skene(answers, iters(100), tol(1e-5)),
        Method::OneCoinDawidSkene => one_coin_dawid_skene(answers, iters(100), tol(1e-5)),
        Method::Glad => glad(answers, iters(100), tol(1e-6)),
        Method::Mace => mace(
            answers,
            settings.restarts.unwrap_or(10),
            iters(50),
            settings.seed,
        ),
        Method::Kos => kos(answers, iters(100))?,
        Method::Mmsr => mmsr(answers, iters(1000), tol(1e-10)),
    })
}

/// Index of the largest value; ties go to the lowest index.
pub fn argmax(values: &[f64]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Turns log-scores into probabilities in place (stable softmax); returns log Σ exp.
pub(crate) fn softmax_in_place(row: &mut [f64]) -> f64 {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        let uniform = 1.0 / row.len() as f64;
        row.iter_mut().for_each(|x| *x = uniform);
        return max;
    }
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
    max + sum.ln()
}

/// The most probable label of each row of a row-major probability matrix.
pub(crate) fn argmax_rows(probabilities: &[f64], n_labels: usize) -> Vec<u32> {
    probabilities.chunks_exact(n_labels).map(argmax).collect()
}

/// Each worker's accuracy against `labels` (1/K for workers with no answers).
pub(crate) fn accuracy_against(answers: &Answers, labels: &[u32]) -> Vec<f64> {
    let mut correct = vec![0.0; answers.n_workers()];
    let mut total = vec![0.0; answers.n_workers()];
    for a in answers.iter() {
        total[a.worker as usize] += 1.0;
        if labels[a.task as usize] == a.label {
            correct[a.worker as usize] += 1.0;
        }
    }
    correct
        .iter()
        .zip(&total)
        .map(|(&c, &n)| {
            if n > 0.0 {
                c / n
            } else {
                1.0 / answers.n_labels() as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_coin_posterior_weighs_answers_by_accuracy() {
        // Two answers of 0.8 for label 0: (0.8²) / (0.8² + 0.2²) with two labels.
        let p = one_coin_posterior(&[(0, 0.8), (0, 0.8)], 2);
        assert!((p[0] - 0.64 / 0.68).abs() < 1e-12, "{p:?}");
        // A 2–1 split between equally accurate workers leaves the single-answer posterior.
        let p = one_coin_posterior(&[(0, 0.8), (0, 0.8), (1, 0.8)], 2);
        assert!((p[0] - 0.8).abs() < 1e-12);
        // An accurate worker outweighs two near-random ones.
        let p = one_coin_posterior(&[(1, 0.95), (0, 0.55), (0, 0.55)], 2);
        assert!(p[1] > p[0]);
        assert!((one_coin_posterior(&[], 3).iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
