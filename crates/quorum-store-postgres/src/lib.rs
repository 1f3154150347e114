//! The multi-node store: any number of stateless `quorum serve` processes share one
//! PostgreSQL. Every write is a single statement or one transaction; assignment takes the item
//! row with `FOR UPDATE SKIP LOCKED`, so concurrent raters on any server never overshoot the
//! overlap. Work that loses a deadlock or serialisation race is retried.

mod maintenance;
mod ops;

use std::str::FromStr;

use async_trait::async_trait;
use quorum_store::{
    BattleSides, BattleVote, ExportRow, Generation, ImportReport, ItemBatch, Lease, Member,
    ModelSpec, NewProject, NewToken, NewUser, NextRequest, Project, ProjectStats, QualityPolicy,
    RaterActivity, RaterChange, RaterEvent, RaterRecord, RaterState, Result, Review, StandardRun,
    Store, StoreError, StoredItem, Submission, SubmitOutcome, Token, User,
};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub struct PgStore {
    pool: PgPool,
    _maintenance: maintenance::Maintenance,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

pub(crate) fn database_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        return StoreError::Conflict(format!("already exists ({})", db.message()));
    }
    StoreError::Database(Box::new(error))
}

/// Deadlocks and serialisation failures: the transaction did nothing and may simply run again.
fn retryable(error: &StoreError) -> bool {
    let StoreError::Database(source) = error else {
        return false;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|db| db.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// Runs `$body` (using `conn`) in a transaction, committing on success and retrying on a
/// deadlock or serialisation failure.
macro_rules! transaction {
    ($pool:expr, |$conn:ident| $body:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = $pool.begin().await.map_err(database_error)?;
            let $conn: &mut sqlx::PgConnection = &mut tx;
            let result = $body;
            match result {
                Ok(value) => {
                    tx.commit().await.map_err(database_error)?;
                    break Ok(value);
                }
                Err(error) if attempt < 8 && retryable(&error) => {
                    let _ = tx.rollback().await;
                    tracing::debug!(
                        attempt,
                        "retrying a transaction after a deadlock or serialisation failure"
                    );
                    continue;
                }
                Err(error) => {
                    let _ = tx.rollback().await;
                    break Err(error);
                }
            }
        }
    }};
}

