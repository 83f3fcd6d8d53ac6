//! A model-based test of the store as the engine drives it: random runs of fan-out, attempt
//! outcomes, manual retries, endpoint deletions (and an outcome that arrives for a delivery
//! already purged), checkpoints, compaction (retention) and restarts against a plain
//! in-memory model, checked after every step (each delivery's status, attempts and deadline;
//! the deliveries waiting for an attempt; every endpoint's stats and its listing, page by page;
//! the event of every delivery left, readable). Each run caps the fresh
//! (memory-only) deliveries differently, so both their paths are taken: written out with their
//! first outcome, and written out as they stand.

use crate::store::{DeadlineReads, EndpointStore, EventLog, HistoryReads};
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::store::DeliveryQuery;
use crate::store::LogEntry;
use crate::testing::TempStore;
use hookd_types::{EndpointId, Event};

#[derive(Debug, Clone)]
enum Op {
    /// One event to `endpoints` endpoints (of the fixed three).
    FanOut {
        endpoints: usize,
    },
    /// An attempt of the `pick`-th delivery (modulo their number), if it is due.
    Attempt {
        pick: usize,
        outcome: Outcome,
    },
    /// A manual retry of the `pick`-th delivery, if it is retrying or dead-lettered.
    Retry {
        pick: usize,
    },
    /// Deletes the `which`-th endpoint (modulo three) and purges its deliveries; a new
    /// endpoint takes its place.
    DeleteEndpoint {
        which: usize,
    },
    Checkpoint,
    /// A retention pass deleting finished history made more than `age` ms ago.
    Compact {
        age: u64,
    },
    Restart,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Delivered,
    RetryIn(u64),
    DeadLettered,
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        Just(Outcome::Delivered),
        (1u64..1000).prop_map(Outcome::RetryIn),
        Just(Outcome::DeadLettered),
    ];
    prop_oneof![
        3 => (1usize..=3).prop_map(|endpoints| Op::FanOut { endpoints }),
        6 => (any::<usize>(), outcome).prop_map(|(pick, outcome)| Op::Attempt { pick, outcome }),
        2 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        1 => any::<usize>().prop_map(|which| Op::DeleteEndpoint { which }),
        1 => Just(Op::Checkpoint),
        1 => (0u64..200).prop_map(|age| Op::Compact { age }),
        1 => Just(Op::Restart),
    ]
}

/// What the model knows of a delivery.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    endpoint: EndpointId,
    event: String,
    status: DeliveryStatus,
    attempts: u32,
    next: Option<u64>,
}

struct Harness {
    dir: TempStore,
    store: Arc<SledStore>,
    log: Option<OutcomeLog>,
    endpoints: [EndpointId; 3],
    model: BTreeMap<DeliveryId, Expected>,
    /// Deliveries retention deleted: gone from every read, still counted in their stats.
    gone: BTreeMap<DeliveryId, Expected>,
    /// Endpoints deleted, and their deliveries: gone from every read, stats included.
    deleted: Vec<(EndpointId, Vec<DeliveryId>)>,
    clock: u64,
    events: u64,
    /// Most fresh deliveries the store keeps.
    fresh_cap: usize,
}

impl Harness {
    fn new(fresh_cap: usize) -> Self {
        let dir = TempStore::new();
        let (store, log) = Self::open(&dir, fresh_cap);
        Self {
            dir,
            store,
            log: Some(log),
            endpoints: [(); 3].map(|_| EndpointId::generate()),
            model: BTreeMap::new(),
            gone: BTreeMap::new(),
            deleted: Vec::new(),
            // Ids carry their creation time, and fresh deliveries older than the linger are
            // written out: start at the wall clock so only the cap decides.
            clock: hookd_types::time::now_ms(),
            events: 0,
            fresh_cap,
        }
    }

    fn open(dir: &TempStore, fresh_cap: usize) -> (Arc<SledStore>, OutcomeLog) {
        let store = dir.open();
        store.set_fresh_limits(crate::sled_store::LINGER_MS, fresh_cap);
        let store = Arc::new(store);
        let log = OutcomeLog::open(&dir.path().join("outcomes"), store.clone()).unwrap();
        (store, log)
    }

    fn log(&self) -> &OutcomeLog {
        self.log.as_ref().unwrap()
    }

    async fn record(&self, change: Change) {
        let seq = self.log().record(&[change]).await.unwrap();
        self.log().applied(seq).await.unwrap();
    }

