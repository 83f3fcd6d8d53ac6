//! `hookd-loadtest`: the bundled load generator for hookd.
//!
//! Every mode talks to 127.0.0.1 only (anything else is refused) and is bounded twice: by its
//! count (`--events`) and by `--max-seconds` (default 60), after which a watchdog ends the process
//! whatever it is doing. Each mode ends with a human line and a single-line JSON result on stdout.

/// `println!` that ignores a closed stdout (`| head -1`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod client;
mod cpu;
mod receiver;
mod seed;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use hyper::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use client::{Errors, HttpClient, Outcome, Target};
use receiver::{Receiver, ReceiverConfig, Report};

/// Load generator for hookd. Sends to 127.0.0.1 only; every run stops by itself.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Hard limit for the whole run in seconds; a watchdog exits the process when it is reached.
    /// The measurement itself stops a little earlier to leave time for results and cleanup.
    #[arg(long, global = true, default_value_t = 60.0)]
    max_seconds: f64,
    /// Worker threads of the load generator's own runtime (client side).
    #[arg(long, global = true, default_value_t = 2)]
    client_threads: usize,
    /// Worker threads of the embedded receiver's runtime (threads named `lt-recv`).
    #[arg(long, global = true, default_value_t = 2)]
    receiver_threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Fill a STOPPED daemon's data directory with N deliveries waiting for a retry (due in 1-2 h),
    /// to measure the memory of a daemon holding them.
    SeedRetries {
        /// hookd's data_dir (the store is `<data_dir>/db`).
        #[arg(long)]
        data_dir: std::path::PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        #[arg(long, default_value_t = 100)]
        endpoints: u32,
    },
    /// Run a webhook receiver: answers every POST, counts requests and distinct webhook-ids.
    Receiver {
        /// Address to listen on (127.0.0.1 only; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Status code of every answer.
        #[arg(long, default_value_t = 204)]
        status: u16,
        /// Delay before each answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
    /// Post events to hookd and measure durable ingest (202) throughput and latency.
    Ingest {
        #[command(flatten)]
        hookd: HookdArgs,
        /// Events to post in all.
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        /// Events per request: >1 uses POST /v1/events/batch, 1 uses POST /v1/events.
        #[arg(long, default_value_t = 1)]
        batch: u64,
        /// Requests in flight (pooled keep-alive connections).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Event types, used round robin (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "instance.ready")]
        types: Vec<String>,
        /// Tenant of the posted events.
        #[arg(long, default_value = "loadtest")]
        tenant: String,
        /// Pid of hookd, to report its CPU time per event (optional; else found by name).
        #[arg(long)]
        hookd_pid: Option<u32>,
    },
    /// Reference rate of a bare pooled hyper client: POSTs ~300-byte JSON bodies to an embedded
    /// receiver and reports requests/s and CPU time per request of this process.
    Baseline {
        /// Requests to send in all.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// End-to-end fan-out: E endpoints in hookd pointing at an embedded receiver, N events,
    /// wait for N*E deliveries; deliveries/s and hookd CPU time per delivery.
    Fanout {
        #[command(flatten)]
        hookd: HookdArgs,
        #[command(flatten)]
        fanout: FanoutArgs,
    },
    /// Baseline with N*E requests, then fanout, in one process: CPU per delivery side by side.
    Compare {
        #[command(flatten)]
        hookd: HookdArgs,
        #[command(flatten)]
        fanout: FanoutArgs,
        /// Requests in flight of the baseline part.
        #[arg(long, default_value_t = 64)]
        baseline_concurrency: usize,
    },
}

#[derive(Debug, clap::Args)]
struct HookdArgs {
    /// hookd base URL (127.0.0.1 only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// hookd admin key.
    #[arg(long, env = "HOOKD_ADMIN_KEY", hide_env_values = true)]
    key: String,
}

#[derive(Debug, clap::Args)]
struct FanoutArgs {
    /// Endpoints to create (all subscribed to "*").
    #[arg(long, default_value_t = 10)]
    endpoints: u64,
    /// Events to post.
    #[arg(long, default_value_t = 1_000)]
    events: u64,
    /// Event batches in flight while posting.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Events per POST /v1/events/batch.
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// Event types, used round robin (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "instance.ready")]
    types: Vec<String>,
    /// Pid of hookd, for its CPU time (optional: else the one process named `hookd`).
    #[arg(long)]
    hookd_pid: Option<u32>,
}

/// Time limits of one run.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// When measuring stops.
    work: Instant,
    /// When the watchdog ends the process; cleanup must be done before.
    hard: Instant,
}

