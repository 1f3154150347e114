//! `quorum backup` and `quorum restore`: a consistent copy of the whole database, taken while
//! servers go on serving, and its return into a new database, checked.
//!
//! SQLite is copied with `VACUUM INTO` (one read snapshot, a compact file that is itself a
//! SQLite database); PostgreSQL with `pg_dump --format=custom` (one snapshot too) and restored
//! with `pg_restore --single-transaction`, so a failed restore leaves nothing behind. Either way
//! the file is written under a temporary name and renamed once complete.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, bail};
use quorum_app::standards::Standard;
use quorum_store::Store;

use super::{AnyStore, is_postgres, open_store, serve::redact};
use crate::cli::{BackupArgs, RestoreArgs};

/// `path` with `.partial` added: where a file is written before it is complete.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Runs one of PostgreSQL's client tools, saying what to install when it is missing.
fn client_tool(tool: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let output = Command::new(tool).args(args).output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run {tool} ({e}): install PostgreSQL's client tools, of the server's major version or newer (Debian: postgresql-client)"
        )
    })?;
    if !output.status.success() {
        bail!(
            "{tool} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[expect(clippy::print_stderr, reason = "the command's report")]
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let output = &args.output;
    if output.exists() {
        bail!(
            "{} exists: a backup never overwrites a file",
            output.display()
        );
    }
    let url = args.database.database.as_str();
    if !is_postgres(url) && !quorum_store_sqlite::path_of(url).exists() {
        bail!(
            "no database at {}",
            quorum_store_sqlite::path_of(url).display()
        );
    }
    let writing = partial(output);
    let _ = std::fs::remove_file(&writing);
    // The backup holds password hashes, gold answers and the signing key: its owner's alone,
    // from the start (both tools write into an empty file they are given).
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&writing)
            .with_context(|| format!("cannot create {}", writing.display()))?;
    }
    let started = std::time::Instant::now();
    let copied = copy_into(&args, &writing).await;
    if let Err(error) = copied {
        // A failed backup leaves nothing behind.
        let _ = std::fs::remove_file(&writing);
        return Err(error);
    }
    std::fs::rename(&writing, output)
        .with_context(|| format!("cannot rename {} to its final name", writing.display()))?;
    let size = std::fs::metadata(output)?.len();
    eprintln!(
        "backed up {} to {} ({:.1} MB in {:.1} s)",
        redact(url),
        output.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes the database's consistent copy into `writing` (an empty file).
async fn copy_into(args: &BackupArgs, writing: &Path) -> anyhow::Result<()> {
    let url = args.database.database.as_str();
    if is_postgres(url) {
        client_tool(
            "pg_dump",
            &[
                "--format=custom".as_ref(),
                "--file".as_ref(),
                writing.as_os_str(),
                url.as_ref(),
            ],
        )
        .with_context(|| format!("backing up {}", redact(url)))?;
    } else {
        let AnyStore::Sqlite(store) = open_store(&args.database).await? else {
            bail!("{url} is not a SQLite database");
        };
        let copied = store.backup_into(writing).await;
        store.close().await;
        copied.with_context(|| format!("backing up {}", redact(url)))?;
    }
    Ok(())
}

/// What kind of backup a file holds, by its first bytes.
enum Kind {
    Sqlite,
    PgDump,
}

fn kind_of(path: &Path) -> anyhow::Result<Kind> {
    let mut head = [0u8; 16];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let read = file.read(&mut head)?;
    match &head[..read] {
        h if h.starts_with(b"SQLite format 3\0") => Ok(Kind::Sqlite),
        h if h.starts_with(b"PGDMP") => Ok(Kind::PgDump),
        _ => bail!(
            "{} is not a Quorum backup (neither a SQLite database nor a pg_dump custom-format file)",
            path.display()
        ),
    }
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let url = args.database.database.as_str();
    match (kind_of(&args.input)?, is_postgres(url)) {
        (Kind::Sqlite, false) => {
            let target = quorum_store_sqlite::path_of(url);
            if target.exists() {
                bail!(
                    "{} exists: restore into a new database, never over one",
                    target.display()
                );
            }
            if let Some(folder) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder)?;
            }
            let writing = partial(&target);
            std::fs::copy(&args.input, &writing)
                .with_context(|| format!("cannot copy to {}", writing.display()))?;
            std::fs::rename(&writing, &target)?;
        }
        (Kind::PgDump, true) => {
            // An empty database only: a restore never mixes with what is there.
            let tables = quorum_store_postgres::PgStore::table_count(url)
                .await
                .with_context(|| format!("cannot connect to {}", redact(url)))?;
            if tables > 0 {
                bail!(
                    "{} holds {tables} tables: restore into an empty database",
                    redact(url)
                );
            }
            client_tool(
                "pg_restore",
                &[
                    "--no-owner".as_ref(),
                    "--no-privileges".as_ref(),
                    "--single-transaction".as_ref(),
                    "--exit-on-error".as_ref(),
                    "--dbname".as_ref(),
                    url.as_ref(),
                    args.input.as_os_str(),
                ],
            )
            .with_context(|| format!("restoring into {}", redact(url)))?;
        }
        (Kind::Sqlite, true) => bail!(
            "{} is a SQLite backup: restore it into a sqlite:// database",
            args.input.display()
        ),
        (Kind::PgDump, false) => bail!(
            "{} is a PostgreSQL dump: restore it into a postgres:// database",
            args.input.display()
        ),
    }
    // Opening applies any newer migrations; then the restored instance is checked.
    match open_store(&args.database).await? {
        AnyStore::Sqlite(store) => check(store, &args).await,
        AnyStore::Postgres(store) => check(store, &args).await,
    }
}

/// Reports the restored database's rows and re-signs and verifies every standard's report.
#[expect(clippy::print_stdout, reason = "the restore's report")]
async fn check<S: Store>(store: S, args: &RestoreArgs) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let result = async {
        let app = args.database.app(Arc::clone(&store))?;
        println!("restored {}:", redact(&args.database.database));
        for (table, count) in store.row_counts().await? {
            println!("  {table}: {count}");
        }
        let admin = store
            .list_users()
            .await?
            .into_iter()
            .find(|u| u.is_admin && u.disabled_at.is_none());
        let mut seen = std::collections::HashSet::new();
        for run in store.all_standard_runs().await? {
            if !seen.insert(run.hash.clone()) {
                continue;
            }
            let Some(admin) = &admin else { break };
            let standard = Standard::from_stored(&run.standard).map_err(anyhow::Error::msg)?;
            let caller = quorum_app::Caller {
                user: admin.clone(),
            };
            let name = &standard.spec.standard.name;
            match app.report_standard(&caller, &standard).await {
                Ok(report) => match report.verify() {
                    Ok(()) => println!(
                        "  the report of `{name}` verifies, signed by {}",
                        report.signature.public_key
                    ),
                    Err(problems) => bail!(
                        "the report of `{name}` does not verify: {}",
                        problems.join("; ")
                    ),
                },
                Err(quorum_app::AppError::Conflict(missing)) => {
                    println!("  the report of `{name}` is not due yet: {missing}");
                }
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}
