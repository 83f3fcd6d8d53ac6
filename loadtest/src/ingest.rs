//! Posting events to hookd (`ingest`, and the events of `fanout`): durable-ingest rate and
//! latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::{self, Errors, HttpClient, Outcome, Target};
use crate::cpu;
use crate::report::{latency_line, per_sec, r1, r3, us_per};
use crate::Limits;

#[derive(Debug, Clone)]
pub struct IngestJob {
    pub target: Target,
    pub key: String,
    pub tenant: String,
    pub types: Vec<String>,
    pub events: u64,
    pub batch: u64,
    pub concurrency: usize,
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

pub fn event_json(job: &IngestJob, seq: u64) -> Value {
    let ty = &job.types[(seq % job.types.len() as u64) as usize];
    json!({
        "type": ty,
        "tenant": job.tenant,
        "data": {
            "seq": seq,
            "instance_id": format!("i-{seq:012x}"),
            "region": "eu-central-1",
            "node": "node-17",
            "message": "instance passed its health checks",
        },
    })
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
                let (path, body) = if job.batch > 1 {
                    let items: Vec<Value> = (lo..hi).map(|s| event_json(&job, s)).collect();
                    ("/v1/events/batch", serde_json::to_vec(&items))
                } else {
                    ("/v1/events", serde_json::to_vec(&event_json(&job, lo)))
                };
                let body = Bytes::from(body.expect("json"));
                let req =
                    client::request(Method::POST, &job.target.base, path, Some(&job.key), body);
                let t = Instant::now();
                let outcome = client::send(&client, req, deadline).await;
                sent += 1;
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

pub async fn ingest_mode(job: IngestJob, pid: Option<u32>, limits: Limits) -> Result<bool> {
    let client = client::new_client(job.concurrency);
    let job = Arc::new(job);
    let cpu0 = pid.map(cpu::process_secs).transpose()?;
    let r = post_events(&client, job.clone(), limits.work).await;
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
    out!(
        "{}",
        jline! {
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
        }
    );
    Ok(complete)
}
