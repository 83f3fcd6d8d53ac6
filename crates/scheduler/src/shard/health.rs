//! What a shard knows of an endpoint's health from its attempts' [`Signal`]s: a circuit breaker
//! and an adaptive concurrency limit.
//!
//! - **Adaptive concurrency** (AIMD): the limit starts at [`START_LIMIT`] (a slow start: an
//!   endpoint never seen may be a broken one, and 80 new broken endpoints at 16 attempts each
//!   would all be in flight before a breaker opens), grows by one on each success up to
//!   `per_endpoint_concurrency` (so it doubles with each round of answers), and halves on a
//!   timeout or connection error (never below 1). A success
//!   whose answer came markedly slower than the endpoint's usual (rising latency: more than
//!   twice its usual and [`RISE_FLOOR_MS`] over it) takes a quarter off instead. The usual is
//!   the fastest answer seen, drifting up by a sixteenth of each slower answer's excess, so an
//!   endpoint that became slower for good is treated as slower for a few attempts, then grows
//!   back at its new speed.
//! - **Circuit breaker**: after `failures` consecutive failures (5xx, timeouts, connection
//!   errors) it opens: the endpoint's due deliveries wait in the shard, making no attempt, for
//!   `interval`. Then it probes: one attempt at a time. A success closes it (the limit starts
//!   again from 1 and grows); a failure opens it again for twice as long, up to `max_interval`.
//!   Other answers (3xx, 4xx, 429) show the endpoint up: they reset the count.
//! - **Failure share**: a running share of recent attempts that failed (each attempt moves it
//!   an eighth of the way towards 0 or 1). An endpoint at a quarter or more, or whose breaker
//!   is not closed, is *failing*: while healthy endpoints are delivering, it yields to them
//!   ([`super::share`]).
//! - **Asked to wait**: a 429 or 503 with `Retry-After` opens the breaker for the time asked
//!   (clamped by the sender to [1 s, 1 h]) without counting a failure: the endpoint's other
//!   deliveries wait too, then a probe goes first.
//!
//! Attempts made while a breaker is open: none. A delivery waiting behind an open breaker keeps
//! its attempt count (and not its event, which its attempt reads back from the store); it is
//! attempted once the breaker closes (or as a probe), later than its deadline. Only probes
//! spend attempts.

use std::time::Duration;

use hookd_types::{EndpointId, Signal};

use super::{Dispatch, Shard};

/// The concurrency limit of an endpoint the shard knows nothing of yet (slow start); the
/// daemon's default for [`super::SchedulerConfig::start_concurrency`].
pub const START_LIMIT: usize = 2;

/// A slower answer counts as rising latency only when it is this much over the usual too, so
/// the jitter of fast answers (1 ms, then 3 ms) shrinks nothing.
pub const RISE_FLOOR_MS: u64 = 50;

/// The failure share in fixed point: [`SCORE_ONE`] is every recent attempt failed.
pub const SCORE_ONE: u16 = 1024;
/// From this failure share on (a quarter), an endpoint is failing.
pub const FAILING_SCORE: u16 = SCORE_ONE / 4;

/// The open interval a breaker resumes with after failing for `failing_for_ms` (see
/// [`Shard::resume`]).
fn resumed_interval(cfg: &BreakerConfig, failing_for_ms: u64) -> u64 {
    let mut interval = (cfg.interval.as_millis() as u64).max(1);
    loop {
        // The same steps as failed probes take.
        let next = next_interval(cfg, interval);
        if next <= interval || next > failing_for_ms {
            return interval;
        }
        interval = next;
    }
}

/// The open interval after a failed probe: twice as long, up to `max_interval`.
fn next_interval(cfg: &BreakerConfig, interval_ms: u64) -> u64 {
    interval_ms
        .saturating_mul(2)
        .min(cfg.max_interval.as_millis() as u64)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open the first time.
    pub interval: Duration,
    /// The longest it stays open.
    pub max_interval: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(300),
        }
    }
}

/// The breaker's state, as the endpoint's stats show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    Closed,
    /// No attempt until `until_ms` (wheel time); then [`Breaker::Probing`].
    Open {
        until_ms: u64,
        interval_ms: u64,
    },
    /// One attempt at a time; `interval_ms` is how long the last opening lasted.
    Probing {
        interval_ms: u64,
    },
}

