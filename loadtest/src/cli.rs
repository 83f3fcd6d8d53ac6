//! The command line: subcommands, their arguments and the checks of their values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use crate::cpu;
use crate::misbehave::Kind;
use crate::reads::ReadArgs;

/// Load generator for hookd. Sends to 127.0.0.1 only; every run stops by itself.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Hard limit for the whole run in seconds; a watchdog exits the process when it is reached.
    /// The measurement itself stops a little earlier to leave time for results and cleanup.
    /// Default 60, or for `sustained` its --duration plus 60.
    #[arg(long, global = true)]
    pub max_seconds: Option<f64>,
    /// Show the live progress line (rate, done, in flight, errors, elapsed, ETA) even when
    /// stderr is not a terminal: then one line per second. On a terminal it is always shown,
    /// redrawn in place.
    #[arg(long, global = true)]
    pub progress: bool,
    /// Write the run's report as JSON: its result line and one sample per second.
    #[arg(long, global = true, value_name = "PATH")]
    pub report_json: Option<PathBuf>,
    /// Write an SVG chart of the run's samples: throughput, latency, hookd RSS/disk and CPU.
    #[arg(long, global = true, value_name = "PATH")]
    pub report_svg: Option<PathBuf>,
    /// hookd's data directory, to sample its disk use each second (hookd's RSS and CPU are
    /// sampled when its pid is known).
    #[arg(long, global = true, value_name = "DIR")]
    pub hookd_data_dir: Option<PathBuf>,
    /// Worker threads of the load generator's own runtime (client side).
    #[arg(long, global = true, default_value_t = 2)]
    pub client_threads: usize,
    /// Worker threads of the embedded receiver's runtime (threads named `lt-recv`).
    #[arg(long, global = true, default_value_t = 2)]
    pub receiver_threads: usize,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
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
        /// Pad each event to about this many bytes of JSON (0: ~250 bytes, unpadded).
        #[arg(long, default_value_t = 0)]
        event_bytes: usize,
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
    /// Fan-out bounded by time: E endpoints, events posted as fast as hookd delivers them (at
    /// most --window deliveries outstanding) for --duration; hookd's RSS and data-dir disk each
    /// second, to show whether they stay flat.
    Sustained {
        #[command(flatten)]
        hookd: HookdArgs,
        #[command(flatten)]
        args: SustainedArgs,
    },
    /// N deliveries waiting for a far-future retry, made through the public API, in a hookd
    /// this mode starts itself: its RSS, its data dir's disk use, and the time from a kill -9
    /// and restart to /health answering and to the pending count being back.
    Memory {
        #[command(flatten)]
        args: MemoryArgs,
    },
    /// Fairness: a healthy endpoint alone, then next to K endpoints of each misbehaving kind;
    /// the healthy endpoint's deliveries/s and p99 latency side by side.
    Misbehave {
        #[command(flatten)]
        hookd: HookdArgs,
        #[command(flatten)]
        args: MisbehaveArgs,
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
pub struct HookdArgs {
    /// hookd base URL (127.0.0.1 only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// hookd admin key.
    #[arg(long, env = "HOOKD_ADMIN_KEY", hide_env_values = true)]
    pub key: String,
}

#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    /// Endpoints to create (all subscribed to "*").
    #[arg(long, default_value_t = 10)]
    pub endpoints: u64,
    /// Events to post.
    #[arg(long, default_value_t = 1_000)]
    pub events: u64,
    #[command(flatten)]
    pub post: PostArgs,
    /// Pid of hookd, for its CPU time and RSS (optional: else the one process named `hookd`).
    #[arg(long)]
    pub hookd_pid: Option<u32>,
    #[command(flatten)]
    pub reads: ReadArgs,
}

/// How events are posted in the fan-out modes.
#[derive(Debug, Clone, clap::Args)]
pub struct PostArgs {
    /// Event batches in flight while posting.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Events per POST /v1/events/batch.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Event types, used round robin (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "instance.ready")]
    pub types: Vec<String>,
    /// Pad each event to about this many bytes of JSON (0: ~250 bytes, unpadded).
    #[arg(long, default_value_t = 0)]
    pub event_bytes: usize,
}

