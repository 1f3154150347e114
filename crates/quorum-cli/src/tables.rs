//! Reading the CLI's CSV inputs into dense indices for the engine, streaming from disk.
//!
//! Every problem is reported as an [`InputError`] naming the file, the line and what is wrong.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use csv::ByteRecord;
use indicatif::{ProgressBar, ProgressStyle};
use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// A problem with an input file, reported to the user as `file:line: problem`.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {problem}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct InputError {
    pub path: PathBuf,
    pub line: Option<u64>,
    pub problem: String,
}

impl InputError {
    pub fn new(path: &Path, line: Option<u64>, problem: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            problem: problem.into(),
        }
    }
}

/// Maps names to dense ids in first-seen order. Names live in one arena string, so a
/// million distinct ids cost two allocations, not two million.
#[derive(Default)]
pub struct Interner {
    arena: String,
    /// `ends[id]` is where name `id` ends in `arena` (it starts where `id − 1` ends).
    ends: Vec<usize>,
    ids: HashTable<u32>,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("len", &self.len())
            .finish()
    }
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    FxBuildHasher.hash_one(bytes)
}

impl Interner {
    pub fn name(&self, id: u32) -> &str {
        let id = id as usize;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.arena[start..self.ends[id]]
    }

    /// The names in id order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.ends.len() as u32).map(|id| self.name(id))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The id of `bytes`, adding it if new; `Err` if the bytes are not UTF-8.
    pub fn intern(&mut self, bytes: &[u8]) -> Result<u32, String> {
        let hash = hash_bytes(bytes);
        if let Some(&id) = self.ids.find(hash, |&id| self.name(id).as_bytes() == bytes) {
            return Ok(id);
        }
        let name =
            std::str::from_utf8(bytes).map_err(|_| "a value is not valid UTF-8".to_string())?;
        let id = self.ends.len() as u32;
        self.arena.push_str(name);
        self.ends.push(self.arena.len());
        let (arena, ends) = (&self.arena, &self.ends);
        self.ids.insert_unique(hash, id, |&other| {
            let other = other as usize;
            let start = if other == 0 { 0 } else { ends[other - 1] };
            hash_bytes(&arena.as_bytes()[start..ends[other]])
        });
        Ok(id)
    }

    pub fn get(&self, bytes: &[u8]) -> Option<u32> {
        self.ids
            .find(hash_bytes(bytes), |&id| self.name(id).as_bytes() == bytes)
            .copied()
    }

    /// Renumbers ids so that names are in sorted (byte) order; returns `old id → new id`.
    pub fn sort(&mut self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        order.sort_by(|&a, &b| self.name(a).cmp(self.name(b)));
        let mut remap = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old as usize] = new as u32;
        }
        let mut sorted = Interner::default();
        for &old in &order {
            sorted
                .intern(self.name(old).as_bytes())
                .expect("names are UTF-8 already");
        }
        *self = sorted;
        remap
    }
}

/// A header row's column names: trimmed, without a UTF-8 byte-order mark.
fn header_names(record: &ByteRecord) -> Vec<String> {
    record
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let field = if i == 0 {
                field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
            } else {
                field
            };
            String::from_utf8_lossy(field).trim().to_string()
        })
        .collect()
}

/// The column names of a CSV file's header row (to choose optional columns before reading).
pub fn read_header(path: &Path) -> Result<Vec<String>, InputError> {
    let file =
        File::open(path).map_err(|e| InputError::new(path, None, format!("cannot open: {e}")))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::new(file));
    let mut record = ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => Ok(header_names(&record)),
        Ok(false) => Err(InputError::new(path, None, "the file is empty")),
        Err(e) => Err(InputError::new(
            path,
            Some(1),
            format!("not valid CSV: {e}"),
        )),
    }
}

