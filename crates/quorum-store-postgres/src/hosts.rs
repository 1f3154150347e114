//! One database behind several hosts: a primary and its standbys, named libpq's way
//! (`postgres://user@primary:5432,standby:5432/quorum?target_session_attrs=read-write`).
//!
//! A server writes, so it always uses the host that accepts writes: the first one found when
//! it starts, and, while it runs, a watcher asks the host in use every second whether it still
//! does. When that host goes (stopped, crashed, demoted) the watcher looks through the list
//! again and points the pool's new connections at the host that now accepts writes (the
//! promoted standby); connections made before the switch are dropped instead of reused.
//! Requests made while no host accepts writes get `Unreachable` (a 503) within the pool's
//! acquire timeout.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quorum_store::{Result, StoreError};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};

/// How long one host may take to answer whether it accepts writes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the watcher asks.
const PERIOD: Duration = Duration::from_secs(1);

/// One host of the list, with the options to connect to it alone.
#[derive(Clone, Debug)]
pub(crate) struct Host {
    /// `host:port`, for messages.
    pub(crate) name: String,
    pub(crate) options: PgConnectOptions,
}

impl Host {
    pub(crate) fn new(options: PgConnectOptions) -> Self {
        let name = format!("{}:{}", options.get_host(), options.get_port());
        Self { name, options }
    }
}

/// Splits a `postgres://` URL naming one or more hosts (comma-separated, each with an
/// optional port) into one set of connect options per host. `target_session_attrs` may be
/// absent, `read-write` or `primary` when `writes` (a server always writes to the primary);
/// any libpq value is accepted for a read-only database.
pub(crate) fn parse(url: &str, writes: bool) -> Result<Vec<Host>> {
    let invalid = |why: String| StoreError::Database(format!("database URL: {why}").into());
    let scheme_end = url.find("://").ok_or_else(|| {
        invalid("expected postgres://[user[:password]@]host[:port][,host[:port]…]/database".into())
    })? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_list) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let (path, query) = match tail.find('?') {
        Some(q) => (&tail[..q], &tail[q + 1..]),
        None => (tail, ""),
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("target_session_attrs", value)) => {
                if writes && !matches!(value, "read-write" | "primary") {
                    return Err(invalid(format!(
                        "target_session_attrs={value}: Quorum writes, so its database must be the primary (read-write); give read-only hosts with --read-database"
                    )));
                }
            }
            _ => kept.push(pair),
        }
    }
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    let mut hosts = Vec::new();
    for host in host_list.split(',') {
        if host.is_empty() && host_list.contains(',') {
            return Err(invalid(format!("an empty host in {host_list:?}")));
        }
        let one = format!("{}{userinfo}{host}{path}{query}", &url[..scheme_end]);
        let options = PgConnectOptions::from_str(&one)
            .map_err(|e| invalid(format!("host {host:?}: {e}")))?
            .disable_statement_logging();
        hosts.push(Host::new(options));
    }
    Ok(hosts)
}

/// Whether `host` accepts writes (it answers and is not in recovery); why not when it does not.
async fn accepts_writes(host: &Host) -> std::result::Result<(), String> {
    let connect = ConnectOptions::connect(&host.options);
    let mut conn = match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    };
    let query = sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(&mut conn);
    let in_recovery = tokio::time::timeout(PROBE_TIMEOUT, query).await;
    let _ = sqlx::Connection::close(conn).await;
    match in_recovery {
        Ok(Ok(false)) => Ok(()),
        Ok(Ok(true)) => Err("a standby (in recovery): it does not accept writes".into()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// The hosts of a server's `url` and which of them is the primary now.
pub(crate) async fn with_primary(url: &str) -> Result<(Vec<Host>, usize)> {
    let hosts = parse(url, true)?;
    let current = primary(&hosts, 0).await?;
    Ok((hosts, current))
}

/// The first host (from `start`, wrapping round) that accepts writes; `Unreachable`, saying
/// what each host answered, when none does.
pub(crate) async fn primary(hosts: &[Host], start: usize) -> Result<usize> {
    let mut reasons = Vec::new();
    for offset in 0..hosts.len() {
        let index = (start + offset) % hosts.len();
        match accepts_writes(&hosts[index]).await {
            Ok(()) => return Ok(index),
            Err(reason) => reasons.push(format!("{}: {reason}", hosts[index].name)),
        }
    }
    Err(StoreError::Unreachable(if hosts.len() == 1 {
        reasons.concat()
    } else {
        format!("no host accepts writes ({})", reasons.join("; "))
    }))
}

/// When the pool last changed host: connections made before then are not handed out again.
#[derive(Clone, Debug)]
pub(crate) struct Switched(Arc<Mutex<Instant>>);

impl Switched {
    pub(crate) fn now() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }

    fn mark(&self) {
        *self.0.lock().expect("not poisoned") = Instant::now();
    }

    /// Whether a connection of this age was made on the host in use now.
    pub(crate) fn current(&self, age: Duration) -> bool {
        age <= self.0.lock().expect("not poisoned").elapsed()
    }
}

/// Keeps the pool on the host that accepts writes; stops when dropped (with its store).
#[derive(Debug)]
pub(crate) struct Watcher(tokio::task::JoinHandle<()>);

impl Watcher {
    pub(crate) fn start(
        pool: PgPool,
        hosts: Vec<Host>,
        mut current: usize,
        switched: Switched,
    ) -> Self {
        Self(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PERIOD);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut lost = false;
            while !pool.is_closed() {
                ticker.tick().await;
                let Err(reason) = accepts_writes(&hosts[current]).await else {
                    lost = false;
                    continue;
                };
                match primary(&hosts, current + 1).await {
                    Ok(index) if index != current => {
                        tracing::warn!(from = %hosts[current].name, to = %hosts[index].name, %reason, "the database's primary moved; new connections go to the new primary");
                        pool.set_connect_options(hosts[index].options.clone());
                        switched.mark();
                        current = index;
                        lost = false;
                    }
                    Ok(_) => {}
                    Err(error) if !lost => {
                        tracing::warn!(%error, "no database host accepts writes; requests get 503 until one does");
                        lost = true;
                    }
                    Err(_) => {}
                }
            }
        }))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_each_host_with_its_own_port() {
        let hosts = parse(
            "postgres://quorum:secret@db1:5433,db2,[::1]:5434/quorum?sslmode=disable&target_session_attrs=read-write",
            true,
        )
        .unwrap();
        let names: Vec<_> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["db1:5433", "db2:5432", "[::1]:5434"]);
        for host in &hosts {
            assert_eq!(host.options.get_username(), "quorum");
            assert_eq!(host.options.get_database(), Some("quorum"));
        }
    }

    #[test]
    fn a_server_refuses_a_url_that_would_let_it_write_to_a_standby() {
        let why = |url| {
            let error = parse(url, true).unwrap_err();
            std::error::Error::source(&error).unwrap().to_string()
        };
        let error = why("postgres://db1,db2/q?target_session_attrs=standby");
        assert!(error.contains("target_session_attrs=standby"), "{error}");
        assert!(parse("postgres://db1,db2/q?target_session_attrs=standby", false).is_ok());
        let error = why("postgres://db1,,db2/q");
        assert!(error.contains("empty host"), "{error}");
    }
}
