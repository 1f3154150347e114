//! PostgreSQL failover with nothing acknowledged lost: two real clusters on this machine, a
//! primary with a synchronous standby made by `pg_basebackup`, two servers given both hosts
//! (`target_session_attrs=read-write`). Raters answer through both servers; the primary is
//! stopped with `-m immediate` and the standby promoted. Afterwards every answer that got a
//! 2xx is stored, no item is over-served, and no request hung.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Client;
use sqlx::{Connection, Executor};

use crate::outage::{finished, nothing_lost, spawn_raters, until_stored};
use crate::postgres::free_port;
use crate::serve::{exported, serve, setup};

/// The standby's name as the primary knows it (`synchronous_standby_names`).
const STANDBY: &str = "quorum_standby";

/// A primary and its streaming standby (synchronous or not), as two clusters of the machine's PostgreSQL
/// (`pg_createcluster`); both are stopped and removed when dropped.
pub(crate) struct Clusters {
    version: String,
    names: [String; 2],
    pub(crate) ports: [u16; 2],
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Clusters {
    /// `None` where clusters cannot be made here (not root, or no `pg_createcluster`).
    pub(crate) async fn create(synchronous: bool) -> Option<Clusters> {
        let root = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
        let tools = Command::new("pg_lsclusters")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !root || !tools {
            return None;
        }
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))?;
        // Tests run at once in one process: each pair of clusters has names of its own.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}_{made}", std::process::id());
        let clusters = Clusters {
            version,
            names: [
                format!("quorum_{id}_primary"),
                format!("quorum_{id}_standby"),
            ],
            ports: [free_port(), free_port()],
        };
        let [primary, standby] = &clusters.names;
        let [primary_port, standby_port] = clusters.ports.map(|p| p.to_string());
        let version = clusters.version.as_str();
        let sync = format!(
            "synchronous_standby_names={}",
            if synchronous { STANDBY } else { "" }
        );
        run(
            "pg_createcluster",
            &[
                version,
                primary,
                "--port",
                &primary_port,
                "-o",
                &sync,
                "--",
                "--auth=trust",
            ],
        );
        clusters.ctl(0, &["start"]);
        run(
            "pg_createcluster",
            &[
                version,
                standby,
                "--port",
                &standby_port,
                "--",
                "--auth=trust",
            ],
        );
        // The standby's data directory is replaced by a base backup of the primary that
        // streams from it (-R writes primary_conninfo and standby.signal).
        let data = clusters.data(1);
        std::fs::remove_dir_all(&data).unwrap();
        let data = data.to_str().unwrap();
        run(
            "install",
            &["-d", "-o", "postgres", "-g", "postgres", "-m", "700", data],
        );
        run(
            "runuser",
            &[
                "-u",
                "postgres",
                "--",
                "pg_basebackup",
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-D",
                data,
                "-R",
                "-X",
                "stream",
                "-d",
                &format!("application_name={STANDBY}"),
            ],
        );
        clusters.ctl(1, &["start"]);
        let mut primary = sqlx::PgConnection::connect(&clusters.url(0, "postgres"))
            .await
            .unwrap();
        for _ in 0..100 {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
            )
            .bind(STANDBY)
            .fetch_optional(&mut primary)
            .await
            .unwrap();
            if state.as_deref() == Some(if synchronous { "sync" } else { "async" }) {
                return Some(clusters);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the standby never streamed (synchronous: {synchronous})");
    }

    fn data(&self, which: usize) -> PathBuf {
        PathBuf::from(format!(
            "/var/lib/postgresql/{}/{}",
            self.version, self.names[which]
        ))
    }

    /// `pg_ctlcluster` on one cluster (0 the primary, 1 the standby).
    pub(crate) fn ctl(&self, which: usize, action: &[&str]) {
        let mut args = vec![
            "--skip-systemctl-redirect",
            &self.version,
            &self.names[which],
        ];
        args.extend_from_slice(action);
        run("pg_ctlcluster", &args);
    }

    /// Makes `name` on the primary (the standby gets it by replication).
    pub(crate) async fn create_database(&self, name: &str) {
        let mut primary = sqlx::PgConnection::connect(&self.url(0, "postgres"))
            .await
            .unwrap();
        primary
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        primary.close().await.unwrap();
    }

