//! `misbehave`: does one customer's broken receiver delay another's webhooks? One healthy
//! endpoint alone first, then, for each kind, the healthy endpoint next to K endpoints whose
//! receiver misbehaves that way. For each phase: the healthy endpoint's deliveries/s and
//! delivery latency, side by side with alone, in one invocation. Between phases the endpoints
//! are deleted, hookd's in-flight requests allowed to drain and hookd to settle (the purge of
//! the deleted endpoints' deliveries).
//!
//! Two [`Layout`]s: by default (`tenants`) the misbehaving endpoints are another customer's,
//! whose own events are posted and fanned out first, so the healthy customer's events meet
//! endpoints already holding a backlog, as in production; its figures measure the
//! misbehaviour, while the `ok` control measures sharing two cores with K healthy neighbours.
//! With `shared`, every event goes to all K+1 endpoints of one tenant, so the healthy
//! endpoint's rate also pays for making K times its deliveries (the `ok` control shows how
//! much).
//!
//! After each phase's burst, `--paced-rate` events a second go to one more healthy endpoint (a
//! third tenant's) for `--paced-for`: a burst's p99 is mostly the burst's own queue, while the
//! paced p99 is the latency a customer sees next to the misbehaving ones while hookd keeps up.
//!
//! The misbehaving receivers are `hookd_testkit`'s ([`Reply`] kinds, and [`Silent`] for a
//! listener that accepts TCP and never answers), on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use hookd_testkit::{Reply, Silent};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::cli::MisbehaveArgs;
use crate::client::{self, HttpClient, Outcome, Target};
use crate::endpoints;
use crate::ingest::{batch_request, post_events, IngestJob, IngestWatch};
use crate::meter::Meter;
use crate::receiver::{Receiver, ReceiverConfig};
use crate::report::{ms, per_sec, r1, r3};
use crate::timeline::{pid_cell, Sampler, Timeline};
use crate::RunCtx;

/// How the misbehaving endpoints' receiver behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// The control: answers 204 at once, so the cost of fanning out to K more endpoints is
    /// told apart from the cost of their misbehaving.
    Ok,
    /// Answers 200 after `--slow`.
    Slow,
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// A seeded share (`--fail-share`) of 500s, else 200.
    Fail,
    /// Resets the connection (TCP RST) without an answer.
    Reset,
    /// Closes the connection without an answer.
    Close,
    /// 429 with `Retry-After: --retry-after-s`.
    RetryAfter,
    /// Accepts TCP and never reads nor answers.
    Silent,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Slow => "slow",
            Kind::Hang => "hang",
            Kind::Fail => "fail",
            Kind::Reset => "reset",
            Kind::Close => "close",
            Kind::RetryAfter => "retry-after",
            Kind::Silent => "silent",
        }
    }

    /// The receiver's reply; none for [`Kind::Silent`], which is no HTTP server at all.
    fn reply(self, a: &MisbehaveArgs) -> Option<Reply> {
        Some(match self {
            Kind::Ok => Reply::Status(204),
            Kind::Slow => Reply::Slow {
                delay: a.slow,
                status: 200,
            },
            Kind::Hang => Reply::Hang,
            Kind::Fail => Reply::Share {
                ok: 200,
                fail: 500,
                fail_share: a.fail_share,
                seed: 12,
            },
            Kind::Reset => Reply::Reset,
            Kind::Close => Reply::Close,
            Kind::RetryAfter => Reply::RetryAfter {
                status: 429,
                seconds: a.retry_after_s,
            },
            Kind::Silent => return None,
        })
    }
}

/// Who the misbehaving endpoints belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// Another tenant with its own events, posted and fanned out before the healthy
    /// tenant's: `--events` for each of the K endpoints.
    Tenants,
    /// One tenant: every event goes to the healthy endpoint and to all K.
    Shared,
}

/// The misbehaving side of a phase; dropping it closes its connections.
enum Bad {
    Receiver(Receiver),
    Silent(Silent),
}

