//! Event intake: the `/v1/events` routes, validation, per-tenant rate limits, idempotency and the
//! group commit that makes an event durable before it is acknowledged.
//!
//! - [`validate`]: request bodies to [`hookd_log::LogEntry`]s; nothing is stored on failure.
//! - [`committer`]: one thread that drains concurrent submissions, resolves idempotency, writes
//!   them as one log record with one flush, then answers every waiter.
//! - [`routes`]: the axum router; per-tenant rate limits with `hookd_http`'s token buckets.
//!
//! Ingest owns the way *into* the log. It must not create deliveries or touch the schedule: the
//! scheduler's fan-out reads the log and does that.

pub mod committer;
pub mod routes;
pub mod validate;

pub use committer::{Committer, CommitterConfig};
pub use routes::{router, routes, IngestConfig, IngestState, ACCESS};
