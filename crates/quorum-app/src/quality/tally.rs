//! A project's tally: its answers folded into counts as they arrive (see `quorum_store::Tallies`),
//! from which the dashboard and the agreement report are read without reading every response.
//!
//! Everything kept is a sum over items of what each item's answers contribute, so a fold takes
//! an item's contribution before its new answers out and puts the one after them in: rater
//! activity, responses per hour, times on item (histograms), and per question Krippendorff's
//! coincidences, the pairs of answers within and across locales and Cohen's tables per pair of
//! raters. Counts are integers, so any order of folds gives the same tally exactly. Items are
//! dealt into [`BLOCKS`] blocks by id; alpha's bootstrap interval resamples blocks (with one
//! item per block, as in a small project, that is resampling items).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use quorum_core::schema::{QuestionKind, Schema};
use quorum_stats::agreement::{self, Level};
use quorum_stats::rng::SplitMix64;
use quorum_store::{TallyItem, TallyResponse};

use super::agreement::{GroupAgreement, QuestionAgreement, RaterPair};
use super::category;
use crate::AppError;

/// Items are dealt into this many blocks by id for the bootstrap.
pub const BLOCKS: i64 = 64;
/// Time-on-item buckets per doubling (each bucket ≈ 9% wide).
const STEPS: f64 = 8.0;
const HOUR_MS: i64 = 3_600_000;
/// Rater pairs need this many items in common for Cohen's kappa.
const MIN_COMMON: usize = 5;

/// Integer counts by key; a count that returns to zero is dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    from = "Vec<(K, i64)>",
    into = "Vec<(K, i64)>",
    bound = "K: Serialize + DeserializeOwned + Eq + Hash + Clone + Ord"
)]
struct Counts<K: Eq + Hash + Clone>(HashMap<K, i64>);

impl<K: Eq + Hash + Clone> Default for Counts<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Eq + Hash + Clone> From<Vec<(K, i64)>> for Counts<K> {
    fn from(entries: Vec<(K, i64)>) -> Self {
        Self(entries.into_iter().collect())
    }
}

impl<K: Eq + Hash + Clone + Ord> From<Counts<K>> for Vec<(K, i64)> {
    fn from(counts: Counts<K>) -> Self {
        let mut entries: Vec<(K, i64)> = counts.0.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries
    }
}

impl<K: Eq + Hash + Clone> Counts<K> {
    fn add(&mut self, key: K, n: i64) {
        let count = self.0.entry(key.clone()).or_default();
        *count += n;
        if *count == 0 {
            self.0.remove(&key);
        }
    }
}

/// One rater's activity in the project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RaterTally {
    pub responses: i64,
    pub last_active: i64,
    /// Time-on-item histogram (bucket → answers).
    times: BTreeMap<i32, i64>,
}

impl RaterTally {
    /// The median time on item, to a bucket's width (≈ 9%).
    pub fn median_time_ms(&self) -> Option<i64> {
        median_of(&self.times)
    }
}

/// Coincidences: (group, block, answers in the unit, value, value) → ordered pairs.
type Coincidences = Counts<(u32, u32, u32, u32, u32)>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct QuestionTally {
    /// Each value seen, in order of first sight (indices below).
    labels: Vec<String>,
    /// Kept answers per rater (the last of each rater on each item).
    answers: Counts<i64>,
    /// Group 0 is every rater; group g + 1 the raters of locale group g.
    coincidences: Coincidences,
    /// Units (items with two or more kept answers) by their number of answers, every rater.
    units: Counts<u32>,
    /// (the two raters share a locale group, they agree) → unordered pairs of answers.
    pairs: Counts<(bool, bool)>,
    /// (rater a, rater b, a's value, b's value) → items, a < b: Cohen's tables.
    tables: Counts<(i64, i64, u32, u32)>,
}

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub raters: BTreeMap<i64, RaterTally>,
    /// Responses per hour (start of the hour in Unix ms).
    pub hours: BTreeMap<i64, i64>,
    times: BTreeMap<i32, i64>,
    /// Locale groups by index, and each rater's group (their first locale when first tallied).
    groups: Vec<String>,
    group_of: BTreeMap<i64, u32>,
    questions: BTreeMap<String, QuestionTally>,
}

