//! `hookd endpoints|events|deliveries ...`: the operator's client of a running daemon, through
//! the HTTP API of docs/API.md and nothing else.
//!
//! - [`Command`]: the client subcommands; each resource in its own module ([`endpoints`],
//!   [`events`], [`deliveries`]) with its arguments, its requests and its text rendering.
//! - [`Connection`]: where the daemon is and the key to call it with (`--url`/`HOOKD_URL`,
//!   `--api-key`/`HOOKD_API_KEY`, `--ca-file`), and `--json`.
//! - [`api`]: one request to the daemon over http or https (rustls) and its answer, or a
//!   [`CliError`].
//! - [`output`]: aligned tables and field lists for people; `--json` prints the API's body as is.
//!
//! Exit codes (the README lists them): 0 success; [`EXIT_USAGE`] (2) bad arguments, as clap's
//! own; [`EXIT_API`] (3) the API answered with an error, whose code and message go to stderr;
//! [`EXIT_CONNECTION`] (4) no answer from the daemon (refused, TLS, timeout, not an API answer).
//!
//! The API key is only ever put in the `authorization` header (marked sensitive): no message,
//! `Debug` output or `--help` text shows it.

pub mod api;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod output;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::Subcommand;

use self::api::{Answer, Api};

/// Bad arguments (clap exits with the same code on its own usage errors).
pub const EXIT_USAGE: u8 = 2;
/// The daemon answered with an error (`{"error": {"code", "message"}}`, or another non-2xx).
pub const EXIT_API: u8 = 3;
/// The daemon could not be reached or did not answer as hookd's API does.
pub const EXIT_CONNECTION: u8 = 4;

/// The client subcommands, flattened into `hookd`'s own.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Endpoints of a running daemon: list, create, get, update, delete, rotate, test.
    Endpoints {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: endpoints::Cmd,
    },
    /// Events of a running daemon: send, get (with its deliveries).
    Events {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: events::Cmd,
    },
    /// Deliveries of a running daemon: list, get (attempts with request and response), retry.
    Deliveries {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        cmd: deliveries::Cmd,
    },
}

/// How to reach the daemon, and how to print its answers.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The daemon's base URL (http or https).
    #[arg(
        long,
        env = "HOOKD_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The admin key or a tenant's API key (prefer the environment variable: a command line is
    /// visible to other users of the machine).
    #[arg(long, env = "HOOKD_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<ApiKey>,
    /// A PEM file of CA certificates to trust for https, besides the public roots.
    #[arg(long, env = "HOOKD_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Give up on an answer after this long (e.g. `30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
    /// Print the API's JSON answer as is, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// An API key: kept out of `Debug` and every message.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ApiKey(s.to_owned()))
    }
}

/// Why a client command failed; [`CliError::exit_code`] tells the shell which kind.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    /// A non-2xx answer: `code` is the API's error code, or `HTTP_<status>` when the body is not
    /// the API's error shape (a proxy in between, say).
    #[error("{code} (HTTP {status}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Connection(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Api { .. } => EXIT_API,
            CliError::Connection(_) => EXIT_CONNECTION,
        }
    }
}

/// Text for people or the API's JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// The answer's body as is (`--json`), or `render` of its JSON value.
    pub fn show(
        self,
        answer: &Answer,
        render: impl FnOnce(&serde_json::Value) -> String,
    ) -> String {
        match self {
            Format::Json => answer.raw_text(),
            Format::Text => render(&answer.body),
        }
    }
}

/// Runs one client command: its output on stdout, or the failure on stderr and its exit code.
pub fn run(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookd: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(command)) {
        Ok(out) => {
            print!("{out}");
            if !out.is_empty() && !out.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            match &e {
                CliError::Api { .. } => eprintln!("hookd: API error {e}"),
                _ => eprintln!("hookd: {e}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(command: Command) -> Result<String, CliError> {
    match command {
        Command::Endpoints { conn, cmd } => {
            endpoints::run(&Api::new(&conn)?, cmd, conn.format()).await
        }
        Command::Events { conn, cmd } => events::run(&Api::new(&conn)?, cmd, conn.format()).await,
        Command::Deliveries { conn, cmd } => {
            deliveries::run(&Api::new(&conn)?, cmd, conn.format()).await
        }
    }
}

impl Connection {
    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            Format::Text
        }
    }
}
