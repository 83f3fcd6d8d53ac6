//! A Prometheus histogram with fixed buckets, lock-free and allocation-free.
//!
//! Each observation adds one to the one bucket it falls in (buckets are stored apart, not
//! cumulatively) and its microseconds to the sum: two relaxed `fetch_add`s. Rendering adds the
//! buckets up, so `le="+Inf"` and `_count` are the same number by construction. A scrape that
//! races an observation may see the sum without the count or the other way round, as with any
//! Prometheus client; both settle on the next scrape.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct Histogram<const N: usize> {
    /// Upper bounds in microseconds, ascending.
    bounds_us: [u64; N],
    /// `counts[i]`: observations above `bounds_us[i - 1]` and at most `bounds_us[i]`.
    counts: [AtomicU64; N],
    /// Observations above the last bound.
    over: AtomicU64,
    sum_us: AtomicU64,
}

/// The cumulative view of a [`Histogram`], as Prometheus exposes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `(upper bound in microseconds, observations at most that)`, ascending.
    pub buckets: Vec<(u64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    pub sum_us: u64,
}

impl<const N: usize> Histogram<N> {
    /// `bounds_us` must be ascending (a unit test checks the daemon's).
    pub const fn new(bounds_us: [u64; N]) -> Self {
        Self {
            bounds_us,
            counts: [const { AtomicU64::new(0) }; N],
            over: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = self.bounds_us.partition_point(|&b| b < us);
        let bucket = self.counts.get(i).unwrap_or(&self.over);
        bucket.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observes the time from `start_ms` to `now_ms` (unix milliseconds); zero if the clock
    /// went back.
    pub fn observe_ms(&self, start_ms: u64, now_ms: u64) {
        self.observe(Duration::from_millis(now_ms.saturating_sub(start_ms)));
    }

    pub fn bounds_us(&self) -> &[u64; N] {
        &self.bounds_us
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut total = 0;
        let buckets = self
            .bounds_us
            .iter()
            .zip(&self.counts)
            .map(|(&b, c)| {
                total += c.load(Ordering::Relaxed);
                (b, total)
            })
            .collect();
        Snapshot {
            buckets,
            count: total + self.over.load(Ordering::Relaxed),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }

    /// Appends `name`'s `# HELP`, `# TYPE`, `_bucket` lines (`le` in seconds), `_sum`
    /// (seconds) and `_count`.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let s = self.snapshot();
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, n) in &s.buckets {
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {n}", seconds(*bound));
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "{name}_sum {}", seconds(s.sum_us));
        let _ = writeln!(out, "{name}_count {}", s.count);
    }
}

/// Microseconds as decimal seconds, exactly and without trailing zeros: `2500000` -> `2.5`.
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}