impl Limits {
    fn from_max_seconds(max: f64) -> Limits {
        let now = Instant::now();
        let max = Duration::from_secs_f64(max);
        // Keep a sixth (0.5..=8 s) for settling, printing and deleting endpoints.
        let reserve = (max / 6).clamp(Duration::from_millis(500), Duration::from_secs(8));
        let reserve = reserve.min(max / 2);
        Limits {
            work: now + (max - reserve),
            hard: now + max,
        }
    }

    fn cleanup_deadline(&self) -> Instant {
        self.hard
            .checked_sub(Duration::from_millis(300))
            .unwrap_or(self.hard)
    }
}

/// Refuses any listening address but 127.0.0.1.
pub fn require_loopback_addr(addr: &SocketAddr) -> Result<()> {
    if addr.ip() != std::net::IpAddr::V4(Ipv4Addr::LOCALHOST) {
        bail!("refusing to listen on {addr}: 127.0.0.1 only");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        // Stopped by --max-seconds before the count was reached; results were printed.
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("hookd-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<bool> {
    if !(cli.max_seconds.is_finite() && cli.max_seconds > 0.0 && cli.max_seconds <= 86_400.0) {
        bail!("--max-seconds must be in (0, 86400]");
    }
    let max = Duration::from_secs_f64(cli.max_seconds);
    std::thread::Builder::new()
        .name("lt-watchdog".into())
        .spawn(move || {
            std::thread::sleep(max);
            eprintln!("hookd-loadtest: --max-seconds reached, exiting");
            std::process::exit(124);
        })
        .context("starting the watchdog")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads.max(1))
        .thread_name("lt-client")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let limits = rt.block_on(async { Limits::from_max_seconds(cli.max_seconds) });
    let embedded = |threads: usize| {
        Receiver::start(ReceiverConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            status: hyper::StatusCode::NO_CONTENT,
            delay: Duration::ZERO,
            threads,
            report: Report::Stderr,
        })
    };
    let done = match cli.cmd {
        Cmd::SeedRetries {
            data_dir,
            count,
            endpoints,
        } => {
            seed::seed_retries(&data_dir, count, endpoints)?;
            true
        }
        Cmd::Receiver {
            listen,
            status,
            delay_ms,
        } => {
            let status = hyper::StatusCode::from_u16(status).context("--status")?;
            let recv = Receiver::start(ReceiverConfig {
                listen,
                status,
                delay: Duration::from_millis(delay_ms),
                threads: cli.receiver_threads,
                report: Report::Stdout,
            })?;
            out!("listening on http://{}", recv.addr);
            rt.block_on(receiver_mode(&recv, limits))?
        }
        Cmd::Ingest {
            hookd,
            events,
            batch,
            concurrency,
            types,
            tenant,
            hookd_pid,
        } => {
            let target = client::parse_target(&hookd.target)?;
            check_counts(events, concurrency)?;
            check_batch(batch)?;
            check_types(&types)?;
            let pid = resolve_hookd_pid(hookd_pid)?;
            let job = IngestJob {
                target,
                key: hookd.key,
                tenant,
                types,
                events,
                batch,
                concurrency,
            };
            rt.block_on(ingest_mode(job, pid, limits))?
        }
        Cmd::Baseline {
            events,
            concurrency,
        } => {
            check_counts(events, concurrency)?;
            let recv = embedded(cli.receiver_threads)?;
            let r = rt.block_on(baseline(&recv, events, concurrency, limits.work))?;
            print_baseline(&r);
            r.complete
        }
        Cmd::Fanout { hookd, fanout } => {
            let target = client::parse_target(&hookd.target)?;
            check_fanout(&fanout)?;
            let pid = resolve_hookd_pid(fanout.hookd_pid)?;
            let recv = embedded(cli.receiver_threads)?;
            let r = rt.block_on(fanout_mode(
                &recv, &target, &hookd.key, &fanout, pid, limits,
            ))?;
            print_fanout(&r);
            r.complete
        }
        Cmd::Compare {
            hookd,
            fanout,
            baseline_concurrency,
        } => {
            let target = client::parse_target(&hookd.target)?;
            check_fanout(&fanout)?;
            check_counts(1, baseline_concurrency)?;
            let pid = resolve_hookd_pid(fanout.hookd_pid)?;
            if pid.is_none() {
                bail!("compare needs hookd's CPU time: give --hookd-pid");
            }
            let n = fanout.events * fanout.endpoints;
            // Give each half its share of the time.
            let now = Instant::now();
            let half = now + (limits.work - now) / 3;
            let recv = embedded(cli.receiver_threads)?;
            let b = rt.block_on(baseline(&recv, n, baseline_concurrency, half))?;
            drop(recv);
            print_baseline(&b);
            let recv = embedded(cli.receiver_threads)?;
            let f = rt.block_on(fanout_mode(
                &recv, &target, &hookd.key, &fanout, pid, limits,
            ))?;
            print_fanout(&f);
            print_compare(&b, &f);
            b.complete && f.complete
        }
    };
    rt.shutdown_background();
    Ok(done)
}

