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

use hookd_types::EndpointId;

use super::{Dispatch, Shard};

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

    /// The slots `endpoint` may hold now: its share, within its health's cap (1 if FIFO).
    pub(super) fn cap(&self, endpoint: EndpointId) -> usize {
        let share = self.share();
        let cap = self
            .health
            .get(&endpoint)
            .map_or(share, |h| h.cap().min(share));
        // FIFO: one in flight at a time.
        if self.fifo.contains_key(&endpoint) {
            cap.min(1)
        } else {
            cap
        }
    }

    /// After the share grew (fewer endpoints have work), endpoints that were held at the old
    /// share may start more.
    pub(super) fn rejoin_after_growth(&mut self) {
        let share = self.share();
        if share > self.share_seen {
            for (ep, st) in self.endpoints.iter_mut() {
                if !st.runnable && !st.queue.is_empty() && st.in_flight < share {
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
