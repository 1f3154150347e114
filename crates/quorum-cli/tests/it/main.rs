//! End-to-end tests of the `quorum` binary: real files in, real processes, real exit codes.

#![expect(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test helpers fail loudly and say why they skip"
)]

mod admin;
mod aggregate;
mod backup;
mod browser;
mod browser_review;
mod datasets;
mod failover;
mod faults;
mod limits;
mod models;
mod outage;
mod postgres;
mod proxies;
mod python_client;
mod replicas;
mod serve;
mod support;
mod tally;
mod transfer;
mod webhooks;
