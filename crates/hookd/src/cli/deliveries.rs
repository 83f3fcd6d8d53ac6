//! `hookd deliveries list|get|retry`: an endpoint's deliveries filtered by status and time, one
//! delivery with every attempt's exact request and response, and a retry now.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::api::{query, seg, Api};
use super::endpoints::{ms, Page};
use super::output::{block, cell, items, next_page, one_line, Fields, Table};
use super::{CliError, Format};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List an endpoint's deliveries, newest first, a page at a time.
    List {
        /// The endpoint's id.
        endpoint: String,
        /// Only deliveries in this state (`failed`: retrying or dead-lettered).
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Created at or after: RFC 3339, unix milliseconds, or a duration ago (`2h`, `1d`).
        #[arg(long, value_parser = time_arg)]
        from: Option<String>,
        /// Created before: RFC 3339, unix milliseconds, or a duration ago.
        #[arg(long, value_parser = time_arg)]
        to: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Show a delivery and each attempt: the exact request sent and the response.
    Get { id: String },
    /// Retry a failed (retrying or dead-lettered) delivery now.
    Retry { id: String },
}

/// The `status` filter of the deliveries list.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    Pending,
    Retrying,
    Delivered,
    #[value(name = "dead_lettered", alias = "dead-lettered")]
    DeadLettered,
    Failed,
}

impl Status {
    fn as_api(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Retrying => "retrying",
            Status::Delivered => "delivered",
            Status::DeadLettered => "dead_lettered",
            Status::Failed => "failed",
        }
    }
}

/// `from`/`to`: a duration (`90m`, `2h 30m`) becomes that long before now in unix milliseconds;
/// anything else goes to the API as given (it takes RFC 3339 or unix milliseconds).
pub fn time_arg(s: &str) -> Result<String, String> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(s.to_owned());
    }
    match humantime::parse_duration(s) {
        Ok(ago) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|e| e.to_string())?;
            Ok(now.saturating_sub(ago).as_millis().to_string())
        }
        Err(_) => Ok(s.to_owned()),
    }
}

pub async fn run(api: &Api, cmd: Cmd, out: Format) -> Result<String, CliError> {
    match cmd {
        Cmd::List {
            endpoint,
            status,
            from,
            to,
            page,
        } => {
            let [limit, cursor] = page.pairs();
            let q = query(&[
                ("status", status.map(|s| s.as_api().to_owned())),
                ("from", from),
                ("to", to),
                limit,
                cursor,
            ]);
            let path = format!("/v1/endpoints/{}/deliveries{q}", seg(&endpoint));
            let a = api.get(&path).await?;
            Ok(out.show(&a, |list| deliveries_table(items(list)) + &next_page(list)))
        }
        Cmd::Get { id } => {
            let a = api.get(&format!("/v1/deliveries/{}", seg(&id))).await?;
            Ok(out.show(&a, delivery_text))
        }
        Cmd::Retry { id } => {
            let path = format!("/v1/deliveries/{}/retry", seg(&id));
            let a = api.post(&path, &json!({})).await?;
            Ok(out.show(&a, |d| {
                format!("retry scheduled now\n{}", summary(d).render())
            }))
        }
    }
}

/// Deliveries, one per row.
pub fn deliveries_table(list: &[Value]) -> String {
    let mut t = Table::new(&[
        "ID",
        "STATUS",
        "ATTEMPTS",
        "LAST STATUS",
        "EVENT TYPE",
        "ENDPOINT",
        "NEXT ATTEMPT",
        "UPDATED",
    ]);
    for d in list {
        t.row(vec![
            cell(&d["id"]),
            cell(&d["status"]),
            attempt_count(&d["attempts"]),
            cell(&d["last_status_code"]),
            cell(&d["event_type"]),
            cell(&d["endpoint_id"]),
            cell(&d["next_attempt_at"]),
            cell(&d["updated_at"]),
        ]);
    }
    t.render()
}

fn summary(d: &Value) -> Fields {
    Fields::new()
        .value("id", &d["id"])
        .value("status", &d["status"])
        .value("event", &d["event_id"])
        .value("event type", &d["event_type"])
        .value("endpoint", &d["endpoint_id"])
        .value("tenant", &d["tenant"])
        .text("attempts", attempt_count(&d["attempts"]))
        .value("last status", &d["last_status_code"])
        .value("last attempt", &d["last_attempt_at"])
        .value("next attempt", &d["next_attempt_at"])
        .value("created", &d["created_at"])
        .value("updated", &d["updated_at"])
}

/// A delivery's `attempts`: a count in lists, the attempts themselves in `GET /v1/deliveries/{id}`.
fn attempt_count(v: &Value) -> String {
    match v.as_array() {
        Some(list) => list.len().to_string(),
        None => cell(v),
    }
}

/// The delivery, then each attempt: what was sent (method, URL, headers, body) and what came
/// back (status, latency, error, the body's first 4 KiB).
pub fn delivery_text(d: &Value) -> String {
    let mut out = summary(d).render();
    for a in d["attempts"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        out.push_str(&attempt_text(a));
    }
    out
}

fn attempt_text(a: &Value) -> String {
    let outcome = match &a["status_code"] {
        Value::Null => cell(&a["error"]),
        code => format!("HTTP {}", cell(code)),
    };
    let mut out = format!(
        "\nattempt {} at {}: {}, {}\n",
        cell(&a["number"]),
        cell(&a["at"]),
        outcome,
        ms(&a["latency_ms"])
    );
    out.push_str("  request\n");
    match &a["request"] {
        Value::Null => out.push_str("    (nothing was sent)\n"),
        r => {
            out.push_str(&format!("    {} {}\n", cell(&r["method"]), cell(&r["url"])));
            for h in r["headers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                out.push_str(&format!(
                    "    {}: {}\n",
                    one_line(h["name"].as_str().unwrap_or("")),
                    one_line(h["value"].as_str().unwrap_or(""))
                ));
            }
            out.push('\n');
            out.push_str(&block(r["body"].as_str().unwrap_or(""), 4));
            if r["endpoint_updated_since"] == json!(true) {
                out.push_str(
                    "    (rebuilt with the endpoint's current format and secrets, which changed \
                     after this attempt)\n",
                );
            }
        }
    }
    out.push_str("  response\n");
    let mut resp = Fields::new().value("status", &a["status_code"]);
    if !a["error"].is_null() {
        resp = resp
            .value("error", &a["error"])
            .value("detail", &a["error_detail"]);
    }
    for line in resp.render().lines() {
        out.push_str(&format!("    {line}\n"));
    }
    // No status: no response came, so no body either.
    if let (false, Some(body)) = (a["status_code"].is_null(), a["response_body"].as_str()) {
        out.push('\n');
        out.push_str(&block(body, 4));
    }
    out
}
