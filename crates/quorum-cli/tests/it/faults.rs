//! Faults a server meets in operation, on a real filesystem: the disk fills up.

use std::process::Command;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::serve::{call, serve};

/// A small tmpfs mounted for one test (root only), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        mounted.status.success().then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_with_507_writes_nothing_half_and_recovers() {
    let Some(disk) = SmallDisk::mount("6m") else {
        crate::support::skip("mounting a small tmpfs needs root");
        return;
    };
    // Room to free later.
    let ballast = disk.dir.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();
    let database = format!("sqlite://{}/q.sqlite3", disk.dir.path().display());
    let mut server = serve(&database, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let schema = json!({"fields": [{"name": "text", "kind": "text"}], "questions": [{"name": "label", "kind": "label", "options": ["a", "b"]}]});
    let (status, body) = call(
        &client,
        &admin,
        reqwest::Method::POST,
        format!("{}/api/v1/projects", server.base),
        Some(json!({"name": "full", "schema": schema})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let project = body["project"]["id"].as_i64().unwrap();
    // `rows` items of `size` characters each.
    let import = |batch: usize, rows: usize, size: usize| {
        let lines: String = (0..rows)
            .map(|i| {
                format!(
                    "{{\"external_id\": \"b{batch}-{i}\", \"fields\": {{\"text\": \"{}\"}}}}\n",
                    "x".repeat(size)
                )
            })
            .collect();
        client
            .post(format!("{}/api/v1/projects/{project}/items", server.base))
            .bearer_auth(&admin)
            .header("content-type", "application/x-ndjson")
            .body(lines)
            .send()
    };
    let stats = || async {
        call(
            &client,
            &admin,
            reqwest::Method::GET,
            format!("{}/api/v1/projects/{project}/stats", server.base),
            None,
        )
        .await
        .1["stats"]["items"]
            .as_i64()
            .unwrap()
    };
    let mut stored = 0;
    let mut refusal = None;
    for batch in 0..40 {
        let response = import(batch, 2000, 200).await.unwrap();
        match response.status() {
            StatusCode::OK => stored += 1,
            status => {
                refusal = Some((status, response.json::<Value>().await.unwrap()));
                break;
            }
        }
    }
    let (status, body) = refusal.expect("the disk filled up");
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["error"]["code"], "storage_full");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("storage is full"),
        "{body}"
    );
    // The health check and the metrics say so.
    let health = |path: &'static str| {
        let url = format!("{}{path}", server.base);
        let client = client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, body) = health("/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("storage_full"), "{body}");
    let (_, metrics) = health("/metrics").await;
    assert!(metrics.contains("\nquorum_storage_full 1\n"), "{metrics}");
    assert!(
        metrics.contains("\nquorum_storage_full_total 1\n"),
        "{metrics}"
    );
    // Nothing of the refused import was written; reads go on.
    assert!(stored > 0);
    assert_eq!(stats().await, stored * 2000);
    // An import far larger than the disk fails inside its transaction (SQLite rolls it all
    // back, not only the statement): refused the same way, nothing of it kept.
    let response = import(99, 30_000, 1000).await.unwrap();
    assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(stats().await, stored * 2000);
    // Space freed: the same import goes through, on the same server.
    std::fs::remove_file(&ballast).unwrap();
    let response = import(stored as usize, 2000, 200).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(stats().await, (stored + 1) * 2000);
    let (status, _) = health("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (_, metrics) = health("/metrics").await;
    assert!(metrics.contains("\nquorum_storage_full 0\n"), "{metrics}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
