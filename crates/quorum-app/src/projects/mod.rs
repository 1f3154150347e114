//! Projects, members and items.

mod pairs;
mod parquet;

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use quorum_core::Role;
use quorum_core::item::{Item, ItemInput};
use quorum_core::schema::Schema;
use quorum_store::{
    ImportReport, ItemBatch, LocalePolicy, Member, NewProject, Project, ProjectStats,
    QualityPolicy, Store,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{App, AppError, Caller};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    #[serde(default)]
    pub instructions: String,
    pub schema: Value,
    /// Raters per item.
    #[serde(default = "default_overlap")]
    pub overlap: i32,
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: i64,
    #[serde(default)]
    pub locale_policy: LocalePolicy,
    /// Dynamic overlap: an item settles once its consensus reaches `target_confidence` after
    /// at least `min_overlap` answers; `overlap` is then the most it gets.
    #[serde(default)]
    pub min_overlap: Option<i32>,
    #[serde(default)]
    pub target_confidence: Option<f64>,
    /// Gold mixing, qualification, auto-pause and review rules (all off by default).
    #[serde(default)]
    pub quality: QualityPolicy,
}

/// Raters per item when a project does not say.
pub const DEFAULT_OVERLAP: i32 = 1;
/// How long a rater holds an item when a project does not say.
pub const DEFAULT_LEASE_SECONDS: i64 = 30 * 60;

fn default_overlap() -> i32 {
    DEFAULT_OVERLAP
}

fn default_lease_seconds() -> i64 {
    DEFAULT_LEASE_SECONDS
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user's name.
    pub user: String,
    pub role: Role,
    #[serde(default)]
    pub locales: Vec<String>,
    #[serde(default)]
    pub skills: Vec<String>,
}

/// One import row: its 1-based number and the item, or why it could not be read.
pub type ParsedRow = (u64, Result<ItemInput, String>);

/// A row the import refused, by its 1-based row (line, for JSONL and CSV) number.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    pub row: u64,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ImportOutcome {
    pub created: u64,
    pub updated: u64,
    /// The first [`MAX_REJECTED`] rows refused, in order.
    pub rejected: Vec<Rejected>,
    /// Every row refused (more than `rejected` holds when that list was cut short).
    #[serde(skip_serializing_if = "is_zero")]
    pub rejected_total: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An import reports at most this many refused rows (and counts the rest), so a body of bad
/// rows costs bounded memory and a bounded reply, whatever its size.
pub const MAX_REJECTED: usize = 1000;
/// A row's problem is cut to this many characters (a message may quote the row).
const MAX_PROBLEM_CHARS: usize = 300;

/// The one sentence that reports refused rows, for the API and the CLI alike: "N rows were
/// rejected; nothing was imported", and which are listed when not all are.
pub fn rejected_summary(total: u64, listed: usize, rows: &str, done: &str) -> String {
    let listed = if total as usize > listed {
        format!(" (the first {listed} are listed)")
    } else {
        String::new()
    };
    format!("{total} {rows} were rejected; nothing was {done}{listed}")
}

/// The rows an import refused: the first [`MAX_REJECTED`], each problem cut short, and the
/// count of all of them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rejections {
    pub(crate) kept: Vec<Rejected>,
    pub(crate) total: u64,
}

