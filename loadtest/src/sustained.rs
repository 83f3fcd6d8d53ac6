//! `sustained`: fan-out bounded by time. E endpoints at the embedded receiver; events posted in
//! batches as fast as hookd delivers them, never more than `--window` deliveries outstanding
//! (full rate without a backlog growing for ever), for `--duration`; then the backlog drains.
//! Each second's sample holds hookd's RSS and its data directory's disk use
//! (`--hookd-data-dir`); the result gives both at the start, the peak, the end, and their slope
//! over the second half of the run, to show whether they stay flat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use tokio::time::Instant;

use crate::cli::SustainedArgs;
use crate::client::{self, Outcome, Target};
use crate::endpoints;
use crate::fanout::{watch_run, Api};
use crate::ingest::{batch_request, IngestJob, IngestWatch};
use crate::meter::Meter;
use crate::reads::reads_line;
use crate::receiver::{Receiver, ReceiverConfig};
use crate::report::{latency_line, per_sec, r1, r3, reads_json};
use crate::timeline::{pid_cell, Sample, Timeline};
use crate::RunCtx;

pub async fn sustained_mode(
    target: &Target,
    key: &str,
    args: &SustainedArgs,
    pid: Option<u32>,
    ctx: &RunCtx,
) -> Result<(bool, String, Timeline)> {
    let limits = ctx.limits;
    let meter = Arc::new(Meter::default());
    let recv = Receiver::start_async(ReceiverConfig::embedded(
        ctx.receiver_threads,
        hookd_testkit::Reply::Status(204),
        vec![meter.clone()],
    ))
    .await?;
    let client = client::new_client(args.post.concurrency + args.reads.reads + 4);
    let tenant = endpoints::fresh_tenant();
    eprintln!(
        "sustained: tenant {tenant}, {} endpoints -> http://{}/e{{i}}, for {:?}, at most {} deliveries outstanding",
        args.endpoints, recv.addr, args.duration, args.window
    );
    let bodies = endpoints::numbered(&tenant, "e", recv.addr, args.endpoints, &json!({}));
    let ids = endpoints::create(&client, target, key, &bodies, limits.work).await?;
    let job = Arc::new(IngestJob {
        target: target.clone(),
        key: key.to_owned(),
        tenant,
        types: args.post.types.clone(),
        events: u64::MAX,
        batch: args.post.batch,
        concurrency: args.post.concurrency,
        event_bytes: args.post.event_bytes,
        watch: IngestWatch::Acked {
            meter: meter.clone(),
            per_event: args.endpoints,
        },
    });
    let start = Instant::now();
    let ends_at = (start + args.duration).min(limits.work);
    let mut watch = ctx.watch("sustained", "deliveries/s", pid_cell(pid));
    watch.ends_at = Some(ends_at);
    let api = Api {
        client: &client,
        target,
        key,
    };
    let (sampler, readers) = watch_run(&api, &meter, watch, &ids, &args.reads, limits.work);

    // Posting: each task sends a batch once it has reserved room for its deliveries in the
    // window (reserved - delivered <= window), so the tasks together never overshoot it.
    let next = Arc::new(AtomicU64::new(0));
    let post_errors = Arc::new(AtomicU64::new(0));
    let reserved = Arc::new(AtomicU64::new(0));
    let (cost, window) = (args.post.batch * args.endpoints, args.window);
    let tasks: Vec<_> = (0..args.post.concurrency)
        .map(|_| {
            let (client, job, meter) = (client.clone(), job.clone(), meter.clone());
            let (next, post_errors, reserved) =
                (next.clone(), post_errors.clone(), reserved.clone());
            tokio::spawn(async move {
                while Instant::now() < ends_at {
                    let r = reserved.load(Ordering::SeqCst);
                    if r + cost > meter.done_count() + window
                        || reserved
                            .compare_exchange(r, r + cost, Ordering::SeqCst, Ordering::SeqCst)
                            .is_err()
                    {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    let lo = next.fetch_add(job.batch, Ordering::Relaxed);
                    let t = Instant::now();
                    let req = batch_request(&job, lo, lo + job.batch);
                    let outcome = client::send(&client, req, ends_at).await;
                    job.watch.answered(&outcome, job.batch, t.elapsed());
                    match outcome {
                        Outcome::Response(202, _) => {}
                        Outcome::Failed("deadline") => break,
                        _ => {
                            // Nothing to deliver: give the room back.
                            reserved.fetch_sub(cost, Ordering::SeqCst);
                            post_errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let posted_for = start.elapsed().as_secs_f64();
    let delivered_in_window = meter.done_count();
    // Let the backlog drain (bounded by --max-seconds).
    while meter.in_flight() > 0 && Instant::now() < limits.work {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reads = match readers {
        Some(r) => Some(r.stop().await),
        None => None,
    };
    let timeline = sampler.stop().await;
    let deleted = endpoints::delete(&client, target, key, &ids, limits.cleanup_deadline()).await;
    let latency = meter.whole_run();
    let rss = Trend::of(&timeline.samples, |s| s.rss_bytes);
    let disk = Trend::of(&timeline.samples, |s| s.disk_bytes);
    let complete = meter.in_flight() == 0 && posted_for >= args.duration.as_secs_f64() * 0.99;
    out!(
        "sustained: {} deliveries over {} endpoints in {:.1} s = {:.0} deliveries/s (then {} more while draining); delivery {}; hookd RSS {}; data dir {}; {} post errors; {} endpoints deleted{}",
        delivered_in_window,
        args.endpoints,
        posted_for,
        per_sec(delivered_in_window, posted_for),
        meter.done_count() - delivered_in_window,
        latency_line(&latency),
        rss.describe(),
        disk.describe(),
        post_errors.load(Ordering::Relaxed),
        deleted,
        reads_line(&reads),
    );
    let line = jline! {
        "mode": "sustained",
        "deliveries": meter.done_count(),
        "seconds": r3(posted_for),
        "per_sec": r1(per_sec(delivered_in_window, posted_for)),
        "p50_us": latency.value_at_quantile(0.50),
        "p99_us": latency.value_at_quantile(0.99),
        "max_us": latency.max(),
        "rss": rss.json(),
        "data_dir": disk.json(),
        "endpoints": args.endpoints,
        "window": args.window,
        "post_errors": post_errors.load(Ordering::Relaxed),
        "reads": reads_json(&reads),
        "endpoints_deleted": deleted,
        "complete": complete,
    };
    out!("{line}");
    Ok((complete, line, timeline))
}

/// A gauge over a run (bytes): first, peak and last value, and its slope over the second half.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Trend {
    pub first: Option<u64>,
    pub max: Option<u64>,
    pub last: Option<u64>,
    /// Least-squares slope over the samples of the second half, in bytes per minute.
    pub slope_per_min: Option<f64>,
}

impl Trend {
    pub fn of(samples: &[Sample], pick: impl Fn(&Sample) -> Option<u64>) -> Trend {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|s| pick(s).map(|v| (s.t, v as f64)))
            .collect();
        let half = &points[points.len() / 2..];
        Trend {
            first: points.first().map(|p| p.1 as u64),
            max: points.iter().map(|p| p.1 as u64).max(),
            last: points.last().map(|p| p.1 as u64),
            slope_per_min: slope(half).map(|s| s * 60.0),
        }
    }

    fn describe(&self) -> String {
        let mib = |b: u64| format!("{:.1}", b as f64 / 1048576.0);
        match (self.first, self.max, self.last) {
            (Some(a), Some(m), Some(z)) => format!(
                "{} -> {} MiB (peak {}, second half {:+.2} MiB/min)",
                mib(a),
                mib(z),
                mib(m),
                self.slope_per_min.unwrap_or(0.0) / 1048576.0
            ),
            _ => "not sampled".into(),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "first_bytes": self.first,
            "max_bytes": self.max,
            "last_bytes": self.last,
            "second_half_slope_bytes_per_min": self.slope_per_min.map(|s| s.round()),
        })
    }
}

/// Least-squares slope of `y` over `x`; none with fewer than two distinct `x`.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f64, rss: Option<u64>) -> Sample {
        Sample {
            t,
            rss_bytes: rss,
            ..Sample::default()
        }
    }

    #[test]
    fn trend_of_a_gauge() {
        // Grows in the first half, flat in the second.
        let samples: Vec<Sample> = [100, 200, 300, 300, 300, 300]
            .iter()
            .enumerate()
            .map(|(i, v)| s(i as f64 + 1.0, Some(*v)))
            .collect();
        let t = Trend::of(&samples, |x| x.rss_bytes);
        assert_eq!((t.first, t.max, t.last), (Some(100), Some(300), Some(300)));
        assert_eq!(t.slope_per_min, Some(0.0));
        // Growing by 10 a second: 600 a minute.
        let growing: Vec<Sample> = (0..10).map(|i| s(i as f64, Some(10 * i))).collect();
        let g = Trend::of(&growing, |x| x.rss_bytes).slope_per_min.unwrap();
        assert!((g - 600.0).abs() < 1e-6, "{g}");
        let none = Trend::of(&[s(1.0, None)], |x| x.rss_bytes);
        assert_eq!(none, Trend::default());
        assert_eq!(none.describe(), "not sampled");
    }
}