    pub(crate) fn url(&self, which: usize, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.ports[which]
        )
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("pg_dropcluster")
                .args(["--stop", &self.version, name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raters_lose_nothing_when_the_primary_dies_and_the_standby_is_promoted() {
    let Some(clusters) = Clusters::create(true).await else {
        crate::support::skip("making PostgreSQL clusters needs root and pg_createcluster");
        return;
    };
    clusters.create_database("quorum").await;
    let [first_port, second_port] = clusters.ports;
    let url = format!(
        "postgres://postgres@127.0.0.1:{first_port},127.0.0.1:{second_port}/quorum?target_session_attrs=read-write"
    );
    let servers = [serve(&url, "administrator"), serve(&url, "administrator")];
    let admin = servers[0]
        .token
        .clone()
        .or(servers[1].token.clone())
        .unwrap();
    let client = Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let (project, tokens) = setup(&client, &servers[0].base, &url, &admin, 200, 6, 2).await;
    let bases = servers.each_ref().map(|s| s.base.clone());
    let raters = spawn_raters(&client, &bases, project, &tokens);
    // The primary dies mid-load (a fifth of the answers in); a second later the standby is
    // promoted.
    until_stored(&client, &servers[0].base, &admin, project, 80).await;
    clusters.ctl(0, &["stop", "-m", "immediate"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    clusters.ctl(1, &["promote"]);
    let seen = finished(raters).await;
    assert!(
        seen.iter().map(|s| s.unavailable).sum::<usize>() > 0,
        "the failover was seen: {seen:?}"
    );
    eprintln!(
        "failover: {} requests got 503, {} leases were lost",
        seen.iter().map(|s| s.unavailable).sum::<usize>(),
        seen.iter().map(|s| s.lost_leases).sum::<usize>()
    );
    let stored = exported(&client, &servers[1].base, &admin, project).await;
    nothing_lost(&stored, &tokens, &seen, 200, 2);
    drop(servers);
    drop(clusters);
}

/// The rater's side of a lost lease: the page says the answer was not stored and goes on with
/// the next item, instead of leaving the rater on an item nobody holds for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rater_whose_lease_was_lost_is_told_and_given_the_next_item() {
    use crate::browser::{
        browser, driver, exported, label_project, next_item, press, sign_in, wait_for_text,
    };
    let Some(driver) = driver() else { return };
    let database = crate::postgres::FreshDatabase::new("quorum_lost_lease").await;
    let server = serve(&database.url, "manager-password");
    let texts = ["first item".to_string(), "second item".to_string()];
    let (project, _) = label_project(&server, "Lost", &["yes", "no"], 1, &texts, &["ann"]).await;
    let ann = browser(&driver, 1280, 720).await;
    sign_in(&ann, &server.base, "ann", "rater-password").await;
    ann.goto(&format!("{}/projects/{project}/work", server.base))
        .await
        .unwrap();
    next_item(&ann, "").await;
    // The lease vanishes, as one granted just before the primary died may.
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let gone = sqlx::query(
        "WITH gone AS (DELETE FROM leases WHERE state = 'active' RETURNING item_id)
         UPDATE items SET active_leases = active_leases - 1, open = TRUE
         WHERE id IN (SELECT item_id FROM gone)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(gone.rows_affected(), 1);
    pool.close().await;
    press(&ann, &['1', fantoccini::key::Key::Enter.into()]).await;
    wait_for_text(&ann, "#status", "was not stored").await;
    let shown = next_item(&ann, "").await;
    press(&ann, &['1', fantoccini::key::Key::Enter.into()]).await;
    next_item(&ann, &shown).await;
    press(&ann, &['1', fantoccini::key::Key::Enter.into()]).await;
    wait_for_text(&ann, "#item", "All done").await;
    let stored = exported(&server, &project.to_string()).await;
    let mut answered: Vec<_> = stored
        .iter()
        .map(|r| r["external_id"].as_str().unwrap())
        .collect();
    answered.sort_unstable();
    assert_eq!(
        answered,
        ["t0", "t1"],
        "each item answered once: {stored:?}"
    );
    ann.close().await.unwrap();
    drop(server);
    database.drop().await;
}

/// PostgreSQL restarted under load (`pg_ctlcluster restart`, which ends every session and
/// flushes everything before stopping): the servers connect again, no request hangs, and every
/// acknowledged answer — and every lease — survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raters_ride_out_a_postgres_restart_under_load() {
    let Some(clusters) = Clusters::create(false).await else {
        crate::support::skip("making PostgreSQL clusters needs root and pg_createcluster");
        return;
    };
    clusters.create_database("quorum").await;
    let url = clusters.url(0, "quorum");
    let server = serve(&url, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let (project, tokens) = setup(&client, &server.base, &url, &admin, 200, 4, 2).await;
    let raters = spawn_raters(
        &client,
        std::slice::from_ref(&server.base),
        project,
        &tokens,
    );
    let started = || async {
        let mut conn = sqlx::PgConnection::connect(&clusters.url(0, "postgres"))
            .await
            .unwrap();
        let at: String = sqlx::query_scalar("SELECT pg_postmaster_start_time()::TEXT")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        at
    };
    let before = started().await;
    until_stored(&client, &server.base, &admin, project, 80).await;
    clusters.ctl(0, &["restart"]);
    let seen = finished(raters).await;
    eprintln!(
        "restart: {} requests got 503",
        seen.iter().map(|s| s.unavailable).sum::<usize>()
    );
    assert_eq!(
        seen.iter().map(|s| s.lost_leases).sum::<usize>(),
        0,
        "{seen:?}"
    );
    // Requests caught by the restart get a 503; the pool's check of idle connections often
    // absorbs it whole. Either way PostgreSQL did restart mid-load.
    assert_ne!(started().await, before, "PostgreSQL restarted");
    let stored = exported(&client, &server.base, &admin, project).await;
    nothing_lost(&stored, &tokens, &seen, 200, 2);
    drop(server);
    drop(clusters);
}