impl PgStore {
    /// Connects to a `postgres://` URL and applies the migrations (once, whichever server
    /// starts first: sqlx takes an advisory lock).
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(database_error)?
            .disable_statement_logging();
        Self::open_with(options).await
    }

    pub async fn open_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .connect_with(options)
            .await
            .map_err(database_error)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        let _maintenance = maintenance::Maintenance::start(pool.clone());
        Ok(Self { pool, _maintenance })
    }

    /// Vacuums the hot tables whose dead rows have passed the threshold (what the background
    /// task does every second); returns how many it vacuumed.
    pub async fn vacuum_hot_tables(&self) -> Result<usize> {
        maintenance::vacuum_if_needed(&self.pool)
            .await
            .map_err(database_error)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        transaction!(self.pool, |conn| ops::create_user(conn, user.clone()).await)
    }
    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        ops::user_where(
            &self.pool,
            "SELECT * FROM users WHERE name = $1",
            name.to_string(),
        )
        .await
    }
    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        ops::user_where(&self.pool, "SELECT * FROM users WHERE id = $1", id).await
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        ops::list_users(&self.pool).await
    }
    async fn create_token(&self, token: NewToken) -> Result<i64> {
        ops::create_token(&self.pool, &token).await
    }
    async fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(User, Token)>> {
        ops::user_by_token_hash(&self.pool, token_hash, now).await
    }
    async fn touch_token(&self, token_id: i64, now: i64, expires_at: Option<i64>) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2, expires_at = $3 WHERE id = $1")
            .bind(token_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(())
    }
    async fn tokens(&self, user_id: i64) -> Result<Vec<Token>> {
        ops::tokens(&self.pool, user_id).await
    }
    async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(token_id)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(done.rows_affected() > 0)
    }
    async fn revoke_tokens(&self, user_id: i64, named: Option<&str>) -> Result<u64> {
        let mut conn = self.pool.acquire().await.map_err(database_error)?;
        ops::revoke_tokens(&mut conn, user_id, named).await
    }
    async fn set_user_disabled(&self, user_id: i64, disabled_at: Option<i64>) -> Result<bool> {
        transaction!(self.pool, |conn| ops::set_user_disabled(
            conn,
            user_id,
            disabled_at
        )
        .await)
    }
    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user_id)
            .bind(password_hash)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(done.rows_affected() > 0)
    }
    async fn delete_token(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(())
    }
    async fn create_project(&self, project: NewProject, now: i64) -> Result<Project> {
        transaction!(self.pool, |conn| ops::create_project(
            conn,
            project.clone(),
            now
        )
        .await)
    }
    async fn project(&self, id: i64) -> Result<Option<Project>> {
        ops::project(&self.pool, id).await
    }
    async fn list_projects(
        &self,
        member: Option<i64>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Project>> {
        ops::list_projects(&self.pool, member, after, limit).await
    }
    async fn upsert_member(&self, member: Member) -> Result<()> {
        transaction!(self.pool, |conn| ops::upsert_member(conn, member.clone())
            .await)
    }
    async fn member(&self, project_id: i64, user_id: i64) -> Result<Option<Member>> {
        ops::member(&self.pool, project_id, user_id).await
    }
    async fn import_items(
        &self,
        project_id: i64,
        items: ItemBatch,
        now: i64,
    ) -> Result<ImportReport> {
        // Imports touch only their own new rows: no retry, so the items are never copied.
        let mut tx = self.pool.begin().await.map_err(database_error)?;
        let report = ops::import_items(&mut tx, project_id, items, now).await?;
        tx.commit().await.map_err(database_error)?;
        // A large import changes the table's shape at once; refresh the planner's statistics
        // now rather than when autovacuum gets round to it, so `next` keeps its index plans.
        if report.created + report.updated >= 1000 {
            sqlx::query("ANALYZE items")
                .execute(&self.pool)
                .await
                .map_err(database_error)?;
        }
        Ok(report)
    }
    async fn items(&self, project_id: i64, after: i64, limit: i64) -> Result<Vec<StoredItem>> {
        ops::items(&self.pool, project_id, after, limit).await
    }
    async fn settle_item(&self, item_id: i64) -> Result<()> {
        sqlx::query("UPDATE items SET settled = TRUE, open = FALSE WHERE id = $1")
            .bind(item_id)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(())
    }
    async fn item_answers(&self, item_id: i64) -> Result<Vec<quorum_store::ItemAnswer>> {
        ops::item_answers(&self.pool, item_id).await
    }
    async fn item(&self, id: i64) -> Result<Option<StoredItem>> {
        ops::item(&self.pool, id).await
    }
    async fn next_lease(&self, request: NextRequest) -> Result<Option<(Lease, StoredItem)>> {
        // Each statement is atomic; a lost deadlock or serialisation race is simply retried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match ops::next_lease(&self.pool, request.clone()).await {
                Err(error) if attempt < 8 && retryable(&error) => continue,
                other => return other,
            }
        }
    }
    async fn lease(&self, id: i64) -> Result<Option<Lease>> {
        ops::lease(&self.pool, id).await
    }
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome> {
        match ops::submit_live_lease(&self.pool, &submission).await {
            Ok(Some(response)) => return Ok(SubmitOutcome::Created(response)),
            // Not a live lease, or the statement lost a race: the full transaction decides.
            Ok(None) => {}
            Err(error) if retryable(&error) => {}
            Err(error) => return Err(error),
        }
        transaction!(self.pool, |conn| ops::submit(conn, submission.clone())
            .await)
    }
    async fn skip(&self, lease_id: i64, user_id: i64, _now: i64) -> Result<()> {
        transaction!(self.pool, |conn| ops::skip(conn, lease_id, user_id).await)
    }
    async fn export_responses(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>> {
        ops::export_responses(&self.pool, project_id, after, limit).await
    }
    async fn stats(&self, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats> {
        ops::stats(&self.pool, project_id, overlap, now).await
    }
    async fn upsert_model(&self, model: ModelSpec) -> Result<()> {
        transaction!(self.pool, |conn| ops::upsert_model(conn, model.clone())
            .await)
    }
    async fn models(&self) -> Result<Vec<ModelSpec>> {
        ops::models(&self.pool).await
    }
    async fn put_generations(&self, generations: Vec<Generation>) -> Result<()> {
        transaction!(self.pool, |conn| ops::put_generations(conn, &generations)
            .await)
    }
    async fn generations(&self, project_id: i64) -> Result<Vec<Generation>> {
        ops::generations(&self.pool, project_id).await
    }
    async fn import_battles(
        &self,
        project_id: i64,
        items: ItemBatch,
        sides: Vec<BattleSides>,
        now: i64,
    ) -> Result<ImportReport> {
        let mut tx = self.pool.begin().await.map_err(database_error)?;
        let report = ops::import_battles(&mut tx, project_id, items, sides, now).await?;
        tx.commit().await.map_err(database_error)?;
        Ok(report)
    }
    async fn battle_votes(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<BattleVote>> {
        ops::battle_votes(&self.pool, project_id, after, limit).await
    }
    async fn rater_activity(&self, project_id: i64, since: i64) -> Result<Vec<RaterActivity>> {
        ops::rater_activity(&self.pool, project_id, since).await
    }
    async fn set_quality(&self, project_id: i64, quality: QualityPolicy) -> Result<()> {
        transaction!(self.pool, |conn| ops::set_quality(
            conn, project_id, &quality
        )
        .await)
    }
    async fn rater_record(&self, project_id: i64, user_id: i64, since: i64) -> Result<RaterRecord> {
        ops::rater_record(&self.pool, project_id, user_id, since).await
    }
    async fn rater_state(&self, project_id: i64, user_id: i64) -> Result<Option<RaterState>> {
        Ok(ops::rater_states(&self.pool, project_id, Some(user_id))
            .await?
            .pop())
    }
    async fn rater_states(&self, project_id: i64) -> Result<Vec<RaterState>> {
        ops::rater_states(&self.pool, project_id, None).await
    }
    async fn change_rater(
        &self,
        project_id: i64,
        user_id: i64,
        change: RaterChange,
        actor_id: Option<i64>,
        now: i64,
    ) -> Result<bool> {
        transaction!(self.pool, |conn| ops::change_rater(
            conn, project_id, user_id, &change, actor_id, now
        )
        .await)
    }
    async fn rater_events(&self, project_id: i64) -> Result<Vec<RaterEvent>> {
        ops::rater_events(&self.pool, project_id).await
    }
    async fn qualification(&self, user_id: i64, skill: &str) -> Result<Option<bool>> {
        ops::qualification(&self.pool, user_id, skill).await
    }
    async fn put_reviews(&self, reviews: Vec<Review>) -> Result<()> {
        transaction!(self.pool, |conn| ops::put_reviews(conn, &reviews).await)
    }
    async fn reviews(&self, project_id: i64) -> Result<Vec<Review>> {
        ops::reviews(&self.pool, project_id).await
    }
    async fn put_standard_run(&self, run: StandardRun) -> Result<()> {
        transaction!(self.pool, |conn| ops::put_standard_run(conn, &run).await)
    }
    async fn standard_runs(&self, hash: &str) -> Result<Vec<StandardRun>> {
        ops::standard_runs(&self.pool, hash).await
    }
    async fn all_standard_runs(&self) -> Result<Vec<StandardRun>> {
        ops::all_standard_runs(&self.pool).await
    }
    async fn standard_run_of(&self, project_id: i64) -> Result<Option<StandardRun>> {
        ops::standard_run_of(&self.pool, project_id).await
    }
    async fn instance_setting(&self, name: &str, value: String) -> Result<String> {
        ops::instance_setting(&self.pool, name, &value).await
    }
    async fn close(&self) {
        // Every write commits before it is acknowledged; closing waits for connections in use.
        self.pool.close().await;
    }
}
