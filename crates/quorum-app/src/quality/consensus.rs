//! A whole project's consensus in constant memory. Each item's counted answers are written
//! once, compactly (about 4 bytes per label answer), to a spill — a temporary file in `TMPDIR`,
//! or memory for a handful of rows — and read back item by item: once per Dawid–Skene
//! iteration (the fit keeps only each rater's error matrix), then once per question as rows are
//! taken. Nothing in memory grows with the number of items or answers, except for truth-
//! inference methods other than Dawid–Skene, which hold the compact answers of one question
//! (12 bytes each) while they fit.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use quorum_core::schema::{QuestionKind, Schema};
use quorum_stats::DuplicatePolicy;
use quorum_stats::answers::{Answer, Answers};
use quorum_stats::classification::{
    self, Classification, Method, PassFit, Settings, TaskPasses, argmax, dawid_skene_passes,
};
use quorum_store::{ExportRow, Review, Store, Verdict};

use super::reliability::RaterTallies;
use super::spill::{Record, Spill, Storage, Votes, io_error};
use super::{Ids, ItemConsensus, median};
use crate::{App, AppError};

/// A pairwise verdict's values, in the order the spill counts them.
pub(super) const SIDES: [&str; 4] = ["a", "b", "tie", "both_bad"];

/// Items read from the store per page while spilling.
const ITEM_PAGE: i64 = 2000;

/// A question with a consensus, as the spill keeps its answers.
#[derive(Debug, Clone)]
pub(super) enum Planned {
    Label(Vec<String>),
    Pairwise,
    Rating,
    MultiLabel(Vec<String>),
}

impl Planned {
    fn of(kind: &QuestionKind) -> Option<Planned> {
        Some(match kind {
            QuestionKind::Label { options } => Planned::Label(options.clone()),
            QuestionKind::Pairwise { .. } => Planned::Pairwise,
            QuestionKind::Rating { .. } => Planned::Rating,
            QuestionKind::MultiLabel { options } => Planned::MultiLabel(options.clone()),
            _ => return None,
        })
    }

    /// A rater's answer `value` to a label or pairwise question as a position among the
    /// question's options (or `SIDES`), where the number of them stands for any other value,
    /// and the stride that packs `worker * stride + position` (that number plus one). `None`
    /// for other kinds.
    fn position(&self, value: &Value) -> Option<(u32, u32)> {
        let text = value.as_str();
        let (found, m) = match self {
            Planned::Label(options) => (
                options.iter().position(|o| Some(o.as_str()) == text),
                options.len(),
            ),
            Planned::Pairwise => (SIDES.iter().position(|s| Some(*s) == text), SIDES.len()),
            _ => return None,
        };
        Some((found.unwrap_or(m) as u32, m as u32 + 1))
    }

    /// Whether an item with these votes has a row for the question.
    fn has_row(&self, votes: &Votes) -> bool {
        match self {
            Planned::Label(_) => !votes.counts.is_empty(),
            Planned::Pairwise => votes.counts.iter().any(|&c| c > 0),
            Planned::Rating => !votes.values.is_empty(),
            Planned::MultiLabel(_) => votes.present > 0,
        }
    }
}

/// One label question's answers in the spill, for Dawid–Skene's passes.
struct LabelPasses<'a> {
    spill: &'a mut Spill,
    question: usize,
}

impl TaskPasses for LabelPasses<'_> {
    type Error = AppError;
    fn pass(&mut self, each: &mut dyn FnMut(&[u32])) -> Result<(), AppError> {
        let question = self.question;
        self.spill
            .pass(|record| each(&record.votes[question].counts))
    }
}

/// A label question's fitted method.
#[derive(Debug)]
pub(super) enum Fit {
    Passes(PassFit),
    /// Another method, over the answers held in memory; tasks are the items with answers, in
    /// spill order.
    Memory(Classification),
}

