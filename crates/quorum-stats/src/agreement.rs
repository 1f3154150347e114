//! Inter-rater agreement over categorical (or numerically valued) answers.
//!
//! All functions take [`Answers`] whose duplicate policy has already left at most one answer
//! per worker and task (the coefficients are defined for one value per coder and unit).
//! Units with fewer than two answers carry no information about agreement and are ignored.

use std::collections::HashMap;

use crate::answers::Answers;
use crate::rng::SplitMix64;

/// Krippendorff's level of measurement, which sets the distance between two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Values are names: any two different values are at distance 1.
    Nominal,
    /// Values are ranks: the distance grows with how many observed values lie between them.
    Ordinal,
    /// Values are numbers: the distance is the squared difference.
    Interval,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AgreementError {
    #[error("no task has answers from two or more workers, so agreement is undefined")]
    NoPairableUnits,
    #[error(
        "every answer has the same value, so expected disagreement is zero and alpha is undefined"
    )]
    NoVariation,
    #[error("{level:?} alpha needs a number for every label ({given} numbers for {labels} labels)")]
    MissingValues {
        level: Level,
        given: usize,
        labels: usize,
    },
}

/// The per-unit value counts, sparse: `(label, count)` pairs per unit with ≥ 2 answers.
fn pairable_units(answers: &Answers) -> Vec<Vec<(u32, u32)>> {
    let labels = answers.labels();
    let mut units = Vec::new();
    let mut counts: Vec<(u32, u32)> = Vec::new();
    for t in 0..answers.n_tasks() {
        let range = answers.task_range(t);
        if range.len() < 2 {
            continue;
        }
        counts.clear();
        for i in range {
            match counts.iter_mut().find(|(l, _)| *l == labels[i]) {
                Some(entry) => entry.1 += 1,
                None => counts.push((labels[i], 1)),
            }
        }
        units.push(counts.clone());
    }
    units
}

/// Squared distance between every pair of labels for a level, given the label marginals of
/// the coincidence matrix (needed by the ordinal metric).
fn distances(level: Level, values: &[f64], marginals: &[f64]) -> Vec<f64> {
    let k = marginals.len();
    let mut d = vec![0.0; k * k];
    match level {
        Level::Nominal => {
            for c in 0..k {
                for e in 0..k {
                    d[c * k + e] = if c == e { 0.0 } else { 1.0 };
                }
            }
        }
        Level::Interval => {
            for c in 0..k {
                for e in 0..k {
                    d[c * k + e] = (values[c] - values[e]).powi(2);
                }
            }
        }
        Level::Ordinal => {
            // Rank the labels by value; the distance between ranks g ≤ h is
            // (Σ_{g..=h} n − (n_g + n_h)/2)².
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
            let mut prefix = vec![0.0; k + 1];
            for (rank, &label) in order.iter().enumerate() {
                prefix[rank + 1] = prefix[rank] + marginals[label];
            }
            for g in 0..k {
                for h in g..k {
                    let (a, b) = (order[g], order[h]);
                    let between = prefix[h + 1] - prefix[g] - (marginals[a] + marginals[b]) / 2.0;
                    d[a * k + b] = between * between;
                    d[b * k + a] = between * between;
                }
            }
        }
    }
    d
}

fn alpha_of_units(
    units: &[&Vec<(u32, u32)>],
    k: usize,
    level: Level,
    values: &[f64],
) -> Result<f64, AgreementError> {
    let mut observed = vec![0.0; k * k];
    for unit in units {
        let m: u32 = unit.iter().map(|(_, n)| n).sum();
        let scale = 1.0 / (m - 1) as f64;
        for &(c, nc) in unit.iter() {
            for &(e, ne) in unit.iter() {
                let pairs = if c == e { nc * (nc - 1) } else { nc * ne };
                observed[c as usize * k + e as usize] += pairs as f64 * scale;
            }
        }
    }
    alpha_of_coincidences(&observed, k, level, values)
}

