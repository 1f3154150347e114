//! The SQL of the SQLite backend, on plain synchronous connections. Write functions run on the
//! writer thread inside its transaction; read functions run on a reader connection.

use quorum_core::Role;
use quorum_store::{
    BattleSides, BattleVote, Delivery, DeliveryState, ExportRow, Generation, ImportReport,
    ItemAnswer, ItemBatch, Job, JobState, Lease, LeaseState, LocalePolicy, Member, ModelSpec,
    NewProject, NewToken, NewUser, NextRequest, Pool, Project, ProjectStats, QualityPolicy,
    RaterActivity, RaterChange, RaterEvent, RaterRecord, RaterState, Response, Result, Review,
    StandardRun, StoreError, StoredItem, Submission, SubmitOutcome, Token, User, Verdict, Webhook,
    WebhookEvent,
};
use quorum_store::{review_event, standing_event};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::database_error;

mod accounts;
mod evaluation;
mod jobs;
mod projects;
mod quality;
mod rows;
mod standards;
mod tallies;
mod webhooks;
mod work;

pub(crate) use webhooks::{emit, item_completed, wanted_events};

pub(crate) fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(Box::new(e)))
}

/// One row (or none) through a mapper.
pub(crate) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mapper: fn(&Row<'_>) -> rusqlite::Result<Result<T>>,
) -> Result<Option<T>> {
    let mut statement = conn.prepare_cached(sql).map_err(database_error)?;
    statement
        .query_row(params, mapper)
        .optional()
        .map_err(database_error)?
        .transpose()
}

pub(crate) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mapper: fn(&Row<'_>) -> rusqlite::Result<Result<T>>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql).map_err(database_error)?;
    let rows = statement
        .query_map(params, mapper)
        .map_err(database_error)?;
    rows.map(|r| r.map_err(database_error).and_then(|inner| inner))
        .collect()
}

pub(crate) fn execute(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(database_error)
}

pub(crate) fn scalar<T: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |row| row.get(0)).optional())
        .map_err(database_error)
}

pub(crate) fn locale_keys(locale: Option<&str>) -> (Option<String>, Option<String>) {
    locale.map(quorum_core::locale_keys).unzip()
}
