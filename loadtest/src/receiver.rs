//! The webhook receiver: `hookd_testkit`'s receiver, counting only, on a tokio runtime of its own
//! (threads named [`RECEIVER_THREAD`], so its CPU time can be told apart from the rest of the
//! process). It answers every POST with a fixed status after an optional delay (anything else
//! gets 405) and counts requests, distinct `webhook-id` headers and distinct (path, `webhook-id`)
//! pairs ("deliveries"). Also the `receiver` subcommand.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hookd_testkit::{Answer, Counts, Record};
use hyper::StatusCode;
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::cpu::RECEIVER_THREAD;
use crate::report::{per_sec, r1, r3};
use crate::Limits;

/// Where the once-a-second rate line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub listen: SocketAddr,
    pub status: StatusCode,
    pub delay: Duration,
    pub threads: usize,
    pub report: Report,
}

/// What the receiver counted: requests are the POSTs answered.
pub type Snapshot = Counts;

/// A running receiver. Dropping it stops it.
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<hookd_testkit::Receiver>,
    runtime: Option<Runtime>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Receiver {
    /// Binds and starts serving on a runtime of its own. Call it outside any async context.
    pub fn start(cfg: ReceiverConfig) -> Result<Receiver> {
        crate::require_loopback_addr(&cfg.listen)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads.max(1))
            .thread_name(RECEIVER_THREAD)
            .enable_all()
            .build()
            .context("starting the receiver runtime")?;
        let answer = Answer::status(cfg.status.as_u16()).delay(cfg.delay);
        let inner = runtime
            .block_on(
                hookd_testkit::Receiver::builder()
                    .listen(cfg.listen)
                    .record(Record::Counts)
                    .post_only(true)
                    .http1_only(true)
                    .default_reply(answer.into())
                    .start(),
            )
            .with_context(|| format!("binding the receiver to {}", cfg.listen))?;
        let inner = Arc::new(inner);
        runtime.spawn(report_loop(inner.clone(), cfg.report));
        Ok(Receiver {
            addr: inner.addr,
            inner,
            runtime: Some(runtime),
        })
    }

    /// The receiver the client-side modes send to: `127.0.0.1:0`, 204 at once, progress on
    /// stderr.
    pub fn embedded(threads: usize) -> Result<Receiver> {
        Receiver::start(ReceiverConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            status: StatusCode::NO_CONTENT,
            delay: Duration::ZERO,
            threads,
            report: Report::Stderr,
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.counts()
    }
}

/// The `receiver` subcommand: serve until `--max-seconds` (or ctrl-c), then print the totals.
pub async fn receiver_mode(recv: &Receiver, limits: Limits) -> Result<bool> {
    let start = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep_until(limits.work) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let secs = start.elapsed().as_secs_f64();
    let s = recv.snapshot();
    out!(
        "receiver: {} requests in {secs:.1} s ({:.0}/s), {} unique webhook-ids, {} deliveries, {} non-POST",
        s.requests,
        per_sec(s.requests, secs),
        s.unique_ids,
        s.deliveries,
        s.non_post
    );
    out!(
        "{}",
        jline! {
            "mode": "receiver",
            "requests": s.requests,
            "seconds": r3(secs),
            "per_sec": r1(per_sec(s.requests, secs)),
            "unique_ids": s.unique_ids,
            "deliveries": s.deliveries,
            "body_bytes": s.body_bytes,
        }
    );
    Ok(true)
}

async fn report_loop(recv: Arc<hookd_testkit::Receiver>, report: Report) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let s = recv.counts();
        let rate = s.requests - last;
        last = s.requests;
        match report {
            Report::Stdout => out!(
                "received/s {rate} (total {}, unique ids {}, deliveries {})",
                s.requests,
                s.unique_ids,
                s.deliveries
            ),
            // Embedded: progress only while something arrives, on stderr.
            Report::Stderr if rate > 0 => eprintln!(
                "[receiver] received/s {rate} (total {}, deliveries {})",
                s.requests, s.deliveries
            ),
            Report::Stderr => {}
        }
    }
}

/// A receiver for unit tests: one thread, 204.
#[cfg(test)]
pub fn test_receiver() -> Receiver {
    Receiver::embedded(1).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_refuses_non_loopback() {
        let err = Receiver::start(ReceiverConfig {
            listen: "0.0.0.0:0".parse().unwrap(),
            status: hyper::StatusCode::OK,
            delay: Duration::ZERO,
            threads: 1,
            report: Report::Stderr,
        });
        assert!(err.is_err());
    }
}