/// Krippendorff's alpha from the coincidence matrix `observed` (`k × k`, row-major: each
/// unit's ordered pairs of values, weighted `1/(m_u − 1)`), which sums over units: kept
/// incrementally, it gives alpha without the answers.
pub fn alpha_of_coincidences(
    observed: &[f64],
    k: usize,
    level: Level,
    values: &[f64],
) -> Result<f64, AgreementError> {
    let marginals: Vec<f64> = (0..k)
        .map(|c| observed[c * k..(c + 1) * k].iter().sum())
        .collect();
    let n: f64 = marginals.iter().sum();
    if n == 0.0 {
        return Err(AgreementError::NoPairableUnits);
    }
    let d = distances(level, values, &marginals);
    let observed_disagreement: f64 = observed.iter().zip(&d).map(|(o, d)| o * d).sum();
    let mut expected_disagreement = 0.0;
    for c in 0..k {
        for e in 0..k {
            let pairs = if c == e {
                marginals[c] * (marginals[c] - 1.0)
            } else {
                marginals[c] * marginals[e]
            };
            expected_disagreement += pairs * d[c * k + e];
        }
    }
    expected_disagreement /= n - 1.0;
    if expected_disagreement == 0.0 {
        return Err(AgreementError::NoVariation);
    }
    Ok(1.0 - observed_disagreement / expected_disagreement)
}

fn check_values(level: Level, answers: &Answers, values: &[f64]) -> Result<(), AgreementError> {
    if level != Level::Nominal && values.len() != answers.n_labels() {
        return Err(AgreementError::MissingValues {
            level,
            given: values.len(),
            labels: answers.n_labels(),
        });
    }
    Ok(())
}

/// Krippendorff's alpha. `values[label]` gives each label's number for the ordinal and interval
/// levels (ignored for nominal). Missing answers are allowed.
pub fn krippendorff_alpha(
    answers: &Answers,
    level: Level,
    values: &[f64],
) -> Result<f64, AgreementError> {
    check_values(level, answers, values)?;
    let units = pairable_units(answers);
    let refs: Vec<&Vec<(u32, u32)>> = units.iter().collect();
    if refs.is_empty() {
        return Err(AgreementError::NoPairableUnits);
    }
    alpha_of_units(&refs, answers.n_labels(), level, values)
}

/// A percentile bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

/// Percentile interval of alpha over `rounds` resamples of the units (tasks) with replacement.
/// Resamples where alpha is undefined (no variation) are skipped; `None` if all are.
pub fn krippendorff_alpha_interval(
    answers: &Answers,
    level: Level,
    values: &[f64],
    rounds: usize,
    confidence: f64,
    seed: u64,
) -> Result<Option<Interval>, AgreementError> {
    check_values(level, answers, values)?;
    let units = pairable_units(answers);
    if units.is_empty() {
        return Err(AgreementError::NoPairableUnits);
    }
    let mut rng = SplitMix64::new(seed);
    let mut estimates = Vec::with_capacity(rounds);
    let mut sample: Vec<&Vec<(u32, u32)>> = Vec::with_capacity(units.len());
    for _ in 0..rounds {
        sample.clear();
        sample.extend((0..units.len()).map(|_| &units[rng.below(units.len())]));
        if let Ok(a) = alpha_of_units(&sample, answers.n_labels(), level, values) {
            estimates.push(a);
        }
    }
    Ok(percentile_interval(&mut estimates, confidence))
}

/// The `(1 − confidence)/2` and `(1 + confidence)/2` quantiles (linear interpolation).
pub fn percentile_interval(estimates: &mut [f64], confidence: f64) -> Option<Interval> {
    if estimates.is_empty() {
        return None;
    }
    estimates.sort_unstable_by(f64::total_cmp);
    let q = |p: f64| {
        let position = p * (estimates.len() - 1) as f64;
        let below = position.floor() as usize;
        let above = position.ceil() as usize;
        estimates[below] + (estimates[above] - estimates[below]) * (position - below as f64)
    };
    Some(Interval {
        lower: q((1.0 - confidence) / 2.0),
        upper: q((1.0 + confidence) / 2.0),
    })
}

/// Fleiss' kappa, generalised to a varying number of answers per task: the observed agreement
/// is the mean over tasks of the share of agreeing answer pairs, the expected agreement
/// `Σ_k p_k²` from the overall label shares. Equals Fleiss (1971) when every task has the same
/// number of answers.
pub fn fleiss_kappa(answers: &Answers) -> Result<f64, AgreementError> {
    let units = pairable_units(answers);
    if units.is_empty() {
        return Err(AgreementError::NoPairableUnits);
    }
    let mut shares = vec![0.0; answers.n_labels()];
    let mut total = 0.0;
    for unit in &units {
        for &(l, n) in unit {
            shares[l as usize] += n as f64;
            total += n as f64;
        }
    }
    let expected: f64 = shares.iter().map(|s| (s / total).powi(2)).sum();
    let observed = percent_of_units(&units);
    if expected >= 1.0 {
        return Err(AgreementError::NoVariation);
    }
    Ok((observed - expected) / (1.0 - expected))
}

