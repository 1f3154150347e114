//! Export formats for collected responses, shared by the API and the CLI.

use quorum_store::ExportRow;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header; `answers` is a JSON cell.
    Csv,
}

impl ExportFormat {
    pub fn parse(text: &str) -> Option<ExportFormat> {
        match text {
            "jsonl" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    /// What comes before the first row.
    pub fn header(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "",
            ExportFormat::Csv => {
                "response_id,item_id,external_id,user,answers,time_spent_ms,created_at\n"
            }
        }
    }

    /// Appends `rows` to `out`, leaving out answers to gold items (they test raters; they are
    /// not data).
    pub fn render(self, rows: &[ExportRow], out: &mut String) {
        for row in rows.iter().filter(|r| !r.gold) {
            match self {
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
