//! M-MSR, Matrix Mean-Subsequence-Reduced (Ma and Olshevsky, UAI 2020).
//!
//! Under the one-coin model, the centred agreement rate of workers `i` and `j`,
//! `C_ij = K/(K−1) · agree_ij − 1/(K−1)`, equals `s_i · s_j` where `s` is each worker's
//! reliability above chance. M-MSR fits that rank-one structure robustly: it alternates
//! `v_j ← trimmed mean over neighbours i of |C_ij| / u_i` and the same for `u`, where the
//! trimmed mean drops the F largest and F smallest values (F = ⌊fewest neighbours / 2⌋ − 1)
//! relative to the current value, so a few adversarial workers cannot move it.
//!
//! The signs of `s` (better or worse than chance) are then set by a sign-consensus on the
//! agreement graph, starting from "everyone is better than chance": each worker takes the sign
//! of `Σ_j C_ij · s_j` until no sign changes, and the whole vector is flipped if most workers
//! ended below chance. (The paper solves the same sign problem with an eigenvector.)
//! Reliabilities are clamped to `[−1/(K−1) + 1/√n, 1 − 1/√n]` and turned into one-coin
//! accuracies `p`; the label posterior is the one-coin posterior with uniform priors, i.e.
//! votes weighted by `ln(p(K−1)/(1−p))`. Worker skill: `p`. The clamp keeps M-MSR cautious
//! on small sets: with n tasks no worker is trusted beyond `1 − 1/√n` above chance.

use std::collections::HashMap;

use super::{Classification, argmax_rows, majority_vote, softmax_in_place};
use crate::answers::Answers;

pub fn mmsr(answers: &Answers, max_iterations: usize, tolerance: f64) -> Classification {
    let k = answers.n_labels();
    let n_workers = answers.n_workers();
    if k < 2 || answers.is_empty() {
        return majority_vote(answers);
    }
    let neighbours = centred_agreement(answers);
    let min_degree = neighbours
        .iter()
        .filter(|n| !n.is_empty())
        .map(Vec::len)
        .min()
        .unwrap_or(0);
    let trim = (min_degree / 2).saturating_sub(1);
    let n_tasks = answers.n_tasks().max(1) as f64;
    let floor_value = 1.0 / n_tasks.sqrt();

    let mut u = vec![1.0; n_workers];
    let mut v = vec![1.0; n_workers];
    let mut iterations = 0;
    let mut converged = false;
    let mut scratch = Vec::new();
    for _ in 0..max_iterations {
        iterations += 1;
        let (u_prev, v_prev) = (u.clone(), v.clone());
        for j in 0..n_workers {
            if let Some(m) = trimmed_mean(&neighbours[j], &u, v[j], trim, floor_value, &mut scratch)
            {
                v[j] = m;
            }
        }
        for i in 0..n_workers {
            if let Some(m) = trimmed_mean(&neighbours[i], &v, u[i], trim, floor_value, &mut scratch)
            {
                u[i] = m;
            }
        }
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let change = dot(&u, &u) * dot(&v, &v) - 2.0 * dot(&u, &u_prev) * dot(&v, &v_prev)
            + dot(&u_prev, &u_prev) * dot(&v_prev, &v_prev);
        if change.max(0.0).sqrt() < tolerance {
            converged = true;
            break;
        }
    }
    let norm = |a: &[f64]| a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = if norm(&v) > 0.0 {
        (norm(&u) / norm(&v)).sqrt()
    } else {
        1.0
    };
    let magnitude: Vec<f64> = u.iter().map(|x| x / scale).collect();
    let signs = sign_consensus(&neighbours, &magnitude);

    let kf = k as f64;
    let accuracy: Vec<f64> = (0..n_workers)
        .map(|w| {
            let s = if neighbours[w].is_empty() {
                0.0
            } else {
                signs[w] * magnitude[w]
            };
            let s = s
                .min(1.0 - floor_value)
                .max(-1.0 / (kf - 1.0) + floor_value);
            s * (kf - 1.0) / kf + 1.0 / kf
        })
        .collect();
    let weight: Vec<f64> = accuracy
        .iter()
        .map(|p| (p * (kf - 1.0) / (1.0 - p)).ln())
        .collect();
    let mut probabilities = vec![0.0; answers.n_tasks() * k];
    let (workers, labels) = (answers.workers(), answers.labels());
    for t in 0..answers.n_tasks() {
        let row = &mut probabilities[t * k..(t + 1) * k];
        for i in answers.task_range(t) {
            row[labels[i] as usize] += weight[workers[i] as usize];
        }
        softmax_in_place(row);
    }
    let labels = argmax_rows(&probabilities, k);
    Classification {
        n_labels: k,
        probabilities,
        labels,
        worker_skill: accuracy,
        confusion: None,
        iterations,
        converged,
    }
}