impl Breaker {
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::Probing { .. } => "probing",
        }
    }
}

/// What [`Health::observe`] did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// Opened until this wheel time.
    Opened(u64),
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub failures: u32,
    pub limit: usize,
    pub breaker: Breaker,
    /// The endpoint's usual answer time (ms), once it has answered.
    pub usual_ms: Option<u64>,
    /// The share of its recent attempts that failed, out of [`SCORE_ONE`].
    pub failure_score: u16,
    /// The last answer came markedly slower than usual: the next [`Health::observe`] acts on it.
    slower: bool,
    /// The limit it started at (the shard's slow start).
    start: usize,
}

impl Health {
    /// An endpoint the shard knows nothing of, starting at `start` attempts in flight.
    pub fn new(start: usize) -> Self {
        Self {
            start: start.max(1),
            failures: 0,
            limit: start.max(1),
            breaker: Breaker::Closed,
            usual_ms: None,
            failure_score: 0,
            slower: false,
        }
    }

    /// Fails often enough (or its breaker is not closed) to yield to healthy endpoints.
    pub fn failing(&self) -> bool {
        self.failure_score >= FAILING_SCORE || self.breaker != Breaker::Closed
    }

    /// Not failing, and its usual answer takes at most [`super::share::FAST_MS`]: it may
    /// borrow free slots, and failing endpoints yield to it.
    pub fn answers_fast(&self) -> bool {
        !self.failing() && self.usual_ms.is_some_and(|u| u <= super::share::FAST_MS)
    }

    /// Nothing learnt: the shard need not remember it (forgotten, it starts again at the
    /// start limit). (An endpoint that has answered is
    /// remembered for its usual answer time.)
    pub fn is_plain(&self) -> bool {
        self.failures == 0
            && self.limit >= self.start
            && self.breaker == Breaker::Closed
            && self.usual_ms.is_none()
            && self.failure_score == 0
    }

    /// Takes in how long an answered attempt took, before its signal ([`Health::observe`]).
    pub fn sample(&mut self, ms: u64) {
        let usual = self.usual_ms.unwrap_or(ms);
        self.slower = ms > usual.saturating_mul(2).max(usual + RISE_FLOOR_MS);
        self.usual_ms = Some(if ms <= usual {
            ms
        } else {
            usual + (ms - usual) / 16
        });
    }

    /// Attempts the endpoint may have in flight now.
    pub fn cap(&self) -> usize {
        match self.breaker {
            Breaker::Closed => self.limit,
            Breaker::Open { .. } => 0,
            Breaker::Probing { .. } => 1,
        }
    }

    /// Takes in an attempt's signal at wheel time `now_ms`.
    pub fn observe(
        &mut self,
        signal: Signal,
        now_ms: u64,
        per_endpoint: usize,
        cfg: &BreakerConfig,
    ) -> Change {
        let slower = std::mem::take(&mut self.slower);
        match signal {
            // Nothing sent while probing: the endpoint was disabled or deleted. Its remaining
            // deliveries go through the sender's refusal at once, and there is nothing to keep.
            Signal::NotSent if matches!(self.breaker, Breaker::Probing { .. }) => {
                *self = Health::new(self.start);
                return Change::Closed;
            }
            Signal::NotSent => return Change::None,
            Signal::Delivered if slower => self.limit = (self.limit * 3 / 4).max(1),
            Signal::Delivered => self.limit = (self.limit + 1).min(per_endpoint.max(1)),
            Signal::Unreachable => self.limit = (self.limit / 2).max(1),
            Signal::Answered | Signal::ServerError => {}
            Signal::AskedToWait(wait) => {
                self.failures = 0;
                if let Breaker::Open { .. } = self.breaker {
                    // An attempt started before it opened: it already waits.
                    return Change::None;
                }
                let interval_ms = (wait.as_millis() as u64).max(1);
                let until_ms = now_ms + interval_ms;
                self.breaker = Breaker::Open {
                    until_ms,
                    interval_ms,
                };
                return Change::Opened(until_ms);
            }
        }
        if !signal.is_failure() {
            self.failure_score -= self.failure_score.div_ceil(8);
            self.failures = 0;
            if let Breaker::Probing { .. } = self.breaker {
                self.breaker = Breaker::Closed;
                self.limit = 1;
                return Change::Closed;
            }
            return Change::None;
        }
        self.failures = self.failures.saturating_add(1);
        self.failure_score += (SCORE_ONE - self.failure_score).div_ceil(8);
        let interval_ms = match self.breaker {
            // Attempts started before it opened end while it is open: no news.
            Breaker::Open { .. } => return Change::None,
            Breaker::Probing { interval_ms } => next_interval(cfg, interval_ms),
            Breaker::Closed if self.failures >= cfg.failures.max(1) => {
                cfg.interval.as_millis() as u64
            }
            Breaker::Closed => return Change::None,
        };
        let until_ms = now_ms + interval_ms.max(1);
        self.breaker = Breaker::Open {
            until_ms,
            interval_ms,
        };
        Change::Opened(until_ms)
    }

