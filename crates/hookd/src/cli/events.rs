//! `hookd events send|get`: `POST /v1/events` and `GET /v1/events/{id}` with its deliveries.
//!
//! `send` passes `--data` through byte for byte (a `RawValue`), since an endpoint with
//! `body_json: producer` delivers the data's bytes exactly as they came.

use std::io::Read;

use clap::Subcommand;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::api::{seg, Api};
use super::deliveries::deliveries_table;
use super::output::{block, Fields};
use super::{CliError, Format};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Send an event; it is answered once it is on disk, then delivered to every matching endpoint.
    Send {
        /// The event type (one of the daemon's `[events] types`).
        #[arg(long = "type", short = 't')]
        event_type: String,
        /// The data: a JSON object, `@FILE` to read it from a file, `@-` from stdin (default `{}`).
        #[arg(long, short = 'd')]
        data: Option<String>,
        /// The tenant (the API's default is `default`; a tenant key's own).
        #[arg(long)]
        tenant: Option<String>,
        /// The event's id (1..=128 of `[A-Za-z0-9_.:-]`); a repeated id is not stored twice.
        #[arg(long)]
        id: Option<String>,
        /// Sent as `Idempotency-Key`: a repeat answers the original event and stores nothing.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Show an event, its data and its deliveries.
    Get { id: String },
}

#[derive(Serialize)]
struct NewEvent<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

pub async fn run(api: &Api, cmd: Cmd, out: Format) -> Result<String, CliError> {
    match cmd {
        Cmd::Send {
            event_type,
            data,
            tenant,
            id,
            idempotency_key,
        } => {
            let data = data.map(|d| read_data(&d)).transpose()?;
            let data = data
                .map(|d| {
                    RawValue::from_string(d)
                        .map_err(|e| CliError::Usage(format!("--data is not JSON: {e}")))
                })
                .transpose()?;
            let body = NewEvent {
                event_type: &event_type,
                data: data.as_deref(),
                tenant: tenant.as_deref(),
                id: id.as_deref(),
            };
            let a = api
                .post_keyed("/v1/events", &body, idempotency_key.as_deref())
                .await?;
            let replayed = a
                .headers
                .get("idempotent-replayed")
                .is_some_and(|v| v == "true");
            Ok(out.show(&a, |e| {
                let fields = Fields::new()
                    .value("id", &e["id"])
                    .value("type", &e["type"])
                    .value("tenant", &e["tenant"])
                    .value("created", &e["created_at"]);
                let fields = if replayed {
                    fields.text(
                        "replayed",
                        "yes: this is the event first sent with that key or id",
                    )
                } else {
                    fields
                };
                fields.render()
            }))
        }
        Cmd::Get { id } => {
            let a = api.get(&format!("/v1/events/{}", seg(&id))).await?;
            Ok(out.show(&a, event_text))
        }
    }
}

/// `--data` text, or the file or stdin it names with `@`.
fn read_data(arg: &str) -> Result<String, CliError> {
    match arg.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CliError::Usage(format!("--data @-: reading stdin: {e}")))?;
            Ok(s)
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("--data @{path}: {e}"))),
        None => Ok(arg.to_owned()),
    }
}

fn event_text(e: &Value) -> String {
    let data = serde_json::to_string_pretty(&e["data"]).unwrap_or_default();
    let deliveries = e["deliveries"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    Fields::new()
        .value("id", &e["id"])
        .value("type", &e["type"])
        .value("tenant", &e["tenant"])
        .value("created", &e["created_at"])
        .render()
        + "data\n"
        + &block(&data, 2)
        + "\ndeliveries\n"
        + &deliveries_table(deliveries)
}