fn percent_of_units(units: &[Vec<(u32, u32)>]) -> f64 {
    let sum: f64 = units
        .iter()
        .map(|unit| {
            let m: u32 = unit.iter().map(|(_, n)| n).sum();
            let agreeing: u32 = unit.iter().map(|(_, n)| n * (n - 1)).sum();
            agreeing as f64 / (m * (m - 1)) as f64
        })
        .sum();
    sum / units.len() as f64
}

/// Percent agreement: the mean over tasks (with ≥ 2 answers) of the share of answer pairs that
/// agree.
pub fn percent_agreement(answers: &Answers) -> Result<f64, AgreementError> {
    let units = pairable_units(answers);
    if units.is_empty() {
        return Err(AgreementError::NoPairableUnits);
    }
    Ok(percent_of_units(&units))
}

/// Cohen's kappa for one pair of workers over the tasks both answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairAgreement {
    pub worker_a: u32,
    pub worker_b: u32,
    pub common_tasks: usize,
    pub percent: f64,
    /// `None` when the chance agreement is 1 (both always gave the same single label).
    pub kappa: Option<f64>,
}

/// Cohen's kappa from one pair's `k × k` table (row: the first worker's label, column: the
/// second's): the tasks in common, the share they agree on, and kappa (`None` when the chance
/// agreement is 1).
pub fn cohen_of_table(table: &[u64], k: usize) -> (usize, f64, Option<f64>) {
    let n: u64 = table.iter().sum();
    if n == 0 {
        return (0, 0.0, None);
    }
    let total = n as f64;
    let observed: f64 = (0..k).map(|c| table[c * k + c] as f64).sum::<f64>() / total;
    let expected: f64 = (0..k)
        .map(|c| {
            let row: u64 = table[c * k..(c + 1) * k].iter().sum();
            let column: u64 = (0..k).map(|r| table[r * k + c]).sum();
            row as f64 * column as f64 / (total * total)
        })
        .sum();
    let kappa = (expected < 1.0).then(|| (observed - expected) / (1.0 - expected));
    (n as usize, observed, kappa)
}