impl Bad {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Bad::Receiver(r) => r.addr,
            Bad::Silent(s) => s.addr,
        }
    }

    /// Requests received (connections, for the silent listener).
    fn requests(&self) -> u64 {
        match self {
            Bad::Receiver(r) => r.snapshot().requests,
            Bad::Silent(s) => s.accepted(),
        }
    }
}

/// The healthy endpoint's figures in one phase.
#[derive(Debug, Clone)]
struct Phase {
    name: &'static str,
    delivered: u64,
    events: u64,
    seconds: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    bad_requests: u64,
    /// Of those, the ones made while the healthy endpoint's events were timed.
    bad_in_phase: u64,
    /// hookd's CPU time while the phase was timed (its pid known): the healthy endpoint's work,
    /// plus whatever the misbehaving ones cost meanwhile. Steal-proof where the rate is not.
    hookd_cpu_s: Option<f64>,
    /// CPU seconds the hypervisor took from the machine in the same window (none if unknown).
    steal_s: Option<f64>,
    /// hookd's CPU time in the same window by thread name, largest first.
    threads: Vec<(String, f64)>,
    /// The paced part after the burst (none with `--paced-rate 0`).
    paced: Option<Paced>,
}

/// Events posted at a steady rate to one more healthy endpoint, and their delivery latency.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Paced {
    posted: u64,
    delivered: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

impl Paced {
    fn json(&self) -> Value {
        json!({
            "posted": self.posted,
            "delivered": self.delivered,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "max_us": self.max_us,
        })
    }
}

impl Phase {
    fn rate(&self) -> f64 {
        per_sec(self.delivered, self.seconds)
    }

    fn complete(&self) -> bool {
        self.delivered >= self.events
            && self
                .paced
                .is_none_or(|p| p.posted > 0 && p.delivered >= p.posted)
    }

    /// hookd's CPU time per healthy delivery in this phase, in microseconds.
    fn cpu_us(&self) -> Option<f64> {
        let s = self.hookd_cpu_s?;
        (self.delivered > 0).then(|| s * 1e6 / self.delivered as f64)
    }
}

