//! Fresh deliveries: made by fan-out, not yet attempted, and not yet written to the read model.
//!
//! Fan-out's decision is a record in the outcome log ([`crate::outcome::Change::FannedOut`]),
//! and most deliveries are attempted moments after it. Writing each one's record, index key and
//! deadline to sled at fan-out, only to rewrite the record and remove the deadline when the
//! attempt's outcome arrives, doubled the writes per delivery. Instead the indexer keeps a fresh
//! delivery here, in compact form, and writes it to sled once, with its first outcome. Readers
//! see the union of this set and sled.
//!
//! A fresh delivery is durable through the outcome log: the log keeps every record from the one
//! holding the oldest fresh delivery's fan-out ([`Fresh::replay_from`]), and a restart restores
//! the set from them. So that the log (and memory) stay bounded, the indexer writes out
//! deliveries that stay fresh longer than [`LINGER_MS`] or beyond [`MAX_FRESH`].
//!
//! Only the indexer writes this set ([`crate::SledStore::apply`]); it writes sled first and
//! drops entries here after, and readers look here first, so a delivery is always in one or
//! the other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hookd_types::{Delivery, DeliveryId, DeliveryStatus, EndpointId};

use crate::store::Seq;

/// A delivery stays fresh at most this long before the indexer writes it out.
pub const LINGER_MS: u64 = 30_000;
/// At most this many fresh deliveries; the oldest beyond are written out.
pub const MAX_FRESH: usize = 262_144;
/// The most fresh deliveries written out in one sled batch (see [`Fresh::due_out`]).
pub const OUT_PER_BATCH: usize = 2_048;

/// What fresh deliveries of one event share.
#[derive(Debug, PartialEq, Eq)]
pub struct FreshEvent {
    pub event_id: String,
    pub tenant: String,
    pub event_type: String,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub endpoint: EndpointId,
    pub event: Arc<FreshEvent>,
    /// The outcome-log record that made it (or an earlier one).
    pub seq: Seq,
}

impl Entry {
    /// The delivery as a reader sees it: pending, due at its creation time.
    pub fn delivery(&self, id: DeliveryId) -> Delivery {
        let created = created_ms(id);
        Delivery {
            id,
            event_id: self.event.event_id.clone(),
            endpoint_id: self.endpoint,
            tenant: self.event.tenant.clone(),
            event_type: self.event.event_type.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            created_at_ms: created,
            updated_at_ms: created,
            next_attempt_ms: Some(created),
            last_attempt_ms: None,
            last_status_code: None,
        }
    }
}

/// A delivery id is a ULID: its top 48 bits are its creation time in ms.
pub fn created_ms(id: DeliveryId) -> u64 {
    (id.0 >> 80) as u64
}

#[derive(Debug)]
pub struct Fresh {
    linger_ms: u64,
    max: usize,
    by_id: BTreeMap<DeliveryId, Entry>,
    by_endpoint: BTreeSet<(EndpointId, DeliveryId)>,
    /// How many entries each outcome-log record holds: the first key is where a replay starts.
    by_seq: BTreeMap<Seq, usize>,
}

impl Default for Fresh {
    fn default() -> Self {
        Self {
            linger_ms: LINGER_MS,
            max: MAX_FRESH,
            by_id: BTreeMap::new(),
            by_endpoint: BTreeSet::new(),
            by_seq: BTreeMap::new(),
        }
    }
}

impl Fresh {
    /// Changes how long and how many deliveries stay fresh (tests take the other path with it).
    pub fn set_limits(&mut self, linger_ms: u64, max: usize) {
        (self.linger_ms, self.max) = (linger_ms, max);
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn get(&self, id: DeliveryId) -> Option<&Entry> {
        self.by_id.get(&id)
    }

    /// The oldest fresh delivery (ids grow with their creation time).
    pub fn oldest(&self) -> Option<DeliveryId> {
        self.by_id.keys().next().copied()
    }

    pub fn insert(&mut self, id: DeliveryId, entry: Entry) {
        let (endpoint, seq) = (entry.endpoint, entry.seq);
        if let Some(old) = self.by_id.insert(id, entry) {
            self.forget(id, &old);
        }
        self.by_endpoint.insert((endpoint, id));
        *self.by_seq.entry(seq).or_default() += 1;
    }

    pub fn remove(&mut self, id: DeliveryId) -> Option<Entry> {
        let e = self.by_id.remove(&id)?;
        self.forget(id, &e);
        Some(e)
    }

    fn forget(&mut self, id: DeliveryId, e: &Entry) {
        self.by_endpoint.remove(&(e.endpoint, id));
        if let Some(n) = self.by_seq.get_mut(&e.seq) {
            *n -= 1;
            if *n == 0 {
                self.by_seq.remove(&e.seq);
            }
        }
    }

    /// Drops every fresh delivery of `endpoint` (it was deleted); answers how many.
    pub fn remove_endpoint(&mut self, endpoint: EndpointId) -> usize {
        let ids: Vec<DeliveryId> = self
            .by_endpoint
            .range((endpoint, DeliveryId(0))..=(endpoint, DeliveryId(u128::MAX)))
            .map(|(_, id)| *id)
            .collect();
        for id in &ids {
            self.remove(*id);
        }
        ids.len()
    }

    /// The first outcome-log record a restart must read to restore this set, if any.
    pub fn replay_from(&self) -> Option<Seq> {
        self.by_seq.keys().next().copied()
    }

    /// Entries to write out now, at most `limit`: made before `now_ms` less the linger, and the
    /// oldest beyond the most kept once `adding` more arrive. The rest wait for the next pass:
    /// sled frees nothing a batch replaces until the batch ends, so one batch of 100,000 new
    /// deliveries took ~1 GiB.
    pub fn due_out(&self, now_ms: u64, adding: usize, limit: usize) -> Vec<(DeliveryId, Entry)> {
        let excess = (self.len() + adding).saturating_sub(self.max);
        let cutoff = now_ms.saturating_sub(self.linger_ms);
        self.by_id
            .iter()
            .enumerate()
            .take_while(|(i, (id, _))| *i < excess || created_ms(**id) < cutoff)
            .take(limit)
            .map(|(_, (id, e))| (*id, e.clone()))
            .collect()
    }

    /// Ids of `endpoint`'s fresh deliveries in `lo..=hi`, newest first, at most `max`.
    pub fn endpoint_ids(
        &self,
        endpoint: EndpointId,
        lo: DeliveryId,
        hi: DeliveryId,
        max: usize,
    ) -> Vec<DeliveryId> {
        self.by_endpoint
            .range((endpoint, lo)..=(endpoint, hi))
            .rev()
            .take(max)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Every fresh delivery, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&DeliveryId, &Entry)> {
        self.by_id.iter()
    }
}
