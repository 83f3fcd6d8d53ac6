//! Process-wide metrics, updated with relaxed atomics on the hot paths and rendered as
//! Prometheus text (exposition format 0.0.4) by the API. `docs/OPERATIONS.md` lists them all.
//!
//! - counters: totals since the process started;
//! - gauges: current values (pending deliveries, requests in flight);
//! - [`Histogram`]: fixed buckets, two relaxed `fetch_add`s per observation;
//! - [`Outcome`]: attempts counted by a small fixed set of outcomes;
//! - [`PerEndpoint`]: the same per endpoint, only when `[metrics] per_endpoint` is on.
//!
//! Every other label set is fixed at compile time: nothing grows with endpoints or tenants.
//! Recording is lock-free and never allocates, so hot paths call it in one line
//! (`METRICS.attempt_duration.observe(d)`).

mod histogram;
mod outcome;
mod per_endpoint;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::EndpointId;

pub use histogram::{Histogram, Snapshot};
pub use outcome::Outcome;
pub use per_endpoint::PerEndpoint;

/// Upper bounds of [`Metrics::attempt_duration_seconds`], in microseconds: 5 ms to 30 s (the longest
/// sensible `[sender] timeout`).
const ATTEMPT_BOUNDS_US: [u64; 12] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 30_000_000,
];

/// Upper bounds of [`Metrics::delivery_lag_seconds`], in microseconds: 10 ms to two days, since
/// a delivery that needed retries is delivered minutes or hours after its event (the default
/// schedule's last retry comes about 32 hours after the first attempt).
const LAG_BOUNDS_US: [u64; 17] = [
    10_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
    900_000_000,
    3_600_000_000,
    21_600_000_000,
    86_400_000_000,
    172_800_000_000,
];

macro_rules! metrics {
    (
        counters { $($c:ident: $ch:literal),* $(,)? }
        gauges { $($g:ident: $gh:literal),* $(,)? }
        histograms { $($h:ident: $n:literal = $bounds:expr, $hh:literal),* $(,)? }
    ) => {
        #[derive(Debug)]
        pub struct Metrics {
            $(#[doc = $ch] pub $c: AtomicU64,)*
            $(#[doc = $gh] pub $g: AtomicU64,)*
            $(#[doc = $hh] pub $h: Histogram<$n>,)*
            /// Attempts by [`Outcome`].
            pub outcomes: [AtomicU64; Outcome::ALL.len()],
            /// Attempts by endpoint and [`Outcome`], when enabled.
            pub per_endpoint: PerEndpoint,
        }

        impl Metrics {
            pub const fn new() -> Self {
                Self {
                    $($c: AtomicU64::new(0),)*
                    $($g: AtomicU64::new(0),)*
                    $($h: Histogram::new($bounds),)*
                    outcomes: [const { AtomicU64::new(0) }; Outcome::ALL.len()],
                    per_endpoint: PerEndpoint::new(),
                }
            }

            /// Prometheus text exposition of every metric.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(scalar(&mut out, stringify!($c), "counter", $ch, &self.$c);)*
                $(scalar(&mut out, stringify!($g), "gauge", $gh, &self.$g);)*
                self.render_outcomes(&mut out);
                self.per_endpoint.render(&mut out);
                $(self.$h.render(&mut out, concat!("hookd_", stringify!($h)), $hh);)*
                out
            }
        }
    };
}

metrics! {
    counters {
        events_ingested_total: "Events durably appended to the log.",
        log_flushes_total: "Group-commit flushes of the log (events per flush = events / flushes).",
        outcome_flushes_total: "Syncs of the outcome log (fan-out decisions, attempt outcomes, manual retries), one per batch the indexer applies.",
        outcome_backpressure_total: "Appends to the outcome log that waited for the indexer to catch up (it was more than 50,000 records behind).",
        events_fanned_out_total: "Events whose fan-out is recorded and applied, whether or not they made deliveries.",
        deliveries_created_total: "Deliveries created by fan-out and replays.",
        attempts_total: "Delivery attempts made.",
        deliveries_succeeded_total: "Deliveries that got a 2xx.",
        attempts_failed_total: "Attempts that failed and were rescheduled or dead-lettered.",
        deliveries_dead_lettered_total: "Deliveries that exhausted their schedule.",
        retention_deliveries_deleted_total: "Finished deliveries (with their attempts) deleted by retention once older than `[retention] history`.",
        retention_events_deleted_total: "Events deleted by retention once older than `[retention] history` and left by their deliveries.",
        retention_event_log_segments_deleted_total: "Event-log segment files deleted by retention once every event in them was deleted or had its body copied into its record.",
    }
    gauges {
        deliveries_in_flight: "Requests to endpoints currently in flight.",
        deliveries_pending: "Deliveries waiting for an attempt (first or retry), including those being attempted now.",
    }
    histograms {
        attempt_duration_seconds: 12 = ATTEMPT_BOUNDS_US,
            "Time from sending an attempt's request to its response or failure.",
        delivery_lag_seconds: 17 = LAG_BOUNDS_US,
            "Time from an event's acceptance to its delivery's 2xx, retries included.",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Counts one attempt to `endpoint` by `outcome`; `latency` goes into
    /// [`Self::attempt_duration_seconds`] unless no request was sent.
    pub fn attempted(&self, endpoint: EndpointId, outcome: Outcome, latency: Duration) {
        inc(&self.outcomes[outcome as usize], 1);
        self.per_endpoint.attempted(endpoint, outcome);
        if outcome != Outcome::NotSent {
            self.attempt_duration_seconds.observe(latency);
        }
    }

    /// Attempts counted with `outcome` so far.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    fn render_outcomes(&self, out: &mut String) {
        let name = "hookd_attempt_outcomes_total";
        let _ = writeln!(out, "# HELP {name} Delivery attempts by outcome.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for o in Outcome::ALL {
            let _ = writeln!(
                out,
                "{name}{{outcome=\"{}\"}} {}",
                o.as_str(),
                self.outcome(o)
            );
        }
    }
}

fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: &AtomicU64) {
    let _ = writeln!(out, "# HELP hookd_{name} {help}");
    let _ = writeln!(out, "# TYPE hookd_{name} {kind}");
    let _ = writeln!(out, "hookd_{name} {}", value.load(Ordering::Relaxed));
}

pub static METRICS: Metrics = Metrics::new();

pub fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Lowers a gauge, stopping at zero: a miscount must not show as 2^64 pending deliveries.
pub fn dec(c: &AtomicU64, n: u64) {
    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

#[cfg(test)]
mod tests;
