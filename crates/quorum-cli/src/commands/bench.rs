//! `quorum bench`: a load generator for a running server, over real HTTP.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::cli::BenchArgs;

/// Latency percentiles of one call kind, in milliseconds.
fn percentiles(name: &str, samples: &mut [f64]) -> String {
    if samples.is_empty() {
        return format!("{name}: no samples");
    }
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize] * 1000.0;
    format!(
        "{name}: n={} p50={:.2}ms p95={:.2}ms p99={:.2}ms max={:.2}ms",
        samples.len(),
        at(0.5),
        at(0.95),
        at(0.99),
        at(1.0)
    )
}

async fn post(client: &Client, url: String, token: &str, body: Value) -> anyhow::Result<Value> {
    let response = client
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{url}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Items per import request.
const IMPORT_REQUEST_ITEMS: usize = 2_000_000;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let client = Client::builder().pool_max_idle_per_host(1024).build()?;
    let base = args.url.trim_end_matches('/').to_string();
    if let Some(project) = args.export_project {
        return export(&client, &base, &args.token, project, &args.export_format).await;
    }
    let project = match args.project {
        Some(project) => project,
        None => create_and_import(&client, &base, &args).await?,
    };
    let receiver = match args.webhook {
        true => Some(subscribe(&client, &base, &args.token, project).await?),
        false => None,
    };
    if args.raters > 0 {
        let answered = rater_loop(&client, &base, &args, project).await?;
        if let Some(arrivals) = receiver {
            deliveries(&arrivals, answered).await?;
        }
    }
    if args.export {
        export(&client, &base, &args.token, project, &args.export_format).await?;
    }
    Ok(())
}

/// Creates the benchmark project and imports its items (timed); its id.
#[expect(clippy::print_stdout, reason = "the benchmark report")]
async fn create_and_import(client: &Client, base: &str, args: &BenchArgs) -> anyhow::Result<i64> {
    let schema = json!({
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "label", "kind": "label", "options": ["positive", "negative", "neutral"], "required": true}]
    });
    let project = post(
        client,
        format!("{base}/api/v1/projects"),
        &args.token,
        json!({"name": "bench", "schema": schema, "overlap": args.overlap}),
    )
    .await?["project"]["id"]
        .as_i64()
        .context("the project id")?;

    // Import: JSON Lines requests of small text items, up to two million items each (a
    // request may carry at most 512 MiB).
    let mut bytes = 0;
    let started = Instant::now();
    for first in (0..args.items).step_by(IMPORT_REQUEST_ITEMS) {
        let last = (first + IMPORT_REQUEST_ITEMS).min(args.items);
        let mut body = String::with_capacity((last - first) * 64);
        for i in first..last {
            body.push_str(&format!(
                "{{\"external_id\":\"b{i}\",\"fields\":{{\"text\":\"benchmark item number {i}\"}}}}\n"
            ));
        }
        bytes += body.len();
        let response = client
            .post(format!("{base}/api/v1/projects/{project}/items"))
            .bearer_auth(&args.token)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let outcome: Value = response.json().await?;
        if status != StatusCode::OK {
            bail!("import failed: {status}: {outcome}");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "import: {} items ({:.1} MB) in {seconds:.2}s = {:.0} items/s",
        args.items,
        bytes as f64 / 1e6,
        args.items as f64 / seconds
    );

    Ok(project)
}

