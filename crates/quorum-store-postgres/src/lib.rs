//! The multi-node store: any number of stateless `quorum serve` processes share one
//! PostgreSQL. Every write is a single statement or one transaction; assignment takes the item
//! row with `FOR UPDATE SKIP LOCKED`, so concurrent raters on any server never overshoot the
//! overlap. Work that loses a deadlock or serialisation race is retried.

mod hosts;
mod maintenance;

use async_trait::async_trait;
use quorum_store::{Result, Store, StoreError};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub struct PgStore {
    pool: PgPool,
    /// The vacuum task (none on a read replica, which cannot vacuum).
    _maintenance: Option<maintenance::Maintenance>,
    _watcher: Option<hosts::Watcher>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

pub(crate) fn database_error(error: sqlx::Error) -> StoreError {
    let sqlx::Error::Database(db) = &error else {
        return match error {
            // No connection at all, or it broke.
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
                StoreError::Unreachable(error.to_string())
            }
            _ => StoreError::Database(Box::new(error)),
        };
    };
    match db.code().as_deref().unwrap_or_default() {
        "23505" => StoreError::Conflict(format!("already exists ({})", db.message())),
        "53100" => StoreError::StorageFull, // disk_full
        // Connection exceptions (class 08), and the server shutting down or starting up.
        c if c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03") => {
            StoreError::Unreachable(error.to_string())
        }
        // read_only_sql_transaction: the host was the primary and is now a standby.
        "25006" => StoreError::Unreachable(format!(
            "the host no longer accepts writes ({})",
            db.message()
        )),
        _ => StoreError::Database(Box::new(error)),
    }
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
    /// starts first: sqlx takes an advisory lock). The URL may name several hosts (a primary
    /// and its standbys, libpq's way): the store uses the one that accepts writes and follows
    /// the primary when it moves (see [`hosts`]).
    pub async fn open(url: &str) -> Result<Self> {
        let (hosts, current) = hosts::with_primary(url).await?;
        Self::start(hosts, current).await
    }

    /// One connection to the primary of `url`, made at once (no pool waiting on it): the real
    /// reason when the database cannot be reached.
    async fn connect_once(url: &str) -> Result<sqlx::PgConnection> {
        let (hosts, current) = hosts::with_primary(url).await?;
        ConnectOptions::connect(&hosts[current].options)
            .await
            .map_err(database_error)
    }

    /// Whether a host of `url` answers and accepts writes; why not when none does.
    pub async fn reachable(url: &str) -> Result<()> {
        hosts::with_primary(url).await.map(drop)
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

    /// A read replica (a streaming standby) for analytics, at a URL naming one host: no
    /// migrations (the primary's arrive by replication), no vacuuming, and no connection made
    /// until it is used, so a replica that is down does not keep a server from starting.
    pub fn open_replica(url: &str) -> Result<Self> {
        let mut hosts = hosts::parse(url, false)?;
        if hosts.len() != 1 {
            return Err(StoreError::Database(
                "a read database names one host: give each replica its own --read-database".into(),
            ));
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy_with(hosts.remove(0).options);
        Ok(Self {
            _maintenance: None,
            pool,
            _watcher: None,
        })
    }

    pub async fn open_with(options: PgConnectOptions) -> Result<Self> {
        Self::start(vec![hosts::Host::new(options)], 0).await
    }

    async fn start(hosts: Vec<hosts::Host>, current: usize) -> Result<Self> {
        let switched = hosts::Switched::now();
        let fresh = switched.clone();
        let pool = PgPoolOptions::new()
            .max_connections(32)
            // While the database is away (restarting, failing over) a request gets its 503
            // within seconds instead of hanging on the pool.
            .acquire_timeout(std::time::Duration::from_secs(5))
            // A connection made before the primary moved is closed rather than reused.
            .before_acquire(move |_, meta| {
                let current = fresh.current(meta.age);
                Box::pin(async move { Ok(current) })
            })
            .connect_with(hosts[current].options.clone())
            .await
            .map_err(database_error)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        let _maintenance = Some(maintenance::Maintenance::start(pool.clone()));
        let _watcher = (hosts.len() > 1)
            .then(|| hosts::Watcher::start(pool.clone(), hosts, current, switched));
        Ok(Self {
            pool,
            _maintenance,
            _watcher,
        })
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

    async fn ping(&self) -> Result<()> {
        // A readiness probe answers within two seconds, whatever the pool's acquire timeout.
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        match tokio::time::timeout(std::time::Duration::from_secs(2), ping).await {
            Ok(result) => result.map(drop).map_err(database_error),
            Err(_) => Err(StoreError::Unreachable("no answer within 2 s".into())),
        }
    }

    async fn outbox_backlog(&self) -> Result<(i64, Option<i64>)> {
        sqlx::query_as(
            "SELECT COUNT(*), MIN(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(database_error)
    }

    async fn replay_lag_ms(&self) -> Result<Option<i64>> {
        // Caught up when everything received is replayed; otherwise as old as the last
        // transaction replayed (pg_last_xact_replay_timestamp is the primary's commit time).
        sqlx::query_scalar(
            "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL
                 WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
                 ELSE COALESCE((EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000)::BIGINT, 0)
             END",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(database_error)
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
