//! Items from an Apache Parquet file, with the columns of a CSV import: `external_id`,
//! `priority`, `locale`, `category`, one per schema field, `metadata.KEY`, `gold.QUESTION`,
//! `suggestion.QUESTION`. Columns are text, numbers or booleans; a chat, responses or metadata
//! field is JSON text, as in CSV. Rows are numbered from 1 in file order.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quorum_core::schema::Schema;
use serde_json::json;

use super::{ParsedRow, check_columns, csv_row};
use crate::AppError;

fn invalid(message: String, details: serde_json::Value) -> AppError {
    AppError::Invalid { message, details }
}

/// Cell `row` of `array` as CSV would hold it: empty when null.
fn cell(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return String::new();
    }
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => array.as_string_view().value(row).to_string(),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Float32 => array.as_primitive::<Float32Type>().value(row).to_string(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(row).to_string(),
        _ => String::new(),
    }
}

/// Whether [`cell`] reads a column of this type.
fn readable(kind: &DataType) -> bool {
    matches!(
        kind,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Null
    )
}

/// Hands every row of a Parquet file to `push` as an item (or why it is not one), one record
/// batch at a time.
pub fn parquet_items(
    body: Vec<u8>,
    schema: &Schema,
    mut push: impl FnMut(ParsedRow),
) -> Result<(), AppError> {
    let not_parquet = |e: parquet::errors::ParquetError| {
        invalid(
            format!("the body is not a Parquet file: {e}"),
            json!({"field": "body"}),
        )
    };
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body)).map_err(not_parquet)?;
    let columns: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    for field in builder.schema().fields() {
        if !readable(field.data_type()) {
            return Err(invalid(
                format!(
                    "Parquet column `{}` is {}: columns are text, numbers or booleans (chat, responses and metadata fields as JSON text)",
                    field.name(),
                    field.data_type()
                ),
                json!({"column": field.name()}),
            ));
        }
    }
    let headers = csv::StringRecord::from(columns);
    check_columns(&headers, schema, "Parquet")?;
    let reader = builder.build().map_err(not_parquet)?;
    let mut number = 0;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| {
            invalid(
                format!("the Parquet file cannot be read: {e}"),
                json!({"field": "body"}),
            )
        })?;
        for i in 0..batch.num_rows() {
            let record: csv::StringRecord = batch
                .columns()
                .iter()
                .map(|column| cell(column.as_ref(), i))
                .collect();
            number += 1;
            push((number, csv_row(&headers, &record, schema)));
        }
    }
    Ok(())
}
