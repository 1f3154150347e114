//! The project's tally (what the dashboard, statistics and agreement read) on PostgreSQL with
//! two servers: answers are folded in the background by both talliers, once each.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::json;

use crate::postgres::FreshDatabase;
use crate::serve::{call, export_rows, project_stats, serve, setup};

/// Six raters answer 80 items (overlap 3) through two servers, with labels that disagree
/// often; with no read asking for it, both talliers fold the answers until the queue is
/// empty, and the statistics and agreement then say exactly what the export holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_fold_answers_into_the_tally_in_the_background() {
    let fresh = FreshDatabase::new("quorum_tally").await;
    let database = fresh.url.clone();
    let first = serve(&database, "administrator");
    let second = serve(&database, "administrator");
    let admin = first.token.clone().or(second.token.clone()).unwrap();
    let client = Client::new();
    let (project, tokens) = setup(&client, &first.base, &database, &admin, 80, 6, 3).await;
    let bases = [first.base.clone(), second.base.clone()];
    // The raters take turns, one answer each per round, through alternate servers.
    let mut active: Vec<usize> = (0..tokens.len()).collect();
    let mut turn = 0;
    while !active.is_empty() {
        let mut still = Vec::new();
        for r in active {
            let (token, base) = (&tokens[r], &bases[turn % 2]);
            turn += 1;
            let (status, body) = call(
                &client,
                token,
                Method::POST,
                format!("{base}/api/v1/projects/{project}/next"),
                None,
            )
            .await;
            if status == StatusCode::NO_CONTENT {
                continue;
            }
            still.push(r);
            let lease = body["lease"]["id"].as_i64().unwrap();
            let text = body["item"]["fields"]["text"].as_str().unwrap();
            let item: usize = text.trim_start_matches("item ").parse().unwrap();
            // Raters 0 and 1 always say "a"; the rest follow the item, two of them inverted.
            let label = match r {
                0 | 1 => "a",
                2 | 3 => ["a", "b"][item % 2],
                _ => ["b", "a"][item % 2],
            };
            let (status, body) = call(
                &client,
                token,
                Method::POST,
                format!("{base}/api/v1/leases/{lease}/response"),
                Some(json!({"answers": {"label": label}})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        active = still;
    }

    // No read has folded anything; the talliers empty the queue on their own.
    let pool = sqlx::PgPool::connect(&database).await.unwrap();
    let waiting = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM tally_queue")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    for _ in 0..200 {
        if waiting().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(waiting().await, 0, "the queue is folded without a read");
    let version: i64 = sqlx::query_scalar("SELECT version FROM tallies WHERE project_id = $1")
        .bind(project)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(version >= 1);

    // What the export holds: per item, who said what.
    let mut by_item: HashMap<String, Vec<String>> = HashMap::new();
    for row in export_rows(&client, &bases[1], &admin, project).await {
        by_item
            .entry(row["external_id"].as_str().unwrap().to_string())
            .or_default()
            .push(row["answers"]["label"].as_str().unwrap().to_string());
    }
    let (mut agree, mut pairs) = (0, 0);
    for labels in by_item.values() {
        for i in 0..labels.len() {
            for j in i + 1..labels.len() {
                pairs += 1;
                agree += usize::from(labels[i] == labels[j]);
            }
        }
    }
    assert_eq!(pairs, 240, "80 items, three answers each");

    for base in &bases {
        let stats = project_stats(&client, base, &admin, project).await;
        assert_eq!(
            (
                &stats["responses"],
                &stats["raters"],
                &stats["items_complete"]
            ),
            (&json!(240), &json!(6), &json!(80)),
            "{stats}"
        );
        let (status, body) = call(
            &client,
            &admin,
            Method::GET,
            format!("{base}/api/v1/projects/{project}/agreement"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let label = &body["agreement"][0];
        assert_eq!(label["groups"][0]["raters"], json!(6), "{label}");
        let within = label["within_locale"].as_f64().unwrap();
        assert!(
            (within - agree as f64 / pairs as f64).abs() < 1e-12,
            "{within} against {agree}/{pairs}"
        );
        assert!(label["groups"][0]["alpha"].as_f64().is_some(), "{label}");
        let common: i64 = label["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["common_items"].as_i64().unwrap())
            .sum();
        assert!(common <= 240 && common > 0, "{label}");
    }
    pool.close().await;
    drop([first, second]);
    fresh.drop().await;
}
