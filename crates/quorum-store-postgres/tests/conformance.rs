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
    fresh_with_options().await.0
}

/// A fresh store, and the connection options that reach its schema.
async fn fresh_with_options() -> (PgStore, PgConnectOptions) {
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
    let options = options.options([("search_path", schema.as_str())]);
    let store = PgStore::open_with(options.clone())
        .await
        .expect("the store opens");
    (store, options)
}

quorum_store::conformance_tests!(fresh);

/// Rows left dead by updates to the assignment tables are vacuumed away by the server itself,
/// whether or not autovacuum is on.
#[tokio::test]
async fn dead_rows_in_hot_tables_are_vacuumed() {
    let (store, options) = fresh_with_options().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connects");
    pool.execute(
        "INSERT INTO users (name, password_hash, created_at) VALUES ('o', '', 0);
         INSERT INTO projects (name, schema, overlap, lease_seconds, created_at)
             VALUES ('p', '{}', 1, 60, 0);
         INSERT INTO items (project_id, fields, created_at)
             SELECT 1, '{}', 0 FROM generate_series(1, 5000);
         UPDATE items SET priority = 1;",
    )
    .await
    .expect("rows written");
    let stats = || async {
        sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT n_tup_upd, n_dead_tup, vacuum_count FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = 'items'",
        )
        .fetch_one(&pool)
        .await
        .expect("statistics read")
    };
    // The writes reach the shared statistics within about a second, and the server's own
    // task (checking every second) then vacuums the table.
    let mut last = (0, 0, 0);
    for _ in 0..150 {
        last = stats().await;
        if last.0 >= 5000 && last.1 == 0 && last.2 > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (updated, dead, vacuums) = last;
    assert_eq!(updated, 5000, "the updates were counted");
    assert!(
        vacuums > 0,
        "the server never vacuumed items ({dead} dead rows)"
    );
    assert_eq!(dead, 0, "the vacuum removed the dead rows");
    // Nothing is due any more.
    assert_eq!(store.vacuum_hot_tables().await.expect("runs"), 0);
}

/// Answers are committed with `synchronous_commit = on` even where the server's (here: the
/// session's) default is off — on the one-statement path and in the full transaction (issue
/// 12, finding 20). A trigger records the setting in force as each answer is written.
#[tokio::test]
async fn answers_are_flushed_whatever_the_default() {
    use quorum_store::{
        Accounts, ItemBatch, LocalePolicy, NewProject, NewUser, NextRequest, Pool, Projects,
        Submission, Work,
    };
    let (_, options) = fresh_with_options().await;
    let options = options.options([("synchronous_commit", "off")]);
    let store = PgStore::open_with(options.clone()).await.expect("opens");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connects");
    pool.execute(
        "CREATE TABLE commit_modes (mode TEXT NOT NULL);
         CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO commit_modes VALUES (current_setting('synchronous_commit')); RETURN NEW; END $$;
         CREATE TRIGGER note_commit_mode AFTER INSERT ON responses
             FOR EACH ROW EXECUTE FUNCTION note_commit_mode();",
    )
    .await
    .expect("trigger made");
    let (default,): (String,) = sqlx::query_as("SELECT current_setting('synchronous_commit')")
        .fetch_one(&pool)
        .await
        .expect("read");
    assert_eq!(default, "off", "the test's sessions start with it off");
    let owner = store
        .create_user(NewUser {
            name: "o".into(),
            password_hash: String::new(),
            is_admin: false,
            created_at: 0,
        })
        .await
        .expect("user");
    let schema = quorum_core::schema::Schema::parse(&serde_json::json!({"fields": [{"name": "text", "kind": "text"}], "questions": [{"name": "q", "kind": "label", "options": ["a", "b"]}]})).expect("a valid schema");
    let project = store
        .create_project(
            NewProject {
                name: "p".into(),
                instructions: String::new(),
                schema: schema.clone(),
                overlap: 1,
                lease_seconds: 60,
                locale_policy: LocalePolicy::Any,
                min_overlap: None,
                target_confidence: None,
                quality: Default::default(),
                created_by: owner.id,
            },
            0,
        )
        .await
        .expect("project");
    let mut batch = ItemBatch::default();
    for text in ["x", "y"] {
        let input: quorum_core::item::ItemInput =
            serde_json::from_value(serde_json::json!({"fields": {"text": text}})).expect("item");
        batch
            .push(&quorum_core::item::Item::validate(input, &schema).expect("valid"))
            .expect("fits");
    }
    store
        .import_items(project.id, batch, 0)
        .await
        .expect("imported");
    let request = |now| NextRequest {
        project_id: project.id,
        user_id: owner.id,
        overlap: 1,
        lease_seconds: 60,
        locales: None,
        pool: Pool::Any,
        now,
    };
    let submission = |lease_id, now| Submission {
        lease_id,
        user_id: owner.id,
        overlap: 1,
        answers: serde_json::json!({"q": "a"}),
        time_spent_ms: 1,
        idempotency_key: None,
        gold_pool: false,
        gold_correct: None,
        now,
    };
    // A live lease: the one-statement path.
    let (lease, _) = store
        .next_lease(request(1))
        .await
        .expect("next")
        .expect("a lease");
    store.submit(submission(lease.id, 2)).await.expect("stored");
    // An expired lease whose slot is still free: the full transaction.
    let (lease, _) = store
        .next_lease(request(3))
        .await
        .expect("next")
        .expect("a lease");
    store
        .submit(submission(lease.id, 3 + 61_000))
        .await
        .expect("stored late");
    let modes: Vec<(String,)> = sqlx::query_as("SELECT mode FROM commit_modes")
        .fetch_all(&pool)
        .await
        .expect("read");
    assert_eq!(modes, vec![("on".to_string(),), ("on".to_string(),)]);
}
