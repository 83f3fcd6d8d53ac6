//! `baseline`: a bare pooled hyper client against the embedded receiver, the reference for
//! hookd's send path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use serde_json::json;
use tokio::time::Instant;

use crate::client::{self, Errors, Outcome};
use crate::cpu;
use crate::meter::Meter;
use crate::receiver::Receiver;
use crate::timeline::{pid_cell, Sampler, Timeline};
use crate::RunCtx;

#[derive(Debug)]
pub struct BaselineResult {
    pub requests: u64,
    pub requested: u64,
    pub concurrency: usize,
    pub seconds: f64,
    pub process_cpu: f64,
    pub receiver_cpu: f64,
    pub latency: Histogram<u64>,
    pub errors: Errors,
    pub complete: bool,
    pub timeline: Timeline,
}

/// A body shaped like what hookd sends (~300 bytes).
pub fn baseline_body() -> Bytes {
    let body = json!({
        "id": "evt_01HZY3V9R1D7Q2M4X8K6N0B5TA",
        "type": "instance.ready",
        "created_at": "2026-05-08T17:01:30.123Z",
        "data": {
            "instance_id": "i-000000012345",
            "region": "eu-central-1",
            "node": "node-17",
            "message": "instance passed its health checks",
            "tags": {"team": "platform", "env": "loadtest"},
            "pad": "0123456789abcdef0123456789abcdef",
        },
    });
    Bytes::from(serde_json::to_vec(&body).expect("json"))
}

/// Sends `events` requests, `concurrency` in flight, until `deadline`.
pub async fn baseline(
    recv: &Receiver,
    events: u64,
    concurrency: usize,
    ctx: &RunCtx,
    deadline: Instant,
) -> Result<BaselineResult> {
    let client = client::new_client(concurrency);
    let base = format!("http://{}", recv.addr);
    let body = baseline_body();
    eprintln!(
        "baseline: {events} POSTs of {} bytes to the embedded receiver at {base}, {concurrency} in flight",
        body.len()
    );
    let next = Arc::new(AtomicU64::new(0));
    let meter = Arc::new(Meter::new(events));
    let sampler = Sampler::start(
        meter.clone(),
        None,
        ctx.watch("baseline", "requests/s", pid_cell(None)),
    );
    let cpu0 = cpu::self_secs()?;
    let rcpu0 = cpu::threads_secs(cpu::RECEIVER_THREAD)?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let next = next.clone();
        let base = base.clone();
        let body = body.clone();
        let meter = meter.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = client::new_histogram();
            let mut errors = Errors::new();
            let mut ok = 0u64;
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                .to_string();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events || Instant::now() >= deadline {
                    break;
                }
                // The same headers a hookd delivery carries.
                let req = hyper::Request::builder()
                    .method(Method::POST)
                    .uri(format!("{base}/e0"))
                    .header("content-type", "application/json")
                    .header("webhook-id", format!("evt_baseline_{i}"))
                    .header("webhook-timestamp", ts.as_str())
                    .header(
                        "webhook-signature",
                        "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                    )
                    .body(http_body_util::Full::new(body.clone()))
                    .expect("valid request");
                let t = Instant::now();
                meter.issue(1);
                match client::send(&client, req, deadline).await {
                    Outcome::Response(s, _) if (200..300).contains(&s) => {
                        client::record(&mut hist, t.elapsed());
                        meter.record(t.elapsed());
                        meter.done(1);
                        ok += 1;
                    }
                    Outcome::Response(s, _) => {
                        meter.error();
                        client::add_error(&mut errors, s.to_string())
                    }
                    Outcome::Failed(kind) => {
                        meter.error();
                        client::add_error(&mut errors, kind)
                    }
                }
            }
            (ok, hist, errors)
        }));
    }
    let mut requests = 0;
    let mut latency = client::new_histogram();
    let mut errors = Errors::new();
    for t in tasks {
        let (ok, hist, errs) = t.await.context("baseline task")?;
        requests += ok;
        latency.add(&hist).expect("same histogram bounds");
        client::merge_errors(&mut errors, errs);
    }
    let seconds = start.elapsed().as_secs_f64();
    let process_cpu = cpu::self_secs()? - cpu0;
    let receiver_cpu = cpu::threads_secs(cpu::RECEIVER_THREAD)? - rcpu0;
    let timeline = sampler.stop().await;
    let got = recv.snapshot();
    if got.deliveries < requests {
        eprintln!(
            "warning: receiver counted {} of {requests} requests",
            got.deliveries
        );
    }
    Ok(BaselineResult {
        requests,
        requested: events,
        concurrency,
        seconds,
        process_cpu,
        receiver_cpu,
        latency,
        errors,
        complete: requests == events,
        timeline,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::receiver::test_receiver;

    #[test]
    fn baseline_against_embedded_receiver() {
        let recv = test_receiver();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let r = rt
            .block_on(async {
                let ctx = RunCtx::for_tests(20.0);
                let deadline = Instant::now() + Duration::from_secs(20);
                baseline(&recv, 500, 8, &ctx, deadline).await
            })
            .unwrap();
        assert!(r.complete);
        assert_eq!(r.requests, 500);
        assert!(r.errors.is_empty());
        let s = recv.snapshot();
        assert_eq!((s.requests, s.unique_ids, s.deliveries), (500, 500, 500));
        assert_eq!(r.timeline.samples.last().map(|s| s.done), Some(500));
        drop(rt);
    }
}
