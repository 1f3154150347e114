//! The embedded default: one SQLite file in WAL mode, migrations applied on open.
//!
//! Every write goes through one writer thread that owns the only writing connection. It takes
//! whatever commands are queued (up to [`MAX_BATCH`]), runs each inside its own savepoint of one
//! `BEGIN IMMEDIATE` transaction, commits once with `synchronous = FULL` (one fsync for the
//! whole batch: group commit), and only then answers each caller. So an acknowledged write is
//! on disk, concurrent submissions share an fsync, and assignment is exact because writes are
//! serialised. Reads use a small pool of reader connections and never wait for the writer.
//!
//! The connections are plain synchronous SQLite connections (rusqlite) on threads of their
//! own: a write command runs half a dozen statements, and an async driver that hands every
//! statement to a worker thread and back costs two context switches per statement, which
//! measured as the bottleneck of the rater loop. sqlx only applies the migrations.

mod fault;
mod ops;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fault::{Fault, fault_of, read_only};
use quorum_store::{Result, Store, StoreError};
use rusqlite::Connection;
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use tokio::sync::{mpsc, oneshot};

/// The most commands one transaction (and one fsync) carries.
pub const MAX_BATCH: usize = 512;

pub struct SqliteStore {
    readers: Arc<Readers>,
    /// `None` once the store is closed.
    writer: std::sync::RwLock<Option<mpsc::Sender<Command>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

pub(crate) fn database_error(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &error
        && failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    {
        return StoreError::Conflict(format!(
            "already exists ({})",
            message.as_deref().unwrap_or("unique constraint")
        ));
    }
    match fault_of(&error, None) {
        Some(fault) => fault.error(),
        None => StoreError::Database(Box::new(error)),
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(database_error)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;",
    )
    .map_err(database_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Idle reader connections, opened on demand.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = match readers.idle.lock().ok().and_then(|mut idle| idle.pop()) {
                Some(conn) => conn,
                None => connect(&readers.path)?,
            };
            let result = work(&conn);
            if let Ok(mut idle) = readers.idle.lock() {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))?
    }
}

