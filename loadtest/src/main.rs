//! `hookd-loadtest`: the bundled load generator for hookd.
//!
//! Every mode talks to 127.0.0.1 only (anything else is refused) and is bounded twice: by its
//! count (`--events`) or time (`--duration`) and by `--max-seconds`, after which a watchdog ends
//! the process whatever it is doing. Each mode ends with a human line and a single-line JSON
//! result on stdout; `--report-json` and `--report-svg` write that result with a sample of
//! every second, and a progress line shows on stderr while it runs.
//!
//! Modes, one file each:
//! - [`receiver`]: the embedded webhook receiver (`hookd_testkit`'s, counting only) and the
//!   `receiver` subcommand.
//! - [`ingest`]: posting events (`ingest`, and the events of the other modes).
//! - [`baseline`]: a bare hyper client against the receiver, the reference.
//! - [`fanout`]: end-to-end deliveries through hookd; [`reads`]: API reads meanwhile.
//! - [`compare`]: baseline then fanout, side by side.
//! - [`sustained`]: fan-out bounded by time, hookd's RSS and disk each second.
//! - [`memory`]: many pending retries through the API; RSS, disk, restart time
//!   ([`daemon`]: starting and killing that hookd).
//! - [`misbehave`]: a healthy endpoint next to misbehaving ones (fairness).
//! - [`seed`]: `seed-retries`, filling a stopped daemon's store.
//!
//! Reporting: [`meter`] (counts and latencies as they happen), [`timeline`] (the per-second
//! sampler), [`progress`] (the live line), [`report`] (result lines), [`export`] and [`svg`]
//! (the report files). Plumbing: [`cli`], [`client`], [`cpu`], [`endpoints`].

/// `println!` that ignores a closed stdout (`| head -1`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `jline! { "mode": "x", "n": 1 }`: a single-line JSON object with the keys in this order.
macro_rules! jline {
    ($($k:literal : $v:expr),* $(,)?) => {
        $crate::report::json_line(&[$(($k, serde_json::json!($v))),*])
    };
}

mod baseline;
mod cli;
mod client;
mod compare;
mod cpu;
mod daemon;
mod endpoints;
mod export;
mod fanout;
mod ingest;
mod memory;
mod meter;
mod misbehave;
mod progress;
mod reads;
mod receiver;
mod report;
mod seed;
mod sustained;
mod svg;
mod timeline;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use hookd_testkit::Reply;
use tokio::time::Instant;

use cli::{check_batch, check_counts, check_fanout, check_types, resolve_hookd_pid, Cli, Cmd};
use export::ReportFiles;
use ingest::{IngestJob, IngestWatch};
use meter::Meter;
use progress::Show;
use receiver::{Receiver, ReceiverConfig, Report};
use report::{print_baseline, print_fanout};
use timeline::{PidCell, Timeline, Watch};

/// Time limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// When measuring stops.
    pub work: Instant,
    /// When the watchdog ends the process; cleanup must be done before.
    pub hard: Instant,
}

impl Limits {
    pub fn from_max_seconds(max: f64) -> Limits {
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

    pub fn cleanup_deadline(&self) -> Instant {
        self.hard
            .checked_sub(Duration::from_millis(300))
            .unwrap_or(self.hard)
    }
}

/// What every mode gets: its time limits, how progress shows, where hookd keeps its data.
#[derive(Debug, Clone)]
pub struct RunCtx {
    pub limits: Limits,
    pub show: Show,
    pub data_dir: Option<PathBuf>,
    pub receiver_threads: usize,
}

impl RunCtx {
    /// What the sampler of a `label` run watches; its rate is in `unit`.
    pub fn watch(&self, label: &'static str, unit: &'static str, pid: PidCell) -> Watch {
        Watch {
            label,
            unit,
            pid,
            data_dir: self.data_dir.clone(),
            show: self.show,
            ends_at: None,
        }
    }

