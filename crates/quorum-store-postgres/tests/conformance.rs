//! The shared storage conformance suite, on the real PostgreSQL of this machine: each test gets
//! its own schema in the database named by `QUORUM_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use quorum_store_postgres::PgStore;
use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn url() -> String {
    std::env::var("QUORUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn fresh() -> PgStore {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let schema = format!(
        "quorum_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let options = PgConnectOptions::from_str(&url()).expect("a valid PostgreSQL URL");
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .expect("PostgreSQL is running (scripts/test.sh starts it)");
    admin
        .execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}").as_str())
        .await
        .expect("schema created");
    admin.close().await;
    PgStore::open_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("the store opens")
}

quorum_store::conformance_tests!(fresh);
