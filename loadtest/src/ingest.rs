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

/// Event `seq` of the job. `sent_us` (now) lets the receiver time its delivery.
pub fn event_json(job: &IngestJob, seq: u64) -> Value {
    let ty = &job.types[(seq % job.types.len() as u64) as usize];
    let mut event = json!({
        "type": ty,
        "tenant": job.tenant,
        "data": {
            "seq": seq,
            "sent_us": unix_us(),
            "instance_id": format!("i-{seq:012x}"),
            "region": "eu-central-1",
            "node": "node-17",
            "message": "instance passed its health checks",
        },
    });
    // `,"detail":""` is 12 bytes.
    let len = event.to_string().len() + 12;
    if job.event_bytes > len {
        event["data"]["detail"] = Value::from("x".repeat(job.event_bytes - len));
    }
    event
}

/// The request posting events `lo..hi`: one `POST /v1/events` or a batch.
pub fn batch_request(
    job: &IngestJob,
    lo: u64,
    hi: u64,
) -> hyper::Request<http_body_util::Full<Bytes>> {
    let (path, body) = if job.batch > 1 {
        let items: Vec<Value> = (lo..hi).map(|s| event_json(job, s)).collect();
        ("/v1/events/batch", serde_json::to_vec(&items))
    } else {
        ("/v1/events", serde_json::to_vec(&event_json(job, lo)))
    };
    let body = Bytes::from(body.expect("json"));
    client::request(Method::POST, &job.target.base, path, Some(&job.key), body)
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
