//! `hookd endpoints list|create|get|update|delete|rotate|test|recover|replay`: `/v1/endpoints`
//! and its sub-routes. A new secret (create, rotate) is printed once, as the API gives it once.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::api::{query, seg, Api};
use super::deliveries::time_arg;
use super::output::{cell, items, next_page, Fields, Table};
use super::{CliError, Format};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List endpoints, newest first, a page at a time.
    List {
        /// Only this tenant's endpoints (admin key only; a tenant key sees its own).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Create an endpoint; its signing secret is shown this once.
    Create(CreateArgs),
    /// Show an endpoint with its delivery counts.
    Get { id: String },
    /// Change an endpoint: only the fields given change.
    Update(UpdateArgs),
    /// Delete an endpoint; its deliveries and their attempts are deleted after it.
    Delete { id: String },
    /// Replace the signing secret; the new one is shown this once.
    Rotate {
        id: String,
        /// The new secret (generated in the endpoint's form if left out).
        #[arg(long)]
        secret: Option<String>,
        /// How long the replaced secret still signs too (e.g. `1h`, `0s`; the API's default is 24 h).
        #[arg(long, value_parser = humantime::parse_duration)]
        overlap: Option<Duration>,
    },
    /// Send a signed test event to the endpoint now (not recorded) and show the outcome.
    Test {
        id: String,
        /// The event type to send (one of the daemon's event types).
        #[arg(long = "type", short = 't')]
        event_type: String,
    },
    /// Re-send every failed (retrying or dead-lettered) delivery of the endpoint created since
    /// a time, now.
    Recover {
        id: String,
        /// Deliveries created at or after: RFC 3339, unix milliseconds, or a duration ago (`2h`).
        #[arg(long, value_parser = time_arg)]
        since: String,
    },
    /// Send the events of a time range to the endpoint again, as new deliveries: every event of
    /// its tenant made in the range that its event types accept.
    Replay {
        id: String,
        /// Events made at or after: RFC 3339, unix milliseconds, or a duration ago (`1d`).
        #[arg(long, value_parser = time_arg)]
        since: String,
        /// Events made before (default: now): RFC 3339, unix milliseconds, or a duration ago.
        #[arg(long, value_parser = time_arg)]
        until: Option<String>,
        /// Sent as `Idempotency-Key`: a repeat with the same range makes nothing more and
        /// answers as the first did (kept for `[retention] idempotency`).
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

/// A time argument as the API takes it: unix milliseconds as a number, else the text.
fn time_value(t: String) -> Value {
    match t.parse::<u64>() {
        Ok(ms) => ms.into(),
        Err(_) => t.into(),
    }
}

/// `--limit` and `--cursor` of a list.
#[derive(Debug, Args)]
pub struct Page {
    /// At most this many per page (1..=500; the API's default is 50).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The page after the one that printed this cursor.
    #[arg(long)]
    pub cursor: Option<String>,
}

impl Page {
    pub fn pairs(&self) -> [(&'static str, Option<String>); 2] {
        [
            ("limit", self.limit.map(|l| l.to_string())),
            ("cursor", self.cursor.clone()),
        ]
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name for people.
    #[arg(long)]
    name: String,
    /// Where deliveries are POSTed (absolute http or https URL; `--url` is the daemon's).
    #[arg(long, value_name = "URL")]
    target: String,
    /// An event type to subscribe to: an exact name, `prefix.*` or `*` (repeat for more).
    #[arg(long = "event-type", short = 't', required = true)]
    event_types: Vec<String>,
    /// The tenant (the API's default is `default`; a tenant key's own).
    #[arg(long)]
    tenant: Option<String>,
    /// The signing secret (generated in the wire format's form if left out).
    #[arg(long)]
    secret: Option<String>,
    /// Create it disabled: it gets no deliveries until enabled.
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    id: String,
    #[arg(long)]
    name: Option<String>,
    /// Where deliveries are POSTed from now on.
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// Replaces the subscribed event types (repeat for more).
    #[arg(long = "event-type", short = 't')]
    event_types: Vec<String>,
    /// Deliver to it again.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Stop creating deliveries for it; scheduled ones are dead-lettered at their next attempt.
    #[arg(long)]
    disable: bool,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

/// Fields that create and update share.
#[derive(Debug, Args)]
pub struct CommonArgs {
    #[arg(long)]
    description: Option<String>,
    /// Metadata `KEY=VALUE` (repeat for more; on update, replaces the whole map).
    #[arg(long, value_parser = key_value)]
    metadata: Vec<(String, String)>,
    /// A reference wire format: standard, coreweave, gpuai, huddle01, cortex (docs/API.md).
    #[arg(long)]
    preset: Option<String>,
    /// A static header `NAME=VALUE` sent with every delivery (repeat for more; replaces all).
    #[arg(long = "header", value_parser = key_value)]
    headers: Vec<(String, String)>,
    /// Any other request fields as a JSON object, e.g. '{"retry_schedule": [60, 600]}'; the
    /// flags above win over it.
    #[arg(long, value_parser = json_object)]
    fields: Option<Map<String, Value>>,
    /// At most this many deliveries started per second (1..=10000).
    #[arg(long, value_name = "PER_SECOND", allow_negative_numbers = true)]
    rate_limit: Option<i64>,
    /// With --rate-limit: how many may start at once after a quiet spell (default 1).
    #[arg(long, requires = "rate_limit", allow_negative_numbers = true)]
    burst: Option<i64>,
    /// Lift the rate limit.
    #[arg(long, conflicts_with = "rate_limit")]
    no_rate_limit: bool,
    /// Strict ingest order, one delivery in flight (its burst must be 1).
    #[arg(long, conflicts_with = "no_fifo")]
    fifo: bool,
    /// Deliver in parallel again.
    #[arg(long)]
    no_fifo: bool,
}

impl CommonArgs {
    /// The request body: `--fields`, then every flag given.
    pub(crate) fn body(self) -> Map<String, Value> {
        let mut body = self.fields.unwrap_or_default();
        if let Some(d) = self.description {
            body.insert("description".into(), d.into());
        }
        if !self.metadata.is_empty() {
            body.insert("metadata".into(), pairs_object(self.metadata));
        }
        if let Some(p) = self.preset {
            body.insert("preset".into(), p.into());
        }
        if !self.headers.is_empty() {
            body.insert("headers".into(), pairs_object(self.headers));
        }
        if let Some(per_second) = self.rate_limit {
            let mut limit = json!({ "per_second": per_second });
            if let Some(b) = self.burst {
                limit["burst"] = b.into();
            }
            body.insert("rate_limit".into(), limit);
        } else if self.no_rate_limit {
            body.insert("rate_limit".into(), Value::Null);
        }
        if self.fifo || self.no_fifo {
            body.insert("fifo".into(), self.fifo.into());
        }
        body
    }
}

fn pairs_object(pairs: Vec<(String, String)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k, v.into())).collect())
}

/// `KEY=VALUE`, split at the first `=`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// A JSON object given on the command line.
pub fn json_object(s: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("expected a JSON object".to_owned()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

pub async fn run(api: &Api, cmd: Cmd, out: Format) -> Result<String, CliError> {
    match cmd {
        Cmd::List { tenant, page } => {
            let [limit, cursor] = page.pairs();
            let q = query(&[("tenant", tenant), limit, cursor]);
            let a = api.get(&format!("/v1/endpoints{q}")).await?;
            Ok(out.show(&a, list_text))
        }
        Cmd::Create(args) => {
            let mut body = args.common.body();
            body.insert("name".into(), args.name.into());
            body.insert("url".into(), args.target.into());
            body.insert("event_types".into(), json!(args.event_types));
            if let Some(t) = args.tenant {
                body.insert("tenant".into(), t.into());
            }
            if let Some(s) = args.secret {
                body.insert("secret".into(), s.into());
            }
            if args.disabled {
                body.insert("enabled".into(), false.into());
            }
            let a = api.post("/v1/endpoints", &body).await?;
            Ok(out.show(&a, endpoint_text))
        }
        Cmd::Get { id } => {
            let a = api.get(&format!("/v1/endpoints/{}", seg(&id))).await?;
            Ok(out.show(&a, endpoint_text))
        }
        Cmd::Update(args) => {
            let mut body = args.common.body();
            if let Some(n) = args.name {
                body.insert("name".into(), n.into());
            }
            if let Some(u) = args.target {
                body.insert("url".into(), u.into());
            }
            if !args.event_types.is_empty() {
                body.insert("event_types".into(), json!(args.event_types));
            }
            if args.enable || args.disable {
                body.insert("enabled".into(), args.enable.into());
            }
            if body.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give at least one field (see --help)".to_owned(),
                ));
            }
            let a = api
                .patch(&format!("/v1/endpoints/{}", seg(&args.id)), &body)
                .await?;
            Ok(out.show(&a, endpoint_text))
        }
        Cmd::Delete { id } => {
            let a = api.delete(&format!("/v1/endpoints/{}", seg(&id))).await?;
            Ok(out.show(&a, |_| format!("deleted endpoint {}\n", cell(&id.into()))))
        }
        Cmd::Rotate {
            id,
            secret,
            overlap,
        } => {
            let mut body = Map::new();
            if let Some(s) = secret {
                body.insert("secret".into(), s.into());
            }
            if let Some(o) = overlap {
                body.insert("overlap_seconds".into(), o.as_secs().into());
            }
            let path = format!("/v1/endpoints/{}/rotate-secret", seg(&id));
            let a = api.post(&path, &body).await?;
            Ok(out.show(&a, |v| {
                Fields::new()
                    .value("secret", &v["secret"])
                    .value(
                        "previous secret valid until",
                        &v["previous_secret_valid_until"],
                    )
                    .render()
                    + SECRET_ONCE
            }))
        }
        Cmd::Test { id, event_type } => {
            let path = format!("/v1/endpoints/{}/test", seg(&id));
            let a = api
                .post(&path, &json!({ "event_type": event_type }))
                .await?;
            Ok(out.show(&a, |v| {
                Fields::new()
                    .value("event", &v["event_id"])
                    .value("delivered", &v["delivered"])
                    .value("status", &v["status_code"])
                    .text("latency", ms(&v["latency_ms"]))
                    .value("error", &v["error"])
                    .render()
            }))
        }
        Cmd::Recover { id, since } => {
            let path = format!("/v1/endpoints/{}/recover", seg(&id));
            let a = api
                .post(&path, &json!({ "since": time_value(since) }))
                .await?;
            Ok(out.show(&a, |v| {
                Fields::new()
                    .value("scheduled", &v["scheduled"])
                    .value("busy", &v["busy"])
                    .render()
            }))
        }
        Cmd::Replay {
            id,
            since,
            until,
            idempotency_key,
        } => {
            let mut body = Map::new();
            body.insert("since".into(), time_value(since));
            if let Some(u) = until {
                body.insert("until".into(), time_value(u));
            }
            let path = format!("/v1/endpoints/{}/replay", seg(&id));
            let a = api
                .post_keyed(&path, &body, idempotency_key.as_deref())
                .await?;
            Ok(out.show(&a, |v| {
                Fields::new()
                    .value("scheduled", &v["scheduled"])
                    .value("since", &v["since"])
                    .value("until", &v["until"])
                    .render()
            }))
        }
    }
}

const SECRET_ONCE: &str = "(the secret is shown this once: store it now)\n";

fn list_text(list: &Value) -> String {
    let mut t = Table::new(&["ID", "NAME", "TENANT", "ENABLED", "EVENT TYPES", "URL"]);
    for e in items(list) {
        t.row(vec![
            cell(&e["id"]),
            cell(&e["name"]),
            cell(&e["tenant"]),
            cell(&e["enabled"]),
            cell(&e["event_types"]),
            cell(&e["url"]),
        ]);
    }
    t.render() + &next_page(list)
}

/// One endpoint; its `stats` (get) and `secret` (create) when the answer has them.
pub fn endpoint_text(e: &Value) -> String {
    let f = &e["format"];
    let mut fields = Fields::new()
        .value("id", &e["id"])
        .value("name", &e["name"])
        .value("url", &e["url"])
        .value("tenant", &e["tenant"])
        .value("event types", &e["event_types"])
        .value("enabled", &e["enabled"])
        .value("description", &e["description"])
        .text("metadata", map_text(&e["metadata"]))
        .value("preset", &f["preset"])
        .text(
            "signature",
            format!(
                "{} in {}",
                cell(&f["signature_scheme"]),
                cell(&f["signature_header"])
            ),
        )
        .text(
            "body",
            format!(
                "envelope {}, JSON {}",
                cell(&f["envelope"]),
                cell(&f["body_json"])
            ),
        )
        .text("static headers", map_text(&f["headers"]))
        .text(
            "rate limit",
            match &e["rate_limit"] {
                Value::Object(r) => {
                    format!("{}/s, burst {}", cell(&r["per_second"]), cell(&r["burst"]))
                }
                _ => "none".to_owned(),
            },
        )
        .text(
            "order",
            if e["fifo"] == true {
                "FIFO (one in flight)"
            } else {
                "any"
            }
            .to_owned(),
        )
        .text(
            "retry schedule",
            match &f["retry_schedule"] {
                Value::Array(s) => s
                    .iter()
                    .map(|x| format!("{}s", cell(x)))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => "the daemon's".to_owned(),
            },
        )
        .value("created", &e["created_at"])
        .value("updated", &e["updated_at"])
        .value(
            "previous secret valid until",
            &e["previous_secret_valid_until"],
        );
    let stats = &e["stats"];
    if stats.is_object() {
        fields = fields
            .value("delivered", &stats["delivered"])
            .value("failed", &stats["failed"])
            .value("retrying", &stats["retrying"])
            .value("last delivery", &stats["last_delivery_at"]);
    }
    let secret = &e["secret"];
    if secret.is_string() {
        fields.value("secret", secret).render() + SECRET_ONCE
    } else {
        fields.render()
    }
}

/// `{"a": "1"}` as `a=1, ...`; `-` when empty.
fn map_text(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{}={}", super::output::one_line(k), cell(v)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".to_owned(),
    }
}

/// `12 ms`, or `-`.
pub fn ms(v: &Value) -> String {
    match v.as_u64() {
        Some(n) => format!("{n} ms"),
        None => cell(v),
    }
}