/// For each worker, the `(other worker, C_ij)` pairs over workers with a task in common.
fn centred_agreement(answers: &Answers) -> Vec<Vec<(u32, f64)>> {
    let k = answers.n_labels() as f64;
    let mut pairs: HashMap<(u32, u32), (u32, u32)> = HashMap::new();
    let (workers, labels) = (answers.workers(), answers.labels());
    for t in 0..answers.n_tasks() {
        let range = answers.task_range(t);
        for a in range.clone() {
            for b in a + 1..range.end {
                if workers[a] == workers[b] {
                    continue;
                }
                let key = (workers[a].min(workers[b]), workers[a].max(workers[b]));
                let entry = pairs.entry(key).or_insert((0, 0));
                entry.0 += u32::from(labels[a] == labels[b]);
                entry.1 += 1;
            }
        }
    }
    let mut neighbours = vec![Vec::new(); answers.n_workers()];
    let mut sorted: Vec<_> = pairs.into_iter().collect();
    sorted.sort_unstable_by_key(|(key, _)| *key);
    for ((i, j), (agree, common)) in sorted {
        let c = k / (k - 1.0) * agree as f64 / common as f64 - 1.0 / (k - 1.0);
        neighbours[i as usize].push((j, c));
        neighbours[j as usize].push((i, c));
    }
    neighbours
}

/// Mean of `|C_ij| / other_i` over the neighbours, dropping up to `trim` values on each side
/// of `current` (the MSR rule); `None` when nothing is left.
fn trimmed_mean(
    neighbours: &[(u32, f64)],
    other: &[f64],
    current: f64,
    trim: usize,
    floor_value: f64,
    scratch: &mut Vec<f64>,
) -> Option<f64> {
    scratch.clear();
    scratch.extend(
        neighbours
            .iter()
            .filter(|(i, _)| other[*i as usize] != 0.0)
            .map(|(i, c)| c.abs() / other[*i as usize]),
    );
    scratch.sort_unstable_by(f64::total_cmp);
    let below = scratch.iter().filter(|&&x| x < current).count();
    let mut lo = 0;
    if below < trim {
        lo = below;
    } else {
        lo += trim;
    }
    let mut hi = scratch.len();
    let above = scratch[lo..].iter().filter(|&&x| x > current).count();
    if above < trim {
        hi -= above;
    } else {
        hi -= trim;
    }
    let kept = &scratch[lo..hi.max(lo)];
    match kept {
        [] => None,
        [only] if *only == 0.0 => Some(floor_value),
        _ => Some(kept.iter().sum::<f64>() / kept.len() as f64),
    }
}

/// Synchronous updates, so the outcome does not depend on how workers are numbered.
fn sign_consensus(neighbours: &[Vec<(u32, f64)>], magnitude: &[f64]) -> Vec<f64> {
    let mut signs = vec![1.0; magnitude.len()];
    for _ in 0..100 {
        let next: Vec<f64> = neighbours
            .iter()
            .map(|list| {
                let pull: f64 = list
                    .iter()
                    .map(|(j, c)| c * magnitude[*j as usize] * signs[*j as usize])
                    .sum();
                if pull < 0.0 { -1.0 } else { 1.0 }
            })
            .collect();
        if next == signs {
            break;
        }
        signs = next;
    }
    if signs.iter().sum::<f64>() < 0.0 {
        signs.iter_mut().for_each(|s| *s = -*s);
    }
    signs
}
