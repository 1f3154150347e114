//! Seeded synthetic crowds with known truth, for benchmarks and recovery tests.
//!
//! Classification: every task has a true label drawn from a (Dirichlet) class prior; workers
//! are confusion matrices with Dirichlet rows concentrated on the diagonal, except for a share
//! of spammers who answer uniformly at random; worker activity is heavy-tailed (Pareto
//! weights), as in real crowds where a few workers do most of the work.
//!
//! Pairwise: items have Gaussian log-strengths; honest workers answer by Bradley–Terry, noisy
//! workers by a coin biased towards the left item.

use crate::answers::Answer;
use crate::pairwise::Comparison;
use crate::rng::SplitMix64;

#[derive(Debug, Clone, PartialEq)]
pub struct CrowdSpec {
    pub tasks: usize,
    pub answers_per_task: usize,
    pub workers: usize,
    pub classes: usize,
    /// Share of workers who answer uniformly at random.
    pub spammer_share: f64,
    /// Dirichlet concentration on the diagonal of honest workers' confusion rows (1 elsewhere).
    pub diagonal_concentration: f64,
    /// Pareto shape of worker activity (smaller is more skewed).
    pub activity_shape: f64,
    pub seed: u64,
}

impl Default for CrowdSpec {
    fn default() -> Self {
        Self {
            tasks: 1000,
            answers_per_task: 5,
            workers: 100,
            classes: 5,
            spammer_share: 0.1,
            diagonal_concentration: 8.0,
            activity_shape: 1.5,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Crowd {
    pub answers: Vec<Answer>,
    pub truth: Vec<u32>,
}

/// Generates a crowd; each task gets `min(answers_per_task, workers)` answers from distinct
/// workers.
pub fn crowd(spec: &CrowdSpec) -> Crowd {
    let mut rng = SplitMix64::new(spec.seed);
    let k = spec.classes.max(1);
    let prior = rng.dirichlet(&vec![4.0; k]);
    // Confusion rows, `k × k` per worker; spammers get uniform rows.
    let mut confusion = Vec::with_capacity(spec.workers * k * k);
    for _ in 0..spec.workers {
        let spammer = rng.next_f64() < spec.spammer_share;
        for truth in 0..k {
            if spammer {
                confusion.extend(std::iter::repeat_n(1.0 / k as f64, k));
            } else {
                let alpha: Vec<f64> = (0..k)
                    .map(|j| {
                        if j == truth {
                            spec.diagonal_concentration
                        } else {
                            1.0
                        }
                    })
                    .collect();
                confusion.extend(rng.dirichlet(&alpha));
            }
        }
    }
    // Cumulative Pareto activity weights for weighted sampling.
    let mut cumulative = Vec::with_capacity(spec.workers);
    let mut total = 0.0;
    for _ in 0..spec.workers {
        total += (1.0 - rng.next_f64()).powf(-1.0 / spec.activity_shape);
        cumulative.push(total);
    }
    let per_task = spec.answers_per_task.min(spec.workers);
    let mut answers = Vec::with_capacity(spec.tasks * per_task);
    let mut truth = Vec::with_capacity(spec.tasks);
    let mut chosen: Vec<u32> = Vec::with_capacity(per_task);
    for t in 0..spec.tasks {
        let label = sample(&prior, &mut rng);
        truth.push(label as u32);
        chosen.clear();
        while chosen.len() < per_task {
            let x = rng.next_f64() * total;
            let w = cumulative
                .partition_point(|&c| c <= x)
                .min(spec.workers - 1) as u32;
            if !chosen.contains(&w) {
                chosen.push(w);
            }
        }
        for &w in &chosen {
            let row = &confusion[(w as usize * k + label) * k..(w as usize * k + label + 1) * k];
            answers.push(Answer {
                task: t as u32,
                worker: w,
                label: sample(row, &mut rng) as u32,
            });
        }
    }
    Crowd { answers, truth }
}

fn sample(distribution: &[f64], rng: &mut SplitMix64) -> usize {
    let mut x = rng.next_f64();
    for (i, &p) in distribution.iter().enumerate() {
        if x < p {
            return i;
        }
        x -= p;
    }
    distribution.len() - 1
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonSpec {
    pub items: usize,
    pub comparisons: usize,
    pub workers: usize,
    /// Share of workers who answer by a left-leaning coin instead of by merit.
    pub noisy_share: f64,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct Tournament {
    pub comparisons: Vec<Comparison>,
    /// True log-strength of each item.
    pub strength: Vec<f64>,
}

pub fn tournament(spec: &ComparisonSpec) -> Tournament {
    let mut rng = SplitMix64::new(spec.seed);
    let strength: Vec<f64> = (0..spec.items).map(|_| rng.normal()).collect();
    let noisy: Vec<bool> = (0..spec.workers)
        .map(|_| rng.next_f64() < spec.noisy_share)
        .collect();
    let mut comparisons = Vec::with_capacity(spec.comparisons);
    while comparisons.len() < spec.comparisons && spec.items > 1 {
        let left = rng.below(spec.items) as u32;
        let right = rng.below(spec.items) as u32;
        if left == right {
            continue;
        }
        let worker = rng.below(spec.workers.max(1)) as u32;
        let p_left = if noisy[worker as usize] {
            0.8
        } else {
            1.0 / (1.0 + (strength[right as usize] - strength[left as usize]).exp())
        };
        comparisons.push(Comparison {
            worker,
            left,
            right,
            left_won: rng.next_f64() < p_left,
        });
    }
    Tournament {
        comparisons,
        strength,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArenaSpec {
    pub models: usize,
    pub battles: usize,
    /// Share of battles that end in a tie, whatever the ratings (half of them "both bad").
    pub tie_share: f64,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct SyntheticArena {
    pub battles: Vec<crate::arena::Battle>,
    /// True ratings on the Elo scale, centred on 1000.
    pub ratings: Vec<f64>,
}

/// Battles between uniformly drawn pairs of models whose true ratings are normal with a
/// standard deviation of 100 Elo; the winner of a battle that is not a tie follows
/// `P(a wins) = 1 / (1 + 10^((R_b − R_a) / 400))`.
pub fn arena(spec: &ArenaSpec) -> SyntheticArena {
    use crate::arena::{Battle, Winner};
    let mut rng = SplitMix64::new(spec.seed);
    let mut ratings: Vec<f64> = (0..spec.models).map(|_| 100.0 * rng.normal()).collect();
    let mean = ratings.iter().sum::<f64>() / spec.models.max(1) as f64;
    for r in &mut ratings {
        *r += 1000.0 - mean;
    }
    let mut battles = Vec::with_capacity(spec.battles);
    while battles.len() < spec.battles && spec.models > 1 {
        let a = rng.below(spec.models);
        let b = rng.below(spec.models);
        if a == b {
            continue;
        }
        let winner = if rng.next_f64() < spec.tie_share {
            if rng.next_f64() < 0.5 {
                Winner::Tie
            } else {
                Winner::BothBad
            }
        } else if rng.next_f64() < 1.0 / (1.0 + 10f64.powf((ratings[b] - ratings[a]) / 400.0)) {
            Winner::A
        } else {
            Winner::B
        };
        battles.push(Battle {
            a: a as u32,
            b: b as u32,
            winner,
        });
    }
    SyntheticArena { battles, ratings }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowds_are_reproducible_and_shaped_as_asked() {
        let spec = CrowdSpec {
            tasks: 200,
            workers: 30,
            seed: 3,
            ..CrowdSpec::default()
        };
        let a = crowd(&spec);
        assert_eq!(a.answers.len(), 200 * 5);
        assert_eq!(a.answers, crowd(&spec).answers);
        // Distinct workers per task.
        for chunk in a.answers.chunks(5) {
            let mut w: Vec<u32> = chunk.iter().map(|x| x.worker).collect();
            w.sort_unstable();
            w.dedup();
            assert_eq!(w.len(), 5);
        }
        let t = tournament(&ComparisonSpec {
            items: 10,
            comparisons: 500,
            workers: 5,
            noisy_share: 0.2,
            seed: 1,
        });
        assert_eq!(t.comparisons.len(), 500);
        assert!(t.comparisons.iter().all(|c| c.left != c.right));
    }
}
