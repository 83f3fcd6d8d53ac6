//! Process-wide counters, updated with relaxed atomics on the hot paths and rendered as
//! Prometheus text by the API.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Metrics { $(pub $name: AtomicU64,)* }

        impl Metrics {
            pub const fn new() -> Self { Self { $($name: AtomicU64::new(0),)* } }

            /// Prometheus text exposition of every counter.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let _ = writeln!(out, "# HELP hookd_{} {}", stringify!($name), $help);
                    let _ = writeln!(out, "hookd_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
                out
            }
        }
    };
}

counters! {
    events_ingested_total: "Events durably appended to the log.",
    log_flushes_total: "Group-commit flushes of the log (events per flush = events / flushes).",
    outcome_flushes_total: "Syncs of the outcome log (attempt outcomes, manual retries), one per batch the indexer applies.",
    events_fanned_out_total: "Events whose fan-out is committed, whether or not they made deliveries.",
    deliveries_created_total: "Deliveries created by fan-out.",
    attempts_total: "Delivery attempts made.",
    deliveries_succeeded_total: "Deliveries that got a 2xx.",
    attempts_failed_total: "Attempts that failed and were rescheduled or dead-lettered.",
    deliveries_dead_lettered_total: "Deliveries that exhausted their schedule.",
    deliveries_in_flight: "Requests to endpoints currently in flight.",
}

pub static METRICS: Metrics = Metrics::new();

pub fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub fn dec(c: &AtomicU64, n: u64) {
    c.fetch_sub(n, Ordering::Relaxed);
}
