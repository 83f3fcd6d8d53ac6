//! How a shard shares its in-flight budget among the endpoints that have work (due jobs or
//! attempts in flight), so that no endpoint starves another.
//!
//! A quarter of the budget is a reserve for first slots: an endpoint holding no slot may start an
//! attempt while any slot is free, one holding some may start another only while the slots held
//! in all stay below the other three quarters. Of those, each of the `n` endpoints with work may
//! hold its share `3/4 budget / n` (at least 1, at most the per-endpoint limit).
//!
//! So when every endpoint holds its share, the reserve is free and an endpoint that gets work
//! starts at once; endpoints that took more than their share before others had work keep what
//! they hold until their attempts end, but even then (the worst order: each takes all it may
//! before the next one has work) the reserve gives a first slot to as many newcomers as it has
//! slots. Receivers that hold every request until the timeout cannot starve a healthy endpoint.
//!
//! Two refinements keep misbehaving receivers from slowing a healthy one down, not only from
//! starving it:
//! - **Fast endpoints borrow free slots**: an endpoint that answers fast (its usual answer time
//!   is at most [`FAST_MS`]) and is not failing may go past its share, up to its own limit,
//!   while the slots held in all stay below the three quarters. Its attempts end within
//!   milliseconds, so what it borrows comes back before anyone misses it; slow and hanging
//!   receivers never borrow. Without it, 80 hanging endpoints held a healthy one to a share of
//!   9 slots, and its rate to what 9 connections carry.
//! - **Failing endpoints yield**: while healthy endpoints are delivering (one started an
//!   attempt, or had due deliveries waiting, in the last [`PRESSURE_MS`], in any shard: the
//!   shards share the cores; only endpoints that answer fast and are neither FIFO nor
//!   rate-limited count, [`Shard::presses`]), an endpoint that is failing ([`Health::failing`])
//!   starts one attempt for every [`YIELD`] attempts healthy endpoints start (in all shards:
//!   they share that count, [`Shared`]), and failing endpoints of a shard at least one every
//!   [`FLOOR_MS`] whatever the healthy ones do. The cores are what is scarce then: healthy
//!   deliveries share them with ingest, fan-out and the indexer, and an attempt that fails
//!   costs as much as one that delivers, plus its retry (in the misbehave load run, the phases
//!   with 5,000-7,000 requests to endpoints failing half of them took twice the time of those
//!   with a few hundred). Once healthy endpoints are quiet, failing ones go at their own pace.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hookd_types::EndpointId;

use super::health::Health;
use super::{Dispatch, Shard};

/// An endpoint whose usual answer takes at most this long may borrow free slots (and its
/// attempts make failing endpoints yield).
pub(crate) const FAST_MS: u64 = 100;
/// While healthy endpoints are delivering, failing ones start one attempt for every this many
/// of theirs.
pub(crate) const YIELD: u32 = 32;
/// ... and the failing endpoints of a shard at least one every this many ms.
pub(crate) const FLOOR_MS: u64 = 20;
/// How long a healthy endpoint's start (or waiting deliveries) makes failing ones yield.
pub(crate) const PRESSURE_MS: u64 = 50;

/// What the shards share so that failing endpoints yield to healthy ones in any shard: until
/// when (wheel time) they yield, and the healthy starts counted for them, in parts of a turn.
/// Every shard reads and writes it; a lost race costs one attempt's place in line.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pressure_until: AtomicU64,
    credit: AtomicU32,
}

/// One shard's side of the yield: the shared part, and its own floor.
#[derive(Debug)]
pub(crate) struct Yield {
    shared: std::sync::Arc<Shared>,
    /// While they yield, this shard's failing endpoints may start one attempt from this wheel
    /// time on ([`FLOOR_MS`]).
    floor_at: u64,
    /// The last [`Shard::pump`] held a failing endpoint back: the shard wakes at
    /// [`Yield::wake_at`].
    pub(crate) held: bool,
}

impl Yield {
    pub(crate) fn new(shared: std::sync::Arc<Shared>) -> Self {
        Self {
            shared,
            floor_at: 0,
            held: false,
        }
    }

    fn pressure_until(&self) -> u64 {
        self.shared.pressure_until.load(Ordering::Relaxed)
    }

    /// A healthy endpoint started an attempt, or has due deliveries waiting, at wheel time
    /// `now`: failing endpoints yield for [`PRESSURE_MS`] from then.
    pub(crate) fn pressure(&self, now: u64) {
        self.shared
            .pressure_until
            .fetch_max(now + PRESSURE_MS, Ordering::Relaxed);
    }

    /// Whether failing endpoints yield at wheel time `now` (healthy ones are delivering).
    pub(crate) fn active(&self, now: u64) -> bool {
        now < self.pressure_until()
    }

    /// Whether a failing endpoint may start an attempt at wheel time `now`; if so, it is
    /// counted.
    pub(crate) fn may_start(&mut self, now: u64) -> bool {
        if now >= self.pressure_until() {
            return true;
        }
        let taken = self
            .shared
            .credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                c.checked_sub(YIELD)
            });
        if taken.is_ok() {
            return true;
        }
        if now >= self.floor_at {
            self.floor_at = now + FLOOR_MS;
            return true;
        }
        self.held = true;
        false
    }

    /// When a failing endpoint held back by yielding may try again (wheel time).
    pub(crate) fn wake_at(&self) -> u64 {
        self.pressure_until().min(self.floor_at)
    }

    /// A healthy endpoint started an attempt: failing ones earn a part of a turn (at most
    /// four turns are kept).
    pub(crate) fn healthy_started(&self) {
        let _ = self
            .shared
            .credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some((c + 1).min(4 * YIELD))
            });
    }
}

