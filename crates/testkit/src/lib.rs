//! Test support shared by hookd's tests, benches and load generator: one real HTTP receiver
//! instead of one hand-written per crate.
//!
//! - [`receiver`]: [`Receiver`], a hyper HTTP/1.1 + HTTP/2 server on 127.0.0.1 that records
//!   every request (or only counts them, for throughput runs) and answers each path as scripted
//!   ([`Reply`]), with `wait_*` helpers that give up at a deadline.
//! - [`record`]: what it keeps of each request ([`Recorded`]) or in all ([`Counts`]); an
//!   [`Observer`] sees every request before it is answered.
//! - [`reply`]: what the receiver does with a request: a status, a delay, headers and body, a
//!   `Retry-After`, a body cut short, a connection closed or reset, an answer that never comes.
//! - [`silent`]: [`Silent`], a listener that accepts TCP connections and never answers.
//! - [`tls`]: [`SelfSigned`], a fresh self-signed certificate (rcgen) for an https receiver, and
//!   its PEM for the client to trust.
//!
//! Loopback only: a receiver refuses to listen on anything but 127.0.0.1. Not published; a
//! test-only crate may panic where a test should fail (the `start` shortcut does), everything
//! else returns errors.

pub mod receiver;
pub mod record;
pub mod reply;
pub mod silent;
pub mod tls;

mod body;
mod io;
mod serve;

pub use receiver::{Builder, Receiver};
pub use record::{describe, Counts, Observed, Observer, Record, Recorded};
pub use reply::{AfterCut, Answer, Reply};
pub use silent::Silent;
pub use tls::{SelfSigned, TlsError};