    async fn step(&mut self, op: &Op) {
        self.clock += 10;
        let now = self.clock;
        match *op {
            Op::FanOut { endpoints } => {
                self.events += 1;
                let event = Event {
                    id: format!("e{}", self.events),
                    tenant: "t".into(),
                    event_type: "job.completed".into(),
                    created_at_ms: now,
                    data: "{}".into(),
                };
                let record = vec![LogEntry {
                    event: event.clone(),
                    idempotency_key: None,
                    request_hash: 0,
                }];
                let seq = self.store.append(&record).unwrap();
                assert_eq!(
                    self.store.fanout_cursor(),
                    seq,
                    "one record behind the cursor"
                );
                // Ids as fan-out makes them: creation time on top, increasing.
                let deliveries: Vec<(DeliveryId, EndpointId)> = self.endpoints[..endpoints]
                    .iter()
                    .enumerate()
                    .map(|(i, &ep)| (DeliveryId((now as u128) << 80 | i as u128), ep))
                    .collect();
                let fanned = vec![FannedEvent {
                    event_id: event.id.clone(),
                    tenant: event.tenant.clone(),
                    event_type: event.event_type.clone(),
                    deliveries: deliveries.clone(),
                }];
                self.store.index_events(seq, &record, &fanned).unwrap();
                self.record(Change::FannedOut {
                    seq,
                    events: fanned,
                })
                .await;
                for (id, endpoint) in deliveries {
                    self.model.insert(
                        id,
                        Expected {
                            endpoint,
                            event: event.id.clone(),
                            status: DeliveryStatus::Pending,
                            attempts: 0,
                            next: Some(now),
                        },
                    );
                }
            }
            Op::Attempt { pick, outcome } => {
                let Some((&id, e)) = self.nth(pick) else {
                    return;
                };
                // Only a delivery with a deadline is attempted (its shard holds its job).
                if e.next.is_none() {
                    return;
                }
                let number = e.attempts + 1;
                let (status, next) = match outcome {
                    Outcome::Delivered => (DeliveryStatus::Delivered, None),
                    Outcome::RetryIn(ms) => (DeliveryStatus::Retrying, Some(now + ms)),
                    Outcome::DeadLettered => (DeliveryStatus::DeadLettered, None),
                };
                let code = if status == DeliveryStatus::Delivered {
                    200
                } else {
                    500
                };
                self.record(Change::Attempted {
                    delivery: id,
                    attempt: crate::testing::answered_attempt(number, now, code),
                    status,
                    next_attempt_ms: next,
                    at_ms: now,
                })
                .await;
                let e = self.model.get_mut(&id).unwrap();
                (e.status, e.attempts, e.next) = (status, number, next);
            }
            Op::Retry { pick } => {
                let Some((&id, e)) = self.nth(pick) else {
                    return;
                };
                if !matches!(
                    e.status,
                    DeliveryStatus::Retrying | DeliveryStatus::DeadLettered
                ) {
                    return;
                }
                self.record(Change::Retried {
                    delivery: id,
                    due_ms: now,
                    at_ms: now,
                })
                .await;
                self.model.get_mut(&id).unwrap().next = Some(now);
            }
            Op::DeleteEndpoint { which } => {
                let old = std::mem::replace(&mut self.endpoints[which % 3], EndpointId::generate());
                self.store.delete_endpoint(old).unwrap();
                // The indexer purges between its batches; it is idle here (as for compaction).
                while self.store.purge_deleted(now).unwrap().deliveries > 0 {}
                let ids: Vec<DeliveryId> = self
                    .model
                    .iter()
                    .filter(|(_, e)| e.endpoint == old)
                    .map(|(id, _)| *id)
                    .collect();
                for id in &ids {
                    self.model.remove(id);
                }
                self.gone.retain(|_, e| e.endpoint != old);
                // An attempt that was in flight ends after the purge: it brings nothing back.
                if let Some(&id) = ids.first() {
                    self.record(Change::Attempted {
                        delivery: id,
                        attempt: crate::testing::answered_attempt(9, now, 200),
                        status: DeliveryStatus::Delivered,
                        next_attempt_ms: None,
                        at_ms: now,
                    })
                    .await;
                }
                self.deleted.push((old, ids));
            }
            Op::Checkpoint => {
                self.log().checkpoint(&self.store).unwrap();
            }
            Op::Compact { age } => {
                // Called here rather than by the indexer, which is idle: every record so far
                // is applied, and nothing else writes delivery state meanwhile.
                let cutoff = now.saturating_sub(age);
                let done = self.store.retain(cutoff, 0, usize::MAX).unwrap();
                let due: Vec<DeliveryId> = self
                    .model
                    .iter()
                    .filter(|(id, e)| {
                        ((id.0 >> 80) as u64) < cutoff
                            && e.next.is_none()
                            && matches!(
                                e.status,
                                DeliveryStatus::Delivered | DeliveryStatus::DeadLettered
                            )
                    })
                    .map(|(id, _)| *id)
                    .collect();
                assert_eq!(done.deliveries, due.len(), "finished deliveries deleted");
                for id in due {
                    let e = self.model.remove(&id).unwrap();
                    self.gone.insert(id, e);
                }
            }
            Op::Restart => {
                self.log.take().unwrap().close().unwrap();
                let dir = std::mem::take(&mut self.dir);
                // Every handle on the store must go before it is opened again.
                self.store = Arc::new(TempStore::new().open());
                let (store, log) = Self::open(&dir, self.fresh_cap);
                (self.dir, self.store, self.log) = (dir, store, Some(log));
            }
        }
    }