/// The part of the budget kept for endpoints holding no slot.
pub(crate) fn reserve(budget: usize) -> usize {
    (budget / 4).max(1)
}

/// The share of `budget` slots one of `endpoints` endpoints with work may hold, within
/// `1..=per_endpoint`.
pub(crate) fn share(budget: usize, endpoints: usize, per_endpoint: usize) -> usize {
    let shared = budget.saturating_sub(reserve(budget));
    (shared / endpoints.max(1)).clamp(1, per_endpoint.max(1))
}

/// Whether an endpoint holding `held` slots may start one more, with `in_flight` of the shard's
/// `budget` held in all and `share` as computed by [`share`].
pub(crate) fn may_start(held: usize, share: usize, in_flight: usize, budget: usize) -> bool {
    if in_flight >= budget || held >= share {
        return false;
    }
    held == 0 || in_flight + reserve(budget) < budget
}

impl<D: Dispatch> Shard<D> {
    /// The share of the budget each endpoint with work may hold now. Endpoints holding no slot
    /// while they wait for a rate-limit token or their FIFO turn do not count: they would only
    /// shrink the others' share.
    pub(super) fn share(&self) -> usize {
        let competing = self.endpoints.len().saturating_sub(self.held_back);
        share(self.max_in_flight, competing, self.per_endpoint)
    }

    /// The slots `endpoint` may hold now: its share, within its health's cap (1 if FIFO); a
    /// fast endpoint may borrow up to its cap while free slots last.
    pub(super) fn cap(&self, endpoint: EndpointId) -> usize {
        let health = self.health.get(&endpoint);
        // An endpoint the shard knows nothing of starts slow (health.rs).
        let own = health.map_or(self.start_limit, Health::cap);
        // FIFO: one in flight at a time.
        let own = if self.fifo.contains_key(&endpoint) {
            own.min(1)
        } else {
            own
        };
        let share = self.share();
        let fast = health.is_some_and(Health::answers_fast);
        if own > share && fast && self.in_flight + reserve(self.max_in_flight) < self.max_in_flight
        {
            own
        } else {
            own.min(share)
        }
    }

    /// Whether `endpoint` is failing: it yields to healthy endpoints that are delivering.
    pub(super) fn failing(&self, endpoint: EndpointId) -> bool {
        self.health.get(&endpoint).is_some_and(Health::failing)
    }

    /// Whether `endpoint`'s attempts (and waiting deliveries) make failing endpoints yield: it
    /// is healthy and what holds it back may be the CPU: it has answered, fast, and is neither
    /// FIFO nor rate-limited (those wait by their own choice).
    pub(super) fn presses(&self, endpoint: EndpointId) -> bool {
        self.health.get(&endpoint).is_some_and(Health::answers_fast)
            && !self.fifo.contains_key(&endpoint)
            && !self.limits.contains_key(&endpoint)
    }

    /// After the share grew (fewer endpoints have work), endpoints that were held at the old
    /// share may start more.
    pub(super) fn rejoin_after_growth(&mut self) {
        let share = self.share();
        if share > self.share_seen {
            for (ep, st) in self.endpoints.iter_mut() {
                if !st.runnable && !st.yielding && !st.queue.is_empty() && st.in_flight < share {
                    st.runnable = true;
                    self.runnable.push_back(*ep);
                }
            }
        }
        self.share_seen = share;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_alone_gets_its_limit_within_the_shared_part() {
        assert_eq!(share(512, 1, 16), 16);
        assert_eq!(share(8, 1, 16), 6);
        // More endpoints than slots: one each.
        assert_eq!(share(8, 100, 16), 1);
        assert_eq!(share(512, 41, 16), 9);
        assert_eq!(reserve(512), 128);
        assert_eq!(share(0, 0, 0), 1);
        assert_eq!(reserve(1), 1);
    }

    #[test]
    fn the_reserve_is_kept_for_endpoints_holding_nothing() {
        // Free slots down to the reserve: only an endpoint holding none starts.
        assert!(!may_start(1, 4, 12, 16));
        assert!(may_start(0, 4, 12, 16));
        assert!(may_start(0, 4, 15, 16));
        assert!(may_start(1, 4, 11, 16));
        // Its share is its limit, and a full budget is full for everyone.
        assert!(!may_start(4, 4, 0, 16));
        assert!(!may_start(0, 4, 16, 16));
    }

    /// Endpoints gaining work one after another, each taking all it may before the next comes
    /// (the worst order): every one still gets a slot while the reserve lasts, and the sum never
    /// passes the budget.
    #[test]
    fn latecomers_always_find_a_slot() {
        for (budget, per_endpoint, endpoints) in [(16, 4, 6), (512, 16, 81), (8, 8, 3)] {
            let mut held = vec![0usize; endpoints];
            for i in 0..endpoints {
                let s = share(budget, i + 1, per_endpoint);
                loop {
                    let total: usize = held.iter().sum();
                    if !may_start(held[i], s, total, budget) {
                        break;
                    }
                    held[i] += 1;
                }
                assert!(
                    held[i] >= 1,
                    "endpoint {i} of {endpoints} got nothing: {held:?}"
                );
            }
            assert!(held.iter().sum::<usize>() <= budget, "{held:?}");
        }
    }

    /// When every endpoint holds its share, the reserve is whole.
    #[test]
    fn shares_fit_beside_the_reserve() {
        for budget in [1, 2, 7, 16, 512, 1024] {
            for n in 1..=budget {
                let s = share(budget, n, usize::MAX);
                if s > 1 {
                    assert!(n * s + reserve(budget) <= budget, "{budget} {n} {s}");
                }
            }
        }
    }
}