#[expect(clippy::print_stdout, reason = "the benchmark report")]
async fn rater_loop(
    client: &Client,
    base: &str,
    args: &BenchArgs,
    project: i64,
) -> anyhow::Result<u64> {
    let run = std::process::id();
    let mut tokens = Vec::with_capacity(args.raters);
    for r in 0..args.raters {
        let name = format!("bench-{run}-{project}-{r}");
        let user = post(
            client,
            format!("{base}/api/v1/users"),
            &args.token,
            json!({"name": name, "password": "benchmark-password"}),
        )
        .await?;
        let id = user["user"]["id"].as_i64().context("the user id")?;
        post(
            client,
            format!("{base}/api/v1/projects/{project}/members"),
            &args.token,
            json!({"user": name, "role": "annotator"}),
        )
        .await?;
        let token = post(
            client,
            format!("{base}/api/v1/users/{id}/tokens"),
            &args.token,
            json!({}),
        )
        .await?;
        tokens.push(token["token"].as_str().context("the token")?.to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for token in tokens {
        let (client, base) = (client.clone(), base.to_string());
        tasks.push(tokio::spawn(async move {
            let (mut next, mut submit, mut answered) = (Vec::new(), Vec::new(), 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                let response = client
                    .post(format!("{base}/api/v1/projects/{project}/next"))
                    .bearer_auth(&token)
                    .send()
                    .await?;
                if response.status() == StatusCode::NO_CONTENT {
                    break;
                }
                let lease: Value = response.json().await?;
                next.push(t.elapsed().as_secs_f64());
                let lease_id = lease["lease"]["id"].as_i64().context("a lease")?;
                let t = Instant::now();
                let stored = client
                    .post(format!("{base}/api/v1/leases/{lease_id}/response"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", lease_id.to_string())
                    .json(&json!({"answers": {"label": "positive"}, "time_spent_ms": 1000}))
                    .send()
                    .await?;
                if stored.status() != StatusCode::CREATED {
                    bail!("submit: {}", stored.status());
                }
                submit.push(t.elapsed().as_secs_f64());
                answered += 1;
            }
            anyhow::Ok((next, submit, answered))
        }));
    }
    let (mut next, mut submit, mut answered) = (Vec::new(), Vec::new(), 0);
    for task in tasks {
        let (n, s, a) = task.await??;
        next.extend(n);
        submit.extend(s);
        answered += a;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rater loop: {} raters, {answered} responses in {seconds:.1}s = {:.0} responses/s",
        args.raters,
        answered as f64 / seconds
    );
    println!("  {}", percentiles("next", &mut next));
    println!("  {}", percentiles("submit", &mut submit));
    Ok(answered)
}

/// When each webhook delivery arrived.
type Arrivals = std::sync::Arc<std::sync::Mutex<Vec<Instant>>>;

/// A receiver on a loopback port, subscribed to the project's `response.created` events.
async fn subscribe(
    client: &Client,
    base: &str,
    token: &str,
    project: i64,
) -> anyhow::Result<Arrivals> {
    let arrivals = Arrivals::default();
    let recorded = std::sync::Arc::clone(&arrivals);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let recorded = std::sync::Arc::clone(&recorded);
            async move {
                if let Ok(mut arrivals) = recorded.lock() {
                    arrivals.push(Instant::now());
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    post(
        client,
        format!("{base}/api/v1/projects/{project}/webhooks"),
        token,
        json!({"url": url, "events": ["response.created"]}),
    )
    .await?;
    Ok(arrivals)
}

/// Waits for one delivery per answer and reports how fast they came.
#[expect(clippy::print_stdout, reason = "the benchmark report")]
async fn deliveries(arrivals: &Arrivals, answered: u64) -> anyhow::Result<()> {
    let loop_ended = Instant::now();
    let count = || arrivals.lock().map_or(0, |a| a.len() as u64);
    while count() < answered {
        if loop_ended.elapsed() > Duration::from_secs(600) {
            bail!(
                "only {} of {answered} events arrived in 10 minutes",
                count()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrivals = arrivals
        .lock()
        .map_err(|_| anyhow::anyhow!("a receiver panicked"))?;
    let (first, last) = match (arrivals.first(), arrivals.last()) {
        (Some(first), Some(last)) => (*first, *last),
        _ => return Ok(()),
    };
    let seconds = last.duration_since(first).as_secs_f64().max(1e-9);
    println!(
        "webhooks: {} events delivered in {seconds:.2}s (first to last) = {:.0} events/s; the last {:.2}s after the rater loop ended",
        arrivals.len(),
        arrivals.len() as f64 / seconds,
        last.saturating_duration_since(loop_ended).as_secs_f64()
    );
    Ok(())
}

#[expect(clippy::print_stdout, reason = "the benchmark report")]
async fn export(
    client: &Client,
    base: &str,
    token: &str,
    project: i64,
    format: &str,
) -> anyhow::Result<()> {
    let stats: Value = client
        .get(format!("{base}/api/v1/projects/{project}/stats"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let responses = stats["stats"]["responses"].as_i64().unwrap_or_default();
    let started = Instant::now();
    let mut response = client
        .get(format!(
            "{base}/api/v1/projects/{project}/export?format={format}"
        ))
        .bearer_auth(token)
        .send()
        .await?;
    if response.status() != StatusCode::OK {
        bail!("export: {}", response.status());
    }
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "export ({format}): {responses} responses, {:.1} MB in {seconds:.2}s = {:.0} responses/s",
        bytes as f64 / 1e6,
        responses as f64 / seconds
    );
    Ok(())
}
