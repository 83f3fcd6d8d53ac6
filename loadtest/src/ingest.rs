//! Posting events to hookd (`ingest`, and the events of `fanout`): durable-ingest rate and
//! latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use tokio::time::Instant;

use crate::client::{self, Errors, HttpClient, Outcome, Target};
use crate::cpu;
use crate::meter::{unix_us, Meter};
use crate::report::{latency_line, per_sec, r1, r3, us_per};
use crate::timeline::{pid_cell, Sampler, Timeline};
use crate::RunCtx;

/// What posting reports to a [`Meter`] as it goes.
#[derive(Debug, Clone, Default)]
pub enum IngestWatch {
    #[default]
    None,
    /// Each acknowledged event issues `per_event` deliveries to wait for (fan-out).
    Acked { meter: Arc<Meter>, per_event: u64 },
    /// Events sent are issued, acknowledged ones done, each request's latency recorded (ingest).
    Requests(Arc<Meter>),
}

#[derive(Debug, Clone)]
pub struct IngestJob {
    pub target: Target,
    pub key: String,
    pub tenant: String,
    pub types: Vec<String>,
    pub events: u64,
    pub batch: u64,
    pub concurrency: usize,
    pub watch: IngestWatch,
    /// Pad each event's JSON to about this many bytes (0: no padding).
    pub event_bytes: usize,
}

#[derive(Debug)]
pub struct IngestResult {
    /// Events answered 202 (durable).
    pub events_ok: u64,
    pub requests: u64,
    pub seconds: f64,
    pub latency: Histogram<u64>,
    pub errors: Errors,
    /// First failing answer, for the operator.
    pub first_error: Option<String>,
}

/// Event `seq` of the job, written as JSON onto `out`. `sent_us` (now) lets the receiver time
/// its delivery. Written from a template, not through `serde_json::Value`: the generator shares
/// the machine with hookd, and building a map per event cost it half a core at 70k events/s.
pub fn write_event(out: &mut Vec<u8>, job: &IngestJob, seq: u64) {
    use std::io::Write;
    let ty = &job.types[(seq % job.types.len() as u64) as usize];
    let start = out.len();
    out.extend_from_slice(b"{\"type\":");
    json_str(out, ty);
    out.extend_from_slice(b",\"tenant\":");
    json_str(out, &job.tenant);
    let _ = write!(
        out,
        ",\"data\":{{\"seq\":{seq},\"sent_us\":{},\"instance_id\":\"i-{seq:012x}\",\
         \"region\":\"eu-central-1\",\"node\":\"node-17\",\
         \"message\":\"instance passed its health checks\"",
        unix_us()
    );
    // `,"detail":""}}` is 14 bytes.
    let len = out.len() - start + 14;
    if job.event_bytes > len {
        out.extend_from_slice(b",\"detail\":\"");
        out.resize(out.len() + job.event_bytes - len, b'x');
        out.push(b'"');
    }
    out.extend_from_slice(b"}}");
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("a string serializes");
}

/// The request posting events `lo..hi`: one `POST /v1/events` or a batch.
pub fn batch_request(
    job: &IngestJob,
    lo: u64,
    hi: u64,
) -> hyper::Request<http_body_util::Full<Bytes>> {
    let mut body = Vec::with_capacity((hi - lo) as usize * (job.event_bytes.max(200) + 2) + 2);
    let path = if job.batch > 1 {
        body.push(b'[');
        for s in lo..hi {
            if s > lo {
                body.push(b',');
            }
            write_event(&mut body, job, s);
        }
        body.push(b']');
        "/v1/events/batch"
    } else {
        write_event(&mut body, job, lo);
        "/v1/events"
    };
    client::request(
        Method::POST,
        &job.target.base,
        path,
        Some(&job.key),
        Bytes::from(body),
    )
}

impl IngestWatch {
    /// Reports a request posting `n` events about to go.
    pub fn sending(&self, n: u64) {
        if let IngestWatch::Requests(m) = self {
            m.issue(n);
        }
    }

    /// Reports the answer to a request posting `n` events.
    pub fn answered(&self, outcome: &Outcome, n: u64, took: std::time::Duration) {
        match (self, outcome) {
            (IngestWatch::None, _) => {}
            (IngestWatch::Acked { meter, per_event }, Outcome::Response(202, _)) => {
                meter.issue(n * per_event)
            }
            (IngestWatch::Acked { .. }, _) => {}
            (IngestWatch::Requests(m), Outcome::Response(202, _)) => {
                m.done(n);
                m.record(took);
            }
            (IngestWatch::Requests(m), _) => m.error(),
        }
    }
}

