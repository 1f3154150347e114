//! The shared storage conformance suite, on a fresh SQLite file per test.

use quorum_store_sqlite::SqliteStore;

async fn fresh() -> SqliteStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.keep().join("quorum.sqlite3");
    SqliteStore::open(path.to_str().expect("a UTF-8 path"))
        .await
        .expect("the store opens")
}

quorum_store::conformance_tests!(fresh);
