//! Shared harness for hookd's end-to-end tests: it runs the real `hookd` binary against a real
//! HTTP receiver and talks to the daemon over HTTP, exactly as `docs/API.md` describes.
//!
//! Every wait in here has a deadline: a test fails with the daemon's last log lines instead of
//! hanging. Tests `use common::*`; the parts:
//!
//! - [`config`]: the TOML config over the harness defaults (`Config`, `ADMIN_KEY`).
//! - [`process`]: the `hookd` child process and its logs (`Proc`).
//! - [`daemon`]: a started daemon and `setup` (temp dir, receiver, daemon).
//! - [`api`]: the API client (`Api`, `Resp`) and the error-shape check.
//! - [`cli`]: the `hookd` binary as a client of a started daemon (`Cli`, `Run`).
//! - the receiver: `hookd_testkit`'s (`Receiver`, `Reply`, `Recorded`), and its TLS certificate.
//! - [`signature`]: Standard Webhooks checks in Rust and with the Python library.
//! - [`time`]: clock, timestamp format and duration shorthands.
//! - [`checks`]: generic waits, the metrics reader, fan-out barriers, expected verifier failures.
//! - [`crash`]: the crash tests' config and counting receiver.
//! - [`tls`]: the https API client and certificates for the TLS listener tests.
//! - [`ui`]: the web inspector's browser test runner (Node.js, Chromium).
//! - [`verifiers`]: the reference documents' own verification snippets (Node.js, Python).

#![allow(dead_code)]

mod api;
pub mod checks;
mod cli;
mod config;
pub mod crash;
mod daemon;
pub mod keys;
mod process;
pub mod raw;
mod signature;
mod time;
pub mod tls;
pub mod ui;
pub mod verifiers;

// Each test binary uses a different part of the harness.
#[allow(unused_imports)]
pub use api::*;
#[allow(unused_imports)]
pub use checks::*;
#[allow(unused_imports)]
pub use cli::*;
#[allow(unused_imports)]
pub use config::*;
#[allow(unused_imports)]
pub use daemon::*;
#[allow(unused_imports)]
pub use hookd_testkit::{
    describe, AfterCut, Answer, Counts, Receiver, Record, Recorded, Reply, SelfSigned,
};
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use signature::*;
#[allow(unused_imports)]
pub use time::*;