fn check_counts(events: u64, concurrency: usize) -> Result<()> {
    if events == 0 || events > 100_000_000 {
        bail!("--events must be in 1..=100000000");
    }
    if concurrency == 0 || concurrency > 4096 {
        bail!("--concurrency must be in 1..=4096");
    }
    Ok(())
}

fn check_batch(batch: u64) -> Result<()> {
    if batch == 0 || batch > 1000 {
        bail!("--batch must be in 1..=1000");
    }
    Ok(())
}

fn check_types(types: &[String]) -> Result<()> {
    if types.is_empty() || types.iter().any(|t| t.is_empty()) {
        bail!("--types must name at least one event type");
    }
    Ok(())
}

fn check_fanout(f: &FanoutArgs) -> Result<()> {
    check_counts(f.events, f.concurrency)?;
    check_batch(f.batch)?;
    check_types(&f.types)?;
    if f.endpoints == 0 || f.endpoints > 10_000 {
        bail!("--endpoints must be in 1..=10000");
    }
    Ok(())
}

/// The given pid (checked), or the single process named `hookd`, or none.
fn resolve_hookd_pid(given: Option<u32>) -> Result<Option<u32>> {
    if let Some(pid) = given {
        if !cpu::alive(pid) {
            bail!("--hookd-pid {pid}: no such process");
        }
        return Ok(Some(pid));
    }
    let pids = cpu::pids_named("hookd");
    match pids.as_slice() {
        [pid] => {
            eprintln!("using hookd pid {pid} (the only process named hookd)");
            Ok(Some(*pid))
        }
        [] => {
            eprintln!("no process named hookd: hookd CPU time not measured (give --hookd-pid)");
            Ok(None)
        }
        _ => {
            eprintln!(
                "several processes named hookd {pids:?}: CPU time not measured (give --hookd-pid)"
            );
            Ok(None)
        }
    }
}

fn r3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

