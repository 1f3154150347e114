//! Faults a server meets in operation, on a real filesystem: the disk fills up.

use std::process::Command;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::serve::{call, project_stats, serve};

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
        project_stats(&client, &server.base, &admin, project).await["items"]
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

/// An ext4 filesystem on a loop device (root only), mounted `errors=remount-ro`; unmounted
/// and removed when dropped.
struct Ext4 {
    dir: tempfile::TempDir,
    image: std::path::PathBuf,
}

impl Ext4 {
    fn mount() -> Option<Ext4> {
        let image = std::env::temp_dir().join(format!("quorum-ro-{}.img", std::process::id()));
        let made = Command::new("truncate")
            .args(["-s", "64M"])
            .arg(&image)
            .status()
            .ok()?
            .success()
            && Command::new("mkfs.ext4")
                .arg("-q")
                .arg(&image)
                .status()
                .ok()?
                .success();
        let dir = tempfile::tempdir().unwrap();
        let mounted = made
            && Command::new("mount")
                .args(["-o", "loop,errors=remount-ro"])
                .arg(&image)
                .arg(dir.path())
                .status()
                .ok()?
                .success();
        mounted.then_some(Ext4 { dir, image })
    }

    /// What the kernel does on a real disk error: ext4 aborts its journal and the filesystem
    /// turns read-only under the running server (`trigger_fs_error`, ext4's own test hook).
    fn fail(&self) {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let path = self.dir.path().to_str().unwrap();
        let device = mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(path))
            .and_then(|l| l.split(' ').next())
            .unwrap();
        let name = device.trim_start_matches("/dev/");
        std::fs::write(format!("/sys/fs/ext4/{name}/trigger_fs_error"), "test\n").unwrap();
    }
}

impl Ext4 {
    /// What an operator does: unmount, check and repair the filesystem, mount it again.
    fn repair(&self) {
        let dir = self.dir.path();
        assert!(Command::new("umount").arg(dir).status().unwrap().success());
        // e2fsck exits 1 when it corrected errors.
        let checked = Command::new("e2fsck")
            .arg("-fy")
            .arg(&self.image)
            .output()
            .unwrap();
        assert!(matches!(checked.status.code(), Some(0 | 1)), "{checked:?}");
        let mounted = Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(&self.image)
            .arg(dir)
            .status()
            .unwrap();
        assert!(mounted.success());
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filesystem_turned_read_only_refuses_writes_clearly_and_keeps_every_acknowledged_answer()
{
    let Some(disk) = Ext4::mount() else {
        crate::support::skip("mounting an ext4 image on a loop device needs root");
        return;
    };
    let database = format!("sqlite://{}/q.sqlite3", disk.dir.path().display());
    let mut server = serve(&database, "administrator");
    let admin = server.token.clone().unwrap();
    let client = Client::new();
    let (project, tokens) =
        crate::serve::setup(&client, &server.base, &database, &admin, 20, 1, 1).await;
    let answer = || async {
        let next = client
            .post(format!("{}/api/v1/projects/{project}/next", server.base))
            .bearer_auth(&tokens[0])
            .send()
            .await
            .unwrap();
        if next.status() != StatusCode::OK {
            return (next.status(), next.json::<Value>().await.unwrap());
        }
        let lease = next.json::<Value>().await.unwrap()["lease"]["id"]
            .as_i64()
            .unwrap();
        let stored = client
            .post(format!("{}/api/v1/leases/{lease}/response", server.base))
            .bearer_auth(&tokens[0])
            .json(&json!({"answers": {"label": "a"}}))
            .send()
            .await
            .unwrap();
        (
            stored.status(),
            stored.json::<Value>().await.unwrap_or_default(),
        )
    };
    for _ in 0..5 {
        assert_eq!(answer().await.0, StatusCode::CREATED);
    }
    disk.fail();
    // The answer is refused by name, with Retry-After, and not acknowledged.
    let (status, body) = answer().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_read_only", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{body}"
    );
    let lines = "{\"external_id\": \"late\", \"fields\": {\"text\": \"late\"}}\n";
    let import = client
        .post(format!("{}/api/v1/projects/{project}/items", server.base))
        .bearer_auth(&admin)
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(import.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(import.headers()["retry-after"], "5");
    // The health check and the metrics say so; reads go on, with every acknowledged answer.
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(health.text().await.unwrap().contains("storage_read_only"));
    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("\nquorum_storage_read_only 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nquorum_storage_read_only_total 2\n"),
        "{metrics}"
    );
    let stats = project_stats(&client, &server.base, &admin, project).await;
    assert_eq!(
        (stats["responses"].as_i64(), stats["items"].as_i64()),
        (Some(5), Some(20))
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // Repaired (fsck, mounted again) the database holds exactly the acknowledged answers.
    disk.repair();
    let mut server = serve(&database, "administrator");
    let stats = project_stats(&client, &server.base, &admin, project).await;
    assert_eq!(
        (stats["responses"].as_i64(), stats["items"].as_i64()),
        (Some(5), Some(20))
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