/// Makes sure the database file is readable by its owner alone — it holds password hashes, gold
/// answers and the report-signing key: a directory made for it is 0700, the file is created (or
/// tightened) 0600, and SQLite gives its `-wal` and `-shm` files the file's permissions.
fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://path` URL or a plain path.
    pub async fn open(url: &str) -> Result<Self> {
        let path = path_of(url);
        private_file(&path).map_err(|e| StoreError::Database(Box::new(e)))?;
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| StoreError::Database(Box::new(e)))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .disable_statement_logging();
        let mut migrator = options
            .connect()
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        sqlx::migrate!("./migrations")
            .run(&mut migrator)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        sqlx::Connection::close(migrator)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;

        let writer = connect(&path)?;
        let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
        let thread = std::thread::Builder::new()
            .name("quorum-sqlite-writer".into())
            .spawn(move || writer_loop(writer, receiver))
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        Ok(Self {
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            writer: std::sync::RwLock::new(Some(sender)),
            writer_thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `work` for the writer thread and waits until its transaction has committed.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let command: Command = Box::new(move |conn| match conn {
            Some(conn) => pending(reply, work(conn)),
            None => pending(reply, Err(StoreError::Closed)),
        });
        let sender = self
            .writer
            .read()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        sender.send(command).await.map_err(|_| StoreError::Closed)?;
        // The writer answers every command it takes; a reply dropped unsent means the command
        // panicked (the writer rolled its batch back and lives on).
        answer.await.map_err(|_| {
            StoreError::Database("the write failed unexpectedly; nothing of it was stored".into())
        })?
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// A write queued for the writer thread: it runs on the writer's connection (or, given `None`,
/// answers that it never ran) and returns whether it succeeded and how to answer its caller.
pub(crate) type Command = Box<dyn FnOnce(Option<&Connection>) -> (Ran, Pending) + Send>;

/// How a command went: whether it succeeded, and whether it met a storage fault.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ran {
    ok: bool,
    fault: Option<Fault>,
    /// It failed with an error from the database itself (not a refusal such as a conflict).
    unexpected: bool,
}

/// A result waiting for its transaction to commit before it is sent.
type Pending = Box<dyn FnOnce(Option<&Failed>) + Send>;

/// Why a batch's transaction was lost: every command of it is told.
#[derive(Debug)]
struct Failed {
    message: String,
    /// A storage fault (the callers hear so, rather than of an internal error).
    fault: Option<Fault>,
}

impl Failed {
    /// `what` failed with `error`, on the database in `dir`.
    fn of(what: &str, error: &rusqlite::Error, dir: Option<&Path>) -> Failed {
        Failed {
            message: format!("{what}: {error}"),
            fault: fault_of(error, dir),
        }
    }
}

fn pending<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> (Ran, Pending) {
    let ran = Ran {
        ok: result.is_ok(),
        fault: Fault::of_result(&result),
        unexpected: matches!(result, Err(StoreError::Database(_))),
    };
    let finish = move |failed: Option<&Failed>| {
        let result = match failed {
            None => result,
            Some(Failed {
                fault: Some(fault), ..
            }) => Err(fault.error()),
            Some(Failed { message, .. }) => Err(StoreError::Database(message.clone().into())),
        };
        let _ = reply.send(result);
    };
    (ran, Box::new(finish))
}

fn writer_loop(conn: Connection, mut queue: mpsc::Receiver<Command>) {
    let dir = conn
        .path()
        .and_then(|p| Path::new(p).parent())
        .map(Path::to_path_buf);
    let dir = dir.as_deref();
    let mut batch: Vec<Command> = Vec::with_capacity(MAX_BATCH);
    loop {
        // Commands left over from a batch cut short by a panic go first.
        if batch.is_empty() {
            match queue.blocking_recv() {
                Some(first) => batch.push(first),
                None => break,
            }
        }
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let failed = Failed::of("cannot begin a transaction", &e, dir);
            for command in batch.drain(..) {
                command(None).1(Some(&failed));
            }
            continue;
        }
        let mut waiting: Vec<Pending> = Vec::with_capacity(batch.len());
        let mut commands = std::mem::take(&mut batch).into_iter();
        let mut panicked = false;
        let mut lost = None;
        for command in commands.by_ref() {
            let savepoint = conn.execute_batch("SAVEPOINT command");
            // A bug in one command must not stop every later write until a restart.
            let ran =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| command(Some(&conn))));
            let Ok((
                Ran {
                    ok,
                    fault,
                    unexpected,
                },
                finish,
            )) = ran
            else {
                tracing::error!("a write command panicked; its batch is rolled back");
                panicked = true;
                break;
            };
            // A write that failed on a filesystem turned read-only: nothing of the batch can
            // be committed either.
            let fault = fault
                .or_else(|| (unexpected && dir.is_some_and(read_only)).then_some(Fault::ReadOnly));
            if conn.is_autocommit() || fault == Some(Fault::ReadOnly) {
                // SQLite rolled the whole transaction back (a full disk, an I/O error), or it
                // cannot commit: what the batch did so far is gone, so each of its callers is
                // told; the commands not yet run go into the next batch.
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                waiting.push(finish);
                lost = Some(Failed {
                    message: match fault {
                        Some(Fault::Full) => {
                            "the disk is full; SQLite rolled the transaction back".into()
                        }
                        Some(Fault::ReadOnly) => {
                            "the filesystem is read-only; the transaction was rolled back".into()
                        }
                        None => "SQLite rolled the transaction back".into(),
                    },
                    fault,
                });
                break;
            }
            let outcome = if ok && savepoint.is_ok() {
                conn.execute_batch("RELEASE command")
            } else {
                conn.execute_batch("ROLLBACK TO command; RELEASE command")
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, "savepoint handling failed");
            }
            waiting.push(finish);
        }
        if let Some(failed) = lost {
            tracing::error!(error = %failed.message, "a write's transaction was rolled back");
            for finish in waiting {
                finish(Some(&failed));
            }
            batch.extend(commands);
            continue;
        }
        if panicked {
            // What the panicking command left half-done is unknown: the batch so far is rolled
            // back and its callers told; the commands not yet run go into the next batch.
            let _ = conn.execute_batch("ROLLBACK");
            let failed = Failed {
                message:
                    "another write in the same transaction failed unexpectedly; nothing was stored"
                        .into(),
                fault: None,
            };
            for finish in waiting {
                finish(Some(&failed));
            }
            batch.extend(commands);
            continue;
        }
        let commit_error = match conn.execute_batch("COMMIT") {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "commit failed");
                let _ = conn.execute_batch("ROLLBACK");
                Some(Failed::of("commit failed", &e, dir))
            }
        };
        for finish in waiting {
            finish(commit_error.as_ref());
        }
    }
    // The queue is closed and drained: every acknowledged write is committed.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
}

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        // Dropping the last sender ends the writer loop after it has committed what is queued.
        if let Ok(mut writer) = self.writer.write() {
            writer.take();
        }
        let thread = self.writer_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    async fn row_counts(&self) -> Result<Vec<(&'static str, i64)>> {
        self.readers
            .run(|conn| {
                let snapshot = conn.unchecked_transaction().map_err(database_error)?;
                let mut counts = Vec::new();
                for table in quorum_store::TABLES {
                    let count = snapshot
                        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                        .map_err(database_error)?;
                    counts.push((*table, count));
                }
                Ok(counts)
            })
            .await
    }

    async fn ping(&self) -> Result<()> {
        self.readers
            .run(|conn| {
                conn.query_row("SELECT 1", [], |_| Ok(()))
                    .map_err(database_error)
            })
            .await
    }

    async fn outbox_backlog(&self) -> Result<(i64, Option<i64>)> {
        self.readers
            .run(|conn| {
                conn.query_row(
                    "SELECT COUNT(*), MIN(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(database_error)
            })
            .await
    }
}