    /// A context for unit tests: `max` seconds, no progress line. Call it inside a runtime.
    #[cfg(test)]
    pub fn for_tests(max: f64) -> RunCtx {
        RunCtx {
            limits: Limits::from_max_seconds(max),
            show: Show::Off,
            data_dir: None,
            receiver_threads: 1,
        }
    }
}

/// How a mode ended: whether it did its whole count, its JSON line and its samples.
struct Ended {
    complete: bool,
    mode: &'static str,
    line: String,
    timeline: Timeline,
}

impl Ended {
    fn new(mode: &'static str, (complete, line, timeline): (bool, String, Timeline)) -> Ended {
        Ended {
            complete,
            mode,
            line,
            timeline,
        }
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

/// `--max-seconds`, or its default: 60, or a sustained run's duration plus 60.
fn max_seconds(cli: &Cli) -> f64 {
    cli.max_seconds.unwrap_or(match &cli.cmd {
        Cmd::Sustained { args, .. } => args.duration.as_secs_f64() + 60.0,
        _ => 60.0,
    })
}

fn run(cli: Cli) -> Result<bool> {
    let max_seconds = max_seconds(&cli);
    if !(max_seconds.is_finite() && max_seconds > 0.0 && max_seconds <= 90_000.0) {
        bail!("--max-seconds must be in (0, 90000]");
    }
    let max = Duration::from_secs_f64(max_seconds);
    std::thread::Builder::new()
        .name("lt-watchdog".into())
        .spawn(move || {
            std::thread::sleep(max);
            eprintln!("hookd-loadtest: --max-seconds reached, exiting");
            daemon::kill_spawned();
            std::process::exit(124);
        })
        .context("starting the watchdog")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads.max(1))
        .thread_name("lt-client")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let ctx = RunCtx {
        limits: rt.block_on(async { Limits::from_max_seconds(max_seconds) }),
        show: Show::choose(cli.progress),
        data_dir: cli.hookd_data_dir.clone(),
        receiver_threads: cli.receiver_threads,
    };
    let files = ReportFiles {
        json: cli.report_json.clone(),
        svg: cli.report_svg.clone(),
    };
    let ended = run_mode(&rt, cli.cmd, &ctx)?;
    let title = format!("hookd-loadtest {}", ended.mode);
    files.write(ended.mode, &title, &ended.line, &ended.timeline)?;
    rt.shutdown_background();
    Ok(ended.complete)
}

fn run_mode(rt: &tokio::runtime::Runtime, cmd: Cmd, ctx: &RunCtx) -> Result<Ended> {
    let limits = ctx.limits;
    Ok(match cmd {
        Cmd::SeedRetries {
            data_dir,
            count,
            endpoints,
        } => {
            let line = seed::seed_retries(&data_dir, count, endpoints)?;
            Ended::new("seed-retries", (true, line, Timeline::default()))
        }
        Cmd::Receiver {
            listen,
            status,
            delay_ms,
        } => {
            let status = hyper::StatusCode::from_u16(status).context("--status")?;
            let meter = Arc::new(Meter::default());
            let recv = Receiver::start(ReceiverConfig {
                listen,
                reply: Reply::Slow {
                    delay: Duration::from_millis(delay_ms),
                    status: status.as_u16(),
                },
                threads: ctx.receiver_threads,
                report: Report::Stdout,
                meters: vec![meter.clone()],
            })?;
            out!("listening on http://{}", recv.addr);
            Ended::new(
                "receiver",
                rt.block_on(receiver::receiver_mode(&recv, meter, ctx))?,
            )
        }
        Cmd::Ingest {
            hookd,
            events,
            batch,
            concurrency,
            types,
            tenant,
            hookd_pid,
            event_bytes,
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
                event_bytes,
                watch: IngestWatch::None,
            };
            Ended::new("ingest", rt.block_on(ingest::ingest_mode(job, pid, ctx))?)
        }
        Cmd::Baseline {
            events,
            concurrency,
        } => {
            check_counts(events, concurrency)?;
            let recv = Receiver::embedded(ctx.receiver_threads, Arc::default())?;
            let r = rt.block_on(baseline::baseline(
                &recv,
                events,
                concurrency,
                ctx,
                limits.work,
            ))?;
            let line = print_baseline(&r);
            Ended::new("baseline", (r.complete, line, r.timeline))
        }
        Cmd::Fanout { hookd, fanout } => {
            let target = client::parse_target(&hookd.target)?;
            check_fanout(&fanout)?;
            let pid = resolve_hookd_pid(fanout.hookd_pid)?;
            let meter = Arc::new(Meter::default());
            let recv = Receiver::embedded(ctx.receiver_threads, meter.clone())?;
            let r = rt.block_on(fanout::fanout_mode(
                &recv, meter, &target, &hookd.key, &fanout, pid, ctx,
            ))?;
            let line = print_fanout(&r);
            Ended::new("fanout", (r.complete, line, r.timeline))
        }
        Cmd::Sustained { hookd, args } => {
            let target = client::parse_target(&hookd.target)?;
            cli::check_sustained(&args)?;
            let pid = resolve_hookd_pid(args.hookd_pid)?;
            Ended::new(
                "sustained",
                rt.block_on(sustained::sustained_mode(
                    &target, &hookd.key, &args, pid, ctx,
                ))?,
            )
        }
        Cmd::Memory { args } => {
            cli::check_memory(&args)?;
            Ended::new("memory", rt.block_on(memory::memory_mode(&args, ctx))?)
        }
        Cmd::Misbehave { hookd, args } => {
            let target = client::parse_target(&hookd.target)?;
            cli::check_misbehave(&args)?;
            let pid = resolve_hookd_pid(args.hookd_pid)?;
            Ended::new(
                "misbehave",
                rt.block_on(misbehave::misbehave_mode(
                    &target, &hookd.key, &args, pid, ctx,
                ))?,
            )
        }
        Cmd::Compare {
            hookd,
            fanout,
            baseline_concurrency,
        } => Ended::new(
            "compare",
            compare::compare(rt, &hookd, &fanout, baseline_concurrency, ctx)?,
        ),
    })
}
