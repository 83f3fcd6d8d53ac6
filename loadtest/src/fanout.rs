//! `fanout`: endpoints in hookd pointing at the embedded receiver, events posted, every delivery
//! waited for; deliveries/s and hookd's CPU time per delivery.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::cli::FanoutArgs;
use crate::client::{self, Errors, HttpClient, Outcome, Target};
use crate::cpu;
use crate::ingest::{post_events, IngestJob};
use crate::receiver::Receiver;
use crate::Limits;

#[derive(Debug)]
pub struct FanoutResult {
    pub events: u64,
    pub events_ok: u64,
    pub endpoints: u64,
    pub expected: u64,
    pub deliveries: u64,
    pub requests: u64,
    pub seconds: f64,
    pub ingest_seconds: f64,
    pub ingest_errors: Errors,
    pub hookd_cpu: Option<f64>,
    pub hookd_cpu_at_done: Option<f64>,
    pub receiver_cpu: f64,
    /// hookd's CPU use in the 0.5 s before the run, in % of a core.
    pub busy_before: Option<f64>,
    pub deleted: u64,
    pub complete: bool,
}

pub async fn fanout_mode(
    recv: &Receiver,
    target: &Target,
    key: &str,
    args: &FanoutArgs,
    pid: Option<u32>,
    limits: Limits,
) -> Result<FanoutResult> {
    let client = client::new_client(args.concurrency.max(4));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let tenant = format!("lt-{now_ms}-{}", std::process::id());
    eprintln!(
        "fanout: tenant {tenant}, {} endpoints -> http://{}/e{{i}}, {} events in batches of {}",
        args.endpoints, recv.addr, args.events, args.batch
    );

    // Endpoints.
    let mut ids = Vec::with_capacity(args.endpoints as usize);
    let mut create_error = None;
    for i in 0..args.endpoints {
        let body = json!({
            "name": format!("loadtest e{i}"),
            "url": format!("http://{}/e{i}", recv.addr),
            "event_types": ["*"],
            "tenant": tenant,
            "description": "hookd-loadtest fanout; deleted at the end of the run",
        });
        let req = client::request(
            Method::POST,
            &target.base,
            "/v1/endpoints",
            Some(key),
            Bytes::from(serde_json::to_vec(&body)?),
        );
        match client::send(&client, req, limits.work).await {
            Outcome::Response(201, b) => {
                let v: Value = serde_json::from_slice(&b).context("endpoint response")?;
                match v["id"].as_str() {
                    Some(id) => ids.push(id.to_string()),
                    None => {
                        create_error = Some(format!("201 without an id: {v}"));
                        break;
                    }
                }
            }
            Outcome::Response(status, b) => {
                let mut msg = format!(
                    "creating endpoint {i}: {status} {}",
                    String::from_utf8_lossy(&b)
                );
                if status == 403 {
                    msg.push_str(" (start hookd with HOOKD_ALLOW_PRIVATE_TARGETS=true)");
                }
                create_error = Some(msg);
                break;
            }
            Outcome::Failed(kind) => {
                create_error = Some(format!(
                    "creating endpoint {i}: {kind} (is hookd at {}?)",
                    target.base
                ));
                break;
            }
        }
    }
    if let Some(e) = create_error {
        delete_endpoints(&client, target, key, &ids, limits.cleanup_deadline()).await;
        bail!("{e}");
    }

    // Events, then wait for every delivery.
    let job = Arc::new(IngestJob {
        target: target.clone(),
        key: key.to_string(),
        tenant: tenant.clone(),
        types: args.types.clone(),
        events: args.events,
        batch: args.batch,
        concurrency: args.concurrency,
    });
    let expected = args.events * args.endpoints;
    // hookd should be idle now; work left from an earlier run would be billed to this one.
    let busy_before = match pid {
        Some(p) => {
            let a = cpu::process_secs(p)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let pct = (cpu::process_secs(p)? - a) / 0.5 * 100.0;
            if pct > 5.0 {
                eprintln!(
                    "warning: hookd was busy before the run ({pct:.0}% of a core): its CPU per \
                     delivery includes that work; restart hookd with a fresh data dir"
                );
            }
            Some(pct)
        }
        None => None,
    };
    let cpu0 = match pid {
        Some(p) => Some(cpu::process_secs(p)?),
        None => None,
    };
    let rcpu0 = cpu::threads_secs(cpu::RECEIVER_THREAD)?;
    let start = Instant::now();
    let ingest = post_events(&client, job, limits.work).await;
    if let Some(e) = &ingest.first_error {
        eprintln!("ingest error: {e}");
    }
    let want = ingest.events_ok * args.endpoints;
    let mut last_report = Instant::now();
    loop {
        let s = recv.snapshot();
        if s.deliveries >= want || Instant::now() >= limits.work {
            break;
        }
        if pid.is_some_and(|p| !cpu::alive(p)) {
            eprintln!("hookd (pid {}) exited", pid.unwrap_or_default());
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!("waiting: {} of {want} deliveries", s.deliveries);
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let done = recv.snapshot();
    let receiver_cpu = cpu::threads_secs(cpu::RECEIVER_THREAD)? - rcpu0;
    let (hookd_cpu_at_done, hookd_cpu) = match (pid, cpu0) {
        (Some(p), Some(c0)) => {
            let at_done = cpu::process_secs(p).ok().map(|c| c - c0);
            // Let hookd finish its bookkeeping (delivery records) and count that too: sample
            // until it is idle (<= 1 tick per 250 ms), for at most 3 s.
            let settle_end = (Instant::now() + Duration::from_secs(3)).min(limits.work);
            let mut last = at_done;
            while Instant::now() < settle_end {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = cpu::process_secs(p).ok().map(|c| c - c0);
                let idle = matches!((last, now), (Some(a), Some(b)) if b - a <= 0.011);
                last = now;
                if idle {
                    break;
                }
            }
            (at_done, last)
        }
        _ => (None, None),
    };
    let deleted = delete_endpoints(&client, target, key, &ids, limits.cleanup_deadline()).await;
    Ok(FanoutResult {
        events: args.events,
        events_ok: ingest.events_ok,
        endpoints: args.endpoints,
        expected,
        deliveries: done.deliveries,
        requests: done.requests,
        seconds,
        ingest_seconds: ingest.seconds,
        ingest_errors: ingest.errors,
        hookd_cpu,
        hookd_cpu_at_done,
        receiver_cpu,
        busy_before,
        deleted,
        complete: ingest.events_ok == args.events && done.deliveries >= expected,
    })
}

/// Deletes the endpoints (a few at a time), returns how many went.
pub async fn delete_endpoints(
    client: &HttpClient,
    target: &Target,
    key: &str,
    ids: &[String],
    deadline: Instant,
) -> u64 {
    let mut deleted = 0;
    for chunk in ids.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let req = client::request(
                Method::DELETE,
                &target.base,
                &format!("/v1/endpoints/{id}"),
                Some(key),
                Bytes::new(),
            );
            let client = client.clone();
            set.spawn(async move { client::send(&client, req, deadline).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Outcome::Response(204 | 404, _)) => deleted += 1,
                Ok(Outcome::Response(s, b)) => {
                    eprintln!("deleting an endpoint: {s} {}", String::from_utf8_lossy(&b))
                }
                Ok(Outcome::Failed(kind)) => eprintln!("deleting an endpoint: {kind}"),
                Err(e) => eprintln!("deleting an endpoint: {e}"),
            }
        }
    }
    if deleted < ids.len() as u64 {
        eprintln!(
            "warning: {} of {} endpoints left in hookd",
            ids.len() as u64 - deleted,
            ids.len()
        );
    }
    deleted
}

#[cfg(test)]
mod tests;
