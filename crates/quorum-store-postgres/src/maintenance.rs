//! Keeps the assignment tables vacuumed while raters work.
//!
//! Every answer updates an item and a lease. Until VACUUM runs, the index that `next` walks
//! (open items, highest priority then oldest first) keeps an entry for every item completed
//! since, right at its head, and each `next` steps over all of them: on a 64-rater loop one
//! lookup went from 0.1 ms to 8 ms in four minutes. Autovacuum may be off (as on the machines
//! this project is tested on) and even when on it looks at a database once a minute by default,
//! so each server checks the dead-row counts itself every second and vacuums a hot table once
//! they pass a threshold. An advisory lock keeps two servers from vacuuming at the same time.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::Row;

/// Tables whose rows change on every rater action, with the share of their live rows that may
/// be dead (plus [`DEAD_ROWS`]) before they are vacuumed. Dead items slow every `next`; dead
/// leases only the lookup of a rater's own live lease, and the table grows with every answer,
/// so it is vacuumed less eagerly.
const HOT_TABLES: [(&str, f64); 2] = [("items", 0.01), ("leases", 0.05)];
const DEAD_ROWS: f64 = 2_000.0;
/// Shared by every Quorum server on the database (an arbitrary constant: "QRMVACUU").
const LOCK_KEY: i64 = 0x5152_4d56_4143_5555;
const PERIOD: Duration = Duration::from_secs(1);

/// The vacuum task; stops when dropped (with its store).
#[derive(Debug)]
pub struct Maintenance(tokio::task::JoinHandle<()>);

impl Maintenance {
    pub fn start(pool: PgPool) -> Self {
        Self(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PERIOD);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !pool.is_closed() {
                ticker.tick().await;
                if let Err(error) = vacuum_if_needed(&pool).await {
                    if pool.is_closed() {
                        break;
                    }
                    tracing::warn!(%error, "vacuuming the assignment tables failed");
                }
            }
        }))
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The hot tables (in the current schema) whose dead rows have passed the threshold.
async fn due(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT relname::TEXT AS name, n_dead_tup, n_live_tup FROM pg_stat_user_tables
         WHERE schemaname = current_schema() AND relname = ANY($1)",
    )
    .bind(HOT_TABLES.map(|(name, _)| name))
    .fetch_all(pool)
    .await?;
    let mut due = Vec::new();
    for row in rows {
        let name: String = row.try_get("name")?;
        let dead: i64 = row.try_get("n_dead_tup")?;
        let live: i64 = row.try_get("n_live_tup")?;
        let fraction = HOT_TABLES
            .iter()
            .find(|(table, _)| *table == name)
            .map_or(0.0, |(_, fraction)| *fraction);
        if dead as f64 > DEAD_ROWS + fraction * live as f64 {
            due.push(name);
        }
    }
    Ok(due)
}

/// Vacuums the tables that are due, unless another server is doing so already.
pub async fn vacuum_if_needed(pool: &PgPool) -> sqlx::Result<usize> {
    let tables = due(pool).await?;
    if tables.is_empty() {
        return Ok(0);
    }
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(0);
    }
    let mut result = Ok(());
    for table in &tables {
        // The names come from HOT_TABLES, never from input.
        result = sqlx::query(&format!("VACUUM {table}"))
            .execute(&mut *conn)
            .await
            .map(drop);
        if result.is_err() {
            break;
        }
        tracing::debug!(table, "vacuumed");
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    result.map(|()| tables.len())
}