/// Collects a project's rows item by item into a spill.
pub(crate) struct ConsensusBuilder {
    questions: Vec<(String, Option<Planned>)>,
    writer: BufWriter<Box<dyn Storage>>,
    items: u64,
    workers: Ids<i64>,
    verdicts: HashMap<i64, Verdict>,
    corrections: HashMap<i64, Map<String, Value>>,
    /// Rows per schema question.
    rows: Vec<usize>,
    /// The current item's rows.
    pending: Vec<ExportRow>,
    record: Record,
    /// For a reliability report: what is counted per rater.
    tallies: Option<RaterTallies>,
}

impl ConsensusBuilder {
    /// A builder for `schema`'s questions, with the project's reviews (rejected and corrected
    /// responses do not count; the latest correction of an item decides it). `on_disk` spills
    /// to a temporary file rather than memory.
    pub(crate) fn new(
        schema: &Schema,
        reviews: &[Review],
        on_disk: bool,
    ) -> Result<Self, AppError> {
        let storage: Box<dyn Storage> = if on_disk {
            Box::new(tempfile::tempfile().map_err(io_error)?)
        } else {
            Box::new(std::io::Cursor::new(Vec::new()))
        };
        let mut latest: HashMap<i64, &Review> = HashMap::new();
        for review in reviews.iter().filter(|r| r.verdict == Verdict::Correct) {
            let slot = latest.entry(review.item_id).or_insert(review);
            if (review.created_at, review.response_id) > (slot.created_at, slot.response_id) {
                *slot = review;
            }
        }
        Ok(Self {
            questions: schema
                .questions
                .iter()
                .map(|q| (q.name.clone(), Planned::of(&q.kind)))
                .collect(),
            writer: BufWriter::with_capacity(1 << 20, storage),
            items: 0,
            workers: Ids::default(),
            verdicts: reviews.iter().map(|r| (r.response_id, r.verdict)).collect(),
            corrections: latest
                .into_iter()
                .filter_map(|(item, r)| Some((item, r.answers.as_ref()?.as_object()?.clone())))
                .collect(),
            rows: vec![0; schema.questions.len()],
            pending: Vec::new(),
            record: Record::default(),
            tallies: None,
        })
    }

    /// For a reliability report instead: `verdicts` decide what counts, corrections decide
    /// nothing, and every rater's answers are kept for their agreement with the consensus.
    pub(crate) fn for_reliability(mut self, verdicts: HashMap<i64, Verdict>) -> Self {
        self.verdicts = verdicts;
        self.corrections.clear();
        self.tallies = Some(RaterTallies::default());
        self
    }

    /// The gold answers of (some of) the project's gold items, for a reliability report.
    pub(crate) fn add_gold(&mut self, gold: impl IntoIterator<Item = (i64, Value)>) {
        if let Some(tallies) = &mut self.tallies {
            tallies.add_gold(gold);
        }
    }

    /// Adds `rows` in any order (sorted here by item, then response).
    pub(crate) fn push_all(&mut self, rows: &[ExportRow]) -> Result<(), AppError> {
        let mut sorted: Vec<&ExportRow> = rows.iter().collect();
        sorted.sort_by_key(|r| (r.item_id, r.response_id));
        sorted
            .into_iter()
            .try_for_each(|row| self.push(row.clone()))
    }

