//! `hookd-loadtest`: the bundled load generator for hookd.
//!
//! Every mode talks to 127.0.0.1 only (anything else is refused) and is bounded twice: by its
//! count (`--events`) and by `--max-seconds` (default 60), after which a watchdog ends the process
//! whatever it is doing. Each mode ends with a human line and a single-line JSON result on stdout.
//!
//! - [`cli`]: the subcommands and the checks of their arguments.
//! - [`receiver`]: the embedded webhook receiver (`hookd_testkit`'s, counting only) and the
//!   `receiver` subcommand.
//! - [`ingest`]: posting events (`ingest`, and the events of `fanout`).
//! - [`baseline`]: a bare hyper client against the receiver, the reference.
//! - [`fanout`]: end-to-end deliveries through hookd.
//! - [`compare`]: baseline then fanout, side by side.
//! - [`seed`]: `seed-retries`, filling a stopped daemon's store.
//! - [`report`]: the result lines. [`client`] and [`cpu`]: HTTP and CPU-time plumbing.

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
mod fanout;
mod ingest;
mod receiver;
mod report;
mod seed;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tokio::time::Instant;

use cli::{check_batch, check_counts, check_fanout, check_types, resolve_hookd_pid, Cli, Cmd};
use ingest::IngestJob;
use receiver::{Receiver, ReceiverConfig, Report};
use report::{print_baseline, print_fanout};

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
            rt.block_on(receiver::receiver_mode(&recv, limits))?
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
            rt.block_on(ingest::ingest_mode(job, pid, limits))?
        }
        Cmd::Baseline {
            events,
            concurrency,
        } => {
            check_counts(events, concurrency)?;
            let recv = Receiver::embedded(cli.receiver_threads)?;
            let r = rt.block_on(baseline::baseline(&recv, events, concurrency, limits.work))?;
            print_baseline(&r);
            r.complete
        }
        Cmd::Fanout { hookd, fanout } => {
            let target = client::parse_target(&hookd.target)?;
            check_fanout(&fanout)?;
            let pid = resolve_hookd_pid(fanout.hookd_pid)?;
            let recv = Receiver::embedded(cli.receiver_threads)?;
            let r = rt.block_on(fanout::fanout_mode(
                &recv, &target, &hookd.key, &fanout, pid, limits,
            ))?;
            print_fanout(&r);
            r.complete
        }
        Cmd::Compare {
            hookd,
            fanout,
            baseline_concurrency,
        } => compare::compare(
            &rt,
            &hookd,
            &fanout,
            baseline_concurrency,
            cli.receiver_threads,
            limits,
        )?,
    };
    rt.shutdown_background();
    Ok(done)
}
