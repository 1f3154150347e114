//! The HTTP API over real loopback HTTP, on a real SQLite file.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod api;
mod card;
mod control;
mod evaluation;
mod exposure;
mod jobs;
mod quality;
mod security;
mod support;
mod web;
mod webhooks;
