//! The embedded default: one SQLite file in WAL mode, migrations applied on open.
//!
//! Every write goes through one writer task that owns the only writing connection. It takes
//! whatever commands are queued (up to [`MAX_BATCH`]), runs each inside its own savepoint of one
//! `BEGIN IMMEDIATE` transaction, commits once with `synchronous = FULL` (one fsync for the
//! whole batch: group commit), and only then answers each caller. So an acknowledged write is
//! on disk, concurrent submissions share an fsync, and assignment is exact because writes are
//! serialised. Reads use a separate pool and never wait for the writer.

mod ops;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use quorum_store::{
    ExportRow, ImportReport, Lease, Member, NewItem, NewProject, NewUser, NextRequest, Project,
    ProjectStats, Result, Store, StoreError, StoredItem, Submission, SubmitOutcome, User,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Executor};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

/// The most commands one transaction (and one fsync) carries.
pub const MAX_BATCH: usize = 512;

pub struct SqliteStore {
    reads: SqlitePool,
    /// `None` once the store is closed.
    writer: std::sync::RwLock<Option<mpsc::Sender<Command>>>,
    writer_task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
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

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://path` URL or a plain path.
    pub async fn open(url: &str) -> Result<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if let Some(parent) = Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(Box::new(e)))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(database_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .disable_statement_logging();
        let mut writer = options.clone().connect().await.map_err(database_error)?;
        sqlx::migrate!("./migrations")
            .run(&mut writer)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        let reads = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(database_error)?;
        let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
        let task = tokio::spawn(writer_loop(writer, receiver));
        Ok(Self {
            reads,
            writer: std::sync::RwLock::new(Some(sender)),
            writer_task: Mutex::new(Some(task)),
        })
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let sender = self
            .writer
            .read()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        sender
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// Every write the store performs, queued for the writer task.
pub(crate) enum Command {
    CreateUser(NewUser, Reply<User>),
    CreateToken {
        user_id: i64,
        name: String,
        token_hash: String,
        now: i64,
        reply: Reply<i64>,
    },
    CreateProject(NewProject, i64, Reply<Project>),
    UpsertMember(Member, Reply<()>),
    Import {
        project_id: i64,
        items: Vec<NewItem>,
        now: i64,
        reply: Reply<ImportReport>,
    },
    Next(NextRequest, Reply<Option<(Lease, StoredItem)>>),
    Submit(Submission, Reply<SubmitOutcome>),
    Skip {
        lease_id: i64,
        user_id: i64,
        now: i64,
        reply: Reply<()>,
    },
}

/// A result waiting for its transaction to commit before it is sent.
type Pending = Box<dyn FnOnce(Option<&str>) + Send>;

fn pending<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> (bool, Pending) {
    let ok = result.is_ok();
    let finish = move |commit_error: Option<&str>| {
        let result = match commit_error {
            None => result,
            Some(message) => Err(StoreError::Database(
                format!("commit failed: {message}").into(),
            )),
        };
        let _ = reply.send(result);
    };
    (ok, Box::new(finish))
}

async fn run(conn: &mut SqliteConnection, command: Command) -> (bool, Pending) {
    match command {
        Command::CreateUser(user, reply) => pending(reply, ops::create_user(conn, user).await),
        Command::CreateToken {
            user_id,
            name,
            token_hash,
            now,
            reply,
        } => pending(
            reply,
            ops::create_token(conn, user_id, &name, &token_hash, now).await,
        ),
        Command::CreateProject(project, now, reply) => {
            pending(reply, ops::create_project(conn, project, now).await)
        }
        Command::UpsertMember(member, reply) => {
            pending(reply, ops::upsert_member(conn, member).await)
        }
        Command::Import {
            project_id,
            items,
            now,
            reply,
        } => pending(reply, ops::import_items(conn, project_id, items, now).await),
        Command::Next(request, reply) => pending(reply, ops::next_lease(conn, request).await),
        Command::Submit(submission, reply) => pending(reply, ops::submit(conn, submission).await),
        Command::Skip {
            lease_id,
            user_id,
            now,
            reply,
        } => pending(reply, ops::skip(conn, lease_id, user_id, now).await),
    }
}

async fn writer_loop(mut conn: SqliteConnection, mut queue: mpsc::Receiver<Command>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut waiting: Vec<Pending> = Vec::with_capacity(batch.len());
        if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
            let message = e.to_string();
            for command in batch.drain(..) {
                let (_, finish) = run_failed(command);
                finish(Some(&message));
            }
            continue;
        }
        for command in batch.drain(..) {
            let savepoint = conn.execute("SAVEPOINT command").await;
            let (ok, finish) = run(&mut conn, command).await;
            let outcome = if ok && savepoint.is_ok() {
                conn.execute("RELEASE command").await
            } else {
                conn.execute("ROLLBACK TO command; RELEASE command").await
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, "savepoint handling failed");
            }
            waiting.push(finish);
        }
        let commit_error = match conn.execute("COMMIT").await {
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "commit failed");
                let _ = conn.execute("ROLLBACK").await;
                Some(e.to_string())
            }
        };
        for finish in waiting {
            finish(commit_error.as_deref());
        }
    }
    // The queue is closed and drained: every acknowledged write is committed.
    let _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await;
}