    /// Adds one response; every response of an item must come before the next item's.
    pub(crate) fn push(&mut self, mut row: ExportRow) -> Result<(), AppError> {
        if let Some(tallies) = &self.tallies {
            row.gold |= tallies.is_gold(row.item_id);
        }
        if self
            .pending
            .first()
            .is_some_and(|r| r.item_id != row.item_id)
        {
            self.flush()?;
        }
        self.pending.push(row);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), AppError> {
        let Some(first) = self.pending.first() else {
            return Ok(());
        };
        let item_id = first.item_id;
        if let Some(tallies) = &mut self.tallies {
            for row in &self.pending {
                tallies.see(row, self.verdicts.get(&row.response_id).copied());
            }
        }
        let correction = self.corrections.get(&item_id);
        // Gold items test raters; they have no consensus.
        let counted: Vec<&ExportRow> = self
            .pending
            .iter()
            .filter(|r| !r.gold)
            .filter(|r| {
                self.verdicts
                    .get(&r.response_id)
                    .is_none_or(|v| *v == Verdict::Accept)
            })
            .collect();
        if counted.is_empty() && correction.is_none() {
            self.pending.clear();
            return Ok(());
        }
        let record = &mut self.record;
        record.item_id = item_id;
        record.external_id = first.external_id.clone();
        record.adjudicated = correction.is_some();
        record.counted = counted.len() as u32;
        record
            .votes
            .resize_with(self.questions.len(), Votes::default);
        for (q, ((name, planned), votes)) in
            self.questions.iter().zip(&mut record.votes).enumerate()
        {
            votes.present = 0;
            votes.counts.clear();
            votes.values.clear();
            votes.raters.clear();
            if let Some(answers) = correction {
                self.rows[q] += usize::from(answers.contains_key(name));
            }
            let Some(planned) = planned else { continue };
            let answers = counted
                .iter()
                .filter_map(|r| Some((r.user_id, r.answers.get(name)?)));
            match planned {
                Planned::Label(options) => {
                    let k = options.len() as u32;
                    for (user, value) in answers {
                        votes.present += 1;
                        match planned.position(value) {
                            Some((label, _)) if label < k => {
                                let worker = self.workers.id(&user);
                                // A rater's last answer to an item is the one that counts.
                                votes.counts.retain(|r| r / k != worker);
                                votes.counts.push(worker * k + label);
                            }
                            _ => {}
                        }
                    }
                }
                Planned::Pairwise => {
                    votes.counts.resize(SIDES.len(), 0);
                    for (_, value) in answers {
                        votes.present += 1;
                        match planned.position(value) {
                            Some((side, _)) if (side as usize) < SIDES.len() => {
                                votes.counts[side as usize] += 1;
                            }
                            _ => {}
                        }
                    }
                }
                Planned::Rating => {
                    for (_, value) in answers {
                        votes.present += 1;
                        votes.values.extend(value.as_f64());
                    }
                }
                Planned::MultiLabel(options) => {
                    votes.counts.resize(options.len(), 0);
                    for (_, value) in answers {
                        votes.present += 1;
                        let chosen = value.as_array();
                        for (count, option) in votes.counts.iter_mut().zip(options) {
                            let with = chosen
                                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(option)));
                            *count += u32::from(with);
                        }
                    }
                }
            }
            if self.tallies.is_some() {
                // Every non-gold answer, counted or not, for its rater's agreement.
                for row in self.pending.iter().filter(|r| !r.gold) {
                    let Some((index, stride)) =
                        row.answers.get(name).and_then(|v| planned.position(v))
                    else {
                        continue;
                    };
                    votes
                        .raters
                        .push(self.workers.id(&row.user_id) * stride + index);
                }
            }
            if correction.is_none() && planned.has_row(votes) {
                self.rows[q] += 1;
            }
        }
        record.write(&mut self.writer).map_err(io_error)?;
        self.items += 1;
        self.pending.clear();
        Ok(())
    }

    /// Fits every label question with `method` (CPU-bound: run it off the async workers).
    pub(crate) fn finish(mut self, method: Method) -> Result<ProjectConsensus, AppError> {
        self.flush()?;
        let storage = self
            .writer
            .into_inner()
            .map_err(|e| io_error(e.into_error()))?;
        let mut spill = Spill {
            reader: BufReader::with_capacity(1 << 20, storage),
            items: self.items,
            questions: self.questions.len(),
        };
        let n_workers = self.workers.len();
        let mut fits = Vec::with_capacity(self.questions.len());
        for (question, (_, planned)) in self.questions.iter().enumerate() {
            let Some(Planned::Label(options)) = planned else {
                fits.push(None);
                continue;
            };
            let k = options.len();
            let fit = match method {
                Method::DawidSkene | Method::OneCoinDawidSkene => {
                    let mut tasks = LabelPasses {
                        spill: &mut spill,
                        question,
                    };
                    let one_coin = method == Method::OneCoinDawidSkene;
                    Fit::Passes(dawid_skene_passes(
                        &mut tasks, n_workers, k, 100, 1e-5, one_coin,
                    )?)
                }
                _ => {
                    // This question's raters only, numbered densely: seeded methods draw per
                    // rater.
                    let (mut raters, mut data) = (Ids::<u32>::default(), Vec::new());
                    let mut task = 0;
                    spill.pass(|record| {
                        let rows = &record.votes[question].counts;
                        if rows.is_empty() {
                            return;
                        }
                        for &r in rows {
                            data.push(Answer {
                                task,
                                worker: raters.id(&(r / k as u32)),
                                label: r % k as u32,
                            });
                        }
                        task += 1;
                    })?;
                    let answers = Answers::new(
                        task as usize,
                        raters.len(),
                        k,
                        &data,
                        DuplicatePolicy::KeepLast,
                    )
                    .map_err(|e| AppError::Internal(Box::new(e)))?;
                    drop(data);
                    Fit::Memory(
                        classification::aggregate(method, &answers, &Settings::default())
                            .map_err(|e| AppError::invalid(e.to_string()))?,
                    )
                }
            };
            fits.push(Some(fit));
        }
        Ok(ProjectConsensus {
            spill,
            questions: self.questions,
            fits,
            rows: self.rows,
            corrections: self.corrections,
            method,
            workers: self.workers.keys().to_vec(),
            tallies: self.tallies,
        })
    }
}

