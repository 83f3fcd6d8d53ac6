//! [`Meter`]: what a run has done so far, shared between the tasks doing the work and the
//! once-a-second sampler: work issued and done, errors, and latencies (of the current second
//! and of the whole run).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::client::new_histogram;

/// Counters and latency histograms of one stream of work (deliveries, events, requests, reads).
#[derive(Debug)]
pub struct Meter {
    issued: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    /// Expected in all, 0 when open-ended (for the progress line's percentage and ETA).
    total: AtomicU64,
    /// Latencies in microseconds: (since the last [`Meter::take_second`], whole run).
    latency: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new(0)
    }
}

impl Meter {
    pub fn new(total: u64) -> Meter {
        Meter {
            issued: AtomicU64::new(0),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            total: AtomicU64::new(total),
            latency: Mutex::new((new_histogram(), new_histogram())),
        }
    }

    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    pub fn total(&self) -> Option<u64> {
        Some(self.total.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    pub fn issue(&self, n: u64) {
        self.issued.fetch_add(n, Ordering::Relaxed);
    }

    pub fn done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the done count, for work counted by polling (a gauge read from hookd).
    pub fn set_done(&self, n: u64) {
        self.done.store(n, Ordering::Relaxed);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_us(&self, us: u64) {
        let us = us.max(1);
        let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        h.0.saturating_record(us);
        h.1.saturating_record(us);
    }

    pub fn record(&self, d: Duration) {
        self.record_us(d.as_micros() as u64);
    }

    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    pub fn done_count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Issued and not yet done nor failed.
    pub fn in_flight(&self) -> u64 {
        self.issued()
            .saturating_sub(self.done_count() + self.errors())
    }

    /// The latencies recorded since the last call (and resets them).
    pub fn take_second(&self) -> Histogram<u64> {
        let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut h.0, new_histogram())
    }

    /// Every latency recorded in the run.
    pub fn whole_run(&self) -> Histogram<u64> {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }
}

/// Microseconds since the Unix epoch: the `sent_us` stamp events carry, so a receiver in the
/// same process can tell how long a delivery took from the POST that made it.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// The `"sent_us":N` stamp in a delivered body, if any.
pub fn sent_us(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sent_us\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sent_stamp() {
        let body = br#"{"id":"e","data":{"region":"x","sent_us":1733100000123456,"seq":4}}"#;
        assert_eq!(sent_us(body), Some(1_733_100_000_123_456));
        assert_eq!(sent_us(br#"{"sent_us":}"#), None);
        assert_eq!(sent_us(br#"{"seq":1}"#), None);
    }

    #[test]
    fn counts_and_takes_latencies_per_second() {
        let m = Meter::new(10);
        m.issue(5);
        m.done(2);
        m.error();
        assert_eq!((m.in_flight(), m.total()), (2, Some(10)));
        m.set_done(4);
        assert_eq!(m.in_flight(), 0);
        m.record_us(1_000);
        m.record_us(3_000);
        let first = m.take_second();
        assert_eq!(first.len(), 2);
        m.record_us(2_000);
        assert_eq!(m.take_second().len(), 1);
        assert_eq!(m.take_second().len(), 0);
        assert_eq!(m.whole_run().len(), 3);
        assert_eq!(Meter::new(0).total(), None);
    }
}