/// Cohen's kappa for every pair of workers with at least `min_common` tasks in common, sorted
/// by worker pair.
pub fn cohen_kappa_pairs(answers: &Answers, min_common: usize) -> Vec<PairAgreement> {
    let k = answers.n_labels();
    let mut tables: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
    let (workers, labels) = (answers.workers(), answers.labels());
    for t in 0..answers.n_tasks() {
        let range = answers.task_range(t);
        for a in range.clone() {
            for b in a + 1..range.end {
                let (x, y) = if workers[a] < workers[b] {
                    (a, b)
                } else {
                    (b, a)
                };
                if workers[x] == workers[y] {
                    continue;
                }
                let table = tables
                    .entry((workers[x], workers[y]))
                    .or_insert_with(|| vec![0; k * k]);
                table[labels[x] as usize * k + labels[y] as usize] += 1;
            }
        }
    }
    let mut result: Vec<PairAgreement> = tables
        .into_iter()
        .filter_map(|((worker_a, worker_b), table)| {
            let table: Vec<u64> = table.into_iter().map(u64::from).collect();
            let (n, percent, kappa) = cohen_of_table(&table, k);
            (n >= min_common.max(1)).then_some(PairAgreement {
                worker_a,
                worker_b,
                common_tasks: n,
                percent,
                kappa,
            })
        })
        .collect();
    result.sort_by_key(|p| (p.worker_a, p.worker_b));
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::{Answer, DuplicatePolicy};

    /// Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the worked example
    /// with missing data: 4 coders, 12 units, values 1..5. Published alphas: nominal 0.743,
    /// ordinal 0.815, interval 0.849.
    fn krippendorff_example() -> Answers {
        let rows: [[Option<u32>; 12]; 4] = [
            [
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(1),
                Some(4),
                Some(1),
                Some(2),
                None,
                None,
                None,
            ],
            [
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(2),
                Some(4),
                Some(1),
                Some(2),
                Some(5),
                None,
                Some(3),
            ],
            [
                None,
                Some(3),
                Some(3),
                Some(3),
                Some(2),
                Some(3),
                Some(4),
                Some(2),
                Some(2),
                Some(5),
                Some(1),
                None,
            ],
            [
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(4),
                Some(4),
                Some(1),
                Some(2),
                Some(5),
                Some(1),
                None,
            ],
        ];
        let mut data = Vec::new();
        for (worker, row) in rows.iter().enumerate() {
            for (task, value) in row.iter().enumerate() {
                if let Some(v) = value {
                    data.push(Answer {
                        task: task as u32,
                        worker: worker as u32,
                        label: v - 1,
                    });
                }
            }
        }
        Answers::new(12, 4, 5, &data, DuplicatePolicy::KeepFirst).unwrap()
    }

    #[test]
    fn alpha_matches_krippendorffs_worked_example() {
        let answers = krippendorff_example();
        let values = [1.0, 2.0, 3.0, 4.0, 5.0];
        let nominal = krippendorff_alpha(&answers, Level::Nominal, &[]).unwrap();
        let ordinal = krippendorff_alpha(&answers, Level::Ordinal, &values).unwrap();
        let interval = krippendorff_alpha(&answers, Level::Interval, &values).unwrap();
        assert!((nominal - 0.743).abs() < 5e-4, "{nominal}");
        assert!((ordinal - 0.815).abs() < 5e-4, "{ordinal}");
        assert!((interval - 0.849).abs() < 5e-4, "{interval}");
        let interval_ci = krippendorff_alpha_interval(&answers, Level::Nominal, &[], 500, 0.95, 1)
            .unwrap()
            .unwrap();
        assert!(
            interval_ci.lower < nominal && nominal < interval_ci.upper,
            "{interval_ci:?}"
        );
    }

    #[test]
    fn fleiss_matches_the_1971_example_shape_and_cohen_is_symmetric() {
        // Two raters, four items, agreeing on three: p_o = 0.75.
        let data: Vec<Answer> = [
            (0, 0, 0),
            (0, 1, 0),
            (1, 0, 1),
            (1, 1, 1),
            (2, 0, 0),
            (2, 1, 1),
            (3, 0, 1),
            (3, 1, 1),
        ]
        .iter()
        .map(|&(task, worker, label)| Answer {
            task,
            worker,
            label,
        })
        .collect();
        let answers = Answers::new(4, 2, 2, &data, DuplicatePolicy::KeepFirst).unwrap();
        let pairs = cohen_kappa_pairs(&answers, 1);
        assert_eq!(pairs.len(), 1);
        // Marginals: rater 0 = (2, 2), rater 1 = (1, 3): p_e = (2·1 + 2·3)/16 = 0.5.
        assert_eq!(pairs[0].percent, 0.75);
        assert!((pairs[0].kappa.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(percent_agreement(&answers).unwrap(), 0.75);
        // Fleiss: pooled shares (3/8, 5/8): P_e = 34/64; kappa = (0.75 − 0.53125)/(0.46875).
        assert!((fleiss_kappa(&answers).unwrap() - (0.75 - 0.53125) / 0.46875).abs() < 1e-12);
    }

    #[test]
    fn undefined_cases_are_errors() {
        let one = Answers::new(
            1,
            1,
            2,
            &[Answer {
                task: 0,
                worker: 0,
                label: 0,
            }],
            DuplicatePolicy::KeepFirst,
        )
        .unwrap();
        assert_eq!(
            krippendorff_alpha(&one, Level::Nominal, &[]),
            Err(AgreementError::NoPairableUnits)
        );
        let same = Answers::new(
            1,
            2,
            2,
            &[
                Answer {
                    task: 0,
                    worker: 0,
                    label: 1,
                },
                Answer {
                    task: 0,
                    worker: 1,
                    label: 1,
                },
            ],
            DuplicatePolicy::KeepFirst,
        )
        .unwrap();
        assert_eq!(
            krippendorff_alpha(&same, Level::Nominal, &[]),
            Err(AgreementError::NoVariation)
        );
        assert!(matches!(
            krippendorff_alpha(&same, Level::Interval, &[1.0]),
            Err(AgreementError::MissingValues { .. })
        ));
    }
}