#[derive(Debug, clap::Args)]
pub struct SustainedArgs {
    /// How long to post for (`90s`, `10m`, `1h`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1m")]
    pub duration: Duration,
    /// Endpoints to create (all subscribed to "*").
    #[arg(long, default_value_t = 100)]
    pub endpoints: u64,
    /// Deliveries posted and not yet received at most: full rate without an unbounded backlog.
    #[arg(long, default_value_t = 20_000)]
    pub window: u64,
    #[command(flatten)]
    pub post: PostArgs,
    /// Pid of hookd, for its CPU and RSS (optional: else the one process named `hookd`).
    #[arg(long)]
    pub hookd_pid: Option<u32>,
    #[command(flatten)]
    pub reads: ReadArgs,
}

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// The hookd binary to start (release build).
    #[arg(long, default_value = "target/release/hookd")]
    pub hookd_bin: PathBuf,
    /// hookd's config file (optional; `HOOKD_*` variables set by this mode override it).
    /// Without it, the embedded defaults with the circuit breaker off (`<data-dir>.toml`): with
    /// it on, a failing endpoint's deliveries would stay due behind it, not wait for a retry.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A data directory for hookd that does not exist yet (or is empty); removed at the end
    /// unless --keep-data. hookd's stdout and stderr go to `<data-dir>.log`.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Deliveries to leave waiting for a retry.
    #[arg(long, default_value_t = 1_000_000)]
    pub pending: u64,
    /// Endpoints they are spread over (the events are pending / endpoints).
    #[arg(long, default_value_t = 100)]
    pub endpoints: u64,
    /// The endpoints' retry delay after the first failed attempt (1s..=7d).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "7d")]
    pub retry_after: Duration,
    /// Events per POST /v1/events/batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Event batches in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Keep the data directory (and hookd's log) after the run.
    #[arg(long)]
    pub keep_data: bool,
}

#[derive(Debug, clap::Args)]
pub struct MisbehaveArgs {
    /// Misbehaviours to try, one phase each after the healthy endpoint alone (comma separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ok,slow,hang,fail,reset,close,retry-after,silent"
    )]
    pub kinds: Vec<Kind>,
    /// Rounds of (alone, kind) phases for every kind, then one last alone phase; each kind's
    /// phase is compared with the alone phases on either side of it, and its figures are the
    /// median of its rounds, since one phase of a few seconds moves by a fifth on this machine
    /// alone.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Misbehaving endpoints next to the healthy one in each phase.
    #[arg(long, default_value_t = 80)]
    pub bad_endpoints: u64,
    /// Events per phase for the healthy endpoint (the layout `shared` sends them to all): a
    /// burst posted as fast as hookd takes it. 60,000 is about 3 s timed here; a burst much
    /// shorter than a second measures the noise more than the misbehaviour.
    #[arg(long, default_value_t = 60_000)]
    pub events: u64,
    /// Layout `tenants`: events posted for the misbehaving tenant first, each going to all K.
    #[arg(long, default_value_t = 1_000)]
    pub bad_events: u64,
    /// Events per POST /v1/events/batch.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Who the misbehaving endpoints belong to and where their events come from.
    #[arg(long, value_enum, default_value = "tenants")]
    pub layout: crate::misbehave::Layout,
    /// Layout `tenants`: once the misbehaving tenant's deliveries are made, wait (at most
    /// 30 s) for hookd to be idle before timing the healthy tenant's events.
    #[arg(long)]
    pub settled_backlog: bool,
    /// Longest wait for the healthy endpoint's deliveries in one phase.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub phase_timeout: Duration,
    /// After each phase's burst, events posted at this steady rate (per second, one request
    /// every 20 ms) for `--paced-for` to one more healthy endpoint, a third tenant's: their
    /// delivery latency is what a customer sees while hookd keeps up, where a burst's p99 is
    /// mostly its own queue. 0: no paced part.
    #[arg(long, default_value_t = 1_000)]
    pub paced_rate: u64,
    /// How long the paced events are posted for.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub paced_for: Duration,
    /// `slow`: how long each answer takes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "8s")]
    pub slow: Duration,
    /// `fail`: the share of answers that are 500.
    #[arg(long, default_value_t = 0.5)]
    pub fail_share: f64,
    /// `retry-after`: the seconds a 429 asks for.
    #[arg(long, default_value_t = 30)]
    pub retry_after_s: u64,
    /// Pid of hookd, for its CPU and RSS (optional: else the one process named `hookd`).
    #[arg(long)]
    pub hookd_pid: Option<u32>,
}

