//! Deleting an endpoint deletes its records: every delivery it had, their attempts, index and
//! deadline keys, its stats and its keyed replays' answers.
//!
//! `DELETE /v1/endpoints/{id}` answers once the endpoint record is gone; an endpoint may have
//! millions of deliveries, so they go afterwards, in bounded passes. The endpoint's removal
//! writes a tombstone (`z` endpoint id, the deletion time) in the same sled batch, so the
//! intent survives a crash. Only the indexer purges ([`SledStore::purge_deleted`], on its
//! one-second timer while tombstones exist): it is the one writer of delivery state, so no
//! outcome is applied to a delivery while it is being deleted.
//!
//! Work for the endpoint may still be on its way when it is deleted: a fan-out that matched it
//! just before, an attempt in flight, a retry still waiting in its shard's wheel (refused when
//! due: the endpoint is gone; the jobs already due are dropped at the deletion).
//! Their outcomes find no delivery and are skipped ([`SledStore::apply`]); deliveries a late
//! fan-out makes are fresh ones, dropped by the next pass. A tombstone is kept for [`GRACE_MS`]
//! after the deletion, far longer than a delivery may stay fresh ([`super::LINGER_MS`]) or an
//! attempt may run, so every such late record is caught; then, once a pass finds nothing left,
//! it goes too. A restart does not make a tombstoned endpoint's deliveries fresh again.

use std::collections::HashSet;

use hookd_types::{DeliveryId, EndpointId};

use super::{
    delivery_key, due_key, key, meta_key, record, remove_attempts, stat_key, Kind, SledStore,
};
use super::{OUTCOMES_APPLIED, OUTCOMES_REPLAY_FROM};
use crate::error::Result;

/// How long a tombstone outlives its endpoint's deletion.
pub const GRACE_MS: u64 = 10 * 60 * 1000;
/// The most deliveries one pass deletes (the rest the next second).
pub const PURGE_BUDGET: usize = 10_000;

pub(super) fn tombstone_key(id: EndpointId) -> Vec<u8> {
    key(&[Kind::Tombstone.prefix(), &id.to_bytes()])
}

/// Adds `id`'s tombstone, deleted at `at_ms`, to the batch that deletes the endpoint.
pub(super) fn bury(batch: &mut sled::Batch, id: EndpointId, at_ms: u64) {
    batch.insert(tombstone_key(id), &at_ms.to_be_bytes()[..]);
}

/// What one [`SledStore::purge_deleted`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Deleted endpoints still being purged.
    pub endpoints: usize,
    /// Deliveries deleted from sled (with their attempts and keys).
    pub deliveries: usize,
    /// Fresh deliveries (memory only) dropped.
    pub fresh: usize,
    /// Tombstones removed: those endpoints are gone for good.
    pub done: usize,
}

impl Purged {
    /// Whether the pass stopped at its budget (another is due at once).
    pub fn full(&self) -> bool {
        self.deliveries >= PURGE_BUDGET
    }
}

/// The endpoint id and deletion time of a tombstone.
fn read_tombstone(k: &[u8], v: &[u8]) -> Option<(EndpointId, u64)> {
    let id = EndpointId::from_bytes(k.get(1..)?)?;
    let at = u64::from_be_bytes(v.try_into().ok()?);
    Some((id, at))
}

impl SledStore {
    /// Endpoints deleted and not yet purged for good.
    pub(super) fn tombstoned(&self) -> Result<HashSet<EndpointId>> {
        Ok(self.tombstones()?.into_iter().map(|(id, _)| id).collect())
    }

    /// Every tombstone: the endpoint and when it was deleted.
    fn tombstones(&self) -> Result<Vec<(EndpointId, u64)>> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(Kind::Tombstone.prefix()) {
            let (k, v) = kv?;
            out.extend(read_tombstone(&k, &v));
        }
        Ok(out)
    }

    /// One purge pass over the deleted endpoints: drops their fresh deliveries, deletes at most
    /// [`PURGE_BUDGET`] of their stored deliveries with attempts, index and deadline keys, and
    /// their stats; removes a tombstone older than [`GRACE_MS`] once nothing of its endpoint is
    /// left. Only the indexer calls this (the one writer of delivery state).
    pub fn purge_deleted(&self, now_ms: u64) -> Result<Purged> {
        let mut out = Purged::default();
        let tombstones = self.tombstones()?;
        if tombstones.is_empty() {
            return Ok(out);
        }
        out.endpoints = tombstones.len();
        // Memory first: nothing written afterwards can bring these back (the outcomes of
        // their jobs find no delivery), and the replay start moves past them in this batch.
        let replay_from = {
            let mut fresh = self.fresh_write();
            for (id, _) in &tombstones {
                out.fresh += fresh.remove_endpoint(*id);
            }
            fresh.replay_from()
        };
        let mut batch = sled::Batch::default();
        let mut budget = PURGE_BUDGET;
        for (endpoint, deleted_at) in tombstones {
            let left = self.purge_endpoint(&mut batch, endpoint, budget)?;
            budget -= left.min(budget);
            out.deliveries += left;
            batch.remove(stat_key(endpoint));
            self.forget_replay_answers(&mut batch, endpoint)?;
            if left == 0 && now_ms.saturating_sub(deleted_at) >= GRACE_MS {
                batch.remove(tombstone_key(endpoint));
                out.done += 1;
            }
            if budget == 0 {
                break;
            }
        }
        if out.fresh > 0 {
            // Without its dropped deliveries the fresh set may start later in the outcome log.
            let applied = self.meta_u64(OUTCOMES_APPLIED)?;
            let from = replay_from.unwrap_or(applied + 1);
            batch.insert(meta_key(OUTCOMES_REPLAY_FROM), &from.to_be_bytes()[..]);
        }
        self.db.apply_batch(batch)?;
        Ok(out)
    }

    /// Adds the deletion of at most `budget` of `endpoint`'s stored deliveries to `batch`;
    /// answers how many.
    fn purge_endpoint(
        &self,
        batch: &mut sled::Batch,
        endpoint: EndpointId,
        budget: usize,
    ) -> Result<usize> {
        let prefix = key(&[Kind::EndpointDelivery.prefix(), &endpoint.to_bytes()]);
        let mut n = 0;
        for kv in self.db.scan_prefix(&prefix).keys() {
            if n == budget {
                break;
            }
            let k = kv?;
            batch.remove(&k);
            n += 1;
            let Some(id) = k.get(prefix.len()..).and_then(DeliveryId::from_bytes) else {
                continue;
            };
            let dk = delivery_key(id);
            let Some(v) = self.db.get(&dk)? else {
                continue;
            };
            let r = record::decode(&dk, &v)?;
            let d = &r.delivery;
            batch.remove(dk);
            remove_attempts(batch, &r);
            if let Some(due) = d.next_attempt_ms {
                batch.remove(due_key(due, id));
            }
        }
        Ok(n)
    }
}
