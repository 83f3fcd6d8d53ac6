//! The command line: subcommands, their arguments and the checks of their values.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use crate::cpu;

/// Load generator for hookd. Sends to 127.0.0.1 only; every run stops by itself.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Hard limit for the whole run in seconds; a watchdog exits the process when it is reached.
    /// The measurement itself stops a little earlier to leave time for results and cleanup.
    #[arg(long, global = true, default_value_t = 60.0)]
    pub max_seconds: f64,
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
    /// Event batches in flight while posting.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Events per POST /v1/events/batch.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Event types, used round robin (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "instance.ready")]
    pub types: Vec<String>,
    /// Pid of hookd, for its CPU time (optional: else the one process named `hookd`).
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

pub fn check_fanout(f: &FanoutArgs) -> Result<()> {
    check_counts(f.events, f.concurrency)?;
    check_batch(f.batch)?;
    check_types(&f.types)?;
    if f.endpoints == 0 || f.endpoints > 10_000 {
        bail!("--endpoints must be in 1..=10000");
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
