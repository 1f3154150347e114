//! Responses as Apache Parquet, streamed: one row group per page of responses, the bytes
//! handed out as they are written, the footer last. Memory stays at a page whatever the
//! project's size.
//!
//! The Arrow schema: `response_id` (int64), `item_id` (int64), `external_id` (utf8, null when
//! the item has none), `user` (utf8), `answers` (utf8, the answers as JSON), one typed column
//! per question — `answer_<question>`: utf8 for label, pairwise and text questions, int64 for
//! ratings, list<utf8> for multi-label, JSON text for rankings and spans; null when the
//! response left the question out —, `time_spent_ms` (int64), `created_at` (timestamp in
//! milliseconds, UTC).

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use quorum_core::schema::{QuestionKind, Schema};
use quorum_store::ExportRow;
use serde_json::Value;

use crate::AppError;

/// The bytes the writer has produced and nobody has taken yet.
#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("a writer panicked"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

/// How a question's answers become a column.
#[derive(Debug, Clone, Copy)]
enum Column {
    Text,
    Integer,
    Labels,
    Json,
}

/// A Parquet file being written page by page.
pub struct ParquetPages {
    writer: Option<ArrowWriter<Shared>>,
    out: Shared,
    schema: Arc<ArrowSchema>,
    questions: Vec<(String, Column)>,
}

impl std::fmt::Debug for ParquetPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetPages").finish_non_exhaustive()
    }
}

fn parquet_error(error: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("writing Parquet: {error}").into())
}

impl ParquetPages {
    pub fn new(schema: &Schema) -> Result<Self, AppError> {
        let questions: Vec<(String, Column)> = schema
            .questions
            .iter()
            .map(|q| {
                let column = match q.kind {
                    QuestionKind::Label { .. }
                    | QuestionKind::Pairwise { .. }
                    | QuestionKind::Text { .. } => Column::Text,
                    QuestionKind::Rating { .. } => Column::Integer,
                    QuestionKind::MultiLabel { .. } => Column::Labels,
                    QuestionKind::Ranking { .. } | QuestionKind::Spans { .. } => Column::Json,
                };
                (q.name.clone(), column)
            })
            .collect();
        let mut fields = vec![
            Field::new("response_id", DataType::Int64, false),
            Field::new("item_id", DataType::Int64, false),
            Field::new("external_id", DataType::Utf8, true),
            Field::new("user", DataType::Utf8, false),
            Field::new("answers", DataType::Utf8, false),
        ];
        for (name, column) in &questions {
            let kind = match column {
                Column::Text | Column::Json => DataType::Utf8,
                Column::Integer => DataType::Int64,
                Column::Labels => {
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
                }
            };
            fields.push(Field::new(format!("answer_{name}"), kind, true));
        }
        fields.push(Field::new("time_spent_ms", DataType::Int64, false));
        fields.push(Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ));
        let schema = Arc::new(ArrowSchema::new(fields));
        let out = Shared::default();
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer = ArrowWriter::try_new(out.clone(), Arc::clone(&schema), Some(properties))
            .map_err(parquet_error)?;
        Ok(Self {
            writer: Some(writer),
            out,
            schema,
            questions,
        })
    }

    /// Writes `rows` (gold answers left out) as one row group; the bytes written so far.
    pub fn page(&mut self, rows: &[ExportRow]) -> Result<Vec<u8>, AppError> {
        let rows: Vec<&ExportRow> = rows.iter().filter(|r| !r.gold).collect();
        if rows.is_empty() {
            return Ok(self.out.take());
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.response_id),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.item_id))),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.external_id.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.user_name.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.answers.to_string()),
            )),
        ];
        for (name, column) in &self.questions {
            let answers = rows
                .iter()
                .map(|r| r.answers.get(name).filter(|v| !v.is_null()));
            let array: ArrayRef = match column {
                Column::Text => Arc::new(StringArray::from_iter(
                    answers.map(|v| v.and_then(Value::as_str).map(str::to_string)),
                )),
                Column::Json => Arc::new(StringArray::from_iter(
                    answers.map(|v| v.map(Value::to_string)),
                )),
                Column::Integer => {
                    let mut builder = Int64Builder::with_capacity(rows.len());
                    for value in answers {
                        builder.append_option(value.and_then(Value::as_i64));
                    }
                    Arc::new(builder.finish())
                }
                Column::Labels => {
                    let mut builder = ListBuilder::new(StringBuilder::new());
                    for value in answers {
                        match value.and_then(Value::as_array) {
                            Some(labels) => {
                                for label in labels {
                                    builder.values().append_option(label.as_str());
                                }
                                builder.append(true);
                            }
                            None => builder.append(false),
                        }
                    }
                    Arc::new(builder.finish())
                }
            };
            columns.push(array);
        }
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.time_spent_ms),
        )));
        columns.push(Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.created_at))
                .with_timezone("UTC"),
        ));
        let batch =
            RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(parquet_error)?;
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| parquet_error("already finished"))?;
        writer.write(&batch).map_err(parquet_error)?;
        writer.flush().map_err(parquet_error)?;
        Ok(self.out.take())
    }

    /// The rest of the file: what is still buffered, and the footer.
    pub fn finish(&mut self) -> Result<Vec<u8>, AppError> {
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(parquet_error)?;
        }
        Ok(self.out.take())
    }
}
