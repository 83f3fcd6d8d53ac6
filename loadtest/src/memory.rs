//! `memory`: N deliveries waiting for a far-future retry, made through the public API only, in a
//! hookd this mode starts itself ([`crate::daemon`]). Endpoints whose receiver always answers 503
//! and whose `retry_schedule` is one long delay; events through the batch API; every first
//! attempt fails (at the receiver, or before reaching it) and leaves its delivery `retrying`.
//! The pending count is the sum of the endpoints' `stats.retrying`, polled (it is the progress:
//! done = pending). Then: hookd's RSS and its data directory's disk use once it is idle, and,
//! after a kill -9 and a restart on the same directory, the time until `/health` answers and
//! until the pending count is back to N.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hookd_testkit::Reply;
use serde_json::json;
use tokio::time::Instant;

use crate::cli::MemoryArgs;
use crate::client::{self, HttpClient, Target};
use crate::daemon::{self, Daemon, Spec};
use crate::endpoints;
use crate::fanout::settle_cpu;
use crate::ingest::{post_events, IngestJob, IngestWatch};
use crate::meter::Meter;
use crate::receiver::{Receiver, ReceiverConfig};
use crate::report::{r1, r3};
use crate::timeline::{dir_bytes, pid_cell, PidCell, Sampler, Timeline};
use crate::{cpu, RunCtx};

/// What the run measured.
#[derive(Debug, Default)]
struct Figures {
    pending: u64,
    ingest_seconds: f64,
    attempts_seconds: f64,
    rss: Option<u64>,
    disk: u64,
    restart_health: f64,
    restart_pending: f64,
    rss_after_restart: Option<u64>,
    /// RSS once the restarted hookd has gone idle (its start-up work, such as reading the
    /// store's pages, done): the figure #10's memory musts are about.
    rss_restarted_idle: Option<u64>,
    complete: bool,
}