fn bucket(ms: i64) -> i32 {
    ((ms.max(0) as f64 + 1.0).log2() * STEPS).floor() as i32
}

/// A bucket's geometric middle, in ms.
fn bucket_ms(bucket: i32) -> i64 {
    ((f64::from(bucket) + 0.5) / STEPS).exp2().round() as i64 - 1
}

fn median_of(histogram: &BTreeMap<i32, i64>) -> Option<i64> {
    let total: i64 = histogram.values().sum();
    if total == 0 {
        return None;
    }
    // The upper median, like the sort-based median it replaces.
    let mut seen = 0;
    for (&b, &n) in histogram {
        seen += n;
        if seen > total / 2 {
            return Some(bucket_ms(b));
        }
    }
    None
}

fn level_of(kind: &QuestionKind) -> Option<Level> {
    match kind {
        QuestionKind::Label { .. } | QuestionKind::Pairwise { .. } => Some(Level::Nominal),
        QuestionKind::Rating { .. } => Some(Level::Interval),
        _ => None,
    }
}

impl Tally {
    /// A saved tally, or an empty one.
    pub fn parse(data: Option<&str>) -> Result<Self, AppError> {
        match data {
            None => Ok(Self::default()),
            Some(text) => serde_json::from_str(text).map_err(|e| AppError::Internal(Box::new(e))),
        }
    }

