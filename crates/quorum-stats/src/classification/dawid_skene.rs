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
#[derive(Debug, Clone, Copy, PartialEq)]
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

#[derive(Debug)]
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
    fn new(n_workers: usize, k: usize) -> Self {
        Self {
            counts: vec![0.0; n_workers * k * k],
            class_totals: vec![0.0; k],
        }
    }

    /// Adds one task's posterior `p` for its answers' rows.
    #[inline(always)]
    fn add(&mut self, rows: &[u32], p: &[f64]) {
        let k = p.len();
        for (total, q) in self.class_totals.iter_mut().zip(p) {
            *total += q;
        }
        for &row in rows {
            for (c, q) in self.counts[row as usize * k..][..k].iter_mut().zip(p) {
                *c += q;
            }
        }
    }
}

/// What the M-step needs besides the sums: which (worker, observed label) rows occur, each
/// worker's answer count and how many tasks have answers.
struct Counts {
    used: Vec<bool>,
    answers_per_worker: Vec<f64>,
    answered_tasks: usize,
}

impl Counts {
    fn new(n_workers: usize, k: usize) -> Self {
        Self {
            used: vec![false; n_workers * k],
            answers_per_worker: vec![0.0; n_workers],
            answered_tasks: 0,
        }
    }

    /// Counts one task's rows.
    fn add(&mut self, rows: &[u32], k: usize) {
        if rows.is_empty() {
            return;
        }
        self.answered_tasks += 1;
        for &r in rows {
            self.used[r as usize] = true;
            self.answers_per_worker[r as usize / k] += 1.0;
        }
    }
}

/// The per-answer indices the passes read: `worker * K + label`.
struct Layout {
    rows: Vec<u32>,
    counts: Counts,
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
        let mut counts = Counts::new(answers.n_workers(), k);
        for t in 0..answers.n_tasks() {
            counts.add(&rows[answers.task_range(t)], k);
        }
        Self { rows, counts }
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
    let mut sufficient = Sufficient::new(answers.n_workers(), k);
    with_label_count!(
        k,
        K,
        accumulate::<K>(answers, &layout, &accepted, &mut sufficient)
    );
    let mut state = m_step(&layout.counts, &sufficient, model, k);
    let mut candidate = vec![0.0; accepted.len()];
    let mut table = vec![0.0; 2 * state.errors.len()];
    let mut stopping = Stopping::new(answers.len(), tolerance);
    let mut iterations = 0;
    let mut converged = false;
    for i in 1..=max_iterations {
        fill_table(&state, &mut table);
        let mut next_sufficient = Sufficient::new(answers.n_workers(), k);
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
        if stopping.met(i, joint, entropy) {
            // Iteration i − 1 met the stopping rule: its posteriors and parameters stand.
            converged = true;
            break;
        }
        iterations = i;
        std::mem::swap(&mut accepted, &mut candidate);
        state = m_step(&layout.counts, &next_sufficient, model, k);
    }
    let probabilities = accepted;
    let labels = argmax_rows(&probabilities, k);
    let (worker_skill, confusion) = skills(&state, model, answers.n_workers());
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

/// crowd-kit's stopping rule, one for both fits: iteration i − 1 stands when the evidence lower
/// bound per answer, evaluated during iteration i, improved by less than the tolerance.
struct Stopping {
    answers: usize,
    tolerance: f64,
    loss: f64,
    /// The entropy of the posteriors accepted last.
    accepted_entropy: f64,
}

impl Stopping {
    fn new(answers: usize, tolerance: f64) -> Self {
        Self {
            answers,
            tolerance,
            loss: f64::NEG_INFINITY,
            accepted_entropy: 0.0,
        }
    }

    /// Whether iteration `i`'s pass (its joint term, and the entropy of its new posteriors)
    /// shows that iteration i − 1 met the rule; if not, its posteriors become the accepted ones.
    fn met(&mut self, i: usize, joint: f64, entropy: f64) -> bool {
        if i >= 2 {
            let loss = (joint + self.accepted_entropy) / self.answers.max(1) as f64;
            if loss - self.loss < self.tolerance {
                return true;
            }
            self.loss = loss;
        }
        self.accepted_entropy = entropy;
        false
    }
}

/// Each worker's skill under `state` and, for the full model, the confusion matrices
/// `[w][truth][observed]`.
fn skills(state: &State, model: ErrorModel, n_workers: usize) -> (Vec<f64>, Option<Vec<f64>>) {
    let k = state.k;
    match model {
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
        into.add(&layout.rows[range], &p[..k]);
    }
}

/// The M-step from summed posteriors. Full model: each error column normalised over the rows
/// the worker used, after flooring them at EPS. One-coin: a worker's accuracy is the mean
/// posterior of the labels they gave.
fn m_step(layout: &Counts, sufficient: &Sufficient, model: ErrorModel, k: usize) -> State {
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
    let k = if K == 0 { state.k } else { K };
    let log_priors: Vec<f64> = state.priors.iter().map(|p| p.ln()).collect();
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
        let rows = &layout.rows[range];
        let (row, logs) = (&mut row[..k], &mut logs[..k]);
        let (sum, log_normaliser) = unnormalised::<K>(rows, state, &log_priors, table, row, logs);
        add_joint_term(&mut joint, rows, old, logs, &log_priors);
        normalise(row, logs, sum, log_normaliser, &mut entropy);
        sufficient.add(rows, row);
    }
    (joint, entropy)
}

