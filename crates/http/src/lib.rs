//! HTTP plumbing shared by the ingest and management routers: the JSON error envelope with its
//! stable codes, bearer-key authentication and the caller it yields ([`principal`]: the admin or
//! a tenant's API key, and what each may reach), token-bucket rate limits, the draining switch,
//! a JSON body extractor whose failures speak the envelope, and [`blocking`] for store calls.
//!
//! This crate owns the *shape* of HTTP answers. It must not hold routes or business rules.

pub mod auth;
pub mod blocking;
pub mod error;
pub mod idempotency;
pub mod json;
pub mod principal;
pub mod ratelimit;
pub mod views;

pub use auth::{AdminKey, Draining, Gate};
pub use blocking::blocking;
pub use error::{ApiError, ErrorCode};
pub use json::{JsonBody, JsonLimits};
pub use principal::{Access, Principal, RouteAccess};
