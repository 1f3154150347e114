//! Every export format, and the one way to produce each, shared by the API and the CLI:
//! responses (JSON Lines, CSV, Parquet) stream page by page; the aggregate formats (DPO pairs,
//! SFT conversations, consensus) are computed over the whole project first.

mod card;
mod parquet;

pub use parquet::ParquetPages;

use parquet::AggregateParquet;

use quorum_store::{ExportRow, Store};
use serde_json::{Value, json};

use crate::quality::ConsensusRows;
use crate::{App, AppError, Caller};

/// What a project can be exported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// Every response, page by page.
    Responses(ExportFormat),
    /// A table computed over the whole project, as JSON Lines or Parquet.
    Aggregate(Aggregate, ExportFormat),
}

/// The exports computed over the whole project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Preference pairs of a pairwise project (`{id, prompt, chosen, rejected, …}`).
    Dpo,
    /// Conversations ending in a rater's text (`{id, messages, user}`).
    Sft,
    /// Each item's consensus per question, by Dawid–Skene for labels.
    Consensus,
}

impl Export {
    /// The names the API's `format` and the CLI's `--format` take.
    pub const NAMES: &[&str] = &["jsonl", "csv", "parquet", "dpo", "sft", "consensus"];
    /// The files an aggregate (`dpo`, `sft`, `consensus`) comes in: the API's `file`, the
    /// CLI's `--file`.
    pub const FILES: &[&str] = &["jsonl", "parquet"];

    /// Reads a `format` and, for the aggregates, the `file` it comes in (JSON Lines when
    /// `None`).
    pub fn parse(format: &str, file: Option<&str>) -> Result<Export, AppError> {
        let aggregate = match format {
            "dpo" => Aggregate::Dpo,
            "sft" => Aggregate::Sft,
            "consensus" => Aggregate::Consensus,
            other => {
                let format = ExportFormat::parse(other).ok_or_else(|| AppError::Invalid {
                    message: format!("unknown format `{other}`; use {}", Export::NAMES.join(", ")),
                    details: json!({"field": "format"}),
                })?;
                if file.is_some_and(|f| f != other) {
                    return Err(AppError::Invalid {
                        message: format!(
                            "`file` is for dpo, sft and consensus; the format `{other}` is already a file"
                        ),
                        details: json!({"field": "file"}),
                    });
                }
                return Ok(Export::Responses(format));
            }
        };
        let file = match file.unwrap_or("jsonl") {
            "jsonl" => ExportFormat::Jsonl,
            "parquet" => ExportFormat::Parquet,
            other => {
                return Err(AppError::Invalid {
                    message: format!(
                        "`{format}` comes as {}, not `{other}`",
                        Export::FILES.join(" or ")
                    ),
                    details: json!({"field": "file"}),
                });
            }
        };
        Ok(Export::Aggregate(aggregate, file))
    }

    /// The format's name, as [`Export::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Export::Responses(ExportFormat::Jsonl) => "jsonl",
            Export::Responses(ExportFormat::Csv) => "csv",
            Export::Responses(ExportFormat::Parquet) => "parquet",
            Export::Aggregate(Aggregate::Dpo, _) => "dpo",
            Export::Aggregate(Aggregate::Sft, _) => "sft",
            Export::Aggregate(Aggregate::Consensus, _) => "consensus",
        }
    }

    /// The kind of file it is written as.
    pub fn file(self) -> ExportFormat {
        match self {
            Export::Responses(format) | Export::Aggregate(_, format) => format,
        }
    }

    pub fn content_type(self) -> &'static str {
        self.file().content_type()
    }
}

/// A response export in progress: one page of rendered rows at a time, so memory stays at a
/// page whatever the project's size.
#[derive(Debug)]
pub struct ExportPages<S> {
    app: App<S>,
    project_id: i64,
    format: ExportFormat,
    /// The header, until it is taken.
    header: Option<&'static str>,
    /// The last response id written; `None` once the last page is out.
    after: Option<i64>,
    /// A Parquet export's writer, until its footer is out.
    parquet: Option<ParquetPages>,
    /// Responses read so far (for a progress bar).
    read: u64,
}

impl<S: Store> ExportPages<S> {
    /// Responses read so far, of the total [`App::export_responses`] announced.
    pub fn read(&self) -> u64 {
        self.read
    }

