//! The HTTP API over real loopback HTTP, on a real SQLite file.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "tests fail loudly"
)]

mod api;
mod control;
mod evaluation;
mod quality;
mod security;
mod support;
mod web;
