//! One module per command; each turns parsed arguments into engine calls and output files.

mod admin;
mod aggregate;
mod agreement;
mod backup;
mod bench;
mod generate;
mod leaderboard;
mod models;
mod serve;
mod simulate;
mod standard;
mod transfer;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => runtime()?.block_on(serve::run(args)),
        Command::Admin(command) => runtime()?.block_on(admin::run(command)),
        Command::Models(command) => runtime()?.block_on(models::models(command)),
        Command::Run(args) => runtime()?.block_on(models::run(args)),
        Command::Import(args) => runtime()?.block_on(transfer::import(args)),
        Command::Export(args) => runtime()?.block_on(transfer::export(args)),
        Command::Backup(args) => runtime()?.block_on(backup::backup(args)),
        Command::Restore(args) => runtime()?.block_on(backup::restore(args)),
        Command::Aggregate(args) => aggregate::run(&args),
        Command::Agreement(args) => agreement::run(&args),
        Command::Leaderboard(args) => leaderboard::run(&args),
        Command::Generate(command) => generate::run(&command),
        Command::Simulate(args) => runtime()?.block_on(simulate::run(args)),
        Command::Bench(args) => runtime()?.block_on(bench::run(args)),
        Command::Standard(command) => runtime()?.block_on(standard::run(command)),
    }
}

/// The user a command acts as (`--as`).
async fn caller<S: quorum_store::Store>(
    app: &quorum_app::App<S>,
    name: &str,
) -> anyhow::Result<quorum_app::Caller> {
    let user = app
        .store()
        .user_by_name(name)
        .await?
        .with_context(|| format!("no user named `{name}` (see --as)"))?;
    Ok(quorum_app::Caller { user })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// A CSV writer to `path`, or to standard output when `None`.
pub fn csv_output(path: Option<&Path>) -> anyhow::Result<csv::Writer<Box<dyn Write>>> {
    let sink: Box<dyn Write> = match path {
        Some(path) => Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
    };
    Ok(csv::Writer::from_writer(sink))
}

/// Formats a float with enough digits to round-trip through the CSV.
pub fn number(value: f64) -> String {
    if value.is_nan() {
        String::new()
    } else {
        format!("{value}")
    }
}

/// The store a database URL names, chosen once at start-up.
pub enum AnyStore {
    Sqlite(quorum_store_sqlite::SqliteStore),
    Postgres(quorum_store_postgres::PgStore),
}

/// Whether a database URL names PostgreSQL (anything else is a SQLite file).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub async fn open_store(args: &crate::cli::DatabaseArgs) -> anyhow::Result<AnyStore> {
    let url = args.database.as_str();
    if is_postgres(url) {
        let store = quorum_store_postgres::PgStore::open(url)
            .await
            .with_context(|| format!("cannot open the database {}", serve::redact(url)))?;
        return Ok(AnyStore::Postgres(store));
    }
    let store = quorum_store_sqlite::SqliteStore::open(url)
        .await
        .with_context(|| format!("cannot open the database {}", serve::redact(url)))?;
    Ok(AnyStore::Sqlite(store))
}
