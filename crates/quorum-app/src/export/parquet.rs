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
//!
//! The aggregates are computed whole, then written a row group of 10,000 rows at a time; their
//! columns (all nullable unless said):
//! - `dpo`: `id` (utf8), `prompt` (utf8, or a conversation when the prompt field is a chat:
//!   list<struct<role: utf8, content: utf8>>), `chosen`, `rejected` (utf8), `confidence`
//!   (float64, null when gold decided), `votes` (int64, not null), `source` (utf8, `votes` or
//!   `gold`, not null): TRL's DPO columns.
//! - `sft`: `id` (utf8), `messages` (list<struct<role: utf8, content: utf8>>, not null),
//!   `user` (utf8, not null): TRL's conversational SFT column.
//! - `consensus`: `item_id` (int64, not null), `external_id` (utf8), `question` (utf8, not
//!   null), `answer` (utf8: a label, side or text as it is; any other answer — a rating, a set
//!   of labels, spans — as JSON text), `confidence` (float64), `method` (utf8, not null),
//!   `responses` (int64, not null).
//!
//! Wherever a text column meets a value that is not a string, it holds the value's JSON text.

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow_array::builder::{
    Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
};
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use quorum_core::schema::{FieldKind, QuestionKind, Schema};
use quorum_store::ExportRow;
use serde_json::Value;

use super::Aggregate;
use crate::AppError;
use crate::quality::ItemConsensus;

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

/// A Parquet file written a row group at a time, its bytes handed out as they are made.
struct Streamed {
    writer: Option<ArrowWriter<Shared>>,
    out: Shared,
    schema: Arc<ArrowSchema>,
}

impl Streamed {
    fn new(schema: ArrowSchema) -> Result<Self, AppError> {
        let schema = Arc::new(schema);
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
        })
    }

    /// Writes `columns` as one row group; the bytes written so far.
    fn row_group(&mut self, columns: Vec<ArrayRef>) -> Result<Vec<u8>, AppError> {
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
    fn finish(&mut self) -> Result<Vec<u8>, AppError> {
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(parquet_error)?;
        }
        Ok(self.out.take())
    }
}

/// Responses as a Parquet file being written page by page.
pub struct ParquetPages {
    file: Streamed,
    questions: Vec<(String, Cell)>,
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
        let questions: Vec<(String, Cell)> = schema
            .questions
            .iter()
            .map(|q| {
                let cell = match q.kind {
                    QuestionKind::Label { .. }
                    | QuestionKind::Pairwise { .. }
                    | QuestionKind::Text { .. } => Cell::Text,
                    QuestionKind::Rating { .. } => Cell::Int,
                    QuestionKind::MultiLabel { .. } => Cell::Labels,
                    QuestionKind::Ranking { .. } | QuestionKind::Spans { .. } => Cell::Json,
                };
                (q.name.clone(), cell)
            })
            .collect();
        let mut fields = vec![
            Field::new("response_id", DataType::Int64, false),
            Field::new("item_id", DataType::Int64, false),
            Field::new("external_id", DataType::Utf8, true),
            Field::new("user", DataType::Utf8, false),
            Field::new("answers", DataType::Utf8, false),
        ];
        for (name, cell) in &questions {
            fields.push(Field::new(format!("answer_{name}"), cell.data_type(), true));
        }
        fields.push(Field::new("time_spent_ms", DataType::Int64, false));
        fields.push(Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ));
        Ok(Self {
            file: Streamed::new(ArrowSchema::new(fields))?,
            questions,
        })
    }

    /// Writes `rows` (gold answers left out) as one row group; the bytes written so far.
    pub fn page(&mut self, rows: &[ExportRow]) -> Result<Vec<u8>, AppError> {
        let rows: Vec<&ExportRow> = rows.iter().filter(|r| !r.gold).collect();
        if rows.is_empty() {
            return Ok(Vec::new());
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
        for (name, cell) in &self.questions {
            let answers = rows
                .iter()
                .map(|r| r.answers.get(name).filter(|v| !v.is_null()));
            columns.push(cell.array(answers, rows.len())?);
        }
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.time_spent_ms),
        )));
        columns.push(Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.created_at))
                .with_timezone("UTC"),
        ));
        self.file.row_group(columns)
    }

    /// The rest of the file: what is still buffered, and the footer.
    pub fn finish(&mut self) -> Result<Vec<u8>, AppError> {
        self.file.finish()
    }
}

