//! The webhook receiver: `hookd_testkit`'s receiver, counting only, on a tokio runtime of its own
//! (threads named [`RECEIVER_THREAD`], so its CPU time can be told apart from the rest of the
//! process). It answers every POST as its [`Reply`] says (anything else gets 405) and counts
//! requests, distinct `webhook-id` headers and distinct (path, `webhook-id`) pairs
//! ("deliveries"). Each request also counts as done on the run's [`Meter`]s, and a 2xx answer
//! to a body stamped `sent_us` records its delivery latency there. Also the `receiver`
//! subcommand.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hookd_testkit::{Counts, Observer, Record, Reply};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::cpu::RECEIVER_THREAD;
use crate::meter::{self, Meter};
use crate::report::{per_sec, r1, r3};
use crate::timeline::{pid_cell, Sampler, Timeline};
use crate::RunCtx;

/// Whether a `received/s` line is printed once a second (the `receiver` subcommand) or not
/// (embedded receivers: the run's progress line says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Stdout,
    Quiet,
}

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub listen: SocketAddr,
    pub reply: Reply,
    pub threads: usize,
    pub report: Report,
    /// Every request is done on each; 2xx answers record their delivery latency.
    pub meters: Vec<Arc<Meter>>,
}

impl ReceiverConfig {
    /// `127.0.0.1:0`, no `received/s` line.
    pub fn embedded(threads: usize, reply: Reply, meters: Vec<Arc<Meter>>) -> ReceiverConfig {
        ReceiverConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            reply,
            threads,
            report: Report::Quiet,
            meters,
        }
    }
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
        let meters = cfg.meters;
        let observer = Observer::new(move |o| {
            let latency = (200..300)
                .contains(&o.status)
                .then(|| meter::sent_us(o.body))
                .flatten()
                .map(|sent| meter::unix_us().saturating_sub(sent));
            for m in &meters {
                m.done(1);
                if let Some(us) = latency {
                    m.record_us(us);
                }
            }
        });
        let inner = runtime
            .block_on(
                hookd_testkit::Receiver::builder()
                    .listen(cfg.listen)
                    .record(Record::Counts)
                    .post_only(true)
                    .http1_only(true)
                    .default_reply(cfg.reply)
                    .observe(observer)
                    .start(),
            )
            .with_context(|| format!("binding the receiver to {}", cfg.listen))?;
        let inner = Arc::new(inner);
        if cfg.report == Report::Stdout {
            runtime.spawn(report_loop(inner.clone()));
        }
        Ok(Receiver {
            addr: inner.addr,
            inner,
            runtime: Some(runtime),
        })
    }

    /// [`Receiver::start`] from async code (its runtime is built on a blocking thread).
    pub async fn start_async(cfg: ReceiverConfig) -> Result<Receiver> {
        tokio::task::spawn_blocking(move || Receiver::start(cfg))
            .await
            .context("starting the receiver")?
    }

    /// The receiver the client-side modes send to: `127.0.0.1:0`, 204 at once, counting into
    /// `meter`.
    pub fn embedded(threads: usize, meter: Arc<Meter>) -> Result<Receiver> {
        Receiver::replying(threads, Reply::Status(204), vec![meter])
    }

    /// An embedded receiver answering as `reply` says, counting into `meters`.
    pub fn replying(threads: usize, reply: Reply, meters: Vec<Arc<Meter>>) -> Result<Receiver> {
        Receiver::start(ReceiverConfig::embedded(threads, reply, meters))
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.counts()
    }
}

/// The `receiver` subcommand: serve until `--max-seconds` (or ctrl-c), then print the totals.
pub async fn receiver_mode(
    recv: &Receiver,
    meter: Arc<Meter>,
    ctx: &RunCtx,
) -> Result<(bool, String, Timeline)> {
    let start = Instant::now();
    let sampler = Sampler::start(
        meter,
        None,
        ctx.watch("receiver", "requests/s", pid_cell(None)),
    );
    tokio::select! {
        _ = tokio::time::sleep_until(ctx.limits.work) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let timeline = sampler.stop().await;
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
    let line = jline! {
        "mode": "receiver",
        "requests": s.requests,
        "seconds": r3(secs),
        "per_sec": r1(per_sec(s.requests, secs)),
        "unique_ids": s.unique_ids,
        "deliveries": s.deliveries,
        "body_bytes": s.body_bytes,
    };
    out!("{line}");
    Ok((true, line, timeline))
}

async fn report_loop(recv: Arc<hookd_testkit::Receiver>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let s = recv.counts();
        let rate = s.requests - last;
        last = s.requests;
        out!(
            "received/s {rate} (total {}, unique ids {}, deliveries {})",
            s.requests,
            s.unique_ids,
            s.deliveries
        );
    }
}

/// A receiver for unit tests: one thread, 204.
#[cfg(test)]
pub fn test_receiver() -> Receiver {
    Receiver::embedded(1, Arc::default()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_refuses_non_loopback() {
        let err = Receiver::start(ReceiverConfig {
            listen: "0.0.0.0:0".parse().unwrap(),
            reply: Reply::Status(200),
            threads: 1,
            report: Report::Quiet,
            meters: Vec::new(),
        });
        assert!(err.is_err());
    }

    #[test]
    fn meters_count_requests_and_stamped_latency() {
        let meter = Arc::new(Meter::default());
        let recv = Receiver::embedded(1, meter.clone()).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = crate::client::new_client(1);
            let deadline = Instant::now() + Duration::from_secs(20);
            let sent = meter::unix_us() - 5_000;
            for body in [
                format!(r#"{{"data":{{"sent_us":{sent}}}}}"#),
                "{}".to_owned(),
            ] {
                let req = crate::client::request(
                    hyper::Method::POST,
                    &format!("http://{}", recv.addr),
                    "/e0",
                    None,
                    bytes::Bytes::from(body),
                );
                let out = crate::client::send(&client, req, deadline).await;
                assert!(
                    matches!(out, crate::client::Outcome::Response(204, _)),
                    "{out:?}"
                );
            }
        });
        assert_eq!(meter.done_count(), 2);
        let h = meter.whole_run();
        assert_eq!(h.len(), 1, "only the stamped body has a latency");
        assert!(h.min() >= 5_000, "{}", h.min());
        drop(rt);
    }
}
