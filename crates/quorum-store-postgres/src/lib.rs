//! The multi-node store: any number of stateless `quorum serve` processes share one
//! PostgreSQL. Every write is a single statement or one transaction; assignment takes the item
//! row with `FOR UPDATE SKIP LOCKED`, so concurrent raters on any server never overshoot the
//! overlap. Work that loses a deadlock or serialisation race is retried.

mod maintenance;

use std::str::FromStr;

use async_trait::async_trait;
use quorum_store::{Result, Store, StoreError};
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
    // disk_full
    if let sqlx::Error::Database(db) = &error
        && db.code().as_deref() == Some("53100")
    {
        return StoreError::StorageFull;
    }
    // The connection is gone or cannot be made: class 08 (connection exceptions) and the
    // server shutting down or starting up (57P01–57P03), or no connection at all.
    let unreachable = match &error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    };
    if unreachable {
        return StoreError::Unreachable(error.to_string());
    }
    StoreError::Database(Box::new(error))
}

/// Deadlocks and serialisation failures: the transaction did nothing and may simply run again.
pub(crate) fn retryable(error: &StoreError) -> bool {
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
            let mut tx = $pool.begin().await.map_err($crate::database_error)?;
            let $conn: &mut sqlx::PgConnection = &mut tx;
            let result = $body;
            match result {
                Ok(value) => {
                    tx.commit().await.map_err($crate::database_error)?;
                    break Ok(value);
                }
                Err(error) if attempt < 8 && $crate::retryable(&error) => {
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

mod ops;

impl PgStore {
    /// Connects to a `postgres://` URL and applies the migrations (once, whichever server
    /// starts first: sqlx takes an advisory lock).
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(database_error)?
            .disable_statement_logging();
        Self::open_with(options).await
    }

    /// One connection to `url`, made at once (no pool waiting on it): the real reason when
    /// the database cannot be reached.
    async fn connect_once(url: &str) -> Result<sqlx::PgConnection> {
        let options = PgConnectOptions::from_str(url)
            .map_err(database_error)?
            .disable_statement_logging();
        ConnectOptions::connect(&options)
            .await
            .map_err(database_error)
    }

    /// Whether the database at `url` answers; the connection error when it does not.
    pub async fn reachable(url: &str) -> Result<()> {
        let conn = Self::connect_once(url).await?;
        let _ = sqlx::Connection::close(conn).await;
        Ok(())
    }

    /// How many tables the database at `url` holds (in any schema but PostgreSQL's own),
    /// read without migrating it: whether a restore may go there.
    pub async fn table_count(url: &str) -> Result<i64> {
        let mut conn = Self::connect_once(url).await?;
        let count = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(database_error)?;
        let _ = sqlx::Connection::close(conn).await;
        Ok(count)
    }

    pub async fn open_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(32)
            // While the database is away (restarting, failing over) a request gets its 503
            // within seconds instead of hanging on the pool.
            .acquire_timeout(std::time::Duration::from_secs(5))
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
    async fn close(&self) {
        // Every write commits before it is acknowledged; closing waits for connections in use.
        self.pool.close().await;
    }

    async fn row_counts(&self) -> Result<Vec<(&'static str, i64)>> {
        let mut snapshot = self.pool.begin().await.map_err(database_error)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *snapshot)
            .await
            .map_err(database_error)?;
        let mut counts = Vec::new();
        for table in quorum_store::TABLES {
            let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&mut *snapshot)
                .await
                .map_err(database_error)?;
            counts.push((*table, count));
        }
        Ok(counts)
    }
}
