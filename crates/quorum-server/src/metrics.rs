//! Prometheus metrics, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route, status) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → latency histogram.
    latency: Mutex<BTreeMap<String, Histogram>>,
    pub leases_granted: AtomicU64,
    pub responses_stored: AtomicU64,
    pub items_imported: AtomicU64,
    /// Writes refused because the database's disk is full (507).
    pub storage_full_refusals: AtomicU64,
    /// Whether the last write this server tried found the disk full: set by a 507, cleared by
    /// the next write that succeeds.
    pub storage_full: AtomicBool,
    /// Writes refused because the database's filesystem is read-only (503).
    pub storage_read_only_refusals: AtomicU64,
    /// Whether the last write this server tried found the filesystem read-only.
    pub storage_read_only: AtomicBool,
}

impl Metrics {
    /// Counts a request; `code` is its error code, if it failed with one.
    pub fn record(&self, method: &str, route: &str, status: u16, code: Option<&str>, seconds: f64) {
        match code {
            Some("storage_full") => {
                self.storage_full_refusals.fetch_add(1, Ordering::Relaxed);
                self.storage_full.store(true, Ordering::Relaxed);
            }
            Some("storage_read_only") => {
                self.storage_read_only_refusals
                    .fetch_add(1, Ordering::Relaxed);
                self.storage_read_only.store(true, Ordering::Relaxed);
            }
            _ if (200..300).contains(&status) && !matches!(method, "GET" | "HEAD" | "OPTIONS") => {
                self.storage_full.store(false, Ordering::Relaxed);
                self.storage_read_only.store(false, Ordering::Relaxed);
            }
            _ => {}
        }
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            let h = latency.entry(route.to_string()).or_default();
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter_mut()) {
                if seconds <= *bound {
                    *count += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    pub fn render(&self, database: &DatabaseFigures) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP quorum_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE quorum_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((method, route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "quorum_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str(
            "# HELP quorum_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE quorum_http_request_duration_seconds histogram\n");
        if let Ok(latency) = self.latency.lock() {
            for (route, h) in latency.iter() {
                for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                    let _ = writeln!(
                        out,
                        "quorum_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "quorum_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "quorum_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "quorum_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        for (name, help, value) in [
            (
                "quorum_leases_granted_total",
                "Leases granted to raters.",
                &self.leases_granted,
            ),
            (
                "quorum_responses_stored_total",
                "Responses stored (replays excluded).",
                &self.responses_stored,
            ),
            (
                "quorum_items_imported_total",
                "Items created or updated by imports.",
                &self.items_imported,
            ),
            (
                "quorum_storage_full_total",
                "Writes refused because the database's disk is full (507).",
                &self.storage_full_refusals,
            ),
            (
                "quorum_storage_read_only_total",
                "Writes refused because the database's filesystem is read-only (503).",
                &self.storage_read_only_refusals,
            ),
        ] {
            metric(
                &mut out,
                name,
                "counter",
                help,
                value.load(Ordering::Relaxed),
            );
        }
        metric(
            &mut out,
            "quorum_leases_expired_total",
            "counter",
            "Leases this server found expired (items taken and neither answered nor skipped in time).",
            database.leases_expired,
        );
        for (name, help, value) in [
            (
                "quorum_storage_full",
                "1 while the last write found the database's disk full.",
                &self.storage_full,
            ),
            (
                "quorum_storage_read_only",
                "1 while the last write found the database's filesystem read-only.",
                &self.storage_read_only,
            ),
        ] {
            metric(
                &mut out,
                name,
                "gauge",
                help,
                u8::from(value.load(Ordering::Relaxed)),
            );
        }
        if let Some((pending, oldest_due_seconds)) = database.outbox {
            metric(
                &mut out,
                "quorum_outbox_pending",
                "gauge",
                "Webhook deliveries waiting to be made.",
                pending,
            );
            metric(
                &mut out,
                "quorum_outbox_oldest_due_seconds",
                "gauge",
                "How long the oldest waiting delivery has been due.",
                oldest_due_seconds,
            );
        }
        if let Some(seconds) = database.tally_wait {
            metric(
                &mut out,
                "quorum_tally_oldest_seconds",
                "gauge",
                "How long the oldest answer not yet counted in its project's tally has waited.",
                seconds,
            );
        }
        if !database.replicas.is_empty() {
            let _ = writeln!(
                out,
                "# HELP quorum_replica_lag_seconds How far behind the primary each read replica was when last asked (-1: it did not answer).\n# TYPE quorum_replica_lag_seconds gauge"
            );
            for (name, lag) in &database.replicas {
                let seconds = lag.map_or(-1.0, |ms| ms as f64 / 1000.0);
                let name = name.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "quorum_replica_lag_seconds{{replica=\"{name}\"}} {seconds}"
                );
            }
        }
        out
    }
}

/// What `/metrics` reads beside this server's own counts: from the database and the
/// application.
#[derive(Debug, Default)]
pub struct DatabaseFigures {
    /// Leases marked expired by this process.
    pub leases_expired: u64,
    /// Webhook deliveries waiting, and how long the oldest has been due (seconds), when the
    /// database answered.
    pub outbox: Option<(i64, f64)>,
    /// How long the oldest answer not yet in its project's tally has waited (seconds), when
    /// the database answered.
    pub tally_wait: Option<f64>,
    /// Each read replica and its lag in milliseconds (`None`: it did not answer).
    pub replicas: Vec<(String, Option<i64>)>,
}

/// One metric without labels, with its help and type lines.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}