/// The file a `sqlite://path` URL (or a plain path) names.
pub fn path_of(url: &str) -> PathBuf {
    PathBuf::from(
        url.strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url),
    )
}

impl SqliteStore {
    /// Writes a consistent copy of the whole database to `path` (which must not exist) while
    /// the store goes on serving: `VACUUM INTO` reads one snapshot, as any reader does, so
    /// writes carry on beside it and none after its start is in the copy.
    pub async fn backup_into(&self, path: &Path) -> Result<()> {
        let target = path.to_string_lossy().to_string();
        self.readers
            .run(move |conn| {
                conn.execute("VACUUM INTO ?1", [target])
                    .map_err(database_error)?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_store::Accounts;

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("q.sqlite3");
        let store = SqliteStore::open(path.to_str().expect("UTF-8"))
            .await
            .expect("opens");
        (store, dir)
    }

    fn insert(name: &'static str) -> impl FnOnce(&Connection) -> Result<()> + Send + 'static {
        move |c: &Connection| {
            c.execute(
                "INSERT INTO users (name, password_hash, created_at) VALUES (?1, '', 0)",
                [name],
            )
            .map_err(database_error)?;
            Ok(())
        }
    }

    async fn exists(store: &SqliteStore, name: &str) -> bool {
        store.user_by_name(name).await.expect("read").is_some()
    }

    /// The database holds password hashes, gold and the signing key: its directory, file and
    /// journal files are the owner's alone, and a file made readable by others is tightened.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("quorum-data");
        let path = data.join("q.sqlite3");
        let store = SqliteStore::open(path.to_str().expect("UTF-8"))
            .await
            .expect("opens");
        store.write(insert("someone")).await.expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for file in ["q.sqlite3", "q.sqlite3-wal", "q.sqlite3-shm"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
        store.close().await;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let again = SqliteStore::open(path.to_str().expect("UTF-8"))
            .await
            .expect("opens");
        assert_eq!(mode(&path), 0o600);
        again.close().await;
    }

    /// The writer commits with `synchronous = FULL` in WAL mode: an acknowledged write has
    /// been fsync'd.
    #[tokio::test]
    async fn the_writer_flushes_every_commit() {
        let (store, _dir) = store().await;
        let (synchronous, journal) = store
            .write(|c| {
                let synchronous: i64 = c
                    .pragma_query_value(None, "synchronous", |row| row.get(0))
                    .map_err(database_error)?;
                let journal: String = c
                    .pragma_query_value(None, "journal_mode", |row| row.get(0))
                    .map_err(database_error)?;
                Ok((synchronous, journal))
            })
            .await
            .expect("read on the writer");
        assert_eq!((synchronous, journal.as_str()), (2, "wal"), "2 is FULL");
    }

    /// A COMMIT that fails acknowledges nothing: every caller of its batch gets an error and
    /// none of their writes is stored. (A deferred foreign key is checked only at COMMIT.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_acknowledges_nothing() {
        let (store, _dir) = store().await;
        let breaks_commit = |c: &Connection| -> Result<()> {
            c.execute_batch(
                "PRAGMA defer_foreign_keys = ON;
                 INSERT INTO api_tokens (user_id, name, token_hash, created_at)
                 VALUES (999999, 'orphan', 'no-such-user', 0);",
            )
            .map_err(database_error)?;
            Ok(())
        };
        let (before, broken, after) = tokio::join!(
            store.write(insert("with-the-batch-1")),
            store.write(breaks_commit),
            store.write(insert("with-the-batch-2")),
        );
        let broken = broken.expect_err("its commit fails");
        assert!(
            format!("{:?}", broken).contains("commit failed"),
            "the insert itself passed; the COMMIT refused it: {broken:?}"
        );
        for (result, name) in [(before, "with-the-batch-1"), (after, "with-the-batch-2")] {
            // Acknowledged only if it was in another batch, and then it is stored.
            assert_eq!(result.is_ok(), exists(&store, name).await, "{name}");
        }
        assert!(
            store.write(insert("later")).await.is_ok(),
            "the writer goes on"
        );
    }

    /// Group commit: a command that fails after writing rolls back only its own savepoint; the
    /// others in its transaction are committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_command_rolls_back_only_itself() {
        let (store, _dir) = store().await;
        let failing = |c: &Connection| -> Result<()> {
            insert("half-done")(c)?;
            Err(StoreError::Conflict("refused after writing".into()))
        };
        // Queued together, they share one transaction.
        let (a, b, c) = tokio::join!(
            store.write(insert("before")),
            store.write(failing),
            store.write(insert("after")),
        );
        assert!(a.is_ok() && c.is_ok());
        assert!(matches!(b, Err(StoreError::Conflict(_))));
        assert!(exists(&store, "before").await && exists(&store, "after").await);
        assert!(!exists(&store, "half-done").await);
    }

    /// A panicking command fails its batch's callers with an error (none is left waiting) and
    /// the writer goes on serving writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_command_does_not_stop_the_writer() {
        let (store, _dir) = store().await;
        let panicking = |c: &Connection| -> Result<()> {
            insert("doomed")(c)?;
            panic!("a bug in a write command");
        };
        let (before, panicked, after) = tokio::join!(
            store.write(insert("queued-before")),
            store.write(panicking),
            store.write(insert("queued-after")),
        );
        let panicked = panicked.expect_err("the panicking write fails");
        assert!(
            panicked.to_string().contains("database error"),
            "{panicked}"
        );
        assert!(!exists(&store, "doomed").await, "its batch was rolled back");
        // Whoever shared its transaction was told the truth: stored or not.
        assert_eq!(before.is_ok(), exists(&store, "queued-before").await);
        assert_eq!(after.is_ok(), exists(&store, "queued-after").await);
        for name in ["later-1", "later-2"] {
            store
                .write(insert(name))
                .await
                .expect("the writer lives on");
            assert!(exists(&store, name).await);
        }
    }

    /// `TABLES` (what a restore counts) names every table the migrations make, and no other.
    #[tokio::test]
    async fn every_table_is_counted() {
        let (store, _dir) = store().await;
        let mut made: Vec<String> = store
            .readers
            .run(|c| {
                let mut statement = c
                    .prepare(
                        "SELECT name FROM sqlite_master WHERE type = 'table'
                         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
                    )
                    .map_err(database_error)?;
                let names = statement
                    .query_map([], |r| r.get(0))
                    .map_err(database_error)?
                    .collect::<std::result::Result<Vec<String>, _>>()
                    .map_err(database_error)?;
                Ok(names)
            })
            .await
            .expect("reads");
        made.sort();
        let mut counted: Vec<String> = store
            .row_counts()
            .await
            .expect("counts")
            .into_iter()
            .map(|(t, _)| t.to_string())
            .collect();
        counted.sort();
        assert_eq!(made, counted);
        store.close().await;
    }
}