impl Rejections {
    pub(crate) fn push(&mut self, row: u64, mut error: String) {
        self.total += 1;
        if self.kept.len() < MAX_REJECTED {
            if let Some((cut, _)) = error.char_indices().nth(MAX_PROBLEM_CHARS) {
                error.truncate(cut);
                error.push('…');
            }
            self.kept.push(Rejected { row, error });
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl<S: Store> App<S> {
    /// The caller's role in a project; administrators act as managers everywhere.
    pub async fn role_in(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<(Project, Role), AppError> {
        let project = self.cached_project(project_id).await?;
        let member = self.cached_member(project_id, caller.user.id).await?;
        match (project, member) {
            (Some(project), _) if caller.user.is_admin => Ok((project, Role::Manager)),
            (Some(project), Some(member)) => Ok((project, member.role)),
            // A project the caller may not see is reported as missing, so ids leak nothing.
            _ => Err(AppError::NotFound("project")),
        }
    }

    pub(crate) async fn require(
        &self,
        caller: &Caller,
        project_id: i64,
        needed: Role,
    ) -> Result<Project, AppError> {
        let (project, role) = self.role_in(caller, project_id).await?;
        if role < needed {
            return Err(AppError::Forbidden(format!(
                "this needs the {} role in the project",
                needed.as_str()
            )));
        }
        Ok(project)
    }

    pub async fn create_project(
        &self,
        caller: &Caller,
        request: CreateProject,
    ) -> Result<Project, AppError> {
        if !caller.user.is_admin {
            return Err(AppError::Forbidden(
                "only administrators create projects".into(),
            ));
        }
        let name = request.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(AppError::Invalid {
                message: "the name must be 1 to 200 characters".into(),
                details: json!({"field": "name"}),
            });
        }
        if !(1..=1000).contains(&request.overlap) {
            return Err(AppError::Invalid {
                message: "overlap must be 1 to 1000".into(),
                details: json!({"field": "overlap"}),
            });
        }
        if !(10..=7 * 24 * 3600).contains(&request.lease_seconds) {
            return Err(AppError::Invalid {
                message: "lease_seconds must be 10 to 604800".into(),
                details: json!({"field": "lease_seconds"}),
            });
        }
        match (request.min_overlap, request.target_confidence) {
            (None, None) => {}
            (Some(min), Some(target))
                if (1..=request.overlap).contains(&min) && target > 0.5 && target < 1.0 => {}
            _ => {
                return Err(AppError::Invalid {
                    message: "dynamic overlap needs both min_overlap (1 to overlap) and target_confidence (between 0.5 and 1)".into(),
                    details: json!({"field": "min_overlap"}),
                });
            }
        }
        crate::quality::control::validate_quality(&request.quality)?;
        let schema = Schema::parse(&request.schema).map_err(|e| AppError::Invalid {
            message: e.to_string(),
            details: json!({"field": format!("schema.{}", e.location)}),
        })?;
        let project = NewProject {
            name: name.to_string(),
            instructions: request.instructions,
            schema,
            overlap: request.overlap,
            lease_seconds: request.lease_seconds,
            locale_policy: request.locale_policy,
            min_overlap: request.min_overlap,
            target_confidence: request.target_confidence,
            quality: request.quality,
            created_by: caller.user.id,
        };
        Ok(self.store().create_project(project, self.now()).await?)
    }

    pub async fn project(&self, caller: &Caller, id: i64) -> Result<(Project, Role), AppError> {
        self.role_in(caller, id).await
    }

    pub async fn list_projects(
        &self,
        caller: &Caller,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Project>, AppError> {
        let member = if caller.user.is_admin {
            None
        } else {
            Some(caller.user.id)
        };
        Ok(self
            .store()
            .list_projects(member, after, limit.clamp(1, 500))
            .await?)
    }

    pub async fn add_member(
        &self,
        caller: &Caller,
        project_id: i64,
        request: AddMember,
    ) -> Result<Member, AppError> {
        self.require(caller, project_id, Role::Manager).await?;
        for locale in &request.locales {
            if !quorum_core::valid_locale(locale) {
                return Err(AppError::Invalid {
                    message: format!("`{locale}` is not a BCP 47 language tag such as ar-QA"),
                    details: json!({"field": "locales"}),
                });
            }
        }
        let user = self
            .store()
            .user_by_name(&request.user)
            .await?
            .ok_or_else(|| AppError::Invalid {
                message: format!("no user named `{}`", request.user),
                details: json!({"field": "user"}),
            })?;
        let member = Member {
            project_id,
            user_id: user.id,
            role: request.role,
            locales: request.locales,
            skills: request.skills,
        };
        self.store().upsert_member(member.clone()).await?;
        self.caches().members.forget(&(project_id, user.id));
        Ok(member)
    }

    /// Reads a whole import body (`format`) against the project's schema and writes all rows
    /// in one transaction only when none is rejected.
    pub async fn import(
        &self,
        caller: &Caller,
        project_id: i64,
        format: ImportFormat,
        body: &str,
    ) -> Result<ImportOutcome, AppError> {
        let mut session = self.begin_import(caller, project_id).await?;
        session.push_text(format, body)?;
        self.finish_import(session).await
    }

    /// Imports a Parquet file's rows (see `parquet_items`): all or none.
    pub async fn import_parquet(
        &self,
        caller: &Caller,
        project_id: i64,
        body: Vec<u8>,
    ) -> Result<ImportOutcome, AppError> {
        let mut session = self.begin_import(caller, project_id).await?;
        session.push_parquet(body)?;
        self.finish_import(session).await
    }

    /// Starts an import that rows are pushed into one at a time (for bodies too large to hold).
    pub async fn begin_import(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<ImportSession, AppError> {
        let project = self.require(caller, project_id, Role::Manager).await?;
        Ok(ImportSession {
            project_id,
            schema: project.schema,
            items: ItemBatch::default(),
            rejected: Rejections::default(),
            keys: (RandomState::new(), RandomState::new()),
            seen: HashSet::new(),
        })
    }

    /// Writes the session's items in one transaction, unless a row was rejected.
    pub async fn finish_import(&self, session: ImportSession) -> Result<ImportOutcome, AppError> {
        if !session.rejected.is_empty() {
            return Ok(ImportOutcome {
                created: 0,
                updated: 0,
                rejected_total: session.rejected.total,
                rejected: session.rejected.kept,
            });
        }
        let ImportReport { created, updated } = self
            .store()
            .import_items(session.project_id, session.items, self.now())
            .await?;
        Ok(ImportOutcome {
            created,
            updated,
            rejected: Vec::new(),
            rejected_total: 0,
        })
    }

    pub async fn stats(&self, caller: &Caller, project_id: i64) -> Result<ProjectStats, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        Ok(self
            .store()
            .stats(project_id, project.overlap, self.now())
            .await?)
    }

    /// Checks the caller may export the project (managers only); returns it.
    pub async fn authorize_export(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Project, AppError> {
        self.require(caller, project_id, Role::Manager).await
    }
}

/// An import in progress: rows are validated and packed as they arrive.
pub struct ImportSession {
    project_id: i64,
    schema: Schema,
    items: ItemBatch,
    rejected: Rejections,
    /// External ids seen so far, as 128-bit hashes (two independently keyed SipHashes): exact
    /// for any practical import, 16 bytes per row instead of a copy of every id.
    keys: (RandomState, RandomState),
    seen: HashSet<(u64, u64)>,
}

impl std::fmt::Debug for ImportSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportSession")
            .field("rows", &self.items.len())
            .field("rejected", &self.rejected.total)
            .finish()
    }
}

impl ImportSession {
    /// Validates one row; once a row is rejected, later good rows are only checked.
    pub fn push(&mut self, row: u64, parsed: Result<ItemInput, String>) {
        let validated =
            parsed.and_then(|input| Item::validate(input, &self.schema).map_err(|e| e.to_string()));
        match validated {
            Ok(item) => {
                if let Some(id) = &item.external_id
                    && !self
                        .seen
                        .insert((self.keys.0.hash_one(id), self.keys.1.hash_one(id)))
                {
                    self.reject(
                        row,
                        format!("external_id `{id}` appears twice in this import"),
                    );
                } else if self.rejected.is_empty()
                    && let Err(full) = self.items.push(&item)
                {
                    self.reject(row, full.to_string());
                }
            }
            Err(error) => self.reject(row, error),
        }
    }

    /// Records a refused row. Nothing will be written, so the rows kept so far are dropped.
    fn reject(&mut self, row: u64, error: String) {
        if self.rejected.is_empty() {
            self.items = ItemBatch::default();
        }
        self.rejected.push(row, error);
    }

    /// Every row of a body read whole, in `format`.
    pub fn push_text(&mut self, format: ImportFormat, body: &str) -> Result<(), AppError> {
        // The readers borrow the schema while rows are pushed into the session.
        let schema = self.schema.clone();
        match format {
            ImportFormat::Json => push_json(self, body)?,
            ImportFormat::Csv => {
                for (row, parsed) in csv_items(body, &schema)? {
                    self.push(row, parsed);
                }
            }
            ImportFormat::Dpo => {
                for (row, parsed) in pairs::dpo_items(body, &schema)? {
                    self.push(row, parsed);
                }
            }
        }
        Ok(())
    }

    /// Every row of a Parquet file (see `parquet_items`).
    pub fn push_parquet(&mut self, body: Vec<u8>) -> Result<(), AppError> {
        let schema = self.schema.clone();
        parquet::parquet_items(body, &schema, |(row, parsed)| self.push(row, parsed))
    }

    /// One line of a JSON Lines body (blank lines are skipped).
    pub fn push_json_line(&mut self, line_number: u64, line: &str) {
        if !line.trim().is_empty() {
            self.push(
                line_number,
                serde_json::from_str(line).map_err(|e| e.to_string()),
            );
        }
    }
}

/// How an import body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// A JSON array of items, or JSON Lines (one item per line), told apart by the first
    /// character.
    Json,
    /// CSV with a header; see [`csv_items`].
    Csv,
    /// Preference pairs (`{id, prompt, chosen, rejected}` per line) into a pairwise project;
    /// see `pairs::dpo_items`.
    Dpo,
}

/// Reads a JSON import body into the session: a JSON array of items (walked element by
/// element, so only one item is ever parsed at a time) or JSON Lines (one item per line; blank
/// lines skipped). Rows are numbered from 1 by array position or line.
fn push_json(session: &mut ImportSession, body: &str) -> Result<(), AppError> {
    let trimmed = body.trim_start();
    if !trimmed.starts_with('[') {
        for (i, line) in body.lines().enumerate() {
            session.push_json_line((i + 1) as u64, line);
        }
        return Ok(());
    }
    struct Rows<'s>(&'s mut ImportSession);
    impl<'de> serde::de::Visitor<'de> for Rows<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of items")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut row = 0u64;
            while let Some(value) = seq.next_element::<Value>()? {
                row += 1;
                self.0.push(
                    row,
                    serde_json::from_value(value).map_err(|e| e.to_string()),
                );
            }
            Ok(())
        }
    }
    let mut reader = serde_json::Deserializer::from_str(trimmed);
    serde::Deserializer::deserialize_seq(&mut reader, Rows(session))
        .and_then(|()| reader.end())
        .map_err(|e| AppError::Invalid {
            message: format!("the body is not a JSON array: {e}"),
            details: json!({"line": e.line(), "column": e.column()}),
        })
}

