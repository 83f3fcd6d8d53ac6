//! Configuration: the commented `config/hookd.toml` embedded as the defaults, the user's file
//! merged over it, then `HOOKD_*` environment variables; then validation into [`Config`], the
//! runtime struct the rest of the daemon reads. Every failure is one line for stderr.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use hookd_log::MasterKey;
use hookd_sender::rustls::pki_types::pem::PemObject;
use hookd_sender::rustls::pki_types::CertificateDer;
use hookd_types::event::is_valid_type_name;
use hookd_types::retry::RetryPolicy;

use crate::tls::TlsFiles;

pub const DEFAULTS: &str = include_str!("../../../config/hookd.toml");

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: String,
    data_dir: PathBuf,
    server: Server,
    auth: Auth,
    ingest: Ingest,
    events: Events,
    sender: Sender,
    retry: Retry,
    scheduler: Scheduler,
    storage: Storage,
    retention: RetentionFile,
    shutdown: Shutdown,
    tls: Tls,
    secrets: Secrets,
    metrics: Metrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Server {
    max_json_depth: usize,
    max_header_bytes: usize,
    header_read_timeout: String,
    max_connections: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Auth {
    admin_key: String,
    key_rate_limit: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ingest {
    max_body_bytes: usize,
    max_batch: usize,
    rate_limit: u32,
    max_commit_batch: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Events {
    types: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sender {
    timeout: String,
    allow_private_targets: bool,
    require_https: bool,
    per_endpoint_concurrency: usize,
    start_concurrency: usize,
    max_in_flight: usize,
    ca_file: String,
    breaker_failures: u32,
    breaker_interval: String,
    breaker_max_interval: String,
    auto_disable_after: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retry {
    schedule: Vec<String>,
    jitter: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scheduler {
    shards: usize,
    horizon: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFile {
    history: String,
    idempotency: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Storage {
    cache_mb: u64,
    background_flush: String,
    checkpoint_interval: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shutdown {
    grace: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    cert_file: String,
    key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Secrets {
    master_key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metrics {
    per_endpoint: bool,
}

/// Where the master key that seals endpoint secrets comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `HOOKD_MASTER_KEY`.
    Env(Box<MasterKey>),
    /// `[secrets] master_key_file`, else `<data_dir>/master.key`; created on first start.
    File(PathBuf),
}

/// `[server]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_json_depth: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// hyper refuses a smaller read buffer, which bounds the request head.
pub const MIN_HEADER_BYTES: usize = 8192;

fn server_limits(s: &Server) -> Result<ServerLimits, ConfigError> {
    // The JavaScript printer wraps event data in an envelope (one more level) and refuses
    // anything past its own cap rather than risk the stack.
    let most = hookd_sender::jsjson::MAX_DEPTH - 1;
    if !(1..=most).contains(&s.max_json_depth) {
        return Err(err(format!("server.max_json_depth must be in 1..={most}")));
    }
    if s.max_header_bytes < MIN_HEADER_BYTES {
        return Err(err(format!(
            "server.max_header_bytes must be at least {MIN_HEADER_BYTES}"
        )));
    }
    let header_read_timeout = duration("server.header_read_timeout", &s.header_read_timeout)?;
    if header_read_timeout.is_zero() {
        return Err(err("server.header_read_timeout must be positive"));
    }
    if s.max_connections == 0 {
        return Err(err("server.max_connections must be positive"));
    }
    Ok(ServerLimits {
        max_json_depth: s.max_json_depth,
        max_header_bytes: s.max_header_bytes,
        header_read_timeout,
        max_connections: s.max_connections,
    })
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `[server]`: limits on what a client can make the listener hold.
    pub server: ServerLimits,
    pub admin_key: Option<String>,
    /// Requests per second per tenant API key (`[auth] key_rate_limit`); 0: unlimited.
    pub key_rate_limit: u32,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub rate_limit: u32,
    pub max_commit_batch: usize,
    pub event_types: Vec<String>,
    pub timeout: Duration,
    pub allow_private_targets: bool,
    pub require_https: bool,
    pub per_endpoint_concurrency: usize,
    /// `[sender] start_concurrency`: a new endpoint's limit (slow start).
    pub start_concurrency: usize,
    pub max_in_flight: usize,
    /// `[sender] breaker_*`: when an endpoint's circuit breaker opens and for how long.
    pub breaker: hookd_scheduler::BreakerConfig,
    /// `[sender] auto_disable_after`: disable endpoints failing this long; `None`: never.
    pub auto_disable_after: Option<Duration>,
    /// Extra trusted certificate authorities for https endpoints (`[sender] ca_file`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub retry: RetryPolicy,
    pub shards: usize,
    /// `[scheduler] horizon`: deadlines due later stay on disk until time comes near.
    pub horizon: Duration,
    pub cache_bytes: u64,
    /// sled's own periodic flush (`[storage] background_flush`); `None`: off.
    pub background_flush: Option<Duration>,
    /// `[storage] checkpoint_interval`.
    pub checkpoint_interval: Duration,
    /// `[retention] history`: finished deliveries, their attempts and events are kept this long.
    pub history: Duration,
    /// `[retention] idempotency`: an `Idempotency-Key` is remembered this long.
    pub idempotency: Duration,
    pub grace: Duration,
    /// Serve the API over TLS (`[tls]`); `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    pub master_key: MasterKeySource,
    /// `[metrics] per_endpoint`: attempt outcomes also counted per endpoint.
    pub metrics_per_endpoint: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("master_key", &self.master_key)
            .finish_non_exhaustive()
    }
}

/// Recursively lays `over` on top of `base`.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn duration(name: &str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s).map_err(|e| {
        err(format!(
            "{name}: {s:?} is not a duration like \"30s\" ({e})"
        ))
    })
}

fn env_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(err(format!("{name}: {v:?} is not true or false"))),
    }
}

/// Loads defaults, then `path` (if any), then the environment `env`.
pub fn load(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = path
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| (path.display().to_string(), text))
                .map_err(|e| err(format!("reading {}: {e}", path.display())))
        })
        .transpose()?;
    load_text(text.as_ref().map(|(name, text)| (&**name, &**text)), env)
}

/// [`load`] with the file's text given: `(name for messages, text)`.
pub fn load_text(
    file: Option<(&str, &str)>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut table: toml::Table =
        toml::from_str(DEFAULTS).map_err(|e| err(format!("built-in defaults: {e}")))?;
    if let Some((name, text)) = file {
        let user: toml::Table = toml::from_str(text)
            .map_err(|e| err(format!("{name}: {}", one_line(&e.to_string()))))?;
        merge(&mut table, user);
    }
    let mut f: File = table
        .try_into()
        .map_err(|e: toml::de::Error| err(one_line(&e.to_string())))?;
    if let Some(v) = env("HOOKD_LISTEN") {
        f.listen = v;
    }
    if let Some(v) = env("HOOKD_DATA_DIR") {
        f.data_dir = v.into();
    }
    if let Some(v) = env("HOOKD_ADMIN_KEY") {
        f.auth.admin_key = v;
    }
    if let Some(v) = env("HOOKD_ALLOW_PRIVATE_TARGETS") {
        f.sender.allow_private_targets = env_bool("HOOKD_ALLOW_PRIVATE_TARGETS", &v)?;
    }
    if let Some(v) = env("HOOKD_SHARDS") {
        f.scheduler.shards = v
            .parse()
            .map_err(|_| err(format!("HOOKD_SHARDS: {v:?} is not a number")))?;
    }
    let env_master_key = env("HOOKD_MASTER_KEY")
        .map(|v| MasterKey::parse(&v).map_err(|e| err(format!("HOOKD_MASTER_KEY: {e}"))))
        .transpose()?;
    let mut cfg = validate(f)?;
    if let Some(k) = env_master_key {
        cfg.master_key = MasterKeySource::Env(Box::new(k));
    }
    Ok(cfg)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn validate(f: File) -> Result<Config, ConfigError> {
    let listen: SocketAddr = f.listen.parse().map_err(|_| {
        err(format!(
            "listen: {:?} is not an address like 127.0.0.1:8080",
            f.listen
        ))
    })?;
    let server = server_limits(&f.server)?;
    let admin_key = match f.auth.admin_key.trim() {
        "" => None,
        k if k.len() < 16 => return Err(err("auth.admin_key: use at least 16 characters")),
        k => Some(k.to_owned()),
    };
    if f.ingest.max_body_bytes == 0 || f.ingest.max_batch == 0 || f.ingest.max_commit_batch == 0 {
        return Err(err(
            "ingest: max_body_bytes, max_batch and max_commit_batch must be positive",
        ));
    }
    if let Some(bad) = f.events.types.iter().find(|t| !is_valid_type_name(t)) {
        return Err(err(format!(
            "events.types: {bad:?} is not an event type name like \"job.completed\""
        )));
    }
    if f.events.types.is_empty() {
        return Err(err("events.types: list at least one event type"));
    }
    let timeout = duration("sender.timeout", &f.sender.timeout)?;
    if timeout.is_zero() {
        return Err(err("sender.timeout must be positive"));
    }
    if f.sender.per_endpoint_concurrency == 0 || f.sender.max_in_flight == 0 {
        return Err(err(
            "sender: per_endpoint_concurrency and max_in_flight must be positive",
        ));
    }
    // Above per_endpoint_concurrency it is that limit (the scheduler clamps it), so the
    // default of 2 stays valid beside a per-endpoint limit of 1.
    if f.sender.start_concurrency == 0 {
        return Err(err("sender.start_concurrency must be positive"));
    }
    let breaker = hookd_scheduler::BreakerConfig {
        failures: f.sender.breaker_failures,
        interval: duration("sender.breaker_interval", &f.sender.breaker_interval)?,
        max_interval: duration(
            "sender.breaker_max_interval",
            &f.sender.breaker_max_interval,
        )?,
    };
    if breaker.failures == 0 || breaker.interval.is_zero() {
        return Err(err(
            "sender: breaker_failures and breaker_interval must be positive",
        ));
    }
    if breaker.max_interval < breaker.interval {
        return Err(err(
            "sender.breaker_max_interval must be at least breaker_interval",
        ));
    }
    let auto_disable_after = Some(duration(
        "sender.auto_disable_after",
        &f.sender.auto_disable_after,
    )?)
    .filter(|d| !d.is_zero());
    let schedule = f
        .retry
        .schedule
        .iter()
        .map(|s| duration("retry.schedule", s))
        .collect::<Result<Vec<_>, _>>()?;
    if !(0.0..1.0).contains(&f.retry.jitter) {
        return Err(err("retry.jitter must be in 0.0..1.0"));
    }
    let extra_roots = match f.sender.ca_file.trim() {
        "" => Vec::new(),
        path => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| err(format!("sender.ca_file: {path:?}: {e}")))?;
            if certs.is_empty() {
                return Err(err(format!(
                    "sender.ca_file: {path:?} holds no certificate"
                )));
            }
            certs
        }
    };
    let shards = match f.scheduler.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n if n > 1024 => return Err(err("scheduler.shards: at most 1024")),
        n => n,
    };
    let history = duration("retention.history", &f.retention.history)?;
    let idempotency = duration("retention.idempotency", &f.retention.idempotency)?;
    if history < Duration::from_secs(1) || idempotency < Duration::from_secs(1) {
        return Err(err(
            "retention.history and retention.idempotency: at least 1s",
        ));
    }
    let horizon = duration("scheduler.horizon", &f.scheduler.horizon)?;
    if horizon < Duration::from_secs(1) {
        return Err(err("scheduler.horizon: at least 1s"));
    }
    if f.storage.cache_mb == 0 {
        return Err(err("storage.cache_mb must be positive"));
    }
    let background_flush = Some(duration(
        "storage.background_flush",
        &f.storage.background_flush,
    )?)
    .filter(|d| !d.is_zero());
    let checkpoint_interval = duration(
        "storage.checkpoint_interval",
        &f.storage.checkpoint_interval,
    )?;
    if checkpoint_interval.is_zero() {
        return Err(err("storage.checkpoint_interval must be positive"));
    }
    let tls = match (f.tls.cert_file.trim(), f.tls.key_file.trim()) {
        ("", "") => None,
        ("", _) | (_, "") => {
            return Err(err(
                "tls: set both cert_file and key_file, or neither for plain HTTP",
            ))
        }
        (cert, key) => Some(TlsFiles::load(cert.into(), key.into()).map_err(err)?),
    };
    let master_key = MasterKeySource::File(match f.secrets.master_key_file.trim() {
        "" => f.data_dir.join("master.key"),
        path => path.into(),
    });
    Ok(Config {
        listen,
        data_dir: f.data_dir,
        server,
        admin_key,
        key_rate_limit: f.auth.key_rate_limit,
        max_body_bytes: f.ingest.max_body_bytes,
        max_batch: f.ingest.max_batch,
        rate_limit: f.ingest.rate_limit,
        max_commit_batch: f.ingest.max_commit_batch,
        event_types: f.events.types,
        timeout,
        allow_private_targets: f.sender.allow_private_targets,
        require_https: f.sender.require_https,
        per_endpoint_concurrency: f.sender.per_endpoint_concurrency,
        start_concurrency: f.sender.start_concurrency,
        max_in_flight: f.sender.max_in_flight,
        breaker,
        auto_disable_after,
        extra_roots,
        retry: RetryPolicy {
            schedule,
            jitter: f.retry.jitter,
        },
        shards,
        horizon,
        cache_bytes: f.storage.cache_mb << 20,
        background_flush,
        checkpoint_interval,
        history,
        idempotency,
        grace: duration("shutdown.grace", &f.shutdown.grace)?,
        tls,
        master_key,
        metrics_per_endpoint: f.metrics.per_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn with_file(text: &str) -> Result<Config, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        load(Some(f.path()), no_env)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = load(None, no_env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert!(!c.allow_private_targets);
        assert_eq!(c.retry.schedule.len(), 7);
        assert_eq!(c.retry.schedule[6], Duration::from_secs(86_400));
        assert_eq!(c.max_body_bytes, 256 * 1024);
        assert!(c.admin_key.is_none());
        assert_eq!(c.key_rate_limit, 1000);
        assert!(c.shards >= 1);
        assert_eq!(c.background_flush, Some(Duration::from_millis(200)));
        // The slow start the scheduler's own tests assume is the one the daemon ships.
        assert_eq!(c.start_concurrency, hookd_scheduler::START_CONCURRENCY);
        assert_eq!(
            c.server,
            ServerLimits {
                max_json_depth: 64,
                max_header_bytes: 16384,
                header_read_timeout: Duration::from_secs(10),
                max_connections: 1024,
            }
        );
    }

    #[test]
    fn zero_background_flush_turns_it_off() {
        for zero in ["\"0\"", "\"0s\"", "\"0ms\""] {
            let c = with_file(&format!("[storage]\nbackground_flush = {zero}")).unwrap();
            assert_eq!(c.background_flush, None, "{zero}");
        }
        let c = with_file("[storage]\nbackground_flush = \"1s\"").unwrap();
        assert_eq!(c.background_flush, Some(Duration::from_secs(1)));
    }

    #[test]
    fn master_key_from_env_file_or_data_dir() {
        let c = load(None, no_env).unwrap();
        assert!(
            matches!(&c.master_key, MasterKeySource::File(p) if p.ends_with("data/master.key"))
        );
        let c = with_file("[secrets]\nmaster_key_file = \"/etc/hookd/master.key\"").unwrap();
        assert!(
            matches!(&c.master_key, MasterKeySource::File(p) if p.to_str() == Some("/etc/hookd/master.key"))
        );
        let key = MasterKey::generate().unwrap();
        let text = key.to_base64();
        let env = |k: &str| (k == "HOOKD_MASTER_KEY").then(|| text.clone());
        let c = load(None, env).unwrap();
        assert!(matches!(&c.master_key, MasterKeySource::Env(k) if k.same_as(&key)));
        assert!(!format!("{c:?}").contains(&text), "the key in Debug");
        let bad = |k: &str| (k == "HOOKD_MASTER_KEY").then(|| "sesame-1234".to_owned());
        let e = load(None, bad).err().unwrap().to_string();
        assert!(
            e.contains("HOOKD_MASTER_KEY") && !e.contains("sesame"),
            "{e}"
        );
    }

    #[test]
    fn file_then_env_override() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "listen = \"127.0.0.1:9000\"\n[retry]\nschedule = [\"1s\"]"
        )
        .unwrap();
        let env = |k: &str| (k == "HOOKD_LISTEN").then(|| "127.0.0.1:9001".to_owned());
        let c = load(Some(f.path()), env).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.retry.schedule, vec![Duration::from_secs(1)]);
        assert_eq!(c.max_batch, 1000, "untouched keys keep their defaults");
    }

    #[test]
    fn invalid_configs_say_why() {
        for (text, needle) in [
            ("listen = \"nonsense\"", "listen"),
            ("[sender]\ntimeout = \"soon\"", "sender.timeout"),
            ("[sender]\ntimout = \"1s\"", "timout"),
            ("[retry]\njitter = 2.0", "jitter"),
            (
                "[storage]\nbackground_flush = \"often\"",
                "storage.background_flush",
            ),
            ("[events]\ntypes = [\"Bad Type\"]", "events.types"),
            (
                "[sender]\nca_file = \"/nonexistent/ca.pem\"",
                "sender.ca_file",
            ),
            // Not TOML at all: the parser's position.
            ("listen = ", "line 1"),
            ("[tls]\ncert_file = \"/nonexistent/cert.pem\"", "tls"),
            (
                "[tls]\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/k.pem\"",
                "tls.cert_file",
            ),
            ("[server]\nmax_json_depth = 0", "server.max_json_depth"),
            ("[server]\nmax_json_depth = 256", "server.max_json_depth"),
            (
                "[server]\nmax_header_bytes = 100",
                "server.max_header_bytes",
            ),
            (
                "[server]\nheader_read_timeout = \"0s\"",
                "server.header_read_timeout",
            ),
            (
                "[server]\nheader_read_timeout = \"slow\"",
                "server.header_read_timeout",
            ),
            ("[server]\nmax_connections = 0", "server.max_connections"),
            (
                "[sender]\nstart_concurrency = 0",
                "sender.start_concurrency",
            ),
        ] {
            let e = with_file(text).err().unwrap().to_string();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains(needle), "{text} -> {e}");
        }
    }
}