pub async fn misbehave_mode(
    target: &Target,
    key: &str,
    args: &MisbehaveArgs,
    pid: Option<u32>,
    ctx: &RunCtx,
) -> Result<(bool, String, Timeline)> {
    let client = client::new_client(8);
    // The healthy endpoint's deliveries over the whole invocation, phase after phase.
    let phases_per_round = 2 * args.kinds.len() as u64;
    let run_meter = Arc::new(Meter::new(
        args.events * (2 + phases_per_round * u64::from(args.rounds)),
    ));
    let sampler = Sampler::start(
        run_meter.clone(),
        None,
        ctx.watch("misbehave", "healthy deliveries/s", pid_cell(pid)),
    );
    let mut phases = Vec::new();
    let mut result = Ok(());
    // A warm-up (not reported: the first phase pays for cold connections and caches), then
    // rounds of, for each kind, the healthy endpoint alone and next to that kind, and a last
    // alone phase: this machine's speed drifts within minutes, so each kind's phase is
    // compared with the alone phases on either side of it (the mean of their rates), and a
    // kind's figure is the median of its rounds.
    let round = args
        .kinds
        .iter()
        .flat_map(|k| [(None, ALONE), (Some(*k), k.name())]);
    let steps = std::iter::once((None, WARM_UP))
        .chain((0..args.rounds).flat_map(|_| round.clone()))
        .chain(std::iter::once((None, ALONE)));
    for (kind, name) in steps {
        match phase(
            &client,
            target,
            key,
            args,
            (kind, name),
            pid,
            &run_meter,
            ctx,
        )
        .await
        {
            Ok(p) if p.name == WARM_UP => {}
            Ok(p) => {
                print_phase(&p, &phases);
                phases.push(p);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        drain(&client, target, key, ctx.limits.work).await;
        settle(pid, ctx.limits.work).await;
        if Instant::now() >= ctx.limits.work {
            break;
        }
    }
    let timeline = sampler.stop().await;
    result?;
    let alone = phases.first().cloned();
    let complete = phases.len() as u64 == phases_per_round * u64::from(args.rounds) + 1
        && phases.iter().all(Phase::complete);
    let summary = summarize(&args.kinds, &phases);
    for k in &summary {
        print_summary(k);
    }
    let line = jline! {
        "mode": "misbehave",
        "bad_endpoints": args.bad_endpoints,
        "events": args.events,
        "layout": format!("{:?}", args.layout).to_lowercase(),
        "alone": alone.as_ref().map(|a| phase_json(a, &[])),
        "kinds": phases
            .iter()
            .enumerate()
            .filter(|(_, p)| p.name != ALONE)
            .map(|(i, p)| phase_json(p, &phases[..i]))
            .collect::<Vec<_>>(),
        "summary": summary.iter().map(Summary::json).collect::<Vec<_>>(),
        "complete": complete,
    };
    out!("{line}");
    Ok((complete, line, timeline))
}

const WARM_UP: &str = "warm-up";
const ALONE: &str = "alone";

#[allow(clippy::too_many_arguments)]
async fn phase(
    client: &HttpClient,
    target: &Target,
    key: &str,
    args: &MisbehaveArgs,
    (kind, name): (Option<Kind>, &'static str),
    pid: Option<u32>,
    run_meter: &Arc<Meter>,
    ctx: &RunCtx,
) -> Result<Phase> {
    let meter = Arc::new(Meter::new(args.events));
    let healthy = Receiver::start_async(ReceiverConfig::embedded(
        ctx.receiver_threads,
        Reply::Status(204),
        vec![meter.clone(), run_meter.clone()],
    ))
    .await?;
    let bad = match kind {
        None => None,
        Some(k) => Some(match k.reply(args) {
            Some(reply) => Bad::Receiver(
                Receiver::start_async(ReceiverConfig::embedded(1, reply, Vec::new())).await?,
            ),
            None => Bad::Silent(Silent::start().await?),
        }),
    };
    let tenant = endpoints::fresh_tenant();
    let healthy_body = endpoints::endpoint_body(
        &tenant,
        "healthy",
        &format!("http://{}/healthy", healthy.addr),
        &json!({}),
    );
    let bad_tenant = match args.layout {
        Layout::Tenants => format!("{tenant}-bad"),
        Layout::Shared => tenant.clone(),
    };
    let bad_bodies: Vec<Value> = bad.as_ref().map_or_else(Vec::new, |b| {
        (0..args.bad_endpoints)
            .map(|i| {
                let url = format!("http://{}/b{i}", b.addr());
                endpoints::endpoint_body(&bad_tenant, &format!("{name} b{i}"), &url, &json!({}))
            })
            .collect()
    });
    eprintln!(
        "misbehave: phase {name}: 1 healthy endpoint + {} misbehaving ({:?}), {} events",
        bad_bodies.len(),
        args.layout,
        args.events
    );
    let mut ids = endpoints::create(client, target, key, &[healthy_body], ctx.limits.work).await?;
    ids.extend(endpoints::create(client, target, key, &bad_bodies, ctx.limits.work).await?);
    if args.layout == Layout::Tenants && !bad_bodies.is_empty() {
        backlog(
            client,
            target,
            key,
            args,
            &bad_tenant,
            bad_bodies.len() as u64,
            ctx,
        )
        .await;
        if args.settled_backlog {
            // What the phase then measures is the misbehaviour alone, not the other tenant's
            // burst of ingest (which the `ok` control measures without this wait).
            settle(pid, ctx.limits.work).await;
        }
    }
    let cpu = || pid.and_then(|p| crate::cpu::process_secs(p).ok());
    let threads = || pid.and_then(|p| crate::cpu::threads_of(p).ok());
    let (start, cpu_before, threads_before) = (Instant::now(), cpu(), threads());
    let bad_before = bad.as_ref().map_or(0, Bad::requests);
    let steal_before = crate::cpu::steal_secs();
    let deadline = (start + args.phase_timeout).min(ctx.limits.work);
    let job = Arc::new(IngestJob {
        target: target.clone(),
        key: key.to_owned(),
        tenant,
        types: vec!["instance.ready".into()],
        events: args.events,
        batch: args.batch,
        concurrency: 2,
        event_bytes: 0,
        watch: IngestWatch::None,
    });
    let ingest = post_events(client, job, deadline).await;
    if let Some(e) = &ingest.first_error {
        eprintln!("ingest error: {e}");
    }
    while meter.done_count() < ingest.events_ok && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let hookd_cpu_s = cpu().zip(cpu_before).map(|(after, before)| after - before);
    let steal_s = crate::cpu::steal_secs()
        .zip(steal_before)
        .map(|(after, before)| after - before);
    let threads = threads()
        .zip(threads_before)
        .map(|(after, before)| crate::cpu::threads_delta(&before, &after))
        .unwrap_or_default();
    let latency = meter.whole_run();
    let bad_requests = bad.as_ref().map_or(0, Bad::requests);
    let bad_in_phase = bad_requests - bad_before;
    let paced = paced(client, target, key, args, ctx).await?;
    endpoints::delete(client, target, key, &ids, ctx.limits.cleanup_deadline()).await;
    // Dropped only now: hookd's requests to them end, and their retries find the endpoint gone.
    drop((bad, healthy));
    Ok(Phase {
        name,
        delivered: meter.done_count(),
        events: args.events,
        seconds,
        p50_us: latency.value_at_quantile(0.50),
        p99_us: latency.value_at_quantile(0.99),
        max_us: latency.max(),
        bad_requests,
        bad_in_phase,
        hookd_cpu_s,
        steal_s,
        threads,
        paced,
    })
}

/// Tick of the paced part: one request of `--paced-rate / 50` events every 20 ms.
const PACED_TICK: Duration = Duration::from_millis(20);

/// The paced part of a phase: `--paced-rate` events a second for `--paced-for`, to a healthy
/// endpoint of a tenant of their own (created here, deleted at the end), each request sent on
/// its tick whether or not the last one was answered; then waits (at most `--phase-timeout`)
/// for their deliveries.
async fn paced(
    client: &HttpClient,
    target: &Target,
    key: &str,
    args: &MisbehaveArgs,
    ctx: &RunCtx,
) -> Result<Option<Paced>> {
    if args.paced_rate == 0 || args.paced_for.is_zero() {
        return Ok(None);
    }
    let per_tick = (args.paced_rate * PACED_TICK.as_millis() as u64 / 1000).max(1);
    let ticks = (args.paced_for.as_millis() / PACED_TICK.as_millis()).max(1) as u64;
    let events = per_tick * ticks;
    let meter = Arc::new(Meter::new(events));
    let receiver = Receiver::start_async(ReceiverConfig::embedded(
        1,
        Reply::Status(204),
        vec![meter.clone()],
    ))
    .await?;
    let tenant = format!("{}-paced", endpoints::fresh_tenant());
    let url = format!("http://{}/paced", receiver.addr);
    let body = endpoints::endpoint_body(&tenant, "paced", &url, &json!({}));
    let ids = endpoints::create(client, target, key, &[body], ctx.limits.work).await?;
    let job = Arc::new(IngestJob {
        target: target.clone(),
        key: key.to_owned(),
        tenant,
        types: vec!["instance.ready".into()],
        events,
        batch: per_tick,
        concurrency: 1,
        event_bytes: 0,
        watch: IngestWatch::None,
    });
    let deadline = (Instant::now() + args.paced_for + args.phase_timeout).min(ctx.limits.work);
    let mut interval = tokio::time::interval(PACED_TICK);
    let mut requests = tokio::task::JoinSet::new();
    for t in 0..ticks {
        interval.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let (lo, hi) = (t * per_tick, (t + 1) * per_tick);
        let req = batch_request(&job, lo, hi);
        let client = client.clone();
        requests.spawn(async move {
            match client::send(&client, req, deadline).await {
                Outcome::Response(202, _) => hi - lo,
                _ => 0,
            }
        });
    }
    let mut posted = 0;
    while let Some(n) = requests.join_next().await {
        posted += n.unwrap_or(0);
    }
    while meter.done_count() < posted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let latency = meter.whole_run();
    endpoints::delete(client, target, key, &ids, ctx.limits.cleanup_deadline()).await;
    drop(receiver);
    Ok(Some(Paced {
        posted,
        delivered: meter.done_count(),
        p50_us: latency.value_at_quantile(0.50),
        p99_us: latency.value_at_quantile(0.99),
        max_us: latency.max(),
    }))
}

/// Posts the misbehaving tenant's events and waits (at most `--phase-timeout`) until hookd
/// has made their deliveries, so the healthy tenant's events meet a backlog being worked
/// (the caller then waits for hookd to settle).
async fn backlog(
    client: &HttpClient,
    target: &Target,
    key: &str,
    args: &MisbehaveArgs,
    tenant: &str,
    endpoints: u64,
    ctx: &RunCtx,
) {
    let deadline = (Instant::now() + args.phase_timeout).min(ctx.limits.work);
    let created = |client, deadline| {
        counter(
            client,
            target,
            key,
            "hookd_deliveries_created_total",
            deadline,
        )
    };
    let before = created(client, deadline).await.unwrap_or(0);
    let job = Arc::new(IngestJob {
        target: target.clone(),
        key: key.to_owned(),
        tenant: tenant.to_owned(),
        types: vec!["instance.ready".into()],
        events: args.bad_events,
        batch: args.batch,
        concurrency: 2,
        event_bytes: 0,
        watch: IngestWatch::None,
    });
    let posted = post_events(client, job, deadline).await;
    let want = before + posted.events_ok * endpoints;
    while Instant::now() < deadline {
        match created(client, deadline).await {
            Some(n) if n >= want => return,
            None => break,
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    eprintln!("misbehave: the misbehaving tenant's deliveries were not all made in time; going on");
}

/// Waits (at most 20 s) until hookd has no request in flight, so a phase does not inherit the
/// last one's hanging requests.
async fn drain(client: &HttpClient, target: &Target, key: &str, until: Instant) {
    let deadline = (Instant::now() + Duration::from_secs(20)).min(until);
    while Instant::now() < deadline {
        match in_flight(client, target, key, deadline).await {
            Some(0) | None => return,
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    eprintln!("misbehave: hookd still has requests in flight; going on");
}

/// Waits (at most 30 s) until hookd is idle: under 10% of a core over half a second. Deleting
/// a phase's endpoints leaves their deliveries to be purged in the background, and a phase
/// timed meanwhile would share the machine with that.
async fn settle(pid: Option<u32>, until: Instant) {
    let Some(pid) = pid else { return };
    let deadline = (Instant::now() + Duration::from_secs(30)).min(until);
    let window = Duration::from_millis(500);
    if !crate::cpu::wait_idle(pid, window, 0.1 * window.as_secs_f64(), deadline).await {
        eprintln!("misbehave: hookd is still busy after 30 s (or its CPU is unreadable); going on");
    }
}

/// `hookd_deliveries_in_flight` from `/metrics`; none if it cannot be read.
async fn in_flight(
    client: &HttpClient,
    target: &Target,
    key: &str,
    deadline: Instant,
) -> Option<u64> {
    counter(client, target, key, "hookd_deliveries_in_flight", deadline).await
}

/// An unlabelled metric from `/metrics`; none if it cannot be read.
async fn counter(
    client: &HttpClient,
    target: &Target,
    key: &str,
    name: &str,
    deadline: Instant,
) -> Option<u64> {
    let req = client::request(
        hyper::Method::GET,
        &target.base,
        "/metrics",
        Some(key),
        bytes::Bytes::new(),
    );
    match client::send(client, req, deadline).await {
        client::Outcome::Response(200, body) => metric(&String::from_utf8_lossy(&body), name),
        _ => None,
    }
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|v| v as u64)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The phases a misbehaving one is compared with: the last alone phase before it, and the
/// `ok` control if it ran.
fn references<'a>(p: &Phase, before: &'a [Phase]) -> (Option<&'a Phase>, Option<&'a Phase>) {
    if p.name == ALONE {
        return (None, None);
    }
    let alone = before.iter().rev().find(|a| a.name == ALONE);
    let control = before.iter().find(|c| c.name == "ok" && p.name != "ok");
    (alone, control)
}

fn print_phase(p: &Phase, before: &[Phase]) {
    let (alone, control) = references(p, before);
    let cpu = p
        .cpu_us()
        .map(|c| {
            let vs = alone
                .and_then(Phase::cpu_us)
                .map(|a| format!(" ({:.2}x alone's)", ratio(c, a)))
                .unwrap_or_default();
            format!("; hookd CPU {c:.1} us per healthy delivery{vs}")
        })
        .unwrap_or_default();
    let threads: Vec<String> = p
        .threads
        .iter()
        .take(5)
        .map(|(name, s)| format!("{name} {s:.2}"))
        .collect();
    let steal = p
        .steal_s
        .map(|s| format!("; steal {s:.2} s"))
        .unwrap_or_default();
    let threads = if threads.is_empty() {
        String::new()
    } else {
        format!(" (s: {}{steal})", threads.join(", "))
    };
    let vs = |r: Option<&Phase>, what: &str| {
        r.map(|a| {
            format!(
                "; {:.2}x {what}'s rate, p99 {:.1}x {what}'s",
                ratio(p.rate(), a.rate()),
                ratio(p.p99_us as f64, a.p99_us as f64)
            )
        })
        .unwrap_or_default()
    };
    let paced = p
        .paced
        .map(|q| {
            format!(
                "; paced: {} of {} delivered, p50 {} p99 {} max {}",
                q.delivered,
                q.posted,
                ms(q.p50_us),
                ms(q.p99_us),
                ms(q.max_us)
            )
        })
        .unwrap_or_default();
    out!(
        "misbehave: {}: healthy endpoint got {} of {} in {:.2} s = {:.0} deliveries/s, delivery p50 {} p99 {} max {}{}{}{}{}; misbehaving endpoints got {} requests ({} while timed){}",
        p.name,
        p.delivered,
        p.events,
        p.seconds,
        p.rate(),
        ms(p.p50_us),
        ms(p.p99_us),
        ms(p.max_us),
        vs(alone, "alone"),
        vs(control, "ok"),
        cpu,
        paced,
        p.bad_requests,
        p.bad_in_phase,
        threads
    );
}

/// One kind over its rounds: the medians (and ranges) of its phases' figures, each phase against
/// the alone phases on either side of it ([`bracket`]).
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    kind: &'static str,
    rounds: usize,
    /// Rate against alone's: median, lowest, highest.
    rate_vs_alone: [f64; 3],
    /// p99 delivery latency in microseconds: median, highest.
    p99_us: [u64; 2],
    /// hookd CPU per healthy delivery against alone's, median (when hookd's pid is known).
    cpu_vs_alone: Option<f64>,
    /// The paced part's p99 in microseconds: median, highest (when it ran).
    paced_p99_us: Option<[u64; 2]>,
}

impl Summary {
    fn json(&self) -> Value {
        json!({
            "kind": self.kind,
            "rounds": self.rounds,
            "rate_vs_alone_median": r3(self.rate_vs_alone[0]),
            "rate_vs_alone_min": r3(self.rate_vs_alone[1]),
            "rate_vs_alone_max": r3(self.rate_vs_alone[2]),
            "p99_us_median": self.p99_us[0],
            "p99_us_max": self.p99_us[1],
            "cpu_vs_alone_median": self.cpu_vs_alone.map(r3),
            "paced_p99_us_median": self.paced_p99_us.map(|p| p[0]),
            "paced_p99_us_max": self.paced_p99_us.map(|p| p[1]),
        })
    }
}

/// The median of `v` (the mean of the middle two when even); `v` is sorted in place.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// What phase `i` is measured against: the mean rate (and CPU per delivery) of the alone phase
/// just before it and the one just after it, or of the one before alone when none follows.
/// Either side alone moves with the machine's drift; their mean is the rate at the moment of
/// phase `i`, were the drift steady.
fn bracket(phases: &[Phase], i: usize) -> Option<(f64, Option<f64>)> {
    let before = references(&phases[i], &phases[..i]).0?;
    let after = phases.get(i + 1).filter(|a| a.name == ALONE);
    let sides: Vec<&Phase> = std::iter::once(before).chain(after).collect();
    let n = sides.len() as f64;
    let rate = sides.iter().map(|a| a.rate()).sum::<f64>() / n;
    let cpus: Option<Vec<f64>> = sides.iter().map(|a| a.cpu_us()).collect();
    Some((rate, cpus.map(|c| c.iter().sum::<f64>() / n)))
}

fn summarize(kinds: &[Kind], phases: &[Phase]) -> Vec<Summary> {
    kinds
        .iter()
        .filter_map(|k| {
            let (mut rates, mut p99s, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
            let mut paced = Vec::new();
            for (i, p) in phases
                .iter()
                .enumerate()
                .filter(|(_, p)| p.name == k.name())
            {
                let Some((rate, cpu)) = bracket(phases, i) else {
                    continue;
                };
                rates.push(ratio(p.rate(), rate));
                p99s.push(p.p99_us as f64);
                paced.extend(p.paced.map(|q| q.p99_us as f64));
                if let (Some(c), Some(a)) = (p.cpu_us(), cpu) {
                    cpus.push(ratio(c, a));
                }
            }
            if rates.is_empty() {
                return None;
            }
            let rounds = rates.len();
            let med = median(&mut rates);
            let (lo, hi) = (rates[0], rates[rounds - 1]);
            let p99 = median(&mut p99s);
            Some(Summary {
                kind: k.name(),
                rounds,
                rate_vs_alone: [med, lo, hi],
                p99_us: [p99 as u64, p99s[rounds - 1] as u64],
                cpu_vs_alone: (!cpus.is_empty()).then(|| median(&mut cpus)),
                paced_p99_us: (!paced.is_empty()).then(|| {
                    let m = median(&mut paced);
                    [m as u64, paced[paced.len() - 1] as u64]
                }),
            })
        })
        .collect()
}

fn print_summary(s: &Summary) {
    let cpu = s
        .cpu_vs_alone
        .map(|c| format!(", hookd CPU per healthy delivery {c:.2}x alone's"))
        .unwrap_or_default();
    let paced = s
        .paced_p99_us
        .map(|[m, x]| format!("; paced p99 median {} max {}", ms(m), ms(x)))
        .unwrap_or_default();
    out!(
        "misbehave: {} over {} rounds: median {:.2}x alone's rate ({:.2}-{:.2}x), p99 median {} max {}{}{}",
        s.kind,
        s.rounds,
        s.rate_vs_alone[0],
        s.rate_vs_alone[1],
        s.rate_vs_alone[2],
        ms(s.p99_us[0]),
        ms(s.p99_us[1]),
        cpu,
        paced
    );
}

fn phase_json(p: &Phase, before: &[Phase]) -> Value {
    let (alone, control) = references(p, before);
    let rate_vs = |r: Option<&Phase>| r.map(|a| r3(ratio(p.rate(), a.rate())));
    let p99_vs = |r: Option<&Phase>| r.map(|a| r3(ratio(p.p99_us as f64, a.p99_us as f64)));
    json!({
        "kind": p.name,
        "delivered": p.delivered,
        "seconds": r3(p.seconds),
        "per_sec": r1(p.rate()),
        "p50_us": p.p50_us,
        "p99_us": p.p99_us,
        "max_us": p.max_us,
        "alone_per_sec": alone.map(|a| r1(a.rate())),
        "rate_vs_alone": rate_vs(alone),
        "p99_vs_alone": p99_vs(alone),
        "rate_vs_ok": rate_vs(control),
        "p99_vs_ok": p99_vs(control),
        "bad_requests": p.bad_requests,
        "bad_requests_timed": p.bad_in_phase,
        "steal_s": p.steal_s.map(r3),
        "hookd_cpu_us_per_delivery": p.cpu_us().map(r1),
        "hookd_threads_s": p.threads.iter().map(|(n, s)| json!([n, r3(*s)])).collect::<Vec<_>>(),
        "cpu_vs_alone": alone.and_then(Phase::cpu_us).zip(p.cpu_us()).map(|(a, c)| r3(ratio(c, a))),
        "paced": p.paced.map(|q| q.json()),
        "complete": p.complete(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(name: &'static str, seconds: f64, p99_us: u64) -> Phase {
        Phase {
            name,
            delivered: 100,
            events: 100,
            seconds,
            p50_us: 1,
            p99_us,
            max_us: p99_us,
            bad_requests: 0,
            bad_in_phase: 0,
            steal_s: None,
            hookd_cpu_s: Some(seconds / 10.0),
            threads: Vec::new(),
            paced: Some(Paced {
                posted: 10,
                delivered: 10,
                p50_us: 1,
                p99_us: p99_us / 2,
                max_us: p99_us,
            }),
        }
    }

    #[test]
    fn phases_compare_with_alone_and_the_control() {
        // Each kind is compared with the alone phase just before it.
        let before = [
            phase("alone", 1.0, 10),
            phase("ok", 2.0, 40),
            phase("alone", 2.0, 20),
        ];
        let hang = phase_json(&phase("hang", 4.0, 80), &before);
        assert_eq!(
            (&hang["rate_vs_alone"], &hang["p99_vs_alone"]),
            (&json!(0.5), &json!(4.0))
        );
        assert_eq!(
            (&hang["rate_vs_ok"], &hang["p99_vs_ok"]),
            (&json!(0.5), &json!(2.0))
        );
        assert_eq!(hang["cpu_vs_alone"], json!(2.0), "{hang}");
        let ok = phase_json(&before[1], &before[..1]);
        assert!(ok["rate_vs_ok"].is_null() && ok["rate_vs_alone"] == json!(0.5));
        let alone = phase_json(&before[2], &before[..2]);
        assert!(alone["rate_vs_alone"].is_null() && alone["complete"] == json!(true));
    }

    #[test]
    fn a_kind_is_the_median_of_its_rounds_each_against_the_alone_phases_around_it() {
        // Rates: 100 events in `seconds`.
        let phases = [
            phase("alone", 1.0, 10), // 100/s
            phase("hang", 2.0, 30),  // 50/s against (100 + 50) / 2: 0.667x
            phase("alone", 2.0, 10), // 50/s
            phase("hang", 2.0, 10),  // 50/s against (50 + 100) / 2: 0.667x
            phase("alone", 1.0, 10), // 100/s
            phase("hang", 1.25, 20), // 80/s against 100 alone (none after): 0.8x
        ];
        let s = summarize(&[Kind::Hang, Kind::Fail], &phases);
        assert_eq!(s.len(), 1, "a kind with no phase has no summary");
        assert_eq!(s[0].kind, "hang");
        assert_eq!(s[0].rounds, 3);
        let r = s[0].rate_vs_alone.map(|x| (x * 1000.0).round() / 1000.0);
        assert_eq!(r, [0.667, 0.667, 0.8]);
        assert_eq!(s[0].p99_us, [20, 30]);
        // CPU per delivery is seconds / 10 per 100: 2000 us against (1000 + 2000) / 2 twice,
        // then 1250 against 1000.
        let cpu = s[0].cpu_vs_alone.map(|x| (x * 1000.0).round() / 1000.0);
        assert_eq!(cpu, Some(1.333));
        assert_eq!(s[0].paced_p99_us, Some([10, 15]));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn reads_an_unlabelled_metric() {
        let text = "# HELP hookd_deliveries_in_flight x\nhookd_deliveries_in_flight_total 9\nhookd_deliveries_in_flight 3\n";
        assert_eq!(metric(text, "hookd_deliveries_in_flight"), Some(3));
        assert_eq!(metric(text, "hookd_nothing"), None);
    }
}
