//! Rankings from pairwise comparisons: Bradley–Terry and noisy Bradley–Terry.
//!
//! Scores are strengths `π` normalised to sum to 1; `P(i beats j) = π_i / (π_i + π_j)`. An item
//! that never won has strength 0 (the maximum-likelihood estimate; it ranks last).

use std::collections::HashMap;

/// One comparison: `worker` compared `left` and `right`, and `left_won` tells the winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    pub worker: u32,
    pub left: u32,
    pub right: u32,
    pub left_won: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Strength of each item, summing to 1.
    pub scores: Vec<f64>,
    /// Competition rank of each item (1 = best; equal scores share a rank).
    pub ranks: Vec<usize>,
    /// Noisy Bradley–Terry only: probability that each worker answers by merit, not by bias.
    pub worker_skill: Option<Vec<f64>>,
    /// Noisy Bradley–Terry only: probability that each worker picks the left item when biased.
    pub worker_left_bias: Option<Vec<f64>>,
    pub iterations: usize,
    pub converged: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairwiseError {
    #[error("comparison {position} refers to item {index}, but there are only {count} items")]
    ItemOutOfRange {
        position: usize,
        index: u32,
        count: usize,
    },
    #[error("comparison {position} refers to worker {index}, but there are only {count} workers")]
    WorkerOutOfRange {
        position: usize,
        index: u32,
        count: usize,
    },
    #[error("comparison {position} compares item {item} with itself")]
    SelfComparison { position: usize, item: u32 },
}

fn validate(
    n_items: usize,
    n_workers: usize,
    comparisons: &[Comparison],
) -> Result<(), PairwiseError> {
    for (position, c) in comparisons.iter().enumerate() {
        for index in [c.left, c.right] {
            if index as usize >= n_items {
                return Err(PairwiseError::ItemOutOfRange {
                    position,
                    index,
                    count: n_items,
                });
            }
        }
        if c.worker as usize >= n_workers {
            return Err(PairwiseError::WorkerOutOfRange {
                position,
                index: c.worker,
                count: n_workers,
            });
        }
        if c.left == c.right {
            return Err(PairwiseError::SelfComparison {
                position,
                item: c.left,
            });
        }
    }
    Ok(())
}

/// Weighted wins and games, aggregated per unordered pair.
struct Games {
    wins: Vec<f64>,
    /// `(i, j, games between them)` with i < j.
    pairs: Vec<(u32, u32, f64)>,
}

/// The unordered pair of each comparison, numbered once so that re-weighting is a flat loop.
struct PairIndex {
    pair_of: Vec<u32>,
    pairs: Vec<(u32, u32)>,
}

impl PairIndex {
    fn new(comparisons: &[Comparison]) -> Self {
        let mut index: HashMap<(u32, u32), u32> = HashMap::new();
        let mut pairs = Vec::new();
        let pair_of = comparisons
            .iter()
            .map(|c| {
                let key = (c.left.min(c.right), c.left.max(c.right));
                *index.entry(key).or_insert_with(|| {
                    pairs.push(key);
                    (pairs.len() - 1) as u32
                })
            })
            .collect();
        Self { pair_of, pairs }
    }

    fn games(
        &self,
        n_items: usize,
        comparisons: &[Comparison],
        weight: impl Fn(usize) -> f64,
    ) -> Games {
        let mut wins = vec![0.0; n_items];
        let mut pairs: Vec<(u32, u32, f64)> =
            self.pairs.iter().map(|&(i, j)| (i, j, 0.0)).collect();
        for (c_index, c) in comparisons.iter().enumerate() {
            let w = weight(c_index);
            wins[if c.left_won { c.left } else { c.right } as usize] += w;
            pairs[self.pair_of[c_index] as usize].2 += w;
        }
        Games { wins, pairs }
    }
}

/// One minorisation–maximisation step (Hunter 2004): `π_i ← W_i / Σ_j n_ij / (π_i + π_j)`,
/// normalised; returns the L1 change.
fn mm_step(games: &Games, strength: &mut [f64], denominator: &mut [f64]) -> f64 {
    denominator.iter_mut().for_each(|d| *d = 0.0);
    for &(i, j, n) in &games.pairs {
        let sum = strength[i as usize] + strength[j as usize];
        if sum > 0.0 {
            denominator[i as usize] += n / sum;
            denominator[j as usize] += n / sum;
        }
    }
    let mut next: Vec<f64> = games
        .wins
        .iter()
        .zip(denominator.iter())
        .map(|(&w, &d)| if d > 0.0 { w / d } else { 0.0 })
        .collect();
    let total: f64 = next.iter().sum();
    if total > 0.0 {
        next.iter_mut().for_each(|x| *x /= total);
    }
    let change = next
        .iter()
        .zip(strength.iter())
        .map(|(a, b)| (a - b).abs())
        .sum();
    strength.copy_from_slice(&next);
    change
}