    /// The open interval is over: probe.
    pub fn probe(&mut self) {
        if let Breaker::Open { interval_ms, .. } = self.breaker {
            self.breaker = Breaker::Probing { interval_ms };
        }
    }
}

/// The shard's side: taking in signals, parking and probing.
impl<D: Dispatch> Shard<D> {
    /// Takes in an attempt's signal; opens the breaker (parking the endpoint's due jobs) or
    /// forgets a health with nothing left to say.
    pub(super) fn observe(
        &mut self,
        endpoint: EndpointId,
        signal: Signal,
        latency: Option<Duration>,
    ) {
        if signal == Signal::Delivered && latency.is_none() && !self.health.contains_key(&endpoint)
        {
            return;
        }
        let (now, per_endpoint, start) =
            (self.clock.elapsed_ms(), self.per_endpoint, self.start_limit);
        let h = self
            .health
            .entry(endpoint)
            .or_insert_with(|| Health::new(start));
        if let Some(l) = latency {
            h.sample(l.as_millis() as u64);
        }
        let change = h.observe(signal, now, per_endpoint, &self.breaker);
        let plain = h.is_plain();
        match change {
            Change::Opened(until) => {
                tracing::info!(endpoint = %endpoint, failures = h.failures, "circuit breaker open");
                self.park(endpoint, until);
            }
            Change::Closed | Change::None => {
                if change == Change::Closed {
                    tracing::info!(endpoint = %endpoint, "circuit breaker closed");
                }
                if plain {
                    self.health.remove(&endpoint);
                }
            }
        }
    }

    /// At start: an endpoint whose last `failures` attempts failed (as the store counted them)
    /// has its breaker opened again, as if the last failure had just happened, and its
    /// deliveries wait for the probe, as before the restart. The interval is the one the
    /// doubling would have reached after failing for `failing_for_ms` (each interval about as
    /// long as all before it): the largest `interval` x 2^k within that, up to `max_interval`.
    pub(super) fn resume(&mut self, endpoint: EndpointId, failures: u32, failing_for_ms: u64) {
        if failures < self.breaker.failures.max(1) {
            return;
        }
        let interval_ms = resumed_interval(&self.breaker, failing_for_ms);
        let until_ms = self.clock.elapsed_ms() + interval_ms;
        let mut h = Health::new(self.start_limit);
        h.failures = failures;
        h.breaker = Breaker::Open {
            until_ms,
            interval_ms,
        };
        self.health.insert(endpoint, h);
        self.park(endpoint, until_ms);
    }

    /// The endpoint's breaker opened until `until` (wheel time): its due jobs are parked, and
    /// so are those that come due meanwhile ([`Shard::enqueue`]).
    fn park(&mut self, endpoint: EndpointId, until: u64) {
        self.reopen.insert((until, endpoint));
        let queue = self
            .endpoints
            .get_mut(&endpoint)
            .map(|st| std::mem::take(&mut st.queue))
            .unwrap_or_default();
        let queue = queue.into_iter().map(super::without_event).collect();
        self.parked.insert(endpoint, queue);
    }