    /// The next piece of the export (the header first), or `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<u8>>, AppError> {
        if let Some(header) = self.header.take().filter(|h| !h.is_empty()) {
            return Ok(Some(header.as_bytes().to_vec()));
        }
        let rows = match self.after {
            Some(after) => {
                let rows = self
                    .app
                    .store()
                    .export_responses(self.project_id, after, EXPORT_PAGE)
                    .await?;
                self.after = if (rows.len() as i64) < EXPORT_PAGE {
                    None
                } else {
                    rows.last().map(|r| r.response_id)
                };
                self.read += rows.len() as u64;
                rows
            }
            None => Vec::new(),
        };
        if rows.is_empty() {
            // The end: a Parquet file still has its footer to write.
            self.after = None;
            return match self.parquet.take() {
                Some(mut parquet) => Ok(Some(parquet.finish()?)),
                None => Ok(None),
            };
        }
        match &mut self.parquet {
            Some(parquet) => Ok(Some(parquet.page(&rows)?)),
            None => {
                let mut text = String::with_capacity(rows.len() * 160);
                self.format.render(&rows, &mut text);
                Ok(Some(text.into_bytes()))
            }
        }
    }
}

impl<S: Store> App<S> {
    /// Starts a response export (managers); returns it with the number of responses to come
    /// (for a progress bar).
    pub async fn export_responses(
        &self,
        caller: &Caller,
        project_id: i64,
        format: ExportFormat,
    ) -> Result<(ExportPages<S>, i64), AppError> {
        let project = self.authorize_export(caller, project_id).await?;
        let total = self
            .store()
            .stats(project_id, project.overlap, self.now())
            .await?
            .responses;
        let parquet = match format {
            ExportFormat::Parquet => Some(ParquetPages::new(&project.schema)?),
            _ => None,
        };
        let pages = ExportPages {
            app: self.clone(),
            project_id,
            format,
            header: Some(format.header()),
            after: Some(0),
            parquet,
            read: 0,
        };
        Ok((pages, total))
    }

    /// An aggregate export's rows, computed over the whole project (managers).
    pub async fn export_aggregate(
        &self,
        caller: &Caller,
        project_id: i64,
        aggregate: Aggregate,
    ) -> Result<AggregateRows, AppError> {
        Ok(match aggregate {
            Aggregate::Dpo => AggregateRows::of(self.dpo_pairs(caller, project_id).await?),
            Aggregate::Sft => AggregateRows::of(self.sft_conversations(caller, project_id).await?),
            Aggregate::Consensus => {
                let project = self.authorize_export(caller, project_id).await?;
                let method = quorum_stats::classification::Method::DawidSkene;
                // Read from the spill and turned into JSON only as each page is written.
                let consensus = self
                    .consensus_run(project_id, &project.schema, method)
                    .await?;
                AggregateRows {
                    len: consensus.len(),
                    rows: Rows::Consensus(Box::new(consensus.rows())),
                }
            }
        })
    }

    /// Starts an aggregate export (managers): computed whole here, then written a page at a
    /// time as JSON Lines or as Parquet with the columns `parquet.rs` documents.
    pub async fn export_aggregate_pages(
        &self,
        caller: &Caller,
        project_id: i64,
        aggregate: Aggregate,
        file: ExportFormat,
    ) -> Result<AggregatePages, AppError> {
        let rows = self.export_aggregate(caller, project_id, aggregate).await?;
        let parquet = match file {
            ExportFormat::Parquet => {
                let project = self.authorize_export(caller, project_id).await?;
                Some(AggregateParquet::new(aggregate, &project.schema)?)
            }
            _ => None,
        };
        Ok(AggregatePages {
            rows,
            parquet,
            done: false,
        })
    }
}

/// An aggregate export's rows, made as they are taken.
pub struct AggregateRows {
    len: usize,
    rows: Rows,
}

enum Rows {
    /// Each a JSON object.
    Json(Box<dyn Iterator<Item = Result<Value, AppError>> + Send>),
    /// Consensus rows, read from the spill and written without a JSON object between.
    Consensus(Box<ConsensusRows>),
}