    pub fn to_data(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether the rater already has a locale group.
    pub fn grouped(&self, user_id: i64) -> bool {
        self.group_of.contains_key(&user_id)
    }

    /// Puts a rater in a locale group for good.
    pub fn set_group(&mut self, user_id: i64, group: &str) {
        let index = match self.groups.iter().position(|g| g == group) {
            Some(i) => i,
            None => {
                self.groups.push(group.to_string());
                self.groups.len() - 1
            }
        };
        self.group_of.entry(user_id).or_insert(index as u32);
    }

    /// Folds an item's queued responses in (every rater must have a group).
    pub fn fold(&mut self, schema: &Schema, item: &TallyItem) {
        let queued: HashSet<i64> = item.queued.iter().copied().collect();
        for r in item.responses.iter().filter(|r| queued.contains(&r.id)) {
            let rater = self.raters.entry(r.user_id).or_default();
            rater.responses += 1;
            rater.last_active = rater.last_active.max(r.created_at);
            *rater.times.entry(bucket(r.time_spent_ms)).or_default() += 1;
            *self
                .hours
                .entry(r.created_at / HOUR_MS * HOUR_MS)
                .or_default() += 1;
            *self.times.entry(bucket(r.time_spent_ms)).or_default() += 1;
        }
        let before: Vec<&TallyResponse> = item
            .responses
            .iter()
            .filter(|r| !queued.contains(&r.id))
            .collect();
        let after: Vec<&TallyResponse> = item.responses.iter().collect();
        for question in &schema.questions {
            if level_of(&question.kind).is_none() {
                continue;
            }
            self.unit(&question.name, &question.kind, item.item_id, &before, -1);
            self.unit(&question.name, &question.kind, item.item_id, &after, 1);
        }
    }

    /// Adds (`sign` 1) or takes out (−1) what one item's answers contribute to a question.
    fn unit(
        &mut self,
        name: &str,
        kind: &QuestionKind,
        item_id: i64,
        responses: &[&TallyResponse],
        sign: i64,
    ) {
        // The last answer of each rater, as Answers' KeepLast policy keeps it.
        let mut last: BTreeMap<i64, String> = BTreeMap::new();
        for r in responses {
            if let Some(label) = r.answers.get(name).and_then(|v| category(kind, v)) {
                last.insert(r.user_id, label);
            }
        }
        if last.is_empty() {
            return;
        }
        let group_of = &self.group_of;
        let q = self.questions.entry(name.to_string()).or_default();
        let answers: Vec<(i64, u32, u32)> = last
            .into_iter()
            .map(|(user, label)| {
                let index = match q.labels.iter().position(|l| *l == label) {
                    Some(i) => i,
                    None => {
                        q.labels.push(label);
                        q.labels.len() - 1
                    }
                };
                (
                    user,
                    group_of.get(&user).copied().unwrap_or(0),
                    index as u32,
                )
            })
            .collect();
        let block = item_id.rem_euclid(BLOCKS) as u32;
        for &(user, _, _) in &answers {
            q.answers.add(user, sign);
        }
        let values: Vec<u32> = answers.iter().map(|a| a.2).collect();
        add_unit(&mut q.coincidences, 0, block, &values, sign);
        if values.len() >= 2 {
            q.units.add(values.len() as u32, sign);
        }
        let groups: BTreeSet<u32> = answers.iter().map(|a| a.1).collect();
        for group in groups {
            let subset: Vec<u32> = answers
                .iter()
                .filter(|a| a.1 == group)
                .map(|a| a.2)
                .collect();
            add_unit(&mut q.coincidences, group + 1, block, &subset, sign);
        }
        for (i, a) in answers.iter().enumerate() {
            for b in &answers[i + 1..] {
                q.pairs.add((a.1 == b.1, a.2 == b.2), sign);
                q.tables.add((a.0, b.0, a.2, b.2), sign);
            }
        }
    }

    /// Every response's time on item, as `(bucket's middle in ms, answers)`, shortest first.
    pub fn time_histogram(&self) -> Vec<(i64, i64)> {
        self.times
            .iter()
            .map(|(&b, &n)| (bucket_ms(b), n))
            .collect()
    }

    /// Agreement per question, overall and per rater locale (the report `agreement_of` makes
    /// from every response), with `name_of` naming raters.
    pub fn agreement(
        &self,
        schema: &Schema,
        name_of: &HashMap<i64, String>,
    ) -> Vec<QuestionAgreement> {
        let mut reports = Vec::new();
        for question in &schema.questions {
            let Some(level) = level_of(&question.kind) else {
                continue;
            };
            let Some(q) = self.questions.get(&question.name) else {
                continue;
            };
            if q.answers.0.is_empty() {
                continue;
            }
            let k = q.labels.len();
            let values: Vec<f64> = q.labels.iter().map(|l| l.parse().unwrap_or(0.0)).collect();
            // Observed coincidences per group and block.
            let mut observed: BTreeMap<u32, BTreeMap<u32, Vec<f64>>> = BTreeMap::new();
            for (&(group, block, m, c, e), &n) in &q.coincidences.0 {
                let cells = observed
                    .entry(group)
                    .or_default()
                    .entry(block)
                    .or_insert_with(|| vec![0.0; k * k]);
                cells[c as usize * k + e as usize] += n as f64 / f64::from(m - 1);
            }
            let raters_in = |group: Option<u32>| {
                q.answers
                    .0
                    .keys()
                    .filter(|u| group.is_none_or(|g| self.group_of.get(u) == Some(&g)))
                    .count()
            };
            let alpha_of = |group: u32, name: String, raters: usize| {
                let blocks: Vec<&Vec<f64>> = observed
                    .get(&group)
                    .map(|b| b.values().collect())
                    .unwrap_or_default();
                let (alpha, interval) = alpha_with_interval(&blocks, k, level, &values);
                GroupAgreement {
                    group: name,
                    raters,
                    alpha,
                    lower: interval.map(|i| i.lower),
                    upper: interval.map(|i| i.upper),
                }
            };
            let mut groups = vec![alpha_of(0, "(all)".into(), raters_in(None))];
            let mut named: Vec<(&String, u32)> = q
                .answers
                .0
                .keys()
                .filter_map(|u| self.group_of.get(u))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|&g| (&self.groups[g as usize], g))
                .collect();
            named.sort();
            for (name, g) in named {
                groups.push(alpha_of(g + 1, name.clone(), raters_in(Some(g))));
            }
            let share = |same: bool| {
                let agree = q.pairs.0.get(&(same, true)).copied().unwrap_or(0);
                let total = agree + q.pairs.0.get(&(same, false)).copied().unwrap_or(0);
                (total > 0).then(|| agree as f64 / total as f64)
            };
            let (fleiss_kappa, pairs) = if level == Level::Nominal {
                (fleiss(q, k, observed.get(&0)), cohen(q, k, name_of))
            } else {
                (None, Vec::new())
            };
            reports.push(QuestionAgreement {
                question: question.name.clone(),
                level: super::agreement::level_name(level).into(),
                groups,
                within_locale: share(true),
                across_locales: share(false),
                fleiss_kappa,
                pairs,
            });
        }
        reports
    }
}