/// Posts `job.events` events, `job.batch` per request, `job.concurrency` requests in flight.
pub async fn post_events(
    client: &HttpClient,
    job: Arc<IngestJob>,
    deadline: Instant,
) -> IngestResult {
    let requests = job.events.div_ceil(job.batch);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(job.concurrency);
    for _ in 0..job.concurrency {
        let client = client.clone();
        let job = job.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = client::new_histogram();
            let mut errors = Errors::new();
            let mut first_error = None;
            let (mut ok, mut sent) = (0u64, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests || Instant::now() >= deadline {
                    break;
                }
                let lo = i * job.batch;
                let hi = (lo + job.batch).min(job.events);
                let req = batch_request(&job, lo, hi);
                let t = Instant::now();
                job.watch.sending(hi - lo);
                let outcome = client::send(&client, req, deadline).await;
                sent += 1;
                job.watch.answered(&outcome, hi - lo, t.elapsed());
                match outcome {
                    Outcome::Response(202, _) => {
                        client::record(&mut hist, t.elapsed());
                        ok += hi - lo;
                    }
                    Outcome::Response(status, body) => {
                        client::record(&mut hist, t.elapsed());
                        client::add_error(&mut errors, status.to_string());
                        first_error.get_or_insert_with(|| {
                            format!("{status} {}", String::from_utf8_lossy(&body))
                        });
                        if status == 401 {
                            // Every further request would fail the same way.
                            next.store(requests, Ordering::Relaxed);
                        }
                    }
                    Outcome::Failed(kind) => {
                        // `deadline`: cut off by --max-seconds, not a request that finished.
                        client::add_error(&mut errors, kind);
                        first_error.get_or_insert_with(|| kind.to_string());
                    }
                }
            }
            (ok, sent, hist, errors, first_error)
        }));
    }
    let mut result = IngestResult {
        events_ok: 0,
        requests: 0,
        seconds: 0.0,
        latency: client::new_histogram(),
        errors: Errors::new(),
        first_error: None,
    };
    for t in tasks {
        let (ok, sent, hist, errors, first) = t.await.expect("ingest task");
        result.events_ok += ok;
        result.requests += sent;
        result.latency.add(&hist).expect("same histogram bounds");
        client::merge_errors(&mut result.errors, errors);
        if result.first_error.is_none() {
            result.first_error = first;
        }
    }
    result.seconds = start.elapsed().as_secs_f64();
    result
}

/// The `ingest` mode; returns whether every event was acknowledged, its JSON line and timeline.
pub async fn ingest_mode(
    mut job: IngestJob,
    pid: Option<u32>,
    ctx: &RunCtx,
) -> Result<(bool, String, Timeline)> {
    let client = client::new_client(job.concurrency);
    let meter = Arc::new(Meter::new(job.events));
    job.watch = IngestWatch::Requests(meter.clone());
    let job = Arc::new(job);
    let sampler = Sampler::start(meter, None, ctx.watch("ingest", "events/s", pid_cell(pid)));
    let cpu0 = pid.map(cpu::process_secs).transpose()?;
    let r = post_events(&client, job.clone(), ctx.limits.work).await;
    let timeline = sampler.stop().await;
    let hookd_cpu = match (pid, cpu0) {
        (Some(pid), Some(c0)) => cpu::process_secs(pid).ok().map(|c1| c1 - c0),
        _ => None,
    };
    let complete = r.events_ok == job.events;
    let rate = per_sec(r.events_ok, r.seconds);
    let endpoint = if job.batch > 1 {
        "/v1/events/batch"
    } else {
        "/v1/events"
    };
    out!(
        "ingest: {} of {} events durable in {:.2} s = {:.0} events/s ({} requests to {endpoint}, batch {}, concurrency {}); {}; errors: {}{}",
        r.events_ok,
        job.events,
        r.seconds,
        rate,
        r.requests,
        job.batch,
        job.concurrency,
        latency_line(&r.latency),
        client::errors_line(&r.errors),
        hookd_cpu
            .map(|c| format!("; hookd CPU {c:.2} s = {:.1} us/event", us_per(c, r.events_ok)))
            .unwrap_or_default(),
    );
    if let Some(e) = &r.first_error {
        eprintln!("first error: {e}");
    }
    let h = &r.latency;
    let line = jline! {
            "mode": "ingest",
            "events": r.events_ok,
            "seconds": r3(r.seconds),
            "per_sec": r1(rate),
            "cpu_per_event_us": hookd_cpu.map(|c| r3(us_per(c, r.events_ok))),
            "p50_us": h.value_at_quantile(0.50),
            "p99_us": h.value_at_quantile(0.99),
            "max_us": h.max(),
            "requested": job.events,
            "requests": r.requests,
            "batch": job.batch,
            "concurrency": job.concurrency,
            "hookd_cpu_s": hookd_cpu.map(r3),
            "errors": r.errors,
            "complete": complete,
    };
    out!("{line}");
    Ok((complete, line, timeline))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(event_bytes: usize) -> IngestJob {
        IngestJob {
            target: client::parse_target("http://127.0.0.1:1").expect("target"),
            key: "k".into(),
            tenant: "acme \"gpu\"".into(),
            types: vec!["instance.ready".into(), "job.failed".into()],
            events: 10,
            batch: 10,
            concurrency: 1,
            watch: IngestWatch::None,
            event_bytes,
        }
    }

    #[test]
    fn an_event_is_json_of_about_the_size_asked_for() {
        for size in [0, 300, 1024, 4096] {
            let mut out = Vec::new();
            write_event(&mut out, &job(size), 7);
            let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
            assert_eq!(v["type"], "job.failed");
            assert_eq!(v["tenant"], "acme \"gpu\"");
            assert_eq!(v["data"]["seq"], 7);
            assert_eq!(v["data"]["instance_id"], "i-000000000007");
            assert!(v["data"]["sent_us"].as_u64().expect("sent_us") > 0);
            if size > 300 {
                assert_eq!(out.len(), size, "padded to {size}");
            }
        }
    }
}