    /// Open breakers whose interval is over start probing: their parked jobs queue again.
    pub(super) fn probe_due(&mut self) {
        let now = self.clock.elapsed_ms();
        while let Some(&(at, endpoint)) = self.reopen.first() {
            if at > now {
                break;
            }
            self.reopen.pop_first();
            if let Some(h) = self.health.get_mut(&endpoint) {
                h.probe();
            }
            for job in self.parked.remove(&endpoint).unwrap_or_default() {
                self.enqueue(job);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failures: 3,
            interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(350),
        }
    }

    /// An endpoint that started at the full limit of 16.
    fn grown() -> Health {
        Health::new(16)
    }

    #[test]
    fn a_new_endpoint_starts_slow_and_doubles_with_each_round_of_answers() {
        let mut h = Health::new(START_LIMIT);
        assert_eq!(h.cap(), START_LIMIT);
        assert!(h.is_plain(), "nothing learnt yet");
        let c = cfg();
        // Each round: as many successes as attempts in flight.
        let mut rounds = Vec::new();
        while h.limit < 16 {
            for _ in 0..h.limit {
                h.observe(Signal::Delivered, 0, 16, &c);
            }
            rounds.push(h.limit);
        }
        assert_eq!(rounds, [4, 8, 16]);
        assert!(
            h.is_plain(),
            "grown, nothing else learnt: forgotten, it starts again"
        );
        // A limit below the start is remembered.
        for want in [8, 4, 2, 1] {
            h.observe(Signal::Unreachable, 0, 16, &c);
            assert_eq!(h.limit, want);
        }
        assert!(!h.is_plain());
    }

    #[test]
    fn rising_latency_shrinks_the_limit_and_a_new_speed_is_learnt() {
        let mut h = grown();
        let c = cfg();
        let answered = |h: &mut Health, ms: u64| {
            h.sample(ms);
            h.observe(Signal::Delivered, 0, 16, &c);
            h.limit
        };
        // Fast answers and their jitter: nothing to shrink for (the floor).
        for ms in [2, 5, 1, 40, 3] {
            assert_eq!(answered(&mut h, ms), 16);
        }
        assert_eq!(
            h.usual_ms,
            Some(3),
            "the fastest (1 ms), drifted up by 40 ms / 16"
        );
        // The endpoint turns slow (800 ms): each slower answer takes a quarter off...
        let limits: Vec<usize> = (0..4).map(|_| answered(&mut h, 800)).collect();
        assert_eq!(limits, [12, 9, 6, 4]);
        // ...until 800 ms is its usual; then it grows back, one per success.
        let mut last = 4;
        for _ in 0..40 {
            last = answered(&mut h, 800);
        }
        assert!(h.usual_ms.unwrap() > 400, "{:?}", h.usual_ms);
        assert_eq!(last, 16);
        // A remembered usual keeps the health (it is not plain any more).
        assert!(!h.is_plain());
        // A failure's answer time is learnt but only a success acts on it.
        let mut f = grown();
        f.sample(10);
        f.sample(5_000);
        f.observe(Signal::ServerError, 0, 16, &c);
        assert_eq!(f.limit, 16);
    }

    #[test]
    fn a_resumed_breaker_keeps_the_doubling_it_had_reached() {
        // 100 ms, doubling, at most 350 ms: failing for under 200 ms resumes at the first
        // interval, for 200 ms at the second, for 350 ms or more at the maximum.
        let got: Vec<u64> = [0, 199, 200, 349, 350, 10_000]
            .iter()
            .map(|&t| resumed_interval(&cfg(), t))
            .collect();
        assert_eq!(got, [100, 100, 200, 200, 350, 350]);
    }

    #[test]
    fn concurrency_halves_on_timeouts_and_grows_on_success() {
        let mut h = grown();
        let big = BreakerConfig {
            failures: 100,
            ..cfg()
        };
        for want in [8, 4, 2, 1, 1] {
            h.observe(Signal::Unreachable, 0, 16, &big);
            assert_eq!(h.limit, want);
        }
        // A 5xx says the endpoint is up: no halving.
        h.observe(Signal::ServerError, 0, 16, &big);
        assert_eq!(h.limit, 1);
        assert!(h.failing());
        for want in 2..=16 {
            h.observe(Signal::Delivered, 0, 16, &big);
            assert_eq!(h.limit, want);
        }
        h.observe(Signal::Delivered, 0, 16, &big);
        assert_eq!(h.limit, 16);
        // Its failures fade: no longer failing, and forgotten once they are gone.
        assert!(!h.failing() && h.failure_score > 0);
        for _ in 0..40 {
            h.observe(Signal::Delivered, 0, 16, &big);
        }
        assert_eq!(h.failure_score, 0);
        assert!(h.is_plain());
    }

    #[test]
    fn the_failure_share_follows_recent_attempts() {
        let mut h = Health::new(16);
        let never = BreakerConfig {
            failures: u32::MAX,
            ..cfg()
        };
        // One 500 now and then is not failing; three in a row are.
        h.observe(Signal::ServerError, 0, 16, &never);
        assert!(!h.failing());
        h.observe(Signal::ServerError, 0, 16, &never);
        h.observe(Signal::ServerError, 0, 16, &never);
        assert!(h.failing());
        // Half failing, alternating, stays failing; one in ten does not.
        for _ in 0..50 {
            h.observe(Signal::Delivered, 0, 16, &never);
            h.observe(Signal::ServerError, 0, 16, &never);
            assert!(h.failing(), "{}", h.failure_score);
        }
        for i in 0..100 {
            let s = if i % 10 == 0 {
                Signal::ServerError
            } else {
                Signal::Delivered
            };
            h.observe(s, 0, 16, &never);
        }
        assert!(!h.failing(), "{}", h.failure_score);
        // Asked to wait is not a failure, but a breaker that is not closed is failing.
        let mut w = Health::new(16);
        w.observe(Signal::AskedToWait(Duration::from_secs(1)), 0, 16, &never);
        assert_eq!(w.failure_score, 0);
        assert!(w.failing());
    }

    #[test]
    fn a_retry_after_opens_it_for_the_time_asked() {
        let mut h = Health::new(4);
        let c = cfg();
        h.observe(Signal::ServerError, 0, 4, &c);
        let wait = Signal::AskedToWait(Duration::from_secs(30));
        assert_eq!(h.observe(wait, 100, 4, &c), Change::Opened(30_100));
        assert_eq!((h.failures, h.cap()), (0, 0));
        // A second answer of the same kind, to an attempt started before: no change.
        assert_eq!(h.observe(wait, 200, 4, &c), Change::None);
        h.probe();
        assert_eq!(h.observe(Signal::Delivered, 31_000, 4, &c), Change::Closed);
    }

    #[test]
    fn opens_after_consecutive_failures_probes_and_backs_off() {
        let mut h = Health::new(4);
        let c = cfg();
        assert_eq!(h.observe(Signal::ServerError, 0, 4, &c), Change::None);
        assert_eq!(h.observe(Signal::ServerError, 0, 4, &c), Change::None);
        // A 4xx shows the endpoint up: the count starts again.
        assert_eq!(h.observe(Signal::Answered, 0, 4, &c), Change::None);
        assert_eq!(h.failures, 0);
        h.observe(Signal::ServerError, 0, 4, &c);
        h.observe(Signal::Unreachable, 0, 4, &c);
        assert_eq!(
            h.observe(Signal::ServerError, 10, 4, &c),
            Change::Opened(110)
        );
        assert_eq!(h.cap(), 0);
        // Late failures of attempts started before it opened change nothing.
        assert_eq!(h.observe(Signal::Unreachable, 50, 4, &c), Change::None);
        h.probe();
        assert_eq!(h.cap(), 1);
        // Failed probes: open twice as long each time, up to the maximum.
        assert_eq!(
            h.observe(Signal::Unreachable, 200, 4, &c),
            Change::Opened(400)
        );
        h.probe();
        assert_eq!(
            h.observe(Signal::ServerError, 400, 4, &c),
            Change::Opened(750)
        );
        h.probe();
        assert_eq!(
            h.observe(Signal::ServerError, 800, 4, &c),
            Change::Opened(1150)
        );
        h.probe();
        // A successful probe closes it; the limit grows back from 1.
        assert_eq!(h.observe(Signal::Delivered, 1200, 4, &c), Change::Closed);
        assert_eq!((h.breaker, h.cap(), h.failures), (Breaker::Closed, 1, 0));
        assert!(!h.is_plain());
        // Nothing sent, nothing learnt.
        assert_eq!(h.observe(Signal::NotSent, 0, 4, &c), Change::None);
        assert_eq!(h.limit, 1);
        // Nothing sent by a probe (endpoint disabled or deleted): forgotten.
        for s in [Signal::ServerError; 3] {
            h.observe(s, 2000, 4, &c);
        }
        h.probe();
        assert_eq!(h.observe(Signal::NotSent, 2200, 4, &c), Change::Closed);
        assert!(h.is_plain());
    }
}