/// Adds one unit's ordered pairs of values to the coincidences of `group`.
fn add_unit(coincidences: &mut Coincidences, group: u32, block: u32, values: &[u32], sign: i64) {
    let m = values.len() as u32;
    if m < 2 {
        return;
    }
    let mut counts: BTreeMap<u32, i64> = BTreeMap::new();
    for &v in values {
        *counts.entry(v).or_default() += 1;
    }
    for (&c, &nc) in &counts {
        for (&e, &ne) in &counts {
            let pairs = if c == e { nc * (nc - 1) } else { nc * ne };
            if pairs > 0 {
                coincidences.add((group, block, m, c, e), sign * pairs);
            }
        }
    }
}

fn sum_of(blocks: &[&Vec<f64>], k: usize) -> Vec<f64> {
    let mut total = vec![0.0; k * k];
    for block in blocks {
        for (t, v) in total.iter_mut().zip(block.iter()) {
            *t += v;
        }
    }
    total
}

/// Alpha from the blocks' coincidences, and its 95% percentile interval over 500 resamples of
/// the blocks (the fixed seed makes a report reproducible).
fn alpha_with_interval(
    blocks: &[&Vec<f64>],
    k: usize,
    level: Level,
    values: &[f64],
) -> (Option<f64>, Option<agreement::Interval>) {
    let alpha = agreement::alpha_of_coincidences(&sum_of(blocks, k), k, level, values)
        .ok()
        .filter(|a| a.is_finite());
    if alpha.is_none() {
        return (None, None);
    }
    let mut rng = SplitMix64::new(0);
    let mut estimates = Vec::with_capacity(500);
    let mut sample: Vec<&Vec<f64>> = Vec::with_capacity(blocks.len());
    for _ in 0..500 {
        sample.clear();
        sample.extend((0..blocks.len()).map(|_| blocks[rng.below(blocks.len())]));
        if let Ok(a) = agreement::alpha_of_coincidences(&sum_of(&sample, k), k, level, values) {
            estimates.push(a);
        }
    }
    (alpha, agreement::percentile_interval(&mut estimates, 0.95))
}

/// Fleiss' kappa generalised to varying answers per item (as `agreement::fleiss_kappa`).
fn fleiss(q: &QuestionTally, k: usize, blocks: Option<&BTreeMap<u32, Vec<f64>>>) -> Option<f64> {
    let units: i64 = q.units.0.values().sum();
    if units == 0 {
        return None;
    }
    // Each unit's share of agreeing pairs, summed: agreeing pairs of m-answer units / m(m − 1).
    let mut agreeing = 0.0;
    for (&(group, _, m, c, e), &n) in &q.coincidences.0 {
        if group == 0 && c == e {
            agreeing += n as f64 / f64::from(m * (m - 1));
        }
    }
    let observed = agreeing / units as f64;
    let total = sum_of(&blocks?.values().collect::<Vec<_>>(), k);
    let shares: Vec<f64> = (0..k)
        .map(|c| total[c * k..(c + 1) * k].iter().sum())
        .collect();
    let n: f64 = shares.iter().sum();
    let expected: f64 = shares.iter().map(|s| (s / n).powi(2)).sum();
    (expected < 1.0)
        .then(|| (observed - expected) / (1.0 - expected))
        .filter(|kappa| kappa.is_finite())
}

/// Cohen's kappa per pair of raters with at least [`MIN_COMMON`] items in common.
fn cohen(q: &QuestionTally, k: usize, name_of: &HashMap<i64, String>) -> Vec<RaterPair> {
    let mut tables: BTreeMap<(i64, i64), Vec<u64>> = BTreeMap::new();
    for (&(a, b, c, e), &n) in &q.tables.0 {
        tables.entry((a, b)).or_insert_with(|| vec![0; k * k])[c as usize * k + e as usize] +=
            n.max(0) as u64;
    }
    let name = |u: i64| name_of.get(&u).cloned().unwrap_or_default();
    tables
        .into_iter()
        .filter_map(|((a, b), table)| {
            let (common, percent, kappa) = agreement::cohen_of_table(&table, k);
            (common >= MIN_COMMON).then(|| RaterPair {
                a: name(a),
                b: name(b),
                common_items: common,
                percent_agreement: percent,
                cohen_kappa: kappa.filter(|kappa| kappa.is_finite()),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "tally_tests.rs"]
mod tests;