/// How JSON values become an Arrow column.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Int,
    Float,
    /// A string as it is; any other value as its JSON text.
    Text,
    /// Always JSON text (rankings, spans).
    Json,
    /// A list of strings (multi-label answers).
    Labels,
    /// Chat turns: list<struct<role, content>>.
    Messages,
}

impl Cell {
    fn data_type(self) -> DataType {
        match self {
            Cell::Int => DataType::Int64,
            Cell::Float => DataType::Float64,
            Cell::Text | Cell::Json => DataType::Utf8,
            Cell::Labels => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            Cell::Messages => DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(message_fields().into()),
                true,
            ))),
        }
    }

    /// `values` (absent or null: a null cell) as an array of `len` rows.
    fn array<'a>(
        self,
        values: impl Iterator<Item = Option<&'a Value>>,
        len: usize,
    ) -> Result<ArrayRef, AppError> {
        Ok(match self {
            Cell::Int => {
                let mut builder = Int64Builder::with_capacity(len);
                for value in values {
                    builder.append_option(value.and_then(Value::as_i64));
                }
                Arc::new(builder.finish())
            }
            Cell::Float => {
                let mut builder = Float64Builder::with_capacity(len);
                for value in values {
                    builder.append_option(value.and_then(Value::as_f64));
                }
                Arc::new(builder.finish())
            }
            Cell::Text => Arc::new(StringArray::from_iter(values.map(|v| v.and_then(text_of)))),
            Cell::Json => Arc::new(StringArray::from_iter(
                values.map(|v| v.map(Value::to_string)),
            )),
            Cell::Labels => {
                let mut builder = ListBuilder::new(StringBuilder::new());
                for value in values {
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
            Cell::Messages => {
                let mut builder =
                    ListBuilder::new(StructBuilder::from_fields(message_fields(), len));
                for value in values {
                    let Some(turns) = value.and_then(Value::as_array) else {
                        builder.append(false);
                        continue;
                    };
                    let turns_builder = builder.values();
                    for turn in turns {
                        for (index, key) in ["role", "content"].into_iter().enumerate() {
                            turns_builder
                                .field_builder::<StringBuilder>(index)
                                .ok_or_else(|| parquet_error("a message field is not text"))?
                                .append_option(turn.get(key).and_then(text_of));
                        }
                        turns_builder.append(true);
                    }
                    builder.append(true);
                }
                Arc::new(builder.finish())
            }
        })
    }
}

/// The text of a value for a text column: a string as it is, anything else as JSON.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn message_fields() -> Vec<Field> {
    vec![
        Field::new("role", DataType::Utf8, true),
        Field::new("content", DataType::Utf8, true),
    ]
}

/// An aggregate's columns: name, cell, nullable.
fn aggregate_columns(aggregate: Aggregate, schema: &Schema) -> Vec<(&'static str, Cell, bool)> {
    use Cell::{Float, Int, Messages, Text};
    match aggregate {
        Aggregate::Dpo => {
            let prompt = match schema.prompt_field() {
                Some((_, FieldKind::Chat)) => Messages,
                _ => Text,
            };
            vec![
                ("id", Text, true),
                ("prompt", prompt, true),
                ("chosen", Text, true),
                ("rejected", Text, true),
                ("confidence", Float, true),
                ("votes", Int, false),
                ("source", Text, false),
            ]
        }
        Aggregate::Sft => vec![
            ("id", Text, true),
            ("messages", Messages, false),
            ("user", Text, false),
        ],
        Aggregate::Consensus => vec![
            ("item_id", Int, false),
            ("external_id", Text, true),
            ("question", Text, false),
            ("answer", Text, true),
            ("confidence", Float, true),
            ("method", Text, false),
            ("responses", Int, false),
        ],
    }
}