/// One task's E-step under `state`, left unnormalised: `row` gets prior × Π errors (rescaled
/// before it can underflow) and `logs` log prior + Σ log errors. Returns the sum of `row` and
/// the log of the normaliser that turns `row` into probabilities.
#[inline(always)]
fn unnormalised<const K: usize>(
    rows: &[u32],
    state: &State,
    log_priors: &[f64],
    table: &[f64],
    row: &mut [f64],
    logs: &mut [f64],
) -> (f64, f64) {
    const RESCALE_BELOW: f64 = 1e-200;
    const RESCALE_BY: f64 = 1e200;
    let k = if K == 0 { state.k } else { K };
    let (row, logs) = (&mut row[..k], &mut logs[..k]);
    row.copy_from_slice(&state.priors);
    logs.copy_from_slice(log_priors);
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
    let sum: f64 = row.iter().sum();
    // ln p = logs − ln(sum) + ln(scale), where the product was scaled by RESCALE_BY^n.
    (sum, sum.ln() - f64::from(rescalings) * RESCALE_BY.ln())
}

/// Adds crowd-kit's joint term of the evidence lower bound for one task to `joint`: the
/// posteriors `old` against `logs` (log prior + Σ log errors), the prior counted once per
/// answer.
#[inline(always)]
fn add_joint_term(joint: &mut f64, rows: &[u32], old: &[f64], logs: &[f64], log_priors: &[f64]) {
    let extra_priors = (rows.len() - 1) as f64;
    for ((x, lp), p) in logs.iter().zip(log_priors).zip(old) {
        *joint += p * (x + extra_priors * lp);
    }
}

/// Divides `row` by `sum` and takes the result's entropy off `entropy`'s running sum, from the
/// exact log-posteriors (`logs` − `log_normaliser`, floored at 1e-10).
#[inline(always)]
fn normalise(row: &mut [f64], logs: &[f64], sum: f64, log_normaliser: f64, entropy: &mut f64) {
    let log_floor = EPS.ln();
    for (x, l) in row.iter_mut().zip(logs) {
        *x /= sum;
        *entropy -= *x * (l - log_normaliser).max(log_floor);
    }
}

/// Tasks that can be read again and again, always in the same order, each as its answers'
/// `worker * K + label` rows: the input of [`dawid_skene_passes`], for answers too many to hold.
pub trait TaskPasses {
    type Error;
    /// Calls `each` with every task's rows, in the same order on every call.
    fn pass(&mut self, each: &mut dyn FnMut(&[u32])) -> Result<(), Self::Error>;
}

impl TaskPasses for &Answers {
    type Error = std::convert::Infallible;
    fn pass(&mut self, each: &mut dyn FnMut(&[u32])) -> Result<(), Self::Error> {
        let k = self.n_labels() as u32;
        let mut rows = Vec::new();
        for t in 0..self.n_tasks() {
            rows.clear();
            for i in self.task_range(t) {
                rows.push(self.workers()[i] * k + self.labels()[i]);
            }
            each(&rows);
        }
        Ok(())
    }
}

/// A Dawid–Skene fit made by passes over tasks that are not held in memory: it keeps only the
/// parameters (K×K per worker), and gives each task's posterior when the task is read again.
/// Its posteriors, labels and skills are those of [`dawid_skene`] / [`one_coin_dawid_skene`]
/// on the same tasks in the same order, to the bit.
#[derive(Debug)]
pub struct PassFit {
    model: ErrorModel,
    /// Answers per worker (and so the number of workers).
    answers_per_worker: Vec<f64>,
    /// The parameters the accepted posteriors come from (`None`: majority vote).
    accepted_from: Option<Prepared>,
    /// The fitted parameters.
    state: State,
    pub iterations: usize,
    pub converged: bool,
}

impl PassFit {
    /// One task's posterior (`rows` as [`TaskPasses`] gives them) into `out` (K values).
    pub fn posterior(&self, rows: &[u32], out: &mut [f64]) {
        let k = self.state.k;
        match &self.accepted_from {
            None => vote_shares(rows, k, out),
            Some((state, table, log_priors)) => {
                if rows.is_empty() {
                    out.copy_from_slice(&state.priors);
                    return;
                }
                let mut logs = vec![0.0; k];
                let (sum, log_normaliser) =
                    unnormalised::<0>(rows, state, log_priors, table, out, &mut logs);
                normalise(out, &logs, sum, log_normaliser, &mut 0.0);
            }
        }
    }