/// A label question's answer for one item from its fit: the label (ties to the first option,
/// as the engine's labels) and its probability.
pub(super) fn label_of(
    fit: &Fit,
    counts: &[u32],
    task: usize,
    k: usize,
    scratch: &mut Vec<f64>,
) -> (usize, f64) {
    let p: &[f64] = match fit {
        Fit::Passes(fit) => {
            scratch.resize(k, 0.0);
            fit.posterior(counts, scratch);
            scratch
        }
        Fit::Memory(result) => result.probabilities_of(task),
    };
    let label = argmax(p) as usize;
    (label, p[label])
}

/// A pairwise question's consensus from its counts of `SIDES`: Bradley–Terry between the
/// sides, ties (and "both bad") as half a win each, "both bad" itself when it is the most
/// frequent verdict. The side (a position in `SIDES`), its confidence and the votes; `None`
/// without votes.
pub(super) fn pairwise_consensus(counts: &[u32]) -> Option<(usize, f64, usize)> {
    let [a, b, tie, bad] = [0, 1, 2, 3].map(|i| counts[i] as usize);
    let n = a + b + tie + bad;
    if n == 0 {
        return None;
    }
    if bad > a && bad > b && bad > tie {
        return Some((3, bad as f64 / n as f64, n));
    }
    let p = (a as f64 + 0.5 * (tie + bad) as f64) / n as f64;
    let side = if p > 0.5 {
        0
    } else if p < 0.5 {
        1
    } else {
        2
    };
    Some((side, p.max(1.0 - p), n))
}