fn r1(x: f64) -> f64 {
    if x.is_finite() {
        (x * 10.0).round() / 10.0
    } else {
        0.0
    }
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn us_per(cpu_secs: f64, n: u64) -> f64 {
    if n > 0 {
        cpu_secs * 1e6 / n as f64
    } else {
        0.0
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn latency_line(h: &Histogram<u64>) -> String {
    format!(
        "latency p50 {} p99 {} max {}",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

/// `jline! { "mode": "x", "n": 1 }`: a single-line JSON object with the keys in this order.
macro_rules! jline {
    ($($k:literal : $v:expr),* $(,)?) => {
        json_line(&[$(($k, serde_json::json!($v))),*])
    };
}

/// One JSON object on one line, keys in the order given (`mode` first), so runs line up.
fn json_line(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

// ---------------------------------------------------------------------------------------------
// receiver

async fn receiver_mode(recv: &Receiver, limits: Limits) -> Result<bool> {
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

// ---------------------------------------------------------------------------------------------
// posting events to hookd (ingest and fanout)

#[derive(Debug, Clone)]
struct IngestJob {
    target: Target,
    key: String,
    tenant: String,
    types: Vec<String>,
    events: u64,
    batch: u64,
    concurrency: usize,
}

#[derive(Debug)]
struct IngestResult {
    /// Events answered 202 (durable).
    events_ok: u64,
    requests: u64,
    seconds: f64,
    latency: Histogram<u64>,
    errors: Errors,
    /// First failing answer, for the operator.
    first_error: Option<String>,
}

fn event_json(job: &IngestJob, seq: u64) -> Value {
    let ty = &job.types[(seq % job.types.len() as u64) as usize];
    json!({
        "type": ty,
        "tenant": job.tenant,
        "data": {
            "seq": seq,
            "instance_id": format!("i-{seq:012x}"),
            "region": "eu-central-1",
            "node": "node-17",
            "message": "instance passed its health checks",
        },
    })
}

/// Posts `job.events` events, `job.batch` per request, `job.concurrency` requests in flight.
async fn post_events(client: &HttpClient, job: Arc<IngestJob>, deadline: Instant) -> IngestResult {
    let requests = job.events.div_ceil(job.batch);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(job.concurrency);
    for _ in 0..job.concurrency {
        let client = client.clone();
        let job = job.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = client::new_histogram();
            let mut errors = Errors::new();
            let mut first_error = None;
            let (mut ok, mut sent) = (0u64, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests || Instant::now() >= deadline {
                    break;
                }
                let lo = i * job.batch;
                let hi = (lo + job.batch).min(job.events);
                let (path, body) = if job.batch > 1 {
                    let items: Vec<Value> = (lo..hi).map(|s| event_json(&job, s)).collect();
                    ("/v1/events/batch", serde_json::to_vec(&items))
                } else {
                    ("/v1/events", serde_json::to_vec(&event_json(&job, lo)))
                };
                let body = Bytes::from(body.expect("json"));
                let req =
                    client::request(Method::POST, &job.target.base, path, Some(&job.key), body);
                let t = Instant::now();
                let outcome = client::send(&client, req, deadline).await;
                sent += 1;
                match outcome {
                    Outcome::Response(202, _) => {
                        client::record(&mut hist, t.elapsed());
                        ok += hi - lo;
                    }
                    Outcome::Response(status, body) => {
                        client::record(&mut hist, t.elapsed());
                        client::add_error(&mut errors, status.to_string());
                        first_error.get_or_insert_with(|| {
                            format!("{status} {}", String::from_utf8_lossy(&body))
                        });
                        if status == 401 {
                            // Every further request would fail the same way.
                            next.store(requests, Ordering::Relaxed);
                        }
                    }
                    Outcome::Failed(kind) => {
                        // `deadline`: cut off by --max-seconds, not a request that finished.
                        client::add_error(&mut errors, kind);
                        first_error.get_or_insert_with(|| kind.to_string());
                    }
                }
            }
            (ok, sent, hist, errors, first_error)
        }));
    }
    let mut result = IngestResult {
        events_ok: 0,
        requests: 0,
        seconds: 0.0,
        latency: client::new_histogram(),
        errors: Errors::new(),
        first_error: None,
    };
    for t in tasks {
        let (ok, sent, hist, errors, first) = t.await.expect("ingest task");
        result.events_ok += ok;
        result.requests += sent;
        result.latency.add(&hist).expect("same histogram bounds");
        client::merge_errors(&mut result.errors, errors);
        if result.first_error.is_none() {
            result.first_error = first;
        }
    }
    result.seconds = start.elapsed().as_secs_f64();
    result
}

async fn ingest_mode(job: IngestJob, pid: Option<u32>, limits: Limits) -> Result<bool> {
    let client = client::new_client(job.concurrency);
    let job = Arc::new(job);
    let cpu0 = pid.map(cpu::process_secs).transpose()?;
    let r = post_events(&client, job.clone(), limits.work).await;
    let hookd_cpu = match (pid, cpu0) {
        (Some(pid), Some(c0)) => cpu::process_secs(pid).ok().map(|c1| c1 - c0),
        _ => None,
    };
    let complete = r.events_ok == job.events;
    let rate = per_sec(r.events_ok, r.seconds);
    let endpoint = if job.batch > 1 {
        "/v1/events/batch"
    } else {
        "/v1/events"
    };
    out!(
        "ingest: {} of {} events durable in {:.2} s = {:.0} events/s ({} requests to {endpoint}, batch {}, concurrency {}); {}; errors: {}{}",
        r.events_ok,
        job.events,
        r.seconds,
        rate,
        r.requests,
        job.batch,
        job.concurrency,
        latency_line(&r.latency),
        client::errors_line(&r.errors),
        hookd_cpu
            .map(|c| format!("; hookd CPU {c:.2} s = {:.1} us/event", us_per(c, r.events_ok)))
            .unwrap_or_default(),
    );
    if let Some(e) = &r.first_error {
        eprintln!("first error: {e}");
    }
    let h = &r.latency;
    out!(
        "{}",
        jline! {
            "mode": "ingest",
            "events": r.events_ok,
            "seconds": r3(r.seconds),
            "per_sec": r1(rate),
            "cpu_per_event_us": hookd_cpu.map(|c| r3(us_per(c, r.events_ok))),
            "p50_us": h.value_at_quantile(0.50),
            "p99_us": h.value_at_quantile(0.99),
            "max_us": h.max(),
            "requested": job.events,
            "requests": r.requests,
            "batch": job.batch,
            "concurrency": job.concurrency,
            "hookd_cpu_s": hookd_cpu.map(r3),
            "errors": r.errors,
            "complete": complete,
        }
    );
    Ok(complete)
}

// ---------------------------------------------------------------------------------------------
// baseline

#[derive(Debug)]
struct BaselineResult {
    requests: u64,
    requested: u64,
    concurrency: usize,
    seconds: f64,
    process_cpu: f64,
    receiver_cpu: f64,
    latency: Histogram<u64>,
    errors: Errors,
    complete: bool,
}

/// A body shaped like what hookd sends (~300 bytes).
fn baseline_body() -> Bytes {
    let body = json!({
        "id": "evt_01HZY3V9R1D7Q2M4X8K6N0B5TA",
        "type": "instance.ready",
        "created_at": "2026-05-08T17:01:30.123Z",
        "data": {
            "instance_id": "i-000000012345",
            "region": "eu-central-1",
            "node": "node-17",
            "message": "instance passed its health checks",
            "tags": {"team": "platform", "env": "loadtest"},
            "pad": "0123456789abcdef0123456789abcdef",
        },
    });
    Bytes::from(serde_json::to_vec(&body).expect("json"))
}

async fn baseline(
    recv: &Receiver,
    events: u64,
    concurrency: usize,
    deadline: Instant,
) -> Result<BaselineResult> {
    let client = client::new_client(concurrency);
    let base = format!("http://{}", recv.addr);
    let body = baseline_body();
    eprintln!(
        "baseline: {events} POSTs of {} bytes to the embedded receiver at {base}, {concurrency} in flight",
        body.len()
    );
    let next = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu::self_secs()?;
    let rcpu0 = cpu::threads_secs(cpu::RECEIVER_THREAD)?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let next = next.clone();
        let base = base.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = client::new_histogram();
            let mut errors = Errors::new();
            let mut ok = 0u64;
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                .to_string();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events || Instant::now() >= deadline {
                    break;
                }
                // The same headers a hookd delivery carries.
                let req = hyper::Request::builder()
                    .method(Method::POST)
                    .uri(format!("{base}/e0"))
                    .header("content-type", "application/json")
                    .header("webhook-id", format!("evt_baseline_{i}"))
                    .header("webhook-timestamp", ts.as_str())
                    .header(
                        "webhook-signature",
                        "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                    )
                    .body(http_body_util::Full::new(body.clone()))
                    .expect("valid request");
                let t = Instant::now();
                match client::send(&client, req, deadline).await {
                    Outcome::Response(s, _) if (200..300).contains(&s) => {
                        client::record(&mut hist, t.elapsed());
                        ok += 1;
                    }
                    Outcome::Response(s, _) => client::add_error(&mut errors, s.to_string()),
                    Outcome::Failed(kind) => client::add_error(&mut errors, kind),
                }
            }
            (ok, hist, errors)
        }));
    }
    let mut requests = 0;
    let mut latency = client::new_histogram();
    let mut errors = Errors::new();
    for t in tasks {
        let (ok, hist, errs) = t.await.context("baseline task")?;
        requests += ok;
        latency.add(&hist).expect("same histogram bounds");
        client::merge_errors(&mut errors, errs);
    }
    let seconds = start.elapsed().as_secs_f64();
    let process_cpu = cpu::self_secs()? - cpu0;
    let receiver_cpu = cpu::threads_secs(cpu::RECEIVER_THREAD)? - rcpu0;
    let got = recv.snapshot();
    if got.deliveries < requests {
        eprintln!(
            "warning: receiver counted {} of {requests} requests",
            got.deliveries
        );
    }
    Ok(BaselineResult {
        requests,
        requested: events,
        concurrency,
        seconds,
        process_cpu,
        receiver_cpu,
        latency,
        errors,
        complete: requests == events,
    })
}

