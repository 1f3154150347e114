//! Read replicas for analytics: a primary and a streaming standby (two real clusters), one
//! server given the standby with `--read-database`. Analyses are read from the standby and say
//! how far behind it is; with its replay paused they show the standby's older figures while
//! raters go on answering on the primary; with the standby down they come from the primary.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, Executor};

use crate::failover::Clusters;
use crate::serve::{serve_with, setup};

const LAG: &str = "quorum-replica-lag-ms";

/// `n` answers by one rater, over the API.
async fn answer(client: &Client, base: &str, project: i64, token: &str, n: usize) {
    for _ in 0..n {
        let next = client
            .post(format!("{base}/api/v1/projects/{project}/next"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(next.status(), StatusCode::OK);
        let lease = next.json::<Value>().await.unwrap()["lease"]["id"]
            .as_i64()
            .unwrap();
        let stored = client
            .post(format!("{base}/api/v1/leases/{lease}/response"))
            .bearer_auth(token)
            .json(&json!({"answers": {"label": "a"}}))
            .send()
            .await
            .unwrap();
        assert!(stored.status().is_success());
    }
}

/// The project's response count as the stats route tells it, and the replica lag it reports;
/// `None` for a 503 (a replica that went down within the last second).
async fn stats(
    client: &Client,
    base: &str,
    project: i64,
    admin: &str,
) -> Option<(i64, Option<i64>)> {
    let response = client
        .get(format!("{base}/api/v1/projects/{project}/stats"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    assert_eq!(response.status(), StatusCode::OK);
    let lag = response
        .headers()
        .get(LAG)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body: Value = response.json().await.unwrap();
    Some((body["stats"]["responses"].as_i64().unwrap(), lag))
}

/// Asks until the stats say `responses` with (or without) a replica lag.
async fn stats_become(
    client: &Client,
    base: &str,
    project: i64,
    admin: &str,
    responses: i64,
    from_replica: bool,
) -> Option<i64> {
    let mut last = None;
    for _ in 0..100 {
        last = stats(client, base, project, admin).await;
        if let Some((n, lag)) = last
            && n == responses
            && lag.is_some() == from_replica
        {
            return lag;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the stats stayed at {last:?}, not {responses} (from a replica: {from_replica})");
}

async fn metrics(client: &Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn analyses_are_read_from_a_replica_that_says_how_far_behind_it_is() {
    let Some(clusters) = Clusters::create(false).await else {
        crate::support::skip("making PostgreSQL clusters needs root and pg_createcluster");
        return;
    };
    clusters.create_database("quorum").await;
    let (primary_url, standby_url) = (clusters.url(0, "quorum"), clusters.url(1, "quorum"));
    let server = serve_with(
        &primary_url,
        "administrator",
        &["--read-database", &standby_url, "--read-max-lag", "30"],
    );
    let (base, admin) = (server.base.clone(), server.token.clone().unwrap());
    let client = Client::new();
    let (project, tokens) = setup(&client, &base, &primary_url, &admin, 30, 1, 1).await;
    answer(&client, &base, project, &tokens[0], 5).await;
    let lag = stats_become(&client, &base, project, &admin, 5, true).await;
    assert!(lag.is_some_and(|ms| ms >= 0), "{lag:?}");
    let gauge = format!("quorum_replica_lag_seconds{{replica=\"{standby_url}\"}}");
    let exposition = metrics(&client, &base).await;
    let line = exposition.lines().find(|l| l.starts_with(&gauge)).unwrap();
    assert!(
        line[gauge.len()..].trim().parse::<f64>().unwrap() >= 0.0,
        "{line}"
    );

    // Every analysis route says it was read from the replica.
    for path in [
        "consensus",
        "agreement",
        "raters",
        "export",
        "export?format=consensus",
        "export?format=csv",
        "card",
    ] {
        let response = client
            .get(format!("{base}/api/v1/projects/{project}/{path}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers().contains_key(LAG), "{path}");
    }
    let no_redirects = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (status, cookie) =
        crate::serve::sign_in(&no_redirects, &base, "admin", "administrator").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.unwrap().split(';').next().unwrap().to_string();
    let page = client
        .get(format!("{base}/projects/{project}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Figures from a read replica"), "{page}");
    // The rater loop is not an analysis: it never carries the header.
    let next = client
        .post(format!("{base}/api/v1/projects/{project}/next"))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert!(!next.headers().contains_key(LAG));
    let lease = next.json::<Value>().await.unwrap()["lease"]["id"]
        .as_i64()
        .unwrap();
    let skipped = client
        .post(format!("{base}/api/v1/leases/{lease}/skip"))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert!(skipped.status().is_success());

    // With the standby's replay paused, answers go on (on the primary) and the figures are
    // the standby's: older, and saying so.
    let mut standby = sqlx::PgConnection::connect(&clusters.url(1, "quorum"))
        .await
        .unwrap();
    standby
        .execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    answer(&client, &base, project, &tokens[0], 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (responses, lag) = stats(&client, &base, project, &admin).await.unwrap();
    assert_eq!(responses, 5, "read from the paused replica");
    assert!(lag.is_some_and(|ms| ms >= 500), "the lag shows: {lag:?}");
    standby
        .execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    standby.close().await.unwrap();
    stats_become(&client, &base, project, &admin, 8, true).await;

    // With the standby gone, analyses come from the primary, and raters never noticed.
    clusters.ctl(1, &["stop", "-m", "immediate"]);
    answer(&client, &base, project, &tokens[0], 2).await;
    stats_become(&client, &base, project, &admin, 10, false).await;
    assert!(
        metrics(&client, &base)
            .await
            .contains(&format!("{gauge} -1"))
    );
    drop(server);
    drop(clusters);
}
