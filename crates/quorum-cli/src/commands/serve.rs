//! `quorum serve`: open the store, make sure there is an administrator, serve until SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use quorum_app::App;
use quorum_store::Store;
use tokio::net::TcpListener;

use super::open_store;
use crate::cli::ServeArgs;

const DEMO_PROJECT: &str = include_str!("../../demo/project.json");
const DEMO_ITEMS: &str = include_str!("../../demo/preferences.jsonl");

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let listener = TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener.local_addr()?;
    wait_for_postgres(&args.database.database, args.database_wait).await?;
    match open_store(&args.database).await? {
        super::AnyStore::Sqlite(store) => {
            anyhow::ensure!(
                args.read_databases.is_empty(),
                "--read-database needs PostgreSQL: a SQLite database has no replicas"
            );
            serve(store, Vec::new(), listener, address, &args).await
        }
        super::AnyStore::Postgres(store) => {
            let mut replicas = Vec::new();
            for url in &args.read_databases {
                anyhow::ensure!(
                    super::is_postgres(url),
                    "--read-database {} is not a postgres:// URL",
                    redact(url)
                );
                let replica = quorum_store_postgres::PgStore::open_replica(url)
                    .with_context(|| format!("cannot use the read database {}", redact(url)))?;
                replicas.push((redact(url), Arc::new(replica)));
            }
            serve(store, replicas, listener, address, &args).await
        }
    }
}

/// Waits, with back-off, until a PostgreSQL database answers or `wait` seconds have passed;
/// the error then says why it could not be reached. Other databases go on at once.
async fn wait_for_postgres(url: &str, wait: u64) -> anyhow::Result<()> {
    if !super::is_postgres(url) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(250);
    loop {
        match quorum_store_postgres::PgStore::reachable(url).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                let reason = std::error::Error::source(&error)
                    .map_or_else(|| error.to_string(), ToString::to_string);
                if !matches!(error, quorum_store::StoreError::Unreachable(_)) {
                    anyhow::bail!("cannot use the database {}: {reason}", redact(url));
                }
                let left = std::time::Duration::from_secs(wait).saturating_sub(started.elapsed());
                if left.is_zero() {
                    anyhow::bail!(
                        "cannot reach the database {} ({reason}); tried for {} s (--database-wait)",
                        redact(url),
                        started.elapsed().as_secs()
                    );
                }
                tracing::warn!(
                    database = %redact(url),
                    error = %reason,
                    retry_in_ms = delay.as_millis() as u64,
                    "the database does not answer yet"
                );
                tokio::time::sleep(delay.min(left)).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("QUORUM_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .json()
        .try_init();
}

#[expect(
    clippy::print_stdout,
    reason = "the first start tells the operator how to sign in"
)]
async fn serve<S: Store>(
    store: S,
    replicas: Vec<(String, Arc<S>)>,
    listener: TcpListener,
    address: std::net::SocketAddr,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let read_from_replicas = !replicas.is_empty();
    let max_lag_ms = i64::try_from(args.read_max_lag.saturating_mul(1000)).unwrap_or(i64::MAX);
    let app = args
        .database
        .app(Arc::clone(&store))?
        .with_replicas(replicas, max_lag_ms);
    // Each replica's lag is asked every second; analyses use the primary until a replica
    // answers.
    let probe = read_from_replicas.then(|| {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                app.probe_replicas().await;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        })
    });
    if let Some((admin, password)) = app.bootstrap_admin(args.admin_password.clone()).await? {
        let token = app.create_token_for(&admin, "first start").await?;
        println!("Created the administrator `admin`.");
        if args.admin_password.is_none() {
            println!("  password:  {password}");
        }
        println!("  API token: {token}");
        println!(
            "  try:       curl -H 'Authorization: Bearer {token}' http://{address}/api/v1/projects"
        );
    }
    if args.demo {
        create_demo(&app).await?;
    }
    println!(
        "Quorum is listening on http://{address} (database: {})",
        redact(&args.database.database)
    );
    let settings = quorum_server::HttpSettings {
        trusted_proxies: args.trusted_proxies.clone(),
        metrics_token: args.metrics_token.clone().filter(|t| !t.is_empty()),
        https: args
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://")),
    };
    let runner = (args.job_slots > 0).then(|| {
        let lease = std::time::Duration::from_secs(args.job_lease);
        let mut settings = quorum_app::jobs::RunnerSettings {
            lease,
            slots: args.job_slots as usize,
            ..Default::default()
        };
        settings.deliveries.lease = lease;
        app.start_job_runner(settings)
    });
    let router = quorum_server::router_with(app, settings);
    let seconds = std::time::Duration::from_secs;
    let timeouts = quorum_server::Timeouts {
        header: seconds(args.header_timeout.max(1)),
        body: seconds(args.body_timeout.max(1)),
        request: seconds(args.request_timeout.max(1)),
        drain: seconds(args.drain_timeout),
    };
    quorum_server::serve(listener, router, timeouts, shutdown_signal()).await?;
    // Jobs still running are left to lapse: another server, or this one restarted, resumes
    // them.
    if let Some(runner) = runner {
        runner.stop().await;
    }
    if let Some(probe) = probe {
        probe.abort();
    }
    // In-flight requests have drained; commit what is queued before exiting.
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Creates the demo project once (found again by name on later starts).
async fn create_demo<S: Store>(app: &App<S>) -> anyhow::Result<()> {
    let admin = app
        .store()
        .user_by_name("admin")
        .await?
        .context("the demo needs the `admin` user")?;
    let caller = quorum_app::Caller { user: admin };
    let request: quorum_app::CreateProject = serde_json::from_str(DEMO_PROJECT)?;
    let existing = app.list_projects(&caller, 0, 500).await?;
    if existing.iter().any(|p| p.name == request.name) {
        return Ok(());
    }
    let project = app.create_project(&caller, request).await?;
    let outcome = app
        .import(
            &caller,
            project.id,
            quorum_app::ImportFormat::Json,
            DEMO_ITEMS,
        )
        .await?;
    anyhow::ensure!(
        outcome.rejected.is_empty(),
        "the bundled demo items were rejected: {:?}",
        outcome.rejected
    );
    tracing::info!(
        project = project.id,
        items = outcome.created,
        "created the demo project"
    );
    Ok(())
}

/// A database URL with any password replaced, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining requests");
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://quorum:secret@db:5432/q"),
            "postgres://quorum:***@db:5432/q"
        );
        assert_eq!(
            super::redact("sqlite://quorum-data/q.sqlite3"),
            "sqlite://quorum-data/q.sqlite3"
        );
    }
}