/// Parses a CSV import body, row by row as it is read. Columns: `external_id`, `priority`,
/// `locale`, `category`; one per schema field (text, markdown and image fields take the cell as
/// it is, the others parse it as JSON); `metadata.KEY` (a string); `gold.QUESTION` and
/// `suggestion.QUESTION` (JSON when the cell parses as JSON, else the text). Row numbers are
/// CSV line numbers.
pub fn csv_items<'a>(
    body: &'a str,
    schema: &'a Schema,
) -> Result<impl Iterator<Item = ParsedRow> + 'a, AppError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(body.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| AppError::Invalid {
            message: format!("the CSV header cannot be read: {e}"),
            details: json!({"line": 1}),
        })?
        .clone();
    check_columns(&headers, schema, "CSV")?;
    Ok(reader.into_records().map(move |record| match record {
        Ok(record) => {
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            (line, csv_row(&headers, &record, schema))
        }
        Err(e) => {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            (line, Err(format!("not valid CSV: {e}")))
        }
    }))
}

/// Refuses a column that is not a field of the schema, nor one of the import's own (CSV's and
/// Parquet's, which share them).
pub(crate) fn check_columns(
    headers: &csv::StringRecord,
    schema: &Schema,
    what: &str,
) -> Result<(), AppError> {
    for column in headers {
        let known = ["external_id", "priority", "locale", "category"].contains(&column)
            || schema.field(column).is_some()
            || column
                .strip_prefix("metadata.")
                .is_some_and(|k| !k.is_empty())
            || column
                .strip_prefix("gold.")
                .is_some_and(|q| schema.question(q).is_some())
            || column
                .strip_prefix("suggestion.")
                .is_some_and(|q| schema.question(q).is_some());
        if !known {
            return Err(AppError::Invalid {
                message: format!(
                    "{what} column `{column}` is not a field of the schema, nor external_id, priority, locale, category, metadata.KEY, gold.QUESTION or suggestion.QUESTION"
                ),
                details: json!({"line": 1, "column": column}),
            });
        }
    }
    Ok(())
}