/// One item's consensus on a non-label question from its votes: (answer, confidence, method,
/// responses), or `None` when nothing counts. Label questions' rows come from their fit.
fn row_of(planned: &Planned, votes: &Votes) -> Option<(Value, f64, &'static str, usize)> {
    match planned {
        Planned::Label(_) => None,
        Planned::Pairwise => pairwise_consensus(&votes.counts)
            .map(|(side, confidence, n)| (json!(SIDES[side]), confidence, "bradley_terry", n)),
        Planned::Rating => {
            if votes.values.is_empty() {
                return None;
            }
            let mut values = votes.values.clone();
            let m = median(&mut values);
            let near = values.iter().filter(|v| (**v - m).abs() <= 1.0).count();
            Some((
                json!(m),
                near as f64 / values.len() as f64,
                "median",
                values.len(),
            ))
        }
        Planned::MultiLabel(options) => {
            let n = votes.present as usize;
            if n == 0 {
                return None;
            }
            let mut chosen = Vec::new();
            let mut agreement = 0.0;
            for (option, &with) in options.iter().zip(&votes.counts) {
                let with = with as usize;
                if 2 * with > n {
                    chosen.push(option.clone());
                }
                agreement += with.max(n - with) as f64 / n as f64;
            }
            Some((
                json!(chosen),
                agreement / options.len().max(1) as f64,
                "majority_per_option",
                n,
            ))
        }
    }
}

/// A project's consensus, fitted, ready to be read out.
pub(crate) struct ProjectConsensus {
    pub(super) spill: Spill,
    pub(super) questions: Vec<(String, Option<Planned>)>,
    pub(super) fits: Vec<Option<Fit>>,
    rows: Vec<usize>,
    corrections: HashMap<i64, Map<String, Value>>,
    method: Method,
    /// Raters' user ids by the spill's worker number.
    pub(super) workers: Vec<i64>,
    pub(super) tallies: Option<RaterTallies>,
}

impl ProjectConsensus {
    /// How many rows [`ProjectConsensus::rows`] gives.
    pub(crate) fn len(&self) -> usize {
        self.rows.iter().sum()
    }

    /// Every row, by question (in schema order) then item, read from the spill as they are
    /// taken.
    pub(crate) fn rows(self) -> ConsensusRows {
        ConsensusRows {
            left: self.len(),
            consensus: self,
            question: 0,
            items_left: None,
            task: 0,
            record: Record::default(),
            posterior: Vec::new(),
        }
    }

    /// Every row at once.
    pub(crate) fn collect(self) -> Result<Vec<ItemConsensus>, AppError> {
        self.rows().collect()
    }
}

/// The rows of a [`ProjectConsensus`] (see [`ProjectConsensus::rows`]).
pub(crate) struct ConsensusRows {
    consensus: ProjectConsensus,
    left: usize,
    /// The schema question being read.
    question: usize,
    /// Records left of this question's pass (`None` before it starts).
    items_left: Option<u64>,
    /// The next task of an in-memory fit.
    task: usize,
    record: Record,
    posterior: Vec<f64>,
}

impl ConsensusRows {
    /// This record's row for the current question, if it has one.
    fn row(&mut self) -> Option<ItemConsensus> {
        let c = &self.consensus;
        let (name, planned) = &c.questions[self.question];
        let record = &self.record;
        let votes = &record.votes[self.question];
        let answered = !votes.counts.is_empty();
        // An in-memory fit's tasks are the items with answers, adjudicated or not.
        let task = self.task;
        if matches!(planned, Some(Planned::Label(_))) && answered {
            self.task += 1;
        }
        let row = |answer, confidence, method, responses| {
            Some(ItemConsensus {
                item_id: record.item_id,
                external_id: record.external_id.clone(),
                question: name.clone(),
                answer,
                confidence,
                method,
                responses,
            })
        };
        if record.adjudicated {
            let answer = c.corrections.get(&record.item_id)?.get(name)?;
            return row(answer.clone(), 1.0, "adjudicated", record.counted as usize);
        }
        match (planned.as_ref()?, c.fits[self.question].as_ref()) {
            (Planned::Label(options), Some(fit)) => {
                if !answered {
                    return None;
                }
                let (label, p) =
                    label_of(fit, &votes.counts, task, options.len(), &mut self.posterior);
                row(
                    json!(options[label]),
                    p,
                    c.method.short_name(),
                    votes.present as usize,
                )
            }
            (planned, _) => {
                let (answer, confidence, method, responses) = row_of(planned, votes)?;
                row(answer, confidence, method, responses)
            }
        }
    }
}