/// Competition ranks: 1 + the number of items with a strictly higher score.
pub fn competition_ranks(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut ranks = vec![0; scores.len()];
    for (position, &item) in order.iter().enumerate() {
        ranks[item] = if position > 0 && scores[order[position - 1]] == scores[item] {
            ranks[order[position - 1]]
        } else {
            position + 1
        };
    }
    ranks
}

/// Bradley–Terry maximum likelihood by MM, run until the strengths move by less than
/// `tolerance` (L1) or `max_iterations`.
pub fn bradley_terry(
    n_items: usize,
    n_workers: usize,
    comparisons: &[Comparison],
    max_iterations: usize,
    tolerance: f64,
) -> Result<Ranking, PairwiseError> {
    validate(n_items, n_workers, comparisons)?;
    let games = PairIndex::new(comparisons).games(n_items, comparisons, |_| 1.0);
    let mut strength = vec![1.0 / n_items.max(1) as f64; n_items];
    let mut denominator = vec![0.0; n_items];
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iterations {
        iterations += 1;
        if mm_step(&games, &mut strength, &mut denominator) < tolerance {
            converged = true;
            break;
        }
    }
    let ranks = competition_ranks(&strength);
    Ok(Ranking {
        scores: strength,
        ranks,
        worker_skill: None,
        worker_left_bias: None,
        iterations,
        converged,
    })
}

/// Noisy Bradley–Terry (Bugakova et al., 2019): each worker answers by merit with probability
/// `g_w` (Bradley–Terry on the items) and otherwise by a personal bias, picking the left item
/// with probability `b_w`:
/// `P(left wins) = g_w · π_l/(π_l + π_r) + (1 − g_w) · b_w`.
///
/// Fitted by EM: the E-step gives each comparison's probability of having been answered by
/// merit; the M-step updates `g_w` and `b_w` in closed form (with Beta(2, 2) priors, i.e.
/// Laplace smoothing) and the strengths by MM steps on the merit-weighted games. Plain EM converges linearly and slowly here (skills and strengths
/// pull on each other), so the rounds are accelerated by SQUAREM (Varadhan and Roland, 2008),
/// with a fall-back to the plain EM step whenever the extrapolation lowers the likelihood.
/// Starts from `g = 0.9`, `b = 0.5` and uniform strengths; stops when the log likelihood per
/// comparison improves by less than `tolerance`. `max_iterations` counts EM rounds.
pub fn noisy_bradley_terry(
    n_items: usize,
    n_workers: usize,
    comparisons: &[Comparison],
    max_iterations: usize,
    tolerance: f64,
) -> Result<Ranking, PairwiseError> {
    validate(n_items, n_workers, comparisons)?;
    let model = NoisyModel {
        n_items,
        n_workers,
        comparisons,
        pairs: PairIndex::new(comparisons),
    };
    let mut x = model.start();
    let mut previous_ll = f64::NEG_INFINITY;
    let mut max_step: f64 = 4.0;
    let mut rounds = 0;
    let mut converged = false;
    while rounds + 3 <= max_iterations.max(3) {
        let (x1, ll) = model.em_round(&x);
        let (x2, _) = model.em_round(&x1);
        rounds += 2;
        // SQUAREM step length from the first and second differences.
        let r: Vec<f64> = x1.iter().zip(&x).map(|(a, b)| a - b).collect();
        let v: Vec<f64> = x2
            .iter()
            .zip(&x1)
            .zip(&r)
            .map(|((a, b), r)| a - b - r)
            .collect();
        let norm = |u: &[f64]| u.iter().map(|z| z * z).sum::<f64>().sqrt();
        let alpha = if norm(&v) > 0.0 {
            (-norm(&r) / norm(&v)).min(-1.0)
        } else {
            -1.0
        };
        let extrapolated = model.clamp(
            x.iter()
                .zip(&r)
                .zip(&v)
                .map(|((x, r), v)| x - 2.0 * alpha * r + alpha * alpha * v)
                .collect(),
        );
        // One EM round from the extrapolated point; keep it if the extrapolation did not lower
        // the likelihood below the start of this step (EM only raises it further), otherwise
        // fall back to the two plain rounds.
        let (stabilised, extrapolated_ll) = model.em_round(&extrapolated);
        rounds += 1;
        if extrapolated_ll >= ll {
            x = stabilised;
            if alpha <= -max_step {
                max_step *= 4.0;
            }
        } else {
            x = x2;
            max_step = (max_step / 4.0).max(1.0);
        }
        let improvement = (ll - previous_ll) / comparisons.len().max(1) as f64;
        previous_ll = ll;
        if improvement.abs() < tolerance {
            converged = true;
            break;
        }
    }
    let (strength, skill, bias) = model.unpack(&x);
    let ranks = competition_ranks(&strength);
    Ok(Ranking {
        scores: strength,
        ranks,
        worker_skill: Some(skill),
        worker_left_bias: Some(bias),
        iterations: rounds,
        converged,
    })
}

