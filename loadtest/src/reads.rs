//! Reads during a run: `--reads N` tasks GET one endpoint's deliveries
//! (`GET /v1/endpoints/{id}/deliveries?limit=L`) over and over while the run delivers, and the
//! latency of those reads is reported (per second in the samples, p50/p99 over the run).

use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{self, HttpClient, Outcome, Target};
use crate::meter::Meter;

#[derive(Debug, Clone, clap::Args)]
pub struct ReadArgs {
    /// Tasks reading the first endpoint's deliveries during the run, one request in flight
    /// each (0: no reads).
    #[arg(long, default_value_t = 0)]
    pub reads: usize,
    /// `limit` of each read (a page of that many deliveries).
    #[arg(long, default_value_t = 50)]
    pub read_limit: u32,
}

impl ReadArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        if self.reads > 64 || !(1..=1000).contains(&self.read_limit) {
            anyhow::bail!("--reads must be in 0..=64 and --read-limit in 1..=1000");
        }
        Ok(())
    }

    /// The meter the reads report to, none without reads.
    pub fn meter(&self) -> Option<Arc<Meter>> {
        (self.reads > 0).then(Arc::default)
    }
}

/// What the reads did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadsResult {
    pub reads: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Reader tasks at work; [`Readers::stop`] ends them.
pub struct Readers {
    meter: Arc<Meter>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Starts `args.reads` readers of `endpoint`'s deliveries, reporting to `meter`.
    pub fn start(
        client: &HttpClient,
        target: &Target,
        key: &str,
        endpoint: &str,
        args: &ReadArgs,
        meter: Arc<Meter>,
        deadline: Instant,
    ) -> Readers {
        let (stop, stopped) = watch::channel(false);
        let path = format!(
            "/v1/endpoints/{endpoint}/deliveries?limit={}",
            args.read_limit
        );
        let tasks = (0..args.reads)
            .map(|_| {
                let (client, base, key, path) = (
                    client.clone(),
                    target.base.clone(),
                    key.to_owned(),
                    path.clone(),
                );
                let (meter, stopped) = (meter.clone(), stopped.clone());
                tokio::spawn(async move {
                    while !*stopped.borrow() && Instant::now() < deadline {
                        let req =
                            client::request(Method::GET, &base, &path, Some(&key), Bytes::new());
                        let t = Instant::now();
                        meter.issue(1);
                        match client::send(&client, req, deadline).await {
                            Outcome::Response(200, _) => {
                                meter.record(t.elapsed());
                                meter.done(1);
                            }
                            // Cut off by the run's end: not a read that finished.
                            Outcome::Failed("deadline") => break,
                            _ => meter.error(),
                        }
                    }
                })
            })
            .collect();
        Readers { meter, stop, tasks }
    }

    pub async fn stop(self) -> ReadsResult {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let h = self.meter.whole_run();
        ReadsResult {
            reads: self.meter.done_count(),
            errors: self.meter.errors(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// The human part of a reads result.
pub fn reads_line(r: &Option<ReadsResult>) -> String {
    match r {
        None => String::new(),
        Some(r) => format!(
            "; {} reads of the first endpoint's deliveries: p50 {} p99 {} max {} ({} errors)",
            r.reads,
            crate::report::ms(r.p50_us),
            crate::report::ms(r.p99_us),
            crate::report::ms(r.max_us),
            r.errors
        ),
    }
}