    /// Each worker's skill, as the in-memory fit reports it.
    pub fn worker_skill(&self) -> Vec<f64> {
        skills(&self.state, self.model, self.answers_per_worker.len()).0
    }

    /// The full model's confusion matrices, `[w][truth][observed]` (`None` for one-coin).
    pub fn confusion(&self) -> Option<Vec<f64>> {
        skills(&self.state, self.model, self.answers_per_worker.len()).1
    }

    /// How many answers each worker gave.
    pub fn worker_answers(&self) -> &[f64] {
        &self.answers_per_worker
    }
}

/// Majority vote's posterior of one task: each label's share of the votes (uniform without).
fn vote_shares(rows: &[u32], k: usize, out: &mut [f64]) {
    out.iter_mut().for_each(|x| *x = 0.0);
    if rows.is_empty() {
        out.iter_mut().for_each(|x| *x = 1.0 / k as f64);
        return;
    }
    for &r in rows {
        out[r as usize % k] += 1.0;
    }
    let total = rows.len() as f64;
    out.iter_mut().for_each(|x| *x /= total);
}

/// [`dawid_skene`] (or, with `one_coin`, [`one_coin_dawid_skene`]) by passes over `tasks`: one
/// to count, then one per iteration, each computing every task's previous and next posterior
/// afresh instead of keeping them.
pub fn dawid_skene_passes<P: TaskPasses>(
    tasks: &mut P,
    n_workers: usize,
    n_labels: usize,
    max_iterations: usize,
    tolerance: f64,
    one_coin: bool,
) -> Result<PassFit, P::Error> {
    let k = n_labels;
    let model = if one_coin {
        ErrorModel::OneCoin
    } else {
        ErrorModel::Full
    };
    let mut counts = Counts::new(n_workers, k);
    let mut sufficient = Sufficient::new(n_workers, k);
    let mut answers = 0usize;
    let mut p = vec![0.0; k];
    tasks.pass(&mut |rows| {
        counts.add(rows, k);
        answers += rows.len();
        if !rows.is_empty() {
            vote_shares(rows, k, &mut p);
            sufficient.add(rows, &p);
        }
    })?;
    let mut state = m_step(&counts, &sufficient, model, k);
    let mut accepted_from: Option<Prepared> = None;
    let mut stopping = Stopping::new(answers, tolerance);
    let (mut iterations, mut converged) = (0, false);
    for i in 1..=max_iterations {
        let mut table = vec![0.0; 2 * state.errors.len()];
        fill_table(&state, &mut table);
        let log_priors: Vec<f64> = state.priors.iter().map(|p| p.ln()).collect();
        let (next, joint, entropy) = with_label_count!(
            k,
            K,
            iterate::<K, P>(
                tasks,
                n_workers,
                &state,
                &table,
                &log_priors,
                accepted_from.as_ref()
            )
        )?;
        if stopping.met(i, joint, entropy) {
            converged = true;
            break;
        }
        iterations = i;
        let fitted = m_step(&counts, &next, model, k);
        accepted_from = Some((std::mem::replace(&mut state, fitted), table, log_priors));
    }
    Ok(PassFit {
        model,
        answers_per_worker: counts.answers_per_worker,
        accepted_from,
        state,
        iterations,
        converged,
    })
}

/// Parameters with their error table and log priors, as a pass reads them.
type Prepared = (State, Vec<f64>, Vec<f64>);

/// One iteration of [`dawid_skene_passes`]: every task's previous posterior (from `accepted`,
/// or majority vote) and next one (from `state`); returns the next M-step's sums, the joint
/// term and the entropy, as [`pass`] does.
fn iterate<const K: usize, P: TaskPasses>(
    tasks: &mut P,
    n_workers: usize,
    state: &State,
    table: &[f64],
    log_priors: &[f64],
    accepted: Option<&Prepared>,
) -> Result<(Sufficient, f64, f64), P::Error> {
    let k = if K == 0 { state.k } else { K };
    let mut next = Sufficient::new(n_workers, k);
    let (mut joint, mut entropy) = (0.0, 0.0);
    let (mut old, mut row) = (vec![0.0; k], vec![0.0; k]);
    let (mut scratch, mut logs) = (vec![0.0; k], vec![0.0; k]);
    tasks.pass(&mut |rows| {
        if rows.is_empty() {
            return;
        }
        match accepted {
            None => vote_shares(rows, k, &mut old),
            Some((from, from_table, from_logs)) => {
                let (sum, log_normaliser) =
                    unnormalised::<K>(rows, from, from_logs, from_table, &mut old, &mut scratch);
                normalise(&mut old, &scratch, sum, log_normaliser, &mut 0.0);
            }
        }
        let (sum, log_normaliser) =
            unnormalised::<K>(rows, state, log_priors, table, &mut row, &mut logs);
        add_joint_term(&mut joint, rows, &old, &logs, log_priors);
        normalise(&mut row, &logs, sum, log_normaliser, &mut entropy);
        next.add(rows, &row);
    })?;
    Ok((next, joint, entropy))
}