/// Answers a command that never ran (its transaction could not begin).
fn run_failed(command: Command) -> (bool, Pending) {
    match command {
        Command::CreateUser(_, reply) => pending(reply, Err(StoreError::Closed)),
        Command::CreateToken { reply, .. } => pending(reply, Err(StoreError::Closed)),
        Command::CreateProject(_, _, reply) => pending(reply, Err(StoreError::Closed)),
        Command::UpsertMember(_, reply) => pending(reply, Err(StoreError::Closed)),
        Command::Import { reply, .. } => pending(reply, Err(StoreError::Closed)),
        Command::Next(_, reply) => pending(reply, Err(StoreError::Closed)),
        Command::Submit(_, reply) => pending(reply, Err(StoreError::Closed)),
        Command::Skip { reply, .. } => pending(reply, Err(StoreError::Closed)),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        self.write(|reply| Command::CreateUser(user, reply)).await
    }
    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        ops::user_where(
            &self.reads,
            "SELECT * FROM users WHERE name = ?",
            name.to_string(),
        )
        .await
    }
    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        ops::user_where(&self.reads, "SELECT * FROM users WHERE id = ?", id).await
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        ops::list_users(&self.reads).await
    }
    async fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<i64> {
        let (name, token_hash) = (name.to_string(), token_hash.to_string());
        self.write(|reply| Command::CreateToken {
            user_id,
            name,
            token_hash,
            now,
            reply,
        })
        .await
    }
    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>> {
        ops::user_where(
            &self.reads,
            "SELECT * FROM users WHERE id = (SELECT user_id FROM api_tokens WHERE token_hash = ?)",
            token_hash.to_string(),
        )
        .await
    }
    async fn create_project(&self, project: NewProject, now: i64) -> Result<Project> {
        self.write(|reply| Command::CreateProject(project, now, reply))
            .await
    }
    async fn project(&self, id: i64) -> Result<Option<Project>> {
        ops::project(&self.reads, id).await
    }
    async fn list_projects(
        &self,
        member: Option<i64>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Project>> {
        ops::list_projects(&self.reads, member, after, limit).await
    }
    async fn upsert_member(&self, member: Member) -> Result<()> {
        self.write(|reply| Command::UpsertMember(member, reply))
            .await
    }
    async fn member(&self, project_id: i64, user_id: i64) -> Result<Option<Member>> {
        ops::member(&self.reads, project_id, user_id).await
    }
    async fn import_items(
        &self,
        project_id: i64,
        items: Vec<NewItem>,
        now: i64,
    ) -> Result<ImportReport> {
        self.write(|reply| Command::Import {
            project_id,
            items,
            now,
            reply,
        })
        .await
    }
    async fn item(&self, id: i64) -> Result<Option<StoredItem>> {
        ops::item(&self.reads, id).await
    }
    async fn next_lease(&self, request: NextRequest) -> Result<Option<(Lease, StoredItem)>> {
        self.write(|reply| Command::Next(request, reply)).await
    }
    async fn lease(&self, id: i64) -> Result<Option<Lease>> {
        ops::lease(&self.reads, id).await
    }
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome> {
        self.write(|reply| Command::Submit(submission, reply)).await
    }
    async fn skip(&self, lease_id: i64, user_id: i64, now: i64) -> Result<()> {
        self.write(|reply| Command::Skip {
            lease_id,
            user_id,
            now,
            reply,
        })
        .await
    }
    async fn export_responses(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>> {
        ops::export_responses(&self.reads, project_id, after, limit).await
    }
    async fn stats(&self, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats> {
        ops::stats(&self.reads, project_id, overlap, now).await
    }
    async fn close(&self) {
        // Dropping the last sender ends the writer loop after it has committed what is queued.
        if let Ok(mut writer) = self.writer.write() {
            writer.take();
        }
        if let Some(task) = self.writer_task.lock().await.take() {
            let _ = task.await;
        }
        self.reads.close().await;
    }
}