/// Streams the rows of a CSV file whose header contains `columns` (in any order, other columns
/// allowed). `on_row` gets the line number and the fields in the order of `columns`.
pub fn for_each_row(
    path: &Path,
    columns: &[&str],
    mut on_row: impl FnMut(u64, &[&[u8]]) -> Result<(), String>,
) -> Result<(), InputError> {
    let file =
        File::open(path).map_err(|e| InputError::new(path, None, format!("cannot open: {e}")))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(BufReader::with_capacity(1 << 20, file));
    let mut record = ByteRecord::new();
    let read = |reader: &mut csv::Reader<_>, record: &mut ByteRecord| {
        reader.read_byte_record(record).map_err(|e| {
            let line = e.position().map(|p| p.line());
            InputError::new(path, line, format!("not valid CSV: {e}"))
        })
    };
    if !read(&mut reader, &mut record)? {
        return Err(InputError::new(
            path,
            None,
            format!(
                "the file is empty; expected a header row `{}`",
                columns.join(",")
            ),
        ));
    }
    let header = header_names(&record);
    let mut positions = Vec::with_capacity(columns.len());
    for column in columns {
        match header.iter().position(|h| h == column) {
            Some(p) => positions.push(p),
            None => {
                return Err(InputError::new(
                    path,
                    Some(1),
                    format!(
                        "the header has no column `{column}`; expected `{}`, found `{}`",
                        columns.join(","),
                        header.join(",")
                    ),
                ));
            }
        }
    }
    let progress = if size > 32 << 20 {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(path.display().to_string());
        bar
    } else {
        ProgressBar::hidden()
    };
    assert!(
        columns.len() <= 16,
        "at most sixteen named columns are read"
    );
    let mut rows = 0u64;
    while read(&mut reader, &mut record)? {
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() == 1 && record[0].is_empty() {
            continue; // a blank line
        }
        if record.len() != header.len() {
            return Err(InputError::new(
                path,
                Some(line),
                format!(
                    "expected {} fields like the header, found {}",
                    header.len(),
                    record.len()
                ),
            ));
        }
        let mut fields: [&[u8]; 16] = [&[]; 16];
        for (slot, &p) in fields.iter_mut().zip(&positions) {
            *slot = &record[p];
        }
        on_row(line, &fields[..columns.len()])
            .map_err(|problem| InputError::new(path, Some(line), problem))?;
        rows += 1;
        if rows.is_multiple_of(65_536) {
            progress.set_position(record.position().map(|p| p.byte()).unwrap_or(0));
        }
    }
    progress.finish_and_clear();
    Ok(())
}

/// Categorical answers `task,worker,label`, with labels renumbered in sorted order so that the
/// engine's lowest-index tie-break picks the smallest label name.
#[derive(Debug, Default)]
pub struct LabelTable {
    pub tasks: Interner,
    pub workers: Interner,
    pub labels: Interner,
    pub answers: Vec<quorum_stats::answers::Answer>,
}

impl LabelTable {
    pub fn read(path: &Path) -> Result<Self, InputError> {
        let mut table = LabelTable::default();
        for_each_row(path, &["task", "worker", "label"], |_, fields| {
            if fields[2].is_empty() {
                return Err("the label is empty".into());
            }
            let answer = quorum_stats::answers::Answer {
                task: table.tasks.intern(fields[0])?,
                worker: table.workers.intern(fields[1])?,
                label: table.labels.intern(fields[2])?,
            };
            table.answers.push(answer);
            Ok(())
        })?;
        if table.answers.is_empty() {
            return Err(InputError::new(
                path,
                None,
                "the file has a header but no answers",
            ));
        }
        let remap = table.labels.sort();
        for a in &mut table.answers {
            a.label = remap[a.label as usize];
        }
        Ok(table)
    }

    pub fn to_answers(
        &self,
        policy: quorum_stats::DuplicatePolicy,
    ) -> Result<quorum_stats::Answers, quorum_stats::AnswersError> {
        quorum_stats::Answers::new(
            self.tasks.len(),
            self.workers.len(),
            self.labels.len(),
            &self.answers,
            policy,
        )
    }
}

/// Parses a number field, naming the column in the error.
pub fn parse_number(field: &[u8], column: &str) -> Result<f64, String> {
    let text = std::str::from_utf8(field).map_err(|_| format!("`{column}` is not valid UTF-8"))?;
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!(
            "`{column}` must be a finite number, found `{text}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_labels_and_sorts_label_ids() {
        let f = file("task,worker,label\nt1,w1,b\nt1,w2,a\nt2,w1,\"c,d\"\n");
        let table = LabelTable::read(f.path()).unwrap();
        assert_eq!(table.labels.names().collect::<Vec<_>>(), ["a", "b", "c,d"]);
        assert_eq!(table.answers[0].label, 1);
        assert_eq!(table.tasks.names().collect::<Vec<_>>(), ["t1", "t2"]);
        assert_eq!(table.tasks.get(b"t2"), Some(1));
        assert_eq!(table.tasks.get(b"t3"), None);
    }

    #[test]
    fn errors_name_the_line_and_problem() {
        let short = file("task,worker,label\nt1,w1,a\nt2,w2\n");
        let e = LabelTable::read(short.path()).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.problem.contains("expected 3 fields"), "{e}");
        let header = file("task,annotator,label\n");
        let e = LabelTable::read(header.path()).unwrap_err();
        assert!(e.problem.contains("no column `worker`"), "{e}");
        let empty = file("");
        assert!(
            LabelTable::read(empty.path())
                .unwrap_err()
                .problem
                .contains("empty")
        );
        assert!(
            parse_number(b"x", "value")
                .unwrap_err()
                .contains("`value` must be a finite number")
        );
    }
}
