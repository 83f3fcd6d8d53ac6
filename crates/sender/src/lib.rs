//! Sending deliveries: Standard Webhooks signing, the SSRF target policy, one pooled HTTP client
//! for every endpoint, and the attempt logic that records each outcome.
//!
//! - [`sign`]: HMAC-SHA256 signatures (ring) and secret generation.
//! - [`policy`]: which targets are allowed (public addresses only, unless configured).
//! - [`client`]: the pooled hyper-util client (keep-alive, HTTP/1.1 and HTTP/2 by ALPN, rustls),
//!   with a resolver that enforces the policy on every resolved address.
//! - [`deliver`]: one attempt end to end, and test sends.
//! - [`rules`]: what an answer asks of the next attempt (`Retry-After`, `410 Gone`, redirects).
//! - [`disable`]: endpoints disabled by the sender (gone, failing too long), announced with an
//!   `endpoint.disabled` event.
//! - `observe`: the attempt path's metrics (outcomes, latency, lag, pending deliveries).
//!
//! The sender owns the wire. It must not decide *when* to send (the scheduler does) and it
//! writes only attempt outcomes to the store.

pub mod client;
pub mod deliver;
pub mod disable;
pub mod jsjson;
mod observe;
pub mod policy;
pub mod rules;
pub mod sign;
pub mod wire;

pub use client::{ClientConfig, HttpClient};
pub use deliver::{Due, Sender, TestOutcome};
/// Re-exported so callers name certificates with the same types the client takes.
pub use rustls;