/// Noisy Bradley–Terry's parameters as one unconstrained vector (for the SQUAREM
/// extrapolation): log strengths, then logit skills, then logit biases.
struct NoisyModel<'a> {
    n_items: usize,
    n_workers: usize,
    comparisons: &'a [Comparison],
    pairs: PairIndex,
}

const LOGIT_LIMIT: f64 = 14.0;
const LOG_STRENGTH_FLOOR: f64 = -60.0;
const INNER_MM_STEPS: usize = 5;

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln().clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
}

fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl NoisyModel<'_> {
    fn start(&self) -> Vec<f64> {
        let mut x = vec![0.0; self.n_items];
        x.extend(std::iter::repeat_n(logit(0.9), self.n_workers));
        x.extend(std::iter::repeat_n(0.0, self.n_workers));
        x
    }

    fn clamp(&self, mut x: Vec<f64>) -> Vec<f64> {
        let (items, workers) = x.split_at_mut(self.n_items);
        items
            .iter_mut()
            .for_each(|t| *t = t.max(LOG_STRENGTH_FLOOR));
        workers
            .iter_mut()
            .for_each(|z| *z = z.clamp(-LOGIT_LIMIT, LOGIT_LIMIT));
        x
    }

    /// Strengths (normalised to sum 1), skills and biases.
    fn unpack(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let max = x[..self.n_items]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let mut strength: Vec<f64> = x[..self.n_items]
            .iter()
            .map(|t| {
                if *t <= LOG_STRENGTH_FLOOR {
                    0.0
                } else {
                    (t - max).exp()
                }
            })
            .collect();
        let total: f64 = strength.iter().sum();
        if total > 0.0 {
            strength.iter_mut().for_each(|s| *s /= total);
        }
        let skill = x[self.n_items..self.n_items + self.n_workers]
            .iter()
            .map(|&z| expit(z))
            .collect();
        let bias = x[self.n_items + self.n_workers..]
            .iter()
            .map(|&z| expit(z))
            .collect();
        (strength, skill, bias)
    }

    /// Per comparison: (probability of the observed answer, share of it that is merit).
    fn answer_probability(
        &self,
        c: &Comparison,
        strength: &[f64],
        skill: &[f64],
        bias: &[f64],
    ) -> (f64, f64) {
        let (l, r) = (strength[c.left as usize], strength[c.right as usize]);
        let p_left = if l + r > 0.0 { l / (l + r) } else { 0.5 };
        let p_merit = if c.left_won { p_left } else { 1.0 - p_left };
        let b = bias[c.worker as usize];
        let p_bias = if c.left_won { b } else { 1.0 - b };
        let g = skill[c.worker as usize];
        let total = g * p_merit + (1.0 - g) * p_bias;
        (
            total,
            if total > 0.0 {
                g * p_merit / total
            } else {
                0.0
            },
        )
    }

    /// One EM round: E-step, closed-form skills and biases, MM steps on the strengths. Returns
    /// the new parameters and the log likelihood of the old ones (a by-product of the E-step).
    fn em_round(&self, x: &[f64]) -> (Vec<f64>, f64) {
        const CLAMP: f64 = 1e-6;
        let (mut strength, mut skill, mut bias) = self.unpack(x);
        // One fused pass: E-step, log likelihood, and the M-step's sums (per worker, and the
        // merit-weighted wins and games). The log likelihood multiplies answer probabilities in
        // runs of 32 (each is at least 1e-6, so a run cannot underflow) and takes one logarithm
        // per run.
        let mut log_likelihood = 0.0;
        let mut run = 1.0;
        let mut merit_sum = vec![0.0; self.n_workers];
        let mut count = vec![0.0; self.n_workers];
        let mut left_biased = vec![0.0; self.n_workers];
        let mut biased = vec![0.0; self.n_workers];
        let mut weighted = Games {
            wins: vec![0.0; self.n_items],
            pairs: self.pairs.pairs.iter().map(|&(i, j)| (i, j, 0.0)).collect(),
        };
        for (i, (c, &pair)) in self.comparisons.iter().zip(&self.pairs.pair_of).enumerate() {
            let (total, r) = self.answer_probability(c, &strength, &skill, &bias);
            run *= total.max(1e-300);
            if i % 32 == 31 {
                log_likelihood += run.ln();
                run = 1.0;
            }
            let w = c.worker as usize;
            merit_sum[w] += r;
            count[w] += 1.0;
            biased[w] += 1.0 - r;
            if c.left_won {
                left_biased[w] += 1.0 - r;
            }
            weighted.wins[if c.left_won { c.left } else { c.right } as usize] += r;
            weighted.pairs[pair as usize].2 += r;
        }
        log_likelihood += run.ln();
        for w in 0..self.n_workers {
            // Laplace (Beta(2, 2)) smoothing: a worker who always answers on merit leaves the
            // bias unidentified, and without a prior it would drift along a flat ridge of the
            // likelihood, stalling convergence while changing no score.
            skill[w] = ((merit_sum[w] + 1.0) / (count[w] + 2.0)).clamp(CLAMP, 1.0 - CLAMP);
            bias[w] = ((left_biased[w] + 1.0) / (biased[w] + 2.0)).clamp(CLAMP, 1.0 - CLAMP);
        }
        let mut denominator = vec![0.0; self.n_items];
        // The games are cheap next to the comparisons: several MM steps per round bring the
        // strengths close to this round's optimum.
        for _ in 0..INNER_MM_STEPS {
            if mm_step(&weighted, &mut strength, &mut denominator) < 1e-12 {
                break;
            }
        }
        let mut next: Vec<f64> = strength
            .iter()
            .map(|&s| {
                if s > 0.0 {
                    s.ln().max(LOG_STRENGTH_FLOOR)
                } else {
                    LOG_STRENGTH_FLOOR
                }
            })
            .collect();
        next.extend(skill.iter().map(|&g| logit(g)));
        next.extend(bias.iter().map(|&b| logit(b)));
        (next, log_likelihood)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(worker: u32, left: u32, right: u32, left_won: bool) -> Comparison {
        Comparison {
            worker,
            left,
            right,
            left_won,
        }
    }

    #[test]
    fn bradley_terry_matches_closed_form_for_two_items() {
        // 3 wins to 1: π_0/(π_0+π_1) = 3/4.
        let data = [
            c(0, 0, 1, true),
            c(0, 0, 1, true),
            c(0, 1, 0, false),
            c(0, 1, 0, true),
        ];
        let r = bradley_terry(2, 1, &data, 1000, 1e-12).unwrap();
        assert!((r.scores[0] - 0.75).abs() < 1e-9, "{:?}", r.scores);
        assert_eq!(r.ranks, vec![1, 2]);
    }

    #[test]
    fn competition_ranks_share_ties() {
        assert_eq!(competition_ranks(&[0.2, 0.5, 0.2, 0.1]), vec![2, 1, 2, 4]);
    }

    #[test]
    fn noisy_bradley_terry_discounts_a_left_clicker() {
        // Item 2 > 1 > 0 by honest workers 0 and 1; worker 2 always picks the left item.
        let mut data = Vec::new();
        for round in 0..30 {
            for (a, b) in [(0u32, 1u32), (1, 2), (0, 2)] {
                let (l, r) = if round % 2 == 0 { (a, b) } else { (b, a) };
                for w in 0..2 {
                    data.push(c(w, l, r, l == b));
                }
                data.push(c(2, l, r, true));
            }
        }
        let r = noisy_bradley_terry(3, 3, &data, 500, 1e-10).unwrap();
        assert_eq!(r.ranks, vec![3, 2, 1], "{:?}", r.scores);
        let skill = r.worker_skill.unwrap();
        assert!(skill[2] < 0.5 && skill[0] > 0.5, "{skill:?}");
        assert!(r.worker_left_bias.unwrap()[2] > 0.9);
    }

    #[test]
    fn rejects_self_comparisons_and_bad_indices() {
        assert_eq!(
            bradley_terry(2, 1, &[c(0, 1, 1, true)], 10, 1e-9).unwrap_err(),
            PairwiseError::SelfComparison {
                position: 0,
                item: 1
            }
        );
        assert!(bradley_terry(2, 1, &[c(0, 0, 2, true)], 10, 1e-9).is_err());
    }
}
