//! `fanout`: endpoints in hookd pointing at the embedded receiver, events posted, every delivery
//! waited for; deliveries/s, delivery latency and hookd's CPU time per delivery, and the latency
//! of reads of an endpoint's deliveries made meanwhile (`--reads`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::time::Instant;

use crate::cli::FanoutArgs;
use crate::client::{self, Errors, Target};
use crate::cpu;
use crate::endpoints;
use crate::ingest::{post_events, IngestJob, IngestWatch};
use crate::meter::Meter;
use crate::reads::{ReadArgs, Readers, ReadsResult};
use crate::receiver::Receiver;
use crate::timeline::{pid_cell, Sampler, Timeline, Watch};
use crate::RunCtx;

#[derive(Debug)]
pub struct FanoutResult {
    pub events: u64,
    pub events_ok: u64,
    pub endpoints: u64,
    pub expected: u64,
    pub deliveries: u64,
    pub requests: u64,
    pub seconds: f64,
    pub ingest_seconds: f64,
    pub ingest_errors: Errors,
    pub hookd_cpu: Option<f64>,
    pub hookd_cpu_at_done: Option<f64>,
    pub receiver_cpu: f64,
    /// hookd's CPU use in the 0.5 s before the run, in % of a core.
    pub busy_before: Option<f64>,
    pub deleted: u64,
    pub complete: bool,
    /// From the event's POST to its arrival at the receiver, in microseconds.
    pub latency: Histogram<u64>,
    pub reads: Option<ReadsResult>,
    pub timeline: Timeline,
}

pub async fn fanout_mode(
    recv: &Receiver,
    meter: Arc<Meter>,
    target: &Target,
    key: &str,
    args: &FanoutArgs,
    pid: Option<u32>,
    ctx: &RunCtx,
) -> Result<FanoutResult> {
    let limits = ctx.limits;
    let client = client::new_client(args.post.concurrency.max(4) + args.reads.reads);
    let tenant = endpoints::fresh_tenant();
    eprintln!(
        "fanout: tenant {tenant}, {} endpoints -> http://{}/e{{i}}, {} events in batches of {}",
        args.endpoints, recv.addr, args.events, args.post.batch
    );
    let bodies = endpoints::numbered(&tenant, "e", recv.addr, args.endpoints, &json!({}));
    let ids = endpoints::create(&client, target, key, &bodies, limits.work).await?;

    // Events, then wait for every delivery.
    let expected = args.events * args.endpoints;
    meter.set_total(expected);
    let job = Arc::new(IngestJob {
        target: target.clone(),
        key: key.to_string(),
        tenant: tenant.clone(),
        types: args.post.types.clone(),
        events: args.events,
        batch: args.post.batch,
        concurrency: args.post.concurrency,
        event_bytes: args.post.event_bytes,
        watch: IngestWatch::Acked {
            meter: meter.clone(),
            per_event: args.endpoints,
        },
    });
    // hookd should be idle now; work left from an earlier run would be billed to this one.
    let busy_before = match pid {
        Some(p) => {
            let a = cpu::process_secs(p)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let pct = (cpu::process_secs(p)? - a) / 0.5 * 100.0;
            if pct > 5.0 {
                eprintln!(
                    "warning: hookd was busy before the run ({pct:.0}% of a core): its CPU per \
                     delivery includes that work; restart hookd with a fresh data dir"
                );
            }
            Some(pct)
        }
        None => None,
    };
    let cpu0 = match pid {
        Some(p) => Some(cpu::process_secs(p)?),
        None => None,
    };
    let rcpu0 = cpu::threads_secs(cpu::RECEIVER_THREAD)?;
    let watch = ctx.watch("fanout", "deliveries/s", pid_cell(pid));
    let api = Api {
        client: &client,
        target,
        key,
    };
    let (sampler, readers) = watch_run(&api, &meter, watch, &ids, &args.reads, limits.work);
    let start = Instant::now();
    let ingest = post_events(&client, job, limits.work).await;
    if let Some(e) = &ingest.first_error {
        eprintln!("ingest error: {e}");
    }
    let want = ingest.events_ok * args.endpoints;
    loop {
        let s = recv.snapshot();
        if s.deliveries >= want || Instant::now() >= limits.work {
            break;
        }
        if pid.is_some_and(|p| !cpu::alive(p)) {
            eprintln!("hookd (pid {}) exited", pid.unwrap_or_default());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let done = recv.snapshot();
    let reads = match readers {
        Some(r) => Some(r.stop().await),
        None => None,
    };
    let receiver_cpu = cpu::threads_secs(cpu::RECEIVER_THREAD)? - rcpu0;
    let (hookd_cpu_at_done, hookd_cpu) = match (pid, cpu0) {
        (Some(p), Some(c0)) => settle_cpu(p, c0, limits.work).await,
        _ => (None, None),
    };
    let timeline = sampler.stop().await;
    let deleted = endpoints::delete(&client, target, key, &ids, limits.cleanup_deadline()).await;
    Ok(FanoutResult {
        events: args.events,
        events_ok: ingest.events_ok,
        endpoints: args.endpoints,
        expected,
        deliveries: done.deliveries,
        requests: done.requests,
        seconds,
        ingest_seconds: ingest.seconds,
        ingest_errors: ingest.errors,
        hookd_cpu,
        hookd_cpu_at_done,
        receiver_cpu,
        busy_before,
        deleted,
        complete: ingest.events_ok == args.events && done.deliveries >= expected,
        latency: meter.whole_run(),
        reads,
        timeline,
    })
}

/// Where a run talks to hookd.
pub struct Api<'a> {
    pub client: &'a client::HttpClient,
    pub target: &'a Target,
    pub key: &'a str,
}

/// Starts a fan-out run's sampler and its readers of the first endpoint's deliveries (if
/// `--reads`).
pub fn watch_run(
    api: &Api<'_>,
    meter: &Arc<Meter>,
    watch: Watch,
    ids: &[String],
    reads: &ReadArgs,
    deadline: Instant,
) -> (Sampler, Option<Readers>) {
    let reads_meter = reads.meter();
    let sampler = Sampler::start(meter.clone(), reads_meter.clone(), watch);
    let readers = match (reads_meter, ids.first()) {
        (Some(m), Some(first)) => Some(Readers::start(
            api.client, api.target, api.key, first, reads, m, deadline,
        )),
        _ => None,
    };
    (sampler, readers)
}

/// hookd's CPU since `c0` now, and once it is idle again (<= 1 tick per 250 ms, at most 3 s
/// later), so its bookkeeping after the last delivery counts too.
pub async fn settle_cpu(pid: u32, c0: f64, until: Instant) -> (Option<f64>, Option<f64>) {
    let at_done = cpu::process_secs(pid).ok().map(|c| c - c0);
    let settle_end = (Instant::now() + Duration::from_secs(3)).min(until);
    // Idle: at most one clock tick (10 ms) of CPU in a quarter second.
    cpu::wait_idle(pid, Duration::from_millis(250), 0.011, settle_end).await;
    (at_done, cpu::process_secs(pid).ok().map(|c| c - c0))
}

#[cfg(test)]
mod tests;
