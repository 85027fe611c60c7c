//! cen-poller: makes sure a payments back office never misses a Mastercard Commercial Event
//! Notification.
//!
//! Data flows one way: sources (push, poll, VGS webhooks) → store (SQLite seen set and
//! outbox) → dispatcher → sinks. Each module owns one of those jobs; `main.rs` only parses
//! the command line and calls [`cli::run`].

pub mod admin;
pub mod cen;
pub mod cli;
pub mod config;
pub mod demo;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod operations;
pub mod output;
pub mod pagecache;
pub mod pg;
pub mod poll;
pub mod push;
pub mod server;
pub mod service;
pub mod simulate;
pub mod sinks;
pub mod status;
pub mod store;
pub mod subscriptions;
pub mod systemd;
pub mod units;
pub mod vgs;
