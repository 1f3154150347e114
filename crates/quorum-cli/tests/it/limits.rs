//! What one request may cost a running `quorum serve`: bounded memory and linear time for
//! hostile import bodies, timeouts for half-sent requests (issue 12, findings 3, 4 and 8).

use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::serve::{Served, call, serve};

/// The server process's peak resident memory (VmHWM), in bytes.
pub(crate) fn peak_memory(served: &Served) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", served.child.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Posts `length` bytes made by `chunk(i)` (written one after another) over a raw connection,
/// stopping early if the server stops reading; returns the status and the body of the reply.
pub(crate) async fn raw_post(
    base: &str,
    path: &str,
    token: &str,
    content_type: &str,
    length: usize,
    mut chunk: impl FnMut(usize) -> Vec<u8>,
) -> (u16, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Like any careful client, stop sending once the server has answered.
    let answered = std::sync::atomic::AtomicBool::new(false);
    let send = async {
        let mut sent = 0;
        let mut i = 0;
        while sent < length && !answered.load(std::sync::atomic::Ordering::Relaxed) {
            let mut bytes = chunk(i);
            bytes.truncate(length - sent);
            for piece in bytes.chunks(64 << 10) {
                if answered.load(std::sync::atomic::Ordering::Relaxed)
                    || writer.write_all(piece).await.is_err()
                {
                    return;
                }
                sent += piece.len();
            }
            i += 1;
        }
    };
    let receive = async {
        let mut reply = Vec::new();
        let mut buffer = vec![0u8; 64 << 10];
        while let Ok(n) = reader.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            answered.store(true, std::sync::atomic::Ordering::Relaxed);
            reply.extend_from_slice(&buffer[..n]);
        }
        reply
    };
    let (_, reply) = tokio::join!(send, receive);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP reply: {reply:?}"));
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

async fn label_project(client: &Client, base: &str, token: &str) -> i64 {
    let schema = json!({"fields": [{"name": "text", "kind": "text"}], "questions": [{"name": "label", "kind": "label", "options": ["a", "b"]}]});
    let (status, body) = call(
        client,
        token,
        Method::POST,
        format!("{base}/api/v1/projects"),
        Some(json!({"name": "limits", "schema": schema})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["project"]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn hostile_import_bodies_are_refused_in_bounded_memory_and_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("q.sqlite3").display());
    let served = serve(&database, "password123");
    let token = served.token.clone().unwrap();
    let client = Client::new();
    let project = label_project(&client, &served.base, &token).await;
    let path = format!("/api/v1/projects/{project}/items");

    // Finding 3: 20 MB of bad rows, each of whose problems quotes the row.
    let row = format!("\"{}\"\n", "x".repeat(1000));
    let rows = 20 * 1024 * 1024 / row.len();
    let started = Instant::now();
    let (status, body) = raw_post(
        &served.base,
        &path,
        &token,
        "application/x-ndjson",
        rows * row.len() + 14,
        |i| {
            if i == 0 {
                b"{\"fields\": 1}\n".to_vec()
            } else {
                row.as_bytes().to_vec()
            }
        },
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 422, "{}", &body[..body.len().min(300)]);
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        reply["error"]["details"]["rejected"]
            .as_array()
            .unwrap()
            .len(),
        1000
    );
    assert_eq!(
        reply["error"]["details"]["rejected_total"].as_u64(),
        Some(rows as u64 + 1),
        "every row and the first"
    );
    assert!(
        body.len() < 1_000_000,
        "a bounded reply: {} bytes",
        body.len()
    );
    assert!(elapsed < Duration::from_secs(5), "refused in {elapsed:?}");
    let peak = peak_memory(&served);
    eprintln!(
        "20 MB of bad rows: 422 in {elapsed:?}, server peak {} MiB",
        peak >> 20
    );
    assert!(peak < 300 << 20, "peak server memory {} MiB", peak >> 20);

    // Finding 4: a 128 MB single line is scanned once, not once per chunk (that took minutes).
    let started = Instant::now();
    let line = 128 << 20;
    let (status, _) = raw_post(
        &served.base,
        &path,
        &token,
        "application/x-ndjson",
        line,
        |i| {
            if i == 0 {
                b"{\"fields\": {\"nope\": \"".to_vec()
            } else {
                vec![b'y'; 64 << 10]
            }
        },
    )
    .await;
    assert_eq!(status, 422);
    let elapsed = started.elapsed();
    eprintln!("a 128 MB line: refused in {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(20),
        "a 128 MB line took {elapsed:?}"
    );

    // A body read whole (here: all whitespace so far) is refused once it passes its limit,
    // without reading the rest.
    let (status, body) = raw_post(
        &served.base,
        &path,
        &token,
        "application/json",
        600 << 20,
        |_| vec![b' '; 1 << 20],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("JSON Lines"), "{body}");

    // Nothing was written by any of them.
    let stats = crate::serve::project_stats(&client, &served.base, &token, project).await;
    assert_eq!(stats["items"], 0);
}

/// Whether the server has closed `stream` (a read ends or fails) within `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A reply (a 408, say) before the close.
            Ok(Ok(_)) => continue,
        }
    }
}

/// Finding 8: half-sent requests are closed, a stalled body ends its request, and SIGTERM does
/// not wait for either beyond the drain timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_time_out_and_shutdown_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("q.sqlite3").display());
    let mut served = crate::serve::serve_with(
        &database,
        "password123",
        &[
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--drain-timeout",
            "2",
        ],
    );
    let token = served.token.clone().unwrap();
    let address = served.base.trim_start_matches("http://").to_string();
    // 200 slowloris connections: a request head started and never finished, or nothing sent.
    let mut connections = Vec::new();
    for i in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        connections.push(stream);
    }
    // A body that stops half-way.
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\": "
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for (i, stream) in connections.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "connection {i} still open after {:?}",
            started.elapsed()
        );
    }
    assert!(closed_within(&mut stalled, Duration::from_secs(5)).await);
    // The server still answers.
    let client = Client::new();
    let (status, _) = call(
        &client,
        &token,
        Method::GET,
        format!("{}/healthz", served.base),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // SIGTERM with a request in flight that never finishes its body: the server exits within
    // the drain timeout, not when the client gives up.
    let mut lingering = tokio::net::TcpStream::connect(&address).await.unwrap();
    lingering.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let exit = served.child.wait().unwrap();
        (exit, served)
    })
    .await
    .unwrap()
    .0;
    assert!(exit.success(), "{exit:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        stopping.elapsed()
    );
    drop(lingering);
}
