//! The command line, described once: every option has a flag and, where it is a setting, a
//! `QUORUM_…` environment variable.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

mod transfer;

pub use transfer::{BackupArgs, ExportArgs, ImportArgs, ItemFormat, RestoreArgs};

#[derive(Debug, Parser)]
#[command(
    name = "quorum",
    version,
    about = "Quorum: the open human-data foundry for AI"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serves the API (and, as it lands, the web app) on an embedded SQLite file or PostgreSQL.
    Serve(ServeArgs),
    /// Imports items into a project from JSON Lines, a JSON array or CSV: all rows or none.
    Import(ImportArgs),
    /// Exports a project's responses (JSON Lines, CSV, Parquet, streamed page by page), its
    /// consensus, DPO pairs or SFT conversations.
    Export(ExportArgs),
    /// Writes a consistent copy of the whole database while servers go on serving (SQLite:
    /// `VACUUM INTO`; PostgreSQL: `pg_dump`).
    Backup(BackupArgs),
    /// Restores a backup into a new database, then checks it and reports its rows.
    Restore(RestoreArgs),
    /// The model registry: register models (an OpenAI-compatible endpoint, or answers imported)
    /// and list them.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Collects registered models' answers to a project of prompts: bounded concurrency,
    /// retries with backoff; only prompts without an answer are called, so running it again
    /// resumes.
    Run(RunArgs),
    /// Accounts: create users and API tokens, list users.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Aggregate crowd answers from a CSV: labels (task,worker,label), pairwise comparisons
    /// (worker,left,right,label) or numeric ratings (task,worker,label).
    Aggregate(AggregateArgs),
    /// Arena leaderboard from battles (model_a,model_b,winner): Bradley–Terry ratings with
    /// bootstrap intervals, optional style control, per-slice boards and their divergence.
    Leaderboard(LeaderboardArgs),
    /// Inter-rater agreement of crowd labels (task,worker,label), overall and per worker group.
    Agreement(AgreementArgs),
    /// Load generator: drives a running server's rater loop, import and export, and reports
    /// throughput and latency percentiles.
    Bench(BenchArgs),
    /// Replays a crowd data set (labels.csv, gold.csv) through a real project, answers in a
    /// random order, and reports answers used and consensus accuracy against gold; with
    /// --min-overlap and --target, items stop taking answers by dynamic overlap.
    Simulate(SimulateArgs),
    /// Writes a seeded synthetic data set with known truth (for benchmarks and trials).
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Evaluation standards: hash, validate, run, report, verify and compare.
    #[command(subcommand)]
    Standard(StandardCommand),
}

