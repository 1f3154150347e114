//! The SQL of the PostgreSQL backend. Write functions run inside one transaction each (see
//! `lib.rs`); read functions run on the pool.

use quorum_core::Role;
use quorum_store::{
    BattleSides, BattleVote, Delivery, DeliveryState, ExportRow, Generation, ImportReport,
    ItemAnswer, ItemBatch, ItemRef, Job, JobState, Lease, LeaseState, LocalePolicy, Member,
    ModelSpec, NewProject, NewToken, NewUser, NextRequest, Pool, Project, ProjectStats,
    QualityPolicy, RaterActivity, RaterChange, RaterEvent, RaterRecord, RaterState, Response,
    Result, Review, StandardRun, StoreError, StoredItem, Submission, SubmitOutcome, Token, User,
    Verdict, Webhook, WebhookEvent,
};
use quorum_store::{review_event, standing_event};
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Postgres, Row};

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

type Db = Postgres;

pub(crate) fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(Box::new(e)))
}

pub(crate) fn get<'r, T: sqlx::Decode<'r, Db> + sqlx::Type<Db>>(
    row: &'r PgRow,
    column: &str,
) -> Result<T> {
    row.try_get(column).map_err(database_error)
}

pub(crate) fn locale_keys(locale: Option<&str>) -> (Option<String>, Option<String>) {
    locale.map(quorum_core::locale_keys).unzip()
}

/// Rows sent per `INSERT … SELECT FROM UNNEST(…)` statement.
const IMPORT_CHUNK: usize = 5000;
