//! `hookd --config config/hookd.toml`: tracing, config (invalid: one line on stderr, exit 64),
//! bind, run until SIGTERM or ctrl-c, drain, exit 0. Other commands are subcommands; serving is
//! the default. The client subcommands (`hookd endpoints ...`, see `hookd::cli`) read no config:
//! they talk to a running daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The hookd webhook delivery daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigFile,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `--config`, taken before the daemon's subcommands or after them (not by the client ones,
/// which read no config).
#[derive(Debug, clap::Args)]
struct ConfigFile {
    /// TOML config file, laid over the built-in defaults (see config/hookd.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and deliver webhooks (the default).
    Serve {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Re-seal every endpoint secret under a new master key, then exit. Stop the daemon first.
    Rekey {
        #[command(flatten)]
        config: ConfigFile,
        /// The new master key (32 bytes, base64 or hex); created with a random key if missing.
        #[arg(long)]
        new_key_file: PathBuf,
    },
    #[command(flatten)]
    Client(Box<hookd::cli::Command>),
}

const EX_CONFIG: u8 = 64;

fn main() -> ExitCode {
    no_huge_pages();
    let args = Args::parse();
    let top = args.config.config;
    match args.command {
        Some(Command::Client(client)) => hookd::cli::run(*client),
        None => with_config(top, serve_until_stopped),
        Some(Command::Serve { config }) => with_config(config.config.or(top), serve_until_stopped),
        Some(Command::Rekey {
            config,
            new_key_file,
        }) => with_config(config.config.or(top), |cfg| rekey(&cfg, &new_key_file)),
    }
}

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP=1` asks for
/// them. mimalloc asks the kernel for huge pages where it may, and each first touch of one
/// zeroes 2 MiB however little of it is used: in a profile of 64 producers posting single
/// events, the kernel's page clearing was 13% of the HTTP threads' time, and side by side hookd
/// used 7-15% more CPU per event and 45-55% more peak memory with them (BENCHMARKS.md, eighth
/// pass). A process-wide flag, read by the kernel at each fault, so it also covers what was
/// mapped before this call.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var("MIMALLOC_ALLOW_THP").as_deref() != Ok("1") {
        // Refused only by kernels older than 3.15; nothing to do then but run with them.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}

/// Tracing on stderr, then the config, then `run` on it.
fn with_config(path: Option<PathBuf>, run: impl FnOnce(hookd::Config) -> ExitCode) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match hookd::config::load(path.as_deref(), |k| std::env::var(k).ok()) {
        Ok(cfg) => run(cfg),
        Err(e) => {
            eprintln!("hookd: invalid config: {e}");
            ExitCode::from(EX_CONFIG)
        }
    }
}

fn rekey(cfg: &hookd::Config, new_key_file: &std::path::Path) -> ExitCode {
    match hookd::rekey::rekey(cfg, new_key_file) {
        Ok(done) => {
            if done.created_key_file {
                println!(
                    "created {} with a new random key, readable only by its owner",
                    new_key_file.display()
                );
            }
            println!(
                "re-sealed the secrets of {} endpoints under the key in {}; start hookd with \
                 that key ([secrets] master_key_file or HOOKD_MASTER_KEY)",
                done.endpoints,
                new_key_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hookd rekey: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve_until_stopped(cfg: hookd::Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hookd-http")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookd: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cfg: hookd::Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", cfg.listen))?;
    hookd::run(cfg, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