pub(crate) fn csv_row(
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
    schema: &Schema,
) -> Result<ItemInput, String> {
    use quorum_core::schema::FieldKind;
    let mut input = ItemInput::default();
    let (mut gold, mut suggestions) = (serde_json::Map::new(), serde_json::Map::new());
    for (column, cell) in headers.iter().zip(record.iter()) {
        let loose = || {
            serde_json::from_str::<Value>(cell).unwrap_or_else(|_| Value::String(cell.to_string()))
        };
        if cell.is_empty() && schema.field(column).is_none() {
            continue;
        }
        match column {
            "external_id" => input.external_id = Some(cell.to_string()),
            "priority" => {
                input.priority = cell
                    .trim()
                    .parse()
                    .map_err(|_| format!("priority `{cell}` is not a whole number"))?
            }
            "locale" | "category" => {
                input
                    .metadata
                    .insert(column.into(), Value::String(cell.into()));
            }
            _ => {
                if let Some(key) = column.strip_prefix("metadata.") {
                    input
                        .metadata
                        .insert(key.into(), Value::String(cell.into()));
                } else if let Some(q) = column.strip_prefix("gold.") {
                    gold.insert(q.into(), loose());
                } else if let Some(q) = column.strip_prefix("suggestion.") {
                    suggestions.insert(q.into(), loose());
                } else if let Some(field) = schema.field(column) {
                    let value = match field.kind {
                        FieldKind::Text | FieldKind::Markdown | FieldKind::Image => {
                            Value::String(cell.into())
                        }
                        _ => serde_json::from_str(cell)
                            .map_err(|e| format!("column `{column}` is not valid JSON: {e}"))?,
                    };
                    input.fields.insert(column.into(), value);
                }
            }
        }
    }
    input.gold = (!gold.is_empty()).then_some(gold);
    input.suggestions = (!suggestions.is_empty()).then_some(suggestions);
    Ok(input)
}