impl Iterator for ConsensusRows {
    type Item = Result<ItemConsensus, AppError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.left == 0 || self.question >= self.consensus.questions.len() {
                return None;
            }
            let left = match self.items_left {
                Some(left) => left,
                None if self.consensus.rows[self.question] == 0 => {
                    self.question += 1;
                    continue;
                }
                None => {
                    let spill = &mut self.consensus.spill;
                    if let Err(e) = spill.reader.seek(SeekFrom::Start(0)) {
                        return Some(Err(io_error(e)));
                    }
                    self.task = 0;
                    spill.items
                }
            };
            if left == 0 {
                self.items_left = None;
                self.question += 1;
                continue;
            }
            self.items_left = Some(left - 1);
            let questions = self.consensus.spill.questions;
            if let Err(e) = self
                .record
                .read(&mut self.consensus.spill.reader, questions)
            {
                return Some(Err(io_error(e)));
            }
            if let Some(row) = self.row() {
                self.left -= 1;
                return Some(Ok(row));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// The consensus of `rows` under `schema` (pure: no store; reviews play no part).
pub fn consensus_of(
    schema: &Schema,
    rows: &[ExportRow],
    method: Method,
) -> Result<Vec<ItemConsensus>, AppError> {
    let mut builder = ConsensusBuilder::new(schema, &[], false)?;
    builder.push_all(rows)?;
    builder.finish(method)?.collect()
}

impl<S: Store> App<S> {
    /// The project's consensus as every report and export uses it: gold items left out,
    /// rejected and corrected responses left out, corrections as adjudicated answers. Reads
    /// the project item by item into a spill on disk; memory stays flat at any size.
    pub(crate) async fn consensus_run(
        &self,
        project_id: i64,
        schema: &Schema,
        method: Method,
    ) -> Result<ProjectConsensus, AppError> {
        let started = std::time::Instant::now();
        let reviews = self.store().reviews(project_id).await?;
        let mut builder = ConsensusBuilder::new(schema, &reviews, true)?;
        self.spill_project(project_id, &mut builder).await?;
        let (items, read) = (builder.items, started.elapsed());
        let consensus = tokio::task::spawn_blocking(move || builder.finish(method))
            .await
            .map_err(|e| AppError::Internal(Box::new(e)))??;
        tracing::info!(
            project_id,
            items,
            read_s = read.as_secs_f64(),
            fitted_s = (started.elapsed() - read).as_secs_f64(),
            "consensus spilled and fitted"
        );
        Ok(consensus)
    }

    /// Reads every response of a project into `builder`, a page of items at a time; the next
    /// page is read (on a reader connection) while this one is spilled.
    pub(crate) async fn spill_project(
        &self,
        project_id: i64,
        builder: &mut ConsensusBuilder,
    ) -> Result<(), AppError> {
        let fetch = |after: i64| {
            let store = Arc::clone(&self.store);
            tokio::spawn(async move { store.responses_by_item(project_id, after, ITEM_PAGE).await })
        };
        let mut next = fetch(0);
        loop {
            let page = next.await.map_err(|e| AppError::Internal(Box::new(e)))??;
            let Some(last) = page.last_item else {
                return Ok(());
            };
            next = fetch(last);
            builder.add_gold(page.gold);
            for row in page.rows {
                let row = row.parse().map_err(|e| {
                    AppError::Internal(format!("stored answers are not JSON: {e}").into())
                })?;
                builder.push(row)?;
            }
        }
    }
}

#[cfg(test)]
#[path = "consensus_tests.rs"]
mod tests;