fn print_baseline(r: &BaselineResult) {
    let client_cpu = (r.process_cpu - r.receiver_cpu).max(0.0);
    out!(
        "baseline: {} of {} requests in {:.2} s = {:.0} requests/s (concurrency {}); CPU of this process {:.2} s = {:.1} us/request (client {:.1}, receiver {:.1}); {}; errors: {}",
        r.requests,
        r.requested,
        r.seconds,
        per_sec(r.requests, r.seconds),
        r.concurrency,
        r.process_cpu,
        us_per(r.process_cpu, r.requests),
        us_per(client_cpu, r.requests),
        us_per(r.receiver_cpu, r.requests),
        latency_line(&r.latency),
        client::errors_line(&r.errors),
    );
    let h = &r.latency;
    out!(
        "{}",
        jline! {
            "mode": "baseline",
            "requests": r.requests,
            "seconds": r3(r.seconds),
            "per_sec": r1(per_sec(r.requests, r.seconds)),
            "cpu_per_request_us": r3(us_per(r.process_cpu, r.requests)),
            "client_cpu_per_request_us": r3(us_per(client_cpu, r.requests)),
            "receiver_cpu_per_request_us": r3(us_per(r.receiver_cpu, r.requests)),
            "p50_us": h.value_at_quantile(0.50),
            "p99_us": h.value_at_quantile(0.99),
            "max_us": h.max(),
            "requested": r.requested,
            "concurrency": r.concurrency,
            "errors": r.errors,
            "complete": r.complete,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// fanout

#[derive(Debug)]
struct FanoutResult {
    events: u64,
    events_ok: u64,
    endpoints: u64,
    expected: u64,
    deliveries: u64,
    requests: u64,
    seconds: f64,
    ingest_seconds: f64,
    ingest_errors: Errors,
    hookd_cpu: Option<f64>,
    hookd_cpu_at_done: Option<f64>,
    receiver_cpu: f64,
    /// hookd's CPU use in the 0.5 s before the run, in % of a core.
    busy_before: Option<f64>,
    deleted: u64,
    complete: bool,
}

async fn fanout_mode(
    recv: &Receiver,
    target: &Target,
    key: &str,
    args: &FanoutArgs,
    pid: Option<u32>,
    limits: Limits,
) -> Result<FanoutResult> {
    let client = client::new_client(args.concurrency.max(4));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let tenant = format!("lt-{now_ms}-{}", std::process::id());
    eprintln!(
        "fanout: tenant {tenant}, {} endpoints -> http://{}/e{{i}}, {} events in batches of {}",
        args.endpoints, recv.addr, args.events, args.batch
    );

    // Endpoints.
    let mut ids = Vec::with_capacity(args.endpoints as usize);
    let mut create_error = None;
    for i in 0..args.endpoints {
        let body = json!({
            "name": format!("loadtest e{i}"),
            "url": format!("http://{}/e{i}", recv.addr),
            "event_types": ["*"],
            "tenant": tenant,
            "description": "hookd-loadtest fanout; deleted at the end of the run",
        });
        let req = client::request(
            Method::POST,
            &target.base,
            "/v1/endpoints",
            Some(key),
            Bytes::from(serde_json::to_vec(&body)?),
        );
        match client::send(&client, req, limits.work).await {
            Outcome::Response(201, b) => {
                let v: Value = serde_json::from_slice(&b).context("endpoint response")?;
                match v["id"].as_str() {
                    Some(id) => ids.push(id.to_string()),
                    None => {
                        create_error = Some(format!("201 without an id: {v}"));
                        break;
                    }
                }
            }
            Outcome::Response(status, b) => {
                let mut msg = format!(
                    "creating endpoint {i}: {status} {}",
                    String::from_utf8_lossy(&b)
                );
                if status == 403 {
                    msg.push_str(" (start hookd with HOOKD_ALLOW_PRIVATE_TARGETS=true)");
                }
                create_error = Some(msg);
                break;
            }
            Outcome::Failed(kind) => {
                create_error = Some(format!(
                    "creating endpoint {i}: {kind} (is hookd at {}?)",
                    target.base
                ));
                break;
            }
        }
    }
    if let Some(e) = create_error {
        delete_endpoints(&client, target, key, &ids, limits.cleanup_deadline()).await;
        bail!("{e}");
    }

    // Events, then wait for every delivery.
    let job = Arc::new(IngestJob {
        target: target.clone(),
        key: key.to_string(),
        tenant: tenant.clone(),
        types: args.types.clone(),
        events: args.events,
        batch: args.batch,
        concurrency: args.concurrency,
    });
    let expected = args.events * args.endpoints;
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
    let start = Instant::now();
    let ingest = post_events(&client, job, limits.work).await;
    if let Some(e) = &ingest.first_error {
        eprintln!("ingest error: {e}");
    }
    let want = ingest.events_ok * args.endpoints;
    let mut last_report = Instant::now();
    loop {
        let s = recv.snapshot();
        if s.deliveries >= want || Instant::now() >= limits.work {
            break;
        }
        if pid.is_some_and(|p| !cpu::alive(p)) {
            eprintln!("hookd (pid {}) exited", pid.unwrap_or_default());
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!("waiting: {} of {want} deliveries", s.deliveries);
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let done = recv.snapshot();
    let receiver_cpu = cpu::threads_secs(cpu::RECEIVER_THREAD)? - rcpu0;
    let (hookd_cpu_at_done, hookd_cpu) = match (pid, cpu0) {
        (Some(p), Some(c0)) => {
            let at_done = cpu::process_secs(p).ok().map(|c| c - c0);
            // Let hookd finish its bookkeeping (delivery records) and count that too: sample
            // until it is idle (<= 1 tick per 250 ms), for at most 3 s.
            let settle_end = (Instant::now() + Duration::from_secs(3)).min(limits.work);
            let mut last = at_done;
            while Instant::now() < settle_end {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = cpu::process_secs(p).ok().map(|c| c - c0);
                let idle = matches!((last, now), (Some(a), Some(b)) if b - a <= 0.011);
                last = now;
                if idle {
                    break;
                }
            }
            (at_done, last)
        }
        _ => (None, None),
    };
    let deleted = delete_endpoints(&client, target, key, &ids, limits.cleanup_deadline()).await;
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
    })
}

/// Deletes the endpoints (a few at a time), returns how many went.
async fn delete_endpoints(
    client: &HttpClient,
    target: &Target,
    key: &str,
    ids: &[String],
    deadline: Instant,
) -> u64 {
    let mut deleted = 0;
    for chunk in ids.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let req = client::request(
                Method::DELETE,
                &target.base,
                &format!("/v1/endpoints/{id}"),
                Some(key),
                Bytes::new(),
            );
            let client = client.clone();
            set.spawn(async move { client::send(&client, req, deadline).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Outcome::Response(204 | 404, _)) => deleted += 1,
                Ok(Outcome::Response(s, b)) => {
                    eprintln!("deleting an endpoint: {s} {}", String::from_utf8_lossy(&b))
                }
                Ok(Outcome::Failed(kind)) => eprintln!("deleting an endpoint: {kind}"),
                Err(e) => eprintln!("deleting an endpoint: {e}"),
            }
        }
    }
    if deleted < ids.len() as u64 {
        eprintln!(
            "warning: {} of {} endpoints left in hookd",
            ids.len() as u64 - deleted,
            ids.len()
        );
    }
    deleted
}

fn print_fanout(r: &FanoutResult) {
    let rate = per_sec(r.deliveries, r.seconds);
    out!(
        "fanout: {} of {} deliveries ({} events ok of {}, x {} endpoints) in {:.2} s end to end = {:.0} deliveries/s (ingest {:.2} s, errors: {}); hookd CPU {}; receiver CPU {:.1} us/delivery; {} receiver requests; {} endpoints deleted",
        r.deliveries,
        r.expected,
        r.events_ok,
        r.events,
        r.endpoints,
        r.seconds,
        rate,
        r.ingest_seconds,
        client::errors_line(&r.ingest_errors),
        r.hookd_cpu
            .map(|c| format!("{c:.2} s = {:.1} us/delivery", us_per(c, r.deliveries)))
            .unwrap_or_else(|| "not measured".into()),
        us_per(r.receiver_cpu, r.deliveries),
        r.requests,
        r.deleted,
    );
    out!("{}", fanout_json(r));
}

fn fanout_json(r: &FanoutResult) -> String {
    jline! {
        "mode": "fanout",
        "deliveries": r.deliveries,
        "seconds": r3(r.seconds),
        "per_sec": r1(per_sec(r.deliveries, r.seconds)),
        "cpu_per_delivery_us": r.hookd_cpu.map(|c| r3(us_per(c, r.deliveries))),
        "expected": r.expected,
        "events": r.events_ok,
        "endpoints": r.endpoints,
        "cpu_at_done_per_delivery_us": r.hookd_cpu_at_done.map(|c| r3(us_per(c, r.deliveries))),
        "hookd_cpu_s": r.hookd_cpu.map(r3),
        "receiver_cpu_per_delivery_us": r3(us_per(r.receiver_cpu, r.deliveries)),
        "ingest_seconds": r3(r.ingest_seconds),
        "ingest_errors": r.ingest_errors,
        "receiver_requests": r.requests,
        "hookd_busy_before_pct": r.busy_before.map(r1),
        "endpoints_deleted": r.deleted,
        "complete": r.complete,
    }
}

fn print_compare(b: &BaselineResult, f: &FanoutResult) {
    let base_cpu = us_per((b.process_cpu - b.receiver_cpu).max(0.0), b.requests);
    let base_rate = per_sec(b.requests, b.seconds);
    let fan_rate = per_sec(f.deliveries, f.seconds);
    let fan_cpu = f.hookd_cpu.map(|c| us_per(c, f.deliveries));
    out!(
        "compare: hookd {:.0} deliveries/s vs bare client {:.0} requests/s ({:.2}x); CPU per delivery hookd {} vs bare client {:.1} us{}",
        fan_rate,
        base_rate,
        if base_rate > 0.0 { fan_rate / base_rate } else { 0.0 },
        fan_cpu.map(|c| format!("{c:.1} us")).unwrap_or_else(|| "?".into()),
        base_cpu,
        fan_cpu
            .filter(|_| base_cpu > 0.0)
            .map(|c| format!(" ({:.2}x)", c / base_cpu))
            .unwrap_or_default(),
    );
    out!(
        "{}",
        jline! {
            "mode": "compare",
            "baseline_per_sec": r1(base_rate),
            "baseline_client_cpu_per_request_us": r3(base_cpu),
            "fanout_per_sec": r1(fan_rate),
            "fanout_cpu_per_delivery_us": fan_cpu.map(r3),
            "rate_ratio": r3(if base_rate > 0.0 { fan_rate / base_rate } else { 0.0 }),
            "cpu_ratio": fan_cpu.filter(|_| base_cpu > 0.0).map(|c| r3(c / base_cpu)),
            "complete": b.complete && f.complete,
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    fn test_receiver() -> Receiver {
        Receiver::start(ReceiverConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            status: hyper::StatusCode::NO_CONTENT,
            delay: Duration::ZERO,
            threads: 1,
            report: Report::Stderr,
        })
        .unwrap()
    }

    #[test]
    fn json_line_keeps_order() {
        let line = jline! { "mode": "x", "b": 1, "a": [1, 2], "n": Option::<f64>::None };
        assert_eq!(line, r#"{"mode":"x","b":1,"a":[1,2],"n":null}"#);
    }

    #[test]
    fn baseline_against_embedded_receiver() {
        let recv = test_receiver();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let r = rt
            .block_on(async {
                let deadline = Instant::now() + Duration::from_secs(20);
                baseline(&recv, 500, 8, deadline).await
            })
            .unwrap();
        assert!(r.complete);
        assert_eq!(r.requests, 500);
        assert!(r.errors.is_empty());
        let s = recv.snapshot();
        assert_eq!((s.requests, s.unique_ids, s.deliveries), (500, 500, 500));
        drop(rt);
    }

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

    /// Just enough of hookd for fanout: endpoints in memory, batches fanned out at once.
    #[derive(Default)]
    struct FakeHookd {
        endpoints: Mutex<Vec<(String, String)>>,
        deleted: AtomicU64,
        next: AtomicU64,
    }

    async fn fake_hookd(
        req: Request<Incoming>,
        state: Arc<FakeHookd>,
        client: HttpClient,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let reply = |status: u16, body: Value| {
            let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
            *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            Ok(r)
        };
        if req.headers().get("authorization").map(|v| v.as_bytes()) != Some(b"Bearer k") {
            return reply(401, json!({"error": {"code": "UNAUTHORIZED"}}));
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        match (method, path.as_str()) {
            (Method::POST, "/v1/endpoints") => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                let id = format!("ep_{}", state.next.fetch_add(1, Ordering::Relaxed));
                let url = v["url"].as_str().unwrap().to_string();
                state.endpoints.lock().unwrap().push((id.clone(), url));
                reply(201, json!({"id": id}))
            }
            (Method::POST, "/v1/events/batch") => {
                let events: Vec<Value> = serde_json::from_slice(&body).unwrap();
                let urls: Vec<String> = state
                    .endpoints
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(_, u)| u.clone())
                    .collect();
                for _ in &events {
                    let id = format!("evt_{}", state.next.fetch_add(1, Ordering::Relaxed));
                    for url in &urls {
                        let req = hyper::Request::builder()
                            .method(Method::POST)
                            .uri(url)
                            .header("webhook-id", id.as_str())
                            .body(Full::new(Bytes::from_static(b"{}")))
                            .unwrap();
                        let client = client.clone();
                        tokio::spawn(async move {
                            let _ = client.request(req).await;
                        });
                    }
                }
                reply(202, json!({"data": []}))
            }
            (Method::DELETE, p) if p.starts_with("/v1/endpoints/") => {
                state.deleted.fetch_add(1, Ordering::Relaxed);
                reply(204, Value::Null)
            }
            _ => reply(404, json!({"error": {"code": "NOT_FOUND"}})),
        }
    }

    /// Starts the fake hookd on the current runtime.
    async fn spawn_fake_hookd() -> (Target, Arc<FakeHookd>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeHookd::default());
        let server_state = state.clone();
        tokio::spawn(async move {
            let client = client::new_client(64);
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (state, client) = (server_state.clone(), client.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        fake_hookd(req, state.clone(), client.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (
            client::parse_target(&format!("http://{addr}")).unwrap(),
            state,
        )
    }

    fn fanout_args(endpoints: u64, events: u64) -> FanoutArgs {
        FanoutArgs {
            endpoints,
            events,
            concurrency: 2,
            batch: 100,
            types: vec!["instance.ready".into()],
            hookd_pid: None,
        }
    }

    #[test]
    fn fanout_against_fake_hookd() {
        let recv = test_receiver();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (r, deleted) = rt.block_on(async {
            let (target, state) = spawn_fake_hookd().await;
            let limits = Limits::from_max_seconds(20.0);
            let pid = Some(std::process::id());
            let r = fanout_mode(&recv, &target, "k", &fanout_args(3, 250), pid, limits)
                .await
                .unwrap();
            (r, state.deleted.load(Ordering::Relaxed))
        });
        assert!(r.complete, "{r:?}");
        assert_eq!((r.expected, r.deliveries, r.events_ok), (750, 750, 250));
        assert_eq!((r.deleted, deleted), (3, 3));
        assert!(r.hookd_cpu.is_some());
        assert!(fanout_json(&r).starts_with(r#"{"mode":"fanout","deliveries":750,"#));
        drop(rt);
    }

    #[test]
    fn fanout_reports_bad_key() {
        let recv = test_receiver();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let err = rt.block_on(async {
            let (target, _) = spawn_fake_hookd().await;
            let limits = Limits::from_max_seconds(10.0);
            fanout_mode(&recv, &target, "wrong", &fanout_args(1, 1), None, limits)
                .await
                .unwrap_err()
        });
        assert!(err.to_string().contains("401"), "{err}");
        drop(rt);
    }
}