pub fn check_counts(events: u64, concurrency: usize) -> Result<()> {
    if events == 0 || events > 100_000_000 {
        bail!("--events must be in 1..=100000000");
    }
    if concurrency == 0 || concurrency > 4096 {
        bail!("--concurrency must be in 1..=4096");
    }
    Ok(())
}

pub fn check_batch(batch: u64) -> Result<()> {
    if batch == 0 || batch > 1000 {
        bail!("--batch must be in 1..=1000");
    }
    Ok(())
}

pub fn check_types(types: &[String]) -> Result<()> {
    if types.is_empty() || types.iter().any(|t| t.is_empty()) {
        bail!("--types must name at least one event type");
    }
    Ok(())
}

pub fn check_post(p: &PostArgs) -> Result<()> {
    check_counts(1, p.concurrency)?;
    check_batch(p.batch)?;
    check_types(&p.types)
}

pub fn check_fanout(f: &FanoutArgs) -> Result<()> {
    check_counts(f.events, 1)?;
    check_post(&f.post)?;
    if f.endpoints == 0 || f.endpoints > 10_000 {
        bail!("--endpoints must be in 1..=10000");
    }
    f.reads.check()
}

pub fn check_sustained(a: &SustainedArgs) -> Result<()> {
    check_post(&a.post)?;
    if a.endpoints == 0 || a.endpoints > 10_000 {
        bail!("--endpoints must be in 1..=10000");
    }
    if a.duration.is_zero() || a.duration > Duration::from_secs(86_400) {
        bail!("--duration must be in (0, 24h]");
    }
    if a.window < a.post.batch * a.endpoints || a.window > 10_000_000 {
        bail!("--window must hold at least one batch's deliveries (--batch x --endpoints) and at most 10000000");
    }
    a.reads.check()
}

pub fn check_memory(a: &MemoryArgs) -> Result<()> {
    check_counts(1, a.concurrency)?;
    check_batch(a.batch)?;
    if a.endpoints == 0 || a.endpoints > 1_000 {
        bail!("--endpoints must be in 1..=1000");
    }
    if a.pending < a.endpoints || a.pending > 20_000_000 || !a.pending.is_multiple_of(a.endpoints) {
        bail!("--pending must be a multiple of --endpoints, at most 20000000");
    }
    let secs = a.retry_after.as_secs();
    if !(1..=604_800).contains(&secs) || a.retry_after.subsec_nanos() != 0 {
        bail!("--retry-after must be whole seconds in 1s..=7d");
    }
    Ok(())
}

pub fn check_misbehave(a: &MisbehaveArgs) -> Result<()> {
    check_counts(a.events, 1)?;
    check_batch(a.batch)?;
    if a.events > 100_000 || a.bad_endpoints == 0 || a.bad_endpoints > 500 || a.kinds.is_empty() {
        bail!("--events must be in 1..=100000, --bad-endpoints in 1..=500, --kinds not empty");
    }
    if !(1..=20).contains(&a.rounds) {
        bail!("--rounds must be in 1..=20");
    }
    if a.paced_rate > 50_000 {
        bail!("--paced-rate must be at most 50000");
    }
    if a.paced_for > Duration::from_secs(600) {
        bail!("--paced-for must be at most 10m");
    }
    if a.bad_events == 0 || a.bad_events > 100_000 {
        bail!("--bad-events must be in 1..=100000");
    }
    if a.phase_timeout.is_zero() || a.phase_timeout > Duration::from_secs(3_600) {
        bail!("--phase-timeout must be in (0, 1h]");
    }
    if !(0.0..=1.0).contains(&a.fail_share) || !(1..=3_600).contains(&a.retry_after_s) {
        bail!("--fail-share must be in 0..=1 and --retry-after-s in 1..=3600");
    }
    Ok(())
}

/// The given pid (checked), or the single process named `hookd`, or none.
pub fn resolve_hookd_pid(given: Option<u32>) -> Result<Option<u32>> {
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
