//! Per-endpoint rate limits: a token bucket per limited endpoint, kept by the shard that owns
//! it and charged as each attempt starts.
//!
//! The bucket is kept as its theoretical arrival time (GCRA, the token bucket's exact twin):
//! with `per_second` tokens a second and room for `burst`, an attempt may start at `now` when
//! `tat - (burst - 1) * interval <= now`, and starting it moves `tat` to
//! `max(tat, now) + interval`. So at most `burst` attempts start at once, and in any window of
//! `t` seconds at most `burst + per_second * t`.
//!
//! A due job whose endpoint has no token waits in its endpoint's queue: the endpoint leaves the
//! round-robin until the wheel time its next token comes (a timer of the shard's loop, not a
//! poll), and no attempt is spent. Jobs dropped as stale spend no token either.

use hookd_types::{EndpointId, RateLimit};

use super::{Dispatch, Shard};

/// How late a start may be and still count as on time (see [`Bucket::take`]).
const GRACE_MS: f64 = 2.0;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bucket {
    /// Milliseconds per token.
    interval: f64,
    /// How far `tat` may run ahead of now: `(burst - 1) * interval`.
    tolerance: f64,
    /// Theoretical arrival time (wheel ms): the next attempt may start at `tat - tolerance`.
    tat: f64,
}

impl Bucket {
    /// A full bucket.
    pub(super) fn new(limit: RateLimit) -> Self {
        let interval = 1000.0 / f64::from(limit.per_second.max(1));
        Self {
            interval,
            tolerance: f64::from(limit.burst.max(1) - 1) * interval,
            tat: 0.0,
        }
    }

    /// The same bucket under a new limit: what was spent stays spent (a change grants no burst
    /// beyond the new limit's).
    pub(super) fn change(&mut self, limit: RateLimit) {
        let tat = self.tat;
        *self = Self::new(limit);
        self.tat = tat;
    }

    /// The wheel time from which an attempt may start.
    pub(super) fn ready_at(&self) -> u64 {
        (self.tat - self.tolerance).max(0.0).ceil() as u64
    }

    /// An attempt starts at wheel time `now`: takes a token. A start up to [`GRACE_MS`] after
    /// its token came counts as on time: whole-millisecond timers wake a little late, and
    /// without this every token would come that much later and the rate would fall short.
    pub(super) fn take(&mut self, now: u64) {
        let now = now as f64;
        let base = if now - self.tat <= GRACE_MS.min(self.interval) {
            self.tat
        } else {
            now
        };
        self.tat = base + self.interval;
    }
}

impl<D: Dispatch> Shard<D> {
    /// Applies an endpoint's rate limit (or its absence).
    pub(super) fn set_rate_limit(&mut self, endpoint: EndpointId, limit: Option<RateLimit>) {
        match limit {
            Some(limit) => match self.limits.get_mut(&endpoint) {
                Some(b) => b.change(limit),
                None => {
                    self.limits.insert(endpoint, Bucket::new(limit));
                }
            },
            None => {
                self.limits.remove(&endpoint);
            }
        }
        // It may have been waiting for a token it no longer needs, or waits longer now.
        self.wake(endpoint);
    }

    /// When `endpoint` may start its next attempt (wheel ms), if it must wait for a token.
    pub(super) fn token_wait(&self, endpoint: EndpointId, now: u64) -> Option<u64> {
        let at = self.limits.get(&endpoint)?.ready_at();
        (at > now).then_some(at)
    }

    /// Endpoints whose next token has come are runnable again.
    pub(super) fn refill_due(&mut self) {
        let now = self.clock.elapsed_ms();
        while let Some(&(at, endpoint)) = self.refill.first() {
            if at > now {
                break;
            }
            self.refill.pop_first();
            self.wake(endpoint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }

    /// Starts as many attempts as the bucket allows, each as soon as it may, up to `until`.
    fn starts(b: &mut Bucket, until: u64) -> Vec<u64> {
        let mut out = Vec::new();
        loop {
            let at = b.ready_at();
            if at > until {
                return out;
            }
            b.take(at);
            out.push(at);
        }
    }

    #[test]
    fn burst_then_the_rate() {
        let mut b = Bucket::new(limit(20, 3));
        let got = starts(&mut b, 1000);
        assert_eq!(&got[..4], &[0, 0, 0, 50]);
        // 3 at once, then one every 50 ms: 3 + 20 in the first second (at 50..=1000).
        assert_eq!(got.len(), 3 + 20);
        assert!(got.windows(2).skip(2).all(|w| w[1] - w[0] == 50));
    }

    #[test]
    fn fractional_intervals_keep_the_rate() {
        let mut b = Bucket::new(limit(3, 1));
        let got = starts(&mut b, 10_000);
        assert_eq!(got.len(), 31, "one at 0, then 3 a second for 10 s: {got:?}");
        assert_eq!(&got[..4], &[0, 334, 667, 1000]);
    }

    #[test]
    fn idle_time_refills_up_to_the_burst_only() {
        let mut b = Bucket::new(limit(10, 2));
        b.take(0);
        b.take(0);
        assert_eq!(b.ready_at(), 100);
        // Idle for a long time: two at once again, no more.
        b.take(10_000);
        b.take(10_000);
        assert_eq!(b.ready_at(), 10_100);
    }

    #[test]
    fn a_change_keeps_what_was_spent() {
        let mut b = Bucket::new(limit(10, 1));
        b.take(0);
        assert_eq!(b.ready_at(), 100);
        b.change(limit(1, 1));
        // The token spent at 0 under 10/s is due back at 100; the next ones come at 1/s.
        assert_eq!(b.ready_at(), 100);
        b.take(100);
        assert_eq!(b.ready_at(), 1100);
    }
}
