//! `compare`: the baseline with N*E requests, then fanout, in one process: CPU per delivery side
//! by side.

use std::sync::Arc;

use anyhow::{bail, Result};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::baseline::{self, BaselineResult};
use crate::cli::{check_counts, check_fanout, resolve_hookd_pid, FanoutArgs, HookdArgs};
use crate::client;
use crate::fanout::{self, FanoutResult};
use crate::meter::Meter;
use crate::receiver::Receiver;
use crate::report::{per_sec, print_baseline, print_fanout, r1, r3, us_per};
use crate::timeline::Timeline;
use crate::RunCtx;

/// Runs the baseline, then fanout, and prints both and their ratios; whether both completed,
/// the compare JSON line and fanout's timeline.
pub fn compare(
    rt: &Runtime,
    hookd: &HookdArgs,
    fanout: &FanoutArgs,
    baseline_concurrency: usize,
    ctx: &RunCtx,
) -> Result<(bool, String, Timeline)> {
    let limits = ctx.limits;
    let target = client::parse_target(&hookd.target)?;
    check_fanout(fanout)?;
    check_counts(1, baseline_concurrency)?;
    let pid = resolve_hookd_pid(fanout.hookd_pid)?;
    if pid.is_none() {
        bail!("compare needs hookd's CPU time: give --hookd-pid");
    }
    let n = fanout.events * fanout.endpoints;
    // Give each half its share of the time.
    let now = Instant::now();
    let half = now + (limits.work - now) / 3;
    let recv = Receiver::embedded(ctx.receiver_threads, Arc::default())?;
    let b = rt.block_on(baseline::baseline(
        &recv,
        n,
        baseline_concurrency,
        ctx,
        half,
    ))?;
    drop(recv);
    print_baseline(&b);
    let meter = Arc::new(Meter::default());
    let recv = Receiver::embedded(ctx.receiver_threads, meter.clone())?;
    let f = rt.block_on(fanout::fanout_mode(
        &recv, meter, &target, &hookd.key, fanout, pid, ctx,
    ))?;
    print_fanout(&f);
    let line = print_compare(&b, &f);
    Ok((b.complete && f.complete, line, f.timeline))
}

/// Prints the ratios; returns the JSON line.
pub fn print_compare(b: &BaselineResult, f: &FanoutResult) -> String {
    let base_cpu = us_per((b.process_cpu - b.receiver_cpu).max(0.0), b.requests);
    let base_rate = per_sec(b.requests, b.seconds);
    let fan_rate = per_sec(f.deliveries, f.seconds);
    let fan_cpu = f.hookd_cpu.map(|c| us_per(c, f.deliveries));
    out!(
        "compare: hookd {:.0} deliveries/s vs bare client {:.0} requests/s ({:.2}x); CPU per delivery hookd {} vs bare client {:.1} us{}",
        fan_rate,
        base_rate,
        if base_rate > 0.0 { fan_rate / base_rate } else { 0.0 },
        fan_cpu.map(|c| format!("{c:.1} us")).unwrap_or_else(|| "?".into()),
        base_cpu,
        fan_cpu
            .filter(|_| base_cpu > 0.0)
            .map(|c| format!(" ({:.2}x)", c / base_cpu))
            .unwrap_or_default(),
    );
    let line = jline! {
            "mode": "compare",
            "baseline_per_sec": r1(base_rate),
            "baseline_client_cpu_per_request_us": r3(base_cpu),
            "fanout_per_sec": r1(fan_rate),
            "fanout_cpu_per_delivery_us": fan_cpu.map(r3),
            "rate_ratio": r3(if base_rate > 0.0 { fan_rate / base_rate } else { 0.0 }),
            "cpu_ratio": fan_cpu.filter(|_| base_cpu > 0.0).map(|c| r3(c / base_cpu)),
            "complete": b.complete && f.complete,
    };
    out!("{line}");
    line
}