    fn nth(&self, pick: usize) -> Option<(&DeliveryId, &Expected)> {
        if self.model.is_empty() {
            return None;
        }
        self.model.iter().nth(pick % self.model.len())
    }

    fn check(&self) {
        for (id, e) in &self.model {
            let d = self
                .store
                .get_delivery(*id)
                .unwrap()
                .expect("delivery stored");
            assert_eq!(
                (d.status, d.attempts, d.next_attempt_ms),
                (e.status, e.attempts, e.next),
                "delivery {id}"
            );
            assert_eq!(self.store.attempts(*id).unwrap().len() as u32, e.attempts);
            let event = self.store.get_event(&e.event).unwrap();
            assert!(event.is_some(), "event {} of delivery {id} kept", e.event);
        }
        let purged = self.deleted.iter().flat_map(|(_, ids)| ids);
        for id in self.gone.keys().chain(purged) {
            assert_eq!(self.store.get_delivery(*id).unwrap(), None, "{id} deleted");
            assert!(self.store.attempts(*id).unwrap().is_empty());
        }
        for (ep, _) in &self.deleted {
            let q = DeliveryQuery {
                limit: 10,
                ..DeliveryQuery::default()
            };
            let page = self.store.endpoint_deliveries(*ep, &q).unwrap();
            assert!(page.items.is_empty(), "deleted endpoint {ep} lists none");
            let st = self.store.endpoint_stats(*ep).unwrap();
            assert_eq!((st.delivered, st.failed, st.retrying), (0, 0, 0), "{ep}");
        }
        let mut want: Vec<(u64, DeliveryId, u32)> = self
            .model
            .iter()
            .filter_map(|(id, e)| e.next.map(|n| (n, *id, e.attempts)))
            .collect();
        want.sort();
        let mut got: Vec<(u64, DeliveryId, u32)> = self
            .store
            .scheduled()
            .unwrap()
            .into_iter()
            .map(|s| (s.due_ms, s.delivery, s.attempts))
            .collect();
        got.sort();
        assert_eq!(got, want, "deliveries waiting for an attempt");
        assert!(self.store.fresh_deliveries() <= self.fresh_cap.max(3));
        for ep in self.endpoints {
            let want: Vec<DeliveryId> = self
                .model
                .iter()
                .rev()
                .filter(|(_, e)| e.endpoint == ep)
                .map(|(id, _)| *id)
                .collect();
            let mut got = Vec::new();
            let mut cursor = None;
            loop {
                let q = DeliveryQuery {
                    cursor,
                    limit: 2,
                    ..DeliveryQuery::default()
                };
                let page = self.store.endpoint_deliveries(ep, &q).unwrap();
                got.extend(page.items.iter().map(|d| d.id));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(got, want, "listing of {ep}, newest first");
        }
        for ep in self.endpoints {
            // Stats count what happened, including what retention deleted since.
            let count = |s: DeliveryStatus| {
                self.model
                    .values()
                    .chain(self.gone.values())
                    .filter(|e| e.endpoint == ep && e.status == s)
                    .count() as u64
            };
            let st = self.store.endpoint_stats(ep).unwrap();
            assert_eq!(
                (st.delivered, st.failed, st.retrying),
                (
                    count(DeliveryStatus::Delivered),
                    count(DeliveryStatus::DeadLettered),
                    count(DeliveryStatus::Retrying)
                ),
                "stats of {ep}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_store_agrees_with_the_model(
        ops in proptest::collection::vec(op(), 1..60),
        fresh_cap in prop_oneof![Just(0usize), Just(2), Just(1_000)],
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut h = Harness::new(fresh_cap);
            for op in &ops {
                h.step(op).await;
                h.check();
            }
        });
    }
}
