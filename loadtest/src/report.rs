//! Printing results: a human line and a single-line JSON object per mode, and the rounding and
//! rate helpers they share.

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::baseline::BaselineResult;
use crate::client;
use crate::fanout::FanoutResult;
use crate::reads::{reads_line, ReadsResult};

pub fn r3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

pub fn r1(x: f64) -> f64 {
    if x.is_finite() {
        (x * 10.0).round() / 10.0
    } else {
        0.0
    }
}

pub fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

pub fn us_per(cpu_secs: f64, n: u64) -> f64 {
    if n > 0 {
        cpu_secs * 1e6 / n as f64
    } else {
        0.0
    }
}

pub fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

pub fn latency_line(h: &Histogram<u64>) -> String {
    format!(
        "latency p50 {} p99 {} max {}",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

/// One JSON object on one line, keys in the order given (`mode` first), so runs line up.
pub fn json_line(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Prints the baseline's lines; returns its JSON line.
pub fn print_baseline(r: &BaselineResult) -> String {
    let client_cpu = (r.process_cpu - r.receiver_cpu).max(0.0);
    out!(
        "baseline: {} of {} requests in {:.2} s = {:.0} requests/s (concurrency {}); CPU of this process {:.2} s = {:.1} us/request (client {:.1}, receiver {:.1}); {}; errors: {}",
        r.requests,
        r.requested,
        r.seconds,
        per_sec(r.requests, r.seconds),
        r.concurrency,
        r.process_cpu,
        us_per(r.process_cpu, r.requests),
        us_per(client_cpu, r.requests),
        us_per(r.receiver_cpu, r.requests),
        latency_line(&r.latency),
        client::errors_line(&r.errors),
    );
    let h = &r.latency;
    let line = jline! {
            "mode": "baseline",
            "requests": r.requests,
            "seconds": r3(r.seconds),
            "per_sec": r1(per_sec(r.requests, r.seconds)),
            "cpu_per_request_us": r3(us_per(r.process_cpu, r.requests)),
            "client_cpu_per_request_us": r3(us_per(client_cpu, r.requests)),
            "receiver_cpu_per_request_us": r3(us_per(r.receiver_cpu, r.requests)),
            "p50_us": h.value_at_quantile(0.50),
            "p99_us": h.value_at_quantile(0.99),
            "max_us": h.max(),
            "requested": r.requested,
            "concurrency": r.concurrency,
            "errors": r.errors,
            "complete": r.complete,
    };
    out!("{line}");
    line
}

/// Prints fanout's lines; returns its JSON line.
pub fn print_fanout(r: &FanoutResult) -> String {
    let rate = per_sec(r.deliveries, r.seconds);
    out!(
        "fanout: {} of {} deliveries ({} events ok of {}, x {} endpoints) in {:.2} s end to end = {:.0} deliveries/s (ingest {:.2} s, errors: {}); delivery {}; hookd CPU {}; receiver CPU {:.1} us/delivery; {} receiver requests; {} endpoints deleted{}",
        r.deliveries,
        r.expected,
        r.events_ok,
        r.events,
        r.endpoints,
        r.seconds,
        rate,
        r.ingest_seconds,
        client::errors_line(&r.ingest_errors),
        latency_line(&r.latency),
        r.hookd_cpu
            .map(|c| format!("{c:.2} s = {:.1} us/delivery", us_per(c, r.deliveries)))
            .unwrap_or_else(|| "not measured".into()),
        us_per(r.receiver_cpu, r.deliveries),
        r.requests,
        r.deleted,
        reads_line(&r.reads),
    );
    let line = fanout_json(r);
    out!("{line}");
    line
}

/// `{"reads","errors","p50_us","p99_us","max_us"}`, or null without reads.
pub fn reads_json(r: &Option<ReadsResult>) -> Value {
    match r {
        None => Value::Null,
        Some(r) => serde_json::json!({
            "reads": r.reads,
            "errors": r.errors,
            "p50_us": r.p50_us,
            "p99_us": r.p99_us,
            "max_us": r.max_us,
        }),
    }
}

pub fn fanout_json(r: &FanoutResult) -> String {
    jline! {
        "mode": "fanout",
        "deliveries": r.deliveries,
        "seconds": r3(r.seconds),
        "per_sec": r1(per_sec(r.deliveries, r.seconds)),
        "cpu_per_delivery_us": r.hookd_cpu.map(|c| r3(us_per(c, r.deliveries))),
        "expected": r.expected,
        "events": r.events_ok,
        "endpoints": r.endpoints,
        "cpu_at_done_per_delivery_us": r.hookd_cpu_at_done.map(|c| r3(us_per(c, r.deliveries))),
        "hookd_cpu_s": r.hookd_cpu.map(r3),
        "receiver_cpu_per_delivery_us": r3(us_per(r.receiver_cpu, r.deliveries)),
        "ingest_seconds": r3(r.ingest_seconds),
        "ingest_errors": r.ingest_errors,
        "receiver_requests": r.requests,
        "hookd_busy_before_pct": r.busy_before.map(r1),
        "endpoints_deleted": r.deleted,
        "complete": r.complete,
        "delivery_p50_us": r.latency.value_at_quantile(0.50),
        "delivery_p99_us": r.latency.value_at_quantile(0.99),
        "delivery_max_us": r.latency.max(),
        "reads": reads_json(&r.reads),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_line_keeps_order() {
        let line = jline! { "mode": "x", "b": 1, "a": [1, 2], "n": Option::<f64>::None };
        assert_eq!(line, r#"{"mode":"x","b":1,"a":[1,2],"n":null}"#);
    }
}
