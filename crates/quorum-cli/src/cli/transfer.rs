//! The commands that move data in and out: import, export, backup and restore.

use std::path::PathBuf;

use clap::ValueEnum;

use super::DatabaseArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ItemFormat {
    /// JSON Lines, or a JSON array (told apart by the first character).
    Json,
    /// CSV with a header (see the README for the columns).
    Csv,
    /// Preference pairs `{id, prompt, chosen, rejected}` per line, into a pairwise project
    /// (the preference becomes the item's gold answer).
    Dpo,
    /// Apache Parquet with CSV's columns.
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The project's id.
    #[arg(long)]
    pub project: i64,
    /// The file to import.
    pub file: PathBuf,
    /// The file's format; by default from its extension (`.csv`, `.parquet`), else JSON.
    #[arg(long, value_enum)]
    pub format: Option<ItemFormat>,
    /// Acts as this user (who must be the project's manager or an administrator).
    #[arg(long = "as", default_value = "admin")]
    pub user: String,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The project's id.
    #[arg(long)]
    pub project: i64,
    /// `jsonl`, `csv`, `parquet` (every response), `dpo` (preference pairs), `sft` (conversations
    /// from a free-text question) or `consensus` (each item's consensus per question).
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// The file `dpo`, `sft` and `consensus` come in: `jsonl` (the default) or `parquet`.
    #[arg(long)]
    pub file: Option<String>,
    /// Where to write (standard output when absent).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Also write a Hugging Face dataset card, `README.md`, next to `--output`.
    #[arg(long, requires = "output")]
    pub card: bool,
    /// The licence id in the card (e.g. `cc-by-4.0`).
    #[arg(long, default_value = "other", requires = "card")]
    pub license: String,
    /// Acts as this user (who must be the project's manager or an administrator).
    #[arg(long = "as", default_value = "admin")]
    pub user: String,
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The backup file to write (it must not exist): a SQLite database, or PostgreSQL's custom
    /// dump format.
    #[arg(long)]
    pub output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup `quorum backup` wrote.
    #[arg(long)]
    pub input: PathBuf,
    /// The database to restore into (`--database`): a SQLite file that does not exist yet, or
    /// an empty PostgreSQL database; with the signing key options, the instance's key, which
    /// every standard's report is then signed with and checked against.
    #[command(flatten)]
    pub database: DatabaseArgs,
}