/// Without `--config`: the embedded defaults but for the circuit breaker, which would stop
/// attempting a failing endpoint's deliveries after a few and keep the rest *due* (parked, not
/// waiting for their retry), when this mode measures N deliveries waiting for a retry, and for
/// the slow start (endpoints that only answer 503 would stay at 2 attempts in flight). The
/// file is written beside the data directory.
fn breaker_off_config(data_dir: &Path) -> Result<std::path::PathBuf> {
    let mut p = data_dir.as_os_str().to_owned();
    p.push(".toml");
    let path = std::path::PathBuf::from(p);
    std::fs::write(
        &path,
        "[sender]\nbreaker_failures = 4000000000\nstart_concurrency = 16\n",
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

pub async fn memory_mode(args: &MemoryArgs, ctx: &RunCtx) -> Result<(bool, String, Timeline)> {
    prepare_dir(&args.data_dir)?;
    let config = match &args.config {
        Some(c) => c.clone(),
        None => breaker_off_config(&args.data_dir)?,
    };
    let spec = Spec::new(&args.hookd_bin, Some(&config), &args.data_dir)?;
    eprintln!(
        "memory: hookd {} on {} (data {}, log {}), {} pending over {} endpoints",
        spec.bin.display(),
        spec.target().base,
        spec.data_dir.display(),
        spec.log_path().display(),
        args.pending,
        args.endpoints
    );
    let meter = Arc::new(Meter::new(args.pending));
    let recv = Receiver::start_async(ReceiverConfig::embedded(
        ctx.receiver_threads,
        Reply::Status(503),
        Vec::new(),
    ))
    .await?;
    let mut daemon = Daemon::spawn(&spec)?;
    let pid = pid_cell(Some(daemon.pid));
    let mut watch = ctx.watch("memory", "pending/s", pid.clone());
    watch.data_dir = Some(spec.data_dir.clone());
    let sampler = Sampler::start(meter.clone(), None, watch);
    let run = measure(args, ctx, &spec, &mut daemon, &pid, &recv, meter).await;
    let timeline = sampler.stop().await;
    drop(daemon);
    if args.keep_data {
        eprintln!(
            "kept {} and {}",
            spec.data_dir.display(),
            spec.log_path().display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&spec.data_dir);
        let _ = std::fs::remove_file(spec.log_path());
    }
    let f = run?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    out!(
        "memory: {} of {} deliveries pending (ingest {:.1} s, first attempts done {:.1} s later); hookd RSS {}; data dir {:.1} MiB ({:.0} B per pending); restart: /health after {:.2} s, pending back after {:.2} s, RSS then {}, once idle {}",
        f.pending,
        args.pending,
        f.ingest_seconds,
        f.attempts_seconds,
        f.rss.map(|b| format!("{:.1} MiB", mib(b))).unwrap_or_else(|| "?".into()),
        mib(f.disk),
        f.disk as f64 / f.pending.max(1) as f64,
        f.restart_health,
        f.restart_pending,
        f.rss_after_restart
            .map(|b| format!("{:.1} MiB", mib(b)))
            .unwrap_or_else(|| "?".into()),
        f.rss_restarted_idle
            .map(|b| format!("{:.1} MiB", mib(b)))
            .unwrap_or_else(|| "?".into()),
    );
    let line = jline! {
        "mode": "memory",
        "pending": f.pending,
        "rss_bytes": f.rss,
        "data_dir_bytes": f.disk,
        "restart_to_health_s": r3(f.restart_health),
        "restart_to_pending_s": r3(f.restart_pending),
        "rss_after_restart_bytes": f.rss_after_restart,
        "rss_restarted_idle_bytes": f.rss_restarted_idle,
        "requested": args.pending,
        "endpoints": args.endpoints,
        "disk_per_pending_bytes": r1(f.disk as f64 / f.pending.max(1) as f64),
        "ingest_seconds": r3(f.ingest_seconds),
        "first_attempts_seconds": r3(f.attempts_seconds),
        "complete": f.complete,
    };
    out!("{line}");
    Ok((f.complete, line, timeline))
}

/// The data directory must be new or empty: the figures are of this run's deliveries only.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "--data-dir {} is not empty: give a new directory",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

async fn measure(
    args: &MemoryArgs,
    ctx: &RunCtx,
    spec: &Spec,
    daemon: &mut Daemon,
    pid: &PidCell,
    recv: &Receiver,
    meter: Arc<Meter>,
) -> Result<Figures> {
    let deadline = ctx.limits.work;
    let target = spec.target();
    let key = spec.key.as_str();
    let client = client::new_client(args.concurrency + 4);
    daemon::wait_healthy(&client, &target, daemon, deadline).await?;

    let tenant = endpoints::fresh_tenant();
    let extra = json!({ "retry_schedule": [args.retry_after.as_secs()] });
    let bodies = endpoints::numbered(&tenant, "m", recv.addr, args.endpoints, &extra);
    let ids = endpoints::create(&client, &target, key, &bodies, deadline).await?;

    let mut f = Figures::default();
    let start = Instant::now();
    let ingest = post_events(
        &client,
        Arc::new(IngestJob {
            target: target.clone(),
            key: key.to_owned(),
            tenant,
            types: vec!["instance.failed".into()],
            events: args.pending / args.endpoints,
            batch: args.batch,
            concurrency: args.concurrency,
            event_bytes: 0,
            watch: IngestWatch::Acked {
                meter: meter.clone(),
                per_event: args.endpoints,
            },
        }),
        deadline,
    )
    .await;
    f.ingest_seconds = ingest.seconds;
    if let Some(e) = &ingest.first_error {
        bail!("posting events: {e}");
    }
    let want = ingest.events_ok * args.endpoints;
    // Every first attempt made and failed: polled slowly, the polls are load too.
    let poll = Poll {
        ids: &ids,
        want,
        meter: &meter,
        every: Duration::from_millis(500),
        deadline,
    };
    f.pending = poll.wait(&client, &target, key, daemon).await?;
    f.attempts_seconds = start.elapsed().as_secs_f64() - f.ingest_seconds;
    if let Ok(c0) = cpu::process_secs(daemon.pid) {
        settle_cpu(daemon.pid, c0, deadline).await;
    }
    f.rss = cpu::rss_bytes(daemon.pid);
    f.disk = dir_bytes(&spec.data_dir);

    // kill -9, restart on the same directory, time until serving and until pending is back.
    daemon.kill9()?;
    pid.store(0, std::sync::atomic::Ordering::Relaxed);
    let restarted = Instant::now();
    *daemon = Daemon::spawn(spec)?;
    pid.store(daemon.pid, std::sync::atomic::Ordering::Relaxed);
    f.restart_health = daemon::wait_healthy(&client, &target, daemon, deadline)
        .await?
        .as_secs_f64();
    // Polled fast now: the time until the count is back is the figure.
    let fast = Poll {
        every: Duration::from_millis(10),
        ..poll
    };
    let back = fast.wait(&client, &target, key, daemon).await?;
    f.restart_pending = restarted.elapsed().as_secs_f64();
    f.rss_after_restart = cpu::rss_bytes(daemon.pid);
    // Idle: under 20 ms of CPU in a second, for at most 30 s.
    let idle_by = (Instant::now() + Duration::from_secs(30)).min(deadline);
    cpu::wait_idle(daemon.pid, Duration::from_secs(1), 0.02, idle_by).await;
    f.rss_restarted_idle = cpu::rss_bytes(daemon.pid);
    f.complete = ingest.events_ok * args.endpoints == args.pending
        && f.pending == args.pending
        && back == args.pending;
    Ok(f)
}

/// Polling the endpoints' `stats.retrying` until they add up to `want`.
#[derive(Clone, Copy)]
struct Poll<'a> {
    ids: &'a [String],
    want: u64,
    meter: &'a Meter,
    every: Duration,
    deadline: Instant,
}

impl Poll<'_> {
    /// Polls until the sum is `want` or the deadline; returns the last complete sum.
    async fn wait(
        &self,
        client: &HttpClient,
        target: &Target,
        key: &str,
        daemon: &mut Daemon,
    ) -> Result<u64> {
        let mut last = 0;
        loop {
            if let Some(sum) = self.sum(client, target, key).await {
                self.meter.set_done(sum);
                last = sum;
            }
            if last == self.want || Instant::now() >= self.deadline {
                return Ok(last);
            }
            if let Some(status) = daemon.exited() {
                bail!("hookd exited ({status})");
            }
            tokio::time::sleep(self.every).await;
        }
    }

    /// The sum of `stats.retrying`; none if an endpoint could not be read (not serving yet).
    async fn sum(&self, client: &HttpClient, target: &Target, key: &str) -> Option<u64> {
        let mut sum = 0;
        for id in self.ids {
            let path = format!("/v1/endpoints/{id}");
            let v = endpoints::get_json(client, target, key, &path, self.deadline)
                .await
                .ok()?;
            sum += v["stats"]["retrying"].as_u64()?;
        }
        Some(sum)
    }
}