#[derive(Debug, Subcommand)]
pub enum StandardCommand {
    /// Prints the standard's content hash, then each item's hash and id.
    Hash { file: PathBuf },
    /// Checks a standard and lists every problem with its location (exit 2 when any).
    Validate { file: PathBuf },
    /// Runs a standard: its prompts, the models' answers, the battles and the judges.
    Run {
        file: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
        /// The registered models to compare (at least two).
        #[arg(long, value_delimiter = ',', required = true)]
        models: Vec<String>,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 6)]
        max_attempts: u32,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(long = "as", default_value = "admin")]
        user: String,
    },
    /// Writes the signed JSON report and its HTML twin, once the rater requirements are met
    /// (until then, says what is missing).
    Report {
        file: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
        /// The folder for report.json and report.html.
        #[arg(long, default_value = "report")]
        out: PathBuf,
        #[arg(long = "as", default_value = "admin")]
        user: String,
    },
    /// Checks a report's signature and hashes (and, with --standard, that it is of that file).
    Verify {
        report: PathBuf,
        #[arg(long)]
        standard: Option<PathBuf>,
    },
    /// Two reports of the same standard side by side; refuses reports of different standards.
    Compare { a: PathBuf, b: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Crowd labels `task,worker,label` (and the truth as `task,label` with --gold).
    Labels {
        #[arg(long, default_value_t = 200_000)]
        tasks: usize,
        #[arg(long, default_value_t = 5)]
        answers_per_task: usize,
        #[arg(long, default_value_t = 2_000)]
        workers: usize,
        #[arg(long, default_value_t = 5)]
        classes: usize,
        /// Share of workers who answer at random.
        #[arg(long, default_value_t = 0.1)]
        spammers: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        gold: Option<PathBuf>,
    },
    /// Arena battles `model_a,model_b,winner` between models of known ratings (the ratings as
    /// `model,rating` with --truth).
    Battles {
        #[arg(long, default_value_t = 200)]
        models: usize,
        #[arg(long, default_value_t = 1_000_000)]
        battles: usize,
        /// Share of battles that are ties (half of them "both bad").
        #[arg(long, default_value_t = 0.1)]
        ties: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        truth: Option<PathBuf>,
    },
    /// Pairwise comparisons `worker,left,right,label`.
    Comparisons {
        #[arg(long, default_value_t = 100)]
        items: usize,
        #[arg(long, default_value_t = 50_000)]
        comparisons: usize,
        #[arg(long, default_value_t = 200)]
        workers: usize,
        /// Share of workers who answer by a left-leaning coin.
        #[arg(long, default_value_t = 0.2)]
        noisy: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AggregateMethod {
    /// Majority vote.
    Mv,
    /// Worker agreement with aggregate.
    Wawa,
    /// Zero-based skill.
    Zbs,
    /// Dawid–Skene.
    Ds,
    /// One-coin Dawid–Skene.
    Onecoin,
    /// GLAD (ability × difficulty).
    Glad,
    /// MACE (competence estimation).
    Mace,
    /// KOS message passing (binary labels only).
    Kos,
    /// M-MSR matrix completion.
    Mmsr,
    /// Bradley–Terry on pairwise comparisons.
    Bt,
    /// Noisy Bradley–Terry on pairwise comparisons.
    Noisybt,
    /// Mean of numeric ratings.
    Mean,
    /// Median of numeric ratings.
    Median,
    /// Trimmed mean of numeric ratings (see --trim).
    Trimmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[expect(
    clippy::enum_variant_names,
    reason = "the values read keep-first, keep-last, keep-all"
)]
pub enum Duplicates {
    /// Keep a worker's first answer to a task.
    KeepFirst,
    /// Keep a worker's last answer to a task.
    KeepLast,
    /// Keep every answer as a separate vote (crowd-kit's behaviour).
    KeepAll,
}

impl From<Duplicates> for quorum_stats::DuplicatePolicy {
    fn from(value: Duplicates) -> Self {
        match value {
            Duplicates::KeepFirst => Self::KeepFirst,
            Duplicates::KeepLast => Self::KeepLast,
            Duplicates::KeepAll => Self::KeepAll,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct AggregateArgs {
    /// The aggregation method.
    #[arg(long, value_enum)]
    pub method: AggregateMethod,
    /// Input CSV with a header row.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the result CSV (standard output when absent).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Gold answers `task,label`: prints the accuracy on gold tasks that have answers.
    #[arg(long)]
    pub gold: Option<PathBuf>,
    /// Writes each worker's skill to this CSV.
    #[arg(long)]
    pub workers: Option<PathBuf>,
    /// Seed for randomised methods (MACE restarts).
    #[arg(long, default_value_t = 0, env = "QUORUM_SEED")]
    pub seed: u64,
    /// Random restarts for MACE (10 when absent).
    #[arg(long)]
    pub restarts: Option<usize>,
    /// Iteration cap (each method's documented default when absent).
    #[arg(long)]
    pub max_iterations: Option<usize>,
    /// Convergence tolerance (each method's documented default when absent).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// What to do when a worker answered a task more than once.
    #[arg(long, value_enum, default_value_t = Duplicates::KeepFirst)]
    pub duplicates: Duplicates,
    /// Share of values cut from each end by `--method trimmed`.
    #[arg(long, default_value_t = 0.1)]
    pub trim: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    AlphaNominal,
    AlphaOrdinal,
    AlphaInterval,
    Fleiss,
    Cohen,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BoardFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct LeaderboardArgs {
    /// Battles CSV with `model_a,model_b,winner` (winner: model_a, model_b, tie or
    /// `tie (bothbad)`); extra columns may carry style (`len_words_a`, `len_words_b`,
    /// `header_count_a`, …) and slices.
    #[arg(long)]
    pub input: PathBuf,
    /// Bootstrap rounds (resampling battles); 0 turns intervals off.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 0, env = "QUORUM_SEED")]
    pub seed: u64,
    /// Pin one model's rating, e.g. `gpt-4=1250`, instead of centring the mean on 1000.
    #[arg(long, value_name = "MODEL=RATING")]
    pub anchor: Option<String>,
    /// Take answer length and markdown (headers, lists, bold) out of the ratings, as LMArena
    /// does, and report their coefficients.
    #[arg(long)]
    pub style_control: bool,
    /// Also a board per value of this column (e.g. a rater locale), and how pairs of them differ.
    #[arg(long, value_name = "COLUMN")]
    pub slice_by: Option<String>,
    /// Models with fewer battles are listed apart and not ranked.
    #[arg(long, default_value_t = 0)]
    pub min_battles: u64,
    #[arg(long, value_enum, default_value_t = BoardFormat::Table)]
    pub format: BoardFormat,
    /// Where to write the board (standard output when absent).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Bootstrap threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Debug, clap::Args)]
pub struct AgreementArgs {
    /// Input CSV `task,worker,label`.
    #[arg(long)]
    pub input: PathBuf,
    /// The agreement statistic.
    #[arg(long, value_enum)]
    pub metric: Metric,
    /// CSV `worker,group` (e.g. a worker's locale): adds one row per group, computed over the
    /// answers of that group's workers only.
    #[arg(long)]
    pub group_by: Option<PathBuf>,
    /// Bootstrap rounds for alpha's interval (resampling tasks); 0 turns it off.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed for the bootstrap.
    #[arg(long, default_value_t = 0, env = "QUORUM_SEED")]
    pub seed: u64,
    /// Smallest number of shared tasks for a worker pair to be listed by `--metric cohen`.
    #[arg(long, default_value_t = 1)]
    pub min_common: usize,
    /// Where to write the result CSV (standard output when absent).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// What to do when a worker answered a task more than once.
    #[arg(long, value_enum, default_value_t = Duplicates::KeepFirst)]
    pub duplicates: Duplicates,
}

/// Where the data lives; every command that opens the database takes it.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (the embedded default) or `postgres://…` (several servers sharing one
    /// database).
    #[arg(
        long,
        env = "QUORUM_DATABASE",
        default_value = "sqlite://quorum-data/quorum.sqlite3"
    )]
    pub database: String,
    #[command(flatten)]
    pub egress: EgressArgs,
    /// A file holding the report-signing key (an Ed25519 seed as 64 hex digits); without it the
    /// key made on first use and kept in the database signs.
    #[arg(long, env = "QUORUM_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// The report-signing key itself (64 hex digits), for secret stores that hand out
    /// variables rather than files.
    #[arg(long, env = "QUORUM_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
}

impl DatabaseArgs {
    /// The application on `store` as the operator configured it: outbound calls, signing key.
    pub fn app<S: quorum_store::Store>(
        &self,
        store: std::sync::Arc<S>,
    ) -> anyhow::Result<quorum_app::App<S>> {
        let mut app = quorum_app::App::new(store, std::sync::Arc::new(quorum_app::SystemClock))
            .with_egress(self.egress.policy());
        let key = match (&self.signing_key, &self.signing_key_file) {
            (Some(_), Some(_)) => {
                anyhow::bail!("give the signing key as a file or a value, not both")
            }
            (Some(hex), None) => Some(hex.trim().to_string()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot read the signing key file {}: {e}", path.display())
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if let Some(hex) = key {
            let seed = hex::decode(&hex)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("the signing key must be 64 hex digits (an Ed25519 seed)")
                })?;
            app = app.with_signing_key(seed);
        }
        Ok(app)
    }
}

/// What registered models may make this process call (model runs, judges).
#[derive(Debug, Clone, clap::Args)]
pub struct EgressArgs {
    /// Environment variables a model may name for its API key, besides those starting with
    /// QUORUM_KEY_ (comma-separated in the variable).
    #[arg(
        long = "model-keys-allow",
        env = "QUORUM_MODEL_KEYS_ALLOW",
        value_delimiter = ','
    )]
    pub model_keys_allow: Vec<String>,
    /// Allows model endpoints on loopback and private addresses (models on this network).
    #[arg(long, env = "QUORUM_ALLOW_PRIVATE_MODEL_HOSTS")]
    pub allow_private_model_hosts: bool,
}

impl EgressArgs {
    pub fn policy(&self) -> quorum_app::evaluation::llm::Egress {
        quorum_app::evaluation::llm::Egress {
            key_variables: self
                .model_keys_allow
                .iter()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect(),
            allow_private: self.allow_private_model_hosts,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address and port to listen on.
    #[arg(long, env = "QUORUM_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Seconds to keep trying, with back-off, to reach a PostgreSQL database that does not
    /// answer at start (starting with the machine, failing over); 0 tries once.
    #[arg(long, env = "QUORUM_DATABASE_WAIT", default_value_t = 60)]
    pub database_wait: u64,
    /// A PostgreSQL read replica (a streaming standby of `--database`) to read dashboards,
    /// statistics, consensus, agreement, exports and leaderboards from; repeat for several
    /// (comma-separated in the environment). The rater loop never uses them.
    #[arg(
        long = "read-database",
        env = "QUORUM_READ_DATABASE",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub read_databases: Vec<String>,
    /// Seconds a read replica may be behind the primary and still be read from; analyses go
    /// to the primary while every replica is further behind (or down).
    #[arg(long, env = "QUORUM_READ_MAX_LAG", default_value_t = 30)]
    pub read_max_lag: u64,
    /// Creates a demo project (pairwise preferences over bundled sample prompts) if absent.
    #[arg(long, env = "QUORUM_DEMO")]
    pub demo: bool,
    /// The first administrator's password; generated and printed when absent.
    #[arg(long, env = "QUORUM_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Seconds a client has to send a request's head (half-sent requests are closed).
    #[arg(long, env = "QUORUM_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a request body may pause between two chunks.
    #[arg(long, env = "QUORUM_BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,
    /// Seconds from a request's head to the start of its reply (else 408).
    #[arg(long, env = "QUORUM_REQUEST_TIMEOUT", default_value_t = 300)]
    pub request_timeout: u64,
    /// Seconds open connections may go on after SIGTERM before they are closed.
    #[arg(long, env = "QUORUM_DRAIN_TIMEOUT", default_value_t = 30)]
    pub drain_timeout: u64,
    /// Seconds a server's claim on a background job (a model run, a judge) or a webhook delivery
    /// holds without renewal: when a server dies, another takes its work over after this long.
    #[arg(long, env = "QUORUM_JOB_LEASE", default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub job_lease: u64,
    /// Background jobs this server runs at once; 0 runs none here, nor webhook deliveries (a
    /// server that only answers requests, while others sharing the database do the rest).
    #[arg(long, env = "QUORUM_JOB_SLOTS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=64))]
    pub job_slots: u64,
    /// The address browsers use (e.g. https://quorum.example.org); `https://` makes session
    /// cookies Secure and adds Strict-Transport-Security.
    #[arg(long, env = "QUORUM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A reverse proxy's address whose X-Forwarded-For names the client (repeat, or
    /// comma-separated in the variable).
    #[arg(
        long = "trusted-proxy",
        env = "QUORUM_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// When set, /metrics requires `Authorization: Bearer <this token>`.
    #[arg(long, env = "QUORUM_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Creates a user.
    CreateUser {
        #[command(flatten)]
        database: DatabaseArgs,
        name: String,
        /// The password (at least 8 characters).
        #[arg(long, env = "QUORUM_NEW_PASSWORD", hide_env_values = true)]
        password: String,
        /// Makes the user an instance administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Issues an API token for a user and prints it (it is stored only as a hash).
    CreateToken {
        #[command(flatten)]
        database: DatabaseArgs,
        name: String,
        /// A label for the token.
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Lists users.
    ListUsers {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Lists a user's API tokens and web sessions (never their secrets).
    ListTokens {
        #[command(flatten)]
        database: DatabaseArgs,
        name: String,
    },
    /// Revokes one of a user's tokens or sessions by its id.
    RevokeToken {
        #[command(flatten)]
        database: DatabaseArgs,
        name: String,
        token_id: i64,
    },
    /// Disables an account: it cannot sign in, and every token and session of it ends.
    DisableUser {
        #[command(flatten)]
        database: DatabaseArgs,
        name: String,
    },
    /// Enables a disabled account again (it needs new tokens).
    EnableUser {
        #[command(flatten)]
        database: DatabaseArgs,
        name: String,
    },
    /// Sets a user's password (every web session of theirs ends).
    SetPassword {
        #[command(flatten)]
        database: DatabaseArgs,
        name: String,
        #[arg(long, env = "QUORUM_NEW_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The server's base URL.
    #[arg(long, env = "QUORUM_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An administrator's API token.
    #[arg(long, env = "QUORUM_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Items imported into the benchmark project (timed; requests of up to two million items).
    #[arg(long, default_value_t = 20_000)]
    pub items: usize,
    /// Concurrent raters in the rater loop (0 skips the loop).
    #[arg(long, default_value_t = 16)]
    pub raters: usize,
    /// Seconds the rater loop runs.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Raters per item.
    #[arg(long, default_value_t = 3)]
    pub overlap: i32,
    /// Also time a full JSONL export of the project.
    #[arg(long)]
    pub export: bool,
    /// Export this existing project instead of creating one (skips import and the loop).
    #[arg(long)]
    pub export_project: Option<i64>,
    /// The format `--export` and `--export-project` time: `jsonl`, `csv` or `parquet`.
    #[arg(long, default_value = "jsonl")]
    pub export_format: String,
    /// Subscribe a loopback receiver to `response.created` and report delivery throughput.
    #[arg(long)]
    pub webhook: bool,
    /// Run the rater loop on this existing project (new raters join it) instead of creating
    /// and importing one: the loop on a project already holding millions of items and answers.
    #[arg(long, conflicts_with = "export_project")]
    pub project: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Registers a model, or updates the one of that name.
    Add {
        #[command(flatten)]
        database: DatabaseArgs,
        name: String,
        /// The OpenAI-compatible endpoint, e.g. `https://host/v1` (none: answers are imported).
        #[arg(long)]
        base_url: Option<String>,
        /// The provider's model id (default: the name).
        #[arg(long)]
        model_id: Option<String>,
        /// The environment variable that holds the API key on the machines that call it (the
        /// key itself is never stored).
        #[arg(long)]
        api_key_env: Option<String>,
        /// A generation parameter, `KEY=VALUE` (JSON values: `temperature=0.2`); repeatable.
        #[arg(long)]
        param: Vec<String>,
        #[arg(long = "as", default_value = "admin")]
        user: String,
    },
    /// Lists the registry: name, endpoint, model id, key variable, parameters.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// A folder with `labels.csv` (task,worker,label) and `gold.csv` (task,label).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Dynamic overlap: answers before an item may settle.
    #[arg(long, requires = "target")]
    pub min_overlap: Option<i32>,
    /// Dynamic overlap: the consensus confidence at which an item settles.
    #[arg(long, requires = "min_overlap")]
    pub target: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replays only this many tasks, drawn at random (by the seed) with all their answers.
    #[arg(long)]
    pub sample: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The project of prompts.
    #[arg(long)]
    pub project: i64,
    /// Models to run, by registered name.
    #[arg(long, value_delimiter = ',', required = true)]
    pub models: Vec<String>,
    /// Requests in flight per model.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Attempts per prompt (429, 5xx, timeouts and malformed replies are retried).
    #[arg(long, default_value_t = 6)]
    pub max_attempts: u32,
    /// Seconds per attempt.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    #[arg(long = "as", default_value = "admin")]
    pub user: String,
}