impl std::fmt::Debug for AggregateRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateRows")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl AggregateRows {
    fn of(rows: Vec<Value>) -> Self {
        Self {
            len: rows.len(),
            rows: Rows::Json(Box::new(rows.into_iter().map(Ok))),
        }
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// An aggregate export being written: its rows are computed, their bytes come a page at a
/// time.
pub struct AggregatePages {
    rows: AggregateRows,
    parquet: Option<AggregateParquet>,
    done: bool,
}

impl std::fmt::Debug for AggregatePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatePages")
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

/// Rows per page (and per Parquet row group) of an aggregate export.
const AGGREGATE_PAGE: usize = 10_000;

impl AggregatePages {
    /// The next piece of the export, or `None` at the end.
    pub fn next_page(&mut self) -> Result<Option<Vec<u8>>, AppError> {
        if self.done {
            return Ok(None);
        }
        let page = match &mut self.rows.rows {
            Rows::Json(rows) => write_page(rows, &mut self.parquet, AggregateParquet::page)?,
            Rows::Consensus(rows) => {
                write_page(rows, &mut self.parquet, AggregateParquet::consensus_page)?
            }
        };
        if page.is_none() {
            self.done = true;
            return match &mut self.parquet {
                Some(parquet) => parquet.finish().map(Some),
                None => Ok(None),
            };
        }
        Ok(page)
    }
}

/// The next page of `rows` as a Parquet row group (`to_parquet`) or as JSON Lines; `None` once
/// no row is left.
fn write_page<T: serde::Serialize>(
    rows: impl Iterator<Item = Result<T, AppError>>,
    parquet: &mut Option<AggregateParquet>,
    to_parquet: fn(&mut AggregateParquet, &[T]) -> Result<Vec<u8>, AppError>,
) -> Result<Option<Vec<u8>>, AppError> {
    let rows: Vec<T> = rows.take(AGGREGATE_PAGE).collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(None);
    }
    if let Some(parquet) = parquet {
        return to_parquet(parquet, &rows).map(Some);
    }
    let mut text = Vec::new();
    for row in &rows {
        serde_json::to_writer(&mut text, row).map_err(|e| AppError::Internal(Box::new(e)))?;
        text.push(b'\n');
    }
    Ok(Some(text))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header; `answers` is a JSON cell.
    Csv,
    /// Apache Parquet, a row group per page, typed columns per question (see `parquet.rs`).
    Parquet,
}

impl ExportFormat {
    pub fn parse(text: &str) -> Option<ExportFormat> {
        match text {
            "jsonl" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            "parquet" => Some(ExportFormat::Parquet),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// What comes before the first row.
    pub fn header(self) -> &'static str {
        match self {
            ExportFormat::Jsonl | ExportFormat::Parquet => "",
            ExportFormat::Csv => {
                "response_id,item_id,external_id,user,answers,time_spent_ms,created_at\n"
            }
        }
    }

    /// Appends `rows` to `out` as text, leaving out answers to gold items (they test raters;
    /// they are not data). Parquet is binary: [`ParquetPages`] writes it, and here it adds
    /// nothing.
    pub fn render(self, rows: &[ExportRow], out: &mut String) {
        for row in rows.iter().filter(|r| !r.gold) {
            match self {
                ExportFormat::Parquet => return,
                ExportFormat::Csv => {
                    let answers = row.answers.to_string();
                    out.push_str(&format!(
                        "{},{},{},{},{},{},{}\n",
                        row.response_id,
                        row.item_id,
                        csv_field(row.external_id.as_deref().unwrap_or("")),
                        csv_field(&row.user_name),
                        csv_field(&answers),
                        row.time_spent_ms,
                        row.created_at
                    ));
                }
                ExportFormat::Jsonl => {
                    let line = json!({
                        "response_id": row.response_id, "item_id": row.item_id, "external_id": row.external_id,
                        "user": row.user_name, "answers": row.answers, "time_spent_ms": row.time_spent_ms,
                        "created_at": row.created_at
                    });
                    out.push_str(&line.to_string());
                    out.push('\n');
                }
            }
        }
    }
}

/// RFC 4180 quoting where a field needs it.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// Rows fetched per database round trip while streaming an export.
pub const EXPORT_PAGE: i64 = 2000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_where_needed() {
        let row = ExportRow {
            response_id: 1,
            item_id: 2,
            external_id: Some("a,b".into()),
            user_id: 3,
            user_name: "ann".into(),
            answers: json!({"q": "say \"hi\""}),
            time_spent_ms: 5,
            created_at: 6,
            gold: false,
        };
        let mut out = String::new();
        ExportFormat::Csv.render(std::slice::from_ref(&row), &mut out);
        assert_eq!(
            out,
            concat!(r#"1,2,"a,b",ann,"{""q"":""say \""hi\""""}",5,6"#, "\n")
        );
        let mut out = String::new();
        ExportFormat::Jsonl.render(std::slice::from_ref(&row), &mut out);
        assert!(out.starts_with("{\"answers\":{\"q\":\"say \\\"hi\\\"\"}"));
        // Answers to gold items test raters; they are not exported as data.
        let mut out = String::new();
        ExportFormat::Jsonl.render(&[ExportRow { gold: true, ..row }], &mut out);
        assert_eq!(out, "");
    }
}