/// An aggregate export as a Parquet file being written a row group at a time.
pub(super) struct AggregateParquet {
    file: Streamed,
    columns: Vec<(&'static str, Cell, bool)>,
}

impl AggregateParquet {
    pub(super) fn new(aggregate: Aggregate, schema: &Schema) -> Result<Self, AppError> {
        let columns = aggregate_columns(aggregate, schema);
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, cell, nullable)| Field::new(*name, cell.data_type(), *nullable))
            .collect();
        Ok(Self {
            file: Streamed::new(ArrowSchema::new(fields))?,
            columns,
        })
    }

    /// Writes `rows` (JSON objects) as one row group; the bytes written so far.
    pub(super) fn page(&mut self, rows: &[Value]) -> Result<Vec<u8>, AppError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let arrays = self
            .columns
            .iter()
            .map(|(name, cell, _)| {
                let values = rows.iter().map(|r| r.get(*name).filter(|v| !v.is_null()));
                cell.array(values, rows.len())
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.file.row_group(arrays)
    }

    /// Writes consensus rows as one row group, the columns [`page`](Self::page) would make of
    /// their JSON, without making it; the bytes written so far.
    pub(super) fn consensus_page(&mut self, rows: &[ItemConsensus]) -> Result<Vec<u8>, AppError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let text = |f: fn(&ItemConsensus) -> Option<&str>| -> ArrayRef {
            Arc::new(StringArray::from_iter(rows.iter().map(f)))
        };
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.item_id))),
            text(|r| r.external_id.as_deref()),
            text(|r| Some(&r.question)),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| text_of(&r.answer)),
            )),
            Arc::new(Float64Array::from_iter(
                rows.iter()
                    .map(|r| r.confidence.is_finite().then_some(r.confidence)),
            )),
            text(|r| Some(r.method)),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.responses as i64),
            )),
        ];
        self.file.row_group(arrays)
    }

    /// The rest of the file and its footer.
    pub(super) fn finish(&mut self) -> Result<Vec<u8>, AppError> {
        self.file.finish()
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use serde_json::json;

    use super::*;

    /// A whole aggregate file, written as the export writes it: row groups of 10,000.
    fn aggregate(
        aggregate: Aggregate,
        schema: &Schema,
        rows: &[Value],
    ) -> Result<Vec<u8>, AppError> {
        let mut file = AggregateParquet::new(aggregate, schema)?;
        let mut bytes = Vec::new();
        for chunk in rows.chunks(10_000) {
            bytes.extend(file.page(chunk)?);
        }
        bytes.extend(file.finish()?);
        Ok(bytes)
    }

    /// The file's batches (of 1,024 rows, the reader's default), and its row groups.
    fn read_groups(bytes: Vec<u8>) -> (Vec<RecordBatch>, usize) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let groups = reader.metadata().num_row_groups();
        let batches = reader.build().unwrap().map(Result::unwrap).collect();
        (batches, groups)
    }

    fn read(bytes: Vec<u8>) -> Vec<RecordBatch> {
        read_groups(bytes).0
    }

    #[test]
    fn aggregates_come_back_with_their_documented_columns() {
        let chat = Schema::parse(&json!({
            "fields": [{"name": "chat", "kind": "chat"}, {"name": "answers", "kind": "responses"}],
            "questions": [{"name": "better", "kind": "pairwise"}]
        }))
        .unwrap();
        let rows: Vec<Value> = (0..25_000)
            .map(|i| {
                json!({
                    "id": if i == 7 { Value::Null } else { json!(format!("x{i}")) },
                    "prompt": [{"role": "user", "content": format!("مرحبا {i}")}, {"role": "assistant", "content": {"parts": [1]}}],
                    "chosen": "good", "rejected": {"not": "text"},
                    "confidence": if i % 2 == 0 { json!(0.75) } else { Value::Null },
                    "votes": i % 3, "source": "votes",
                })
            })
            .collect();
        let (batches, groups) = read_groups(aggregate(Aggregate::Dpo, &chat, &rows).unwrap());
        // Row groups of 10,000.
        assert_eq!(groups, 3);
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(total, 25_000);
        let batch = &batches[0];
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "prompt",
                "chosen",
                "rejected",
                "confidence",
                "votes",
                "source"
            ]
        );
        let ids = batch.column(0).as_string::<i32>();
        assert_eq!((ids.value(0), ids.is_null(7)), ("x0", true));
        let prompts = batch.column(1).as_list::<i32>();
        let turns = prompts.value(3);
        let turns = turns.as_struct();
        assert_eq!(turns.len(), 2);
        let content = turns.column(1).as_string::<i32>();
        assert_eq!(content.value(0), "مرحبا 3");
        // A turn whose content is not text keeps it as JSON text.
        assert_eq!(content.value(1), r#"{"parts":[1]}"#);
        assert_eq!(
            batch.column(3).as_string::<i32>().value(0),
            r#"{"not":"text"}"#
        );
        let confidence = batch.column(4).as_primitive::<Float64Type>();
        assert_eq!((confidence.value(0), confidence.is_null(1)), (0.75, true));
        assert_eq!(batch.column(5).as_primitive::<Int64Type>().value(5), 2);

        // A text prompt is a text column; an empty export is a valid, empty file.
        let text = Schema::parse(&json!({
            "fields": [{"name": "q", "kind": "text"}, {"name": "answers", "kind": "responses"}],
            "questions": [{"name": "better", "kind": "pairwise"}]
        }))
        .unwrap();
        let one = [
            json!({"id": "a", "prompt": "why?", "chosen": "x", "rejected": "y", "confidence": 1.0, "votes": 3, "source": "votes"}),
        ];
        let batches = read(aggregate(Aggregate::Dpo, &text, &one).unwrap());
        assert_eq!(batches[0].column(1).data_type(), &DataType::Utf8);
        assert!(read(aggregate(Aggregate::Sft, &text, &[]).unwrap()).is_empty());

        // Consensus: labels as they are, other answers as JSON text.
        let consensus = [
            json!({"item_id": 1, "external_id": null, "question": "label", "answer": "pos", "confidence": 0.9, "method": "dawid_skene", "responses": 3}),
            json!({"item_id": 1, "external_id": null, "question": "stars", "answer": 4, "confidence": 0.6, "method": "majority_vote", "responses": 3}),
        ];
        let batches = read(aggregate(Aggregate::Consensus, &text, &consensus).unwrap());
        let answers = batches[0].column(3).as_string::<i32>();
        assert_eq!((answers.value(0), answers.value(1)), ("pos", "4"));
        assert!(batches[0].column(1).is_null(0));

        // Consensus rows written as they are make the file their JSON makes.
        let typed: Vec<ItemConsensus> = [
            (1, None, "label", json!("pos"), 0.9, "ds", 3),
            (2, Some("e2"), "stars", json!(4.0), 0.6, "median", 2),
            (
                2,
                Some("e2"),
                "tags",
                json!(["a", "b"]),
                1.0,
                "adjudicated",
                0,
            ),
        ]
        .into_iter()
        .map(
            |(item_id, external, question, answer, confidence, method, responses)| ItemConsensus {
                item_id,
                external_id: external.map(str::to_string),
                question: question.to_string(),
                answer,
                confidence,
                method,
                responses,
            },
        )
        .collect();
        let json_rows: Vec<Value> = typed.iter().map(|c| json!(c)).collect();
        let mut file = AggregateParquet::new(Aggregate::Consensus, &text).unwrap();
        let mut direct = file.consensus_page(&typed).unwrap();
        direct.extend(file.finish().unwrap());
        assert_eq!(
            read(direct),
            read(aggregate(Aggregate::Consensus, &text, &json_rows).unwrap())
        );
    }
}
