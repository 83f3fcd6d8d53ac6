//! Test helpers (behind the `test-util` feature): one way to open a store in a temporary
//! directory, and a store whose durable writes can be held back, so tests can make requests
//! queue up behind a flush deterministically.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use hookd_types::{Attempt, Delivery, DeliveryId, Endpoint, EndpointId, Event};

use crate::error::Result;
use crate::outcome::FannedEvent;
use crate::store::*;
use crate::{SledConfig, SledStore};

/// sled's page cache for test stores: small, tests hold little.
pub const TEST_CACHE_BYTES: u64 = 8 << 20;

/// A temporary directory for one store, removed on drop. Keep it alive while the store is in use;
/// open it again to test what survives a restart.
#[derive(Debug)]
pub struct TempStore {
    dir: tempfile::TempDir,
}

impl TempStore {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("creating a temporary directory"),
        }
    }

    /// Opens (or reopens) the store.
    pub fn open(&self) -> SledStore {
        self.open_with_cache(TEST_CACHE_BYTES)
    }

    /// The directory itself (for logs kept beside the store).
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Opens the store (waiting, like every open, for one just dropped to let go of its lock).
    pub fn open_with_cache(&self, cache_bytes: u64) -> SledStore {
        let cfg = SledConfig {
            path: self.dir.path().join("db"),
            cache_bytes,
        };
        SledStore::open(&cfg).expect("opening a store in a temporary directory")
    }
}

impl Default for TempStore {
    fn default() -> Self {
        Self::new()
    }
}

/// A delivery of `event` to `endpoint` as fan-out makes it: pending, due at `due`.
pub fn pending_delivery(event: &str, endpoint: EndpointId, due: u64) -> Delivery {
    Delivery {
        id: DeliveryId::generate(),
        event_id: event.into(),
        endpoint_id: endpoint,
        tenant: "t".into(),
        event_type: "job.completed".into(),
        status: hookd_types::DeliveryStatus::Pending,
        attempts: 0,
        created_at_ms: due,
        updated_at_ms: due,
        next_attempt_ms: Some(due),
        last_attempt_ms: None,
        last_status_code: None,
    }
}

/// An endpoint of tenant `acme` named `name`, taking every event type, at a fixed secret.
pub fn endpoint(name: &str) -> Endpoint {
    Endpoint::new(
        EndpointId::generate(),
        "acme",
        name,
        "https://example.com/hook",
        vec!["*".into()],
        "whsec_Q3VycmVudFNlY3JldEJ5dGVzMDEyMzQ1Njc4OQ==",
        1,
    )
}

/// An attempt answered by `status_code` (an error unless 2xx).
pub fn answered_attempt(number: u32, at_ms: u64, status_code: u16) -> Attempt {
    Attempt {
        number,
        at_ms,
        status_code: Some(status_code),
        latency_ms: 3,
        error: (!(200..300).contains(&status_code)).then_some(hookd_types::ErrorKind::HttpStatus),
        error_detail: String::new(),
        response_body: String::new(),
    }
}

/// A fresh store, and the directory that holds it.
pub fn temp_store() -> (TempStore, SledStore) {
    let dir = TempStore::new();
    let store = dir.open();
    (dir, store)
}

/// A [`Store`] whose durable writes ([`Store::append`], [`Store::flush`]) wait while its gate is
/// closed. Everything else goes straight to the store inside.
#[derive(Debug)]
pub struct GatedStore<S> {
    inner: S,
    gate: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug)]
struct GateState {
    closed: bool,
    /// Durable writes that have reached the gate.
    arrived: usize,
}

impl<S: Store> GatedStore<S> {
    /// Starts with the gate closed.
    pub fn closed(inner: S) -> Self {
        Self {
            inner,
            gate: Mutex::new(GateState {
                closed: true,
                arrived: 0,
            }),
            changed: Condvar::new(),
        }
    }

    /// Lets every held and later durable write through.
    pub fn open(&self) {
        self.gate.lock().unwrap().closed = false;
        self.changed.notify_all();
    }

    /// Waits until `n` durable writes have reached the gate; panics after 30 s.
    pub fn wait_arrived(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut g = self.gate.lock().unwrap();
        while g.arrived < n {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("{} of {n} writes arrived in 30 s", g.arrived));
            g = self.changed.wait_timeout(g, left).unwrap().0;
        }
    }

    fn pass(&self) {
        let mut g = self.gate.lock().unwrap();
        g.arrived += 1;
        self.changed.notify_all();
        while g.closed {
            g = self.changed.wait(g).unwrap();
        }
    }
}

impl<S: Store> EventLog for GatedStore<S> {
    fn append(&self, record: &LogRecord) -> Result<Seq> {
        self.pass();
        self.inner.append(record)
    }

    fn read_log(&self, from: Seq, max: usize) -> Result<Vec<(Seq, LogRecord)>> {
        self.inner.read_log(from, max)
    }

    fn fanout_cursor(&self) -> Seq {
        self.inner.fanout_cursor()
    }

    fn index_events(&self, seq: Seq, record: &LogRecord, fanned: &[FannedEvent]) -> Result<()> {
        self.inner.index_events(seq, record, fanned)
    }
}

impl<S: Store> HistoryReads for GatedStore<S> {
    fn get_event(&self, id: &str) -> Result<Option<Event>> {
        self.inner.get_event(id)
    }

    fn get_idempotency(&self, tenant: &str, key: &str) -> Result<Option<IdemRecord>> {
        self.inner.get_idempotency(tenant, key)
    }

    fn event_deliveries(&self, event_id: &str) -> Result<Vec<Delivery>> {
        self.inner.event_deliveries(event_id)
    }

    fn for_each_event_between(
        &self,
        tenant: &str,
        from_ms: u64,
        until_ms: u64,
        visit: &mut dyn FnMut(crate::store::EventRef<'_>) -> bool,
    ) -> Result<()> {
        self.inner
            .for_each_event_between(tenant, from_ms, until_ms, visit)
    }

    fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>> {
        self.inner.get_delivery(id)
    }

    fn endpoint_deliveries(&self, endpoint: EndpointId, q: &DeliveryQuery) -> Result<DeliveryPage> {
        self.inner.endpoint_deliveries(endpoint, q)
    }

    fn attempts(&self, id: DeliveryId) -> Result<Vec<Attempt>> {
        self.inner.attempts(id)
    }
}

impl<S: Store> DeadlineReads for GatedStore<S> {
    fn for_each_scheduled(
        &self,
        until_ms: u64,
        visit: &mut dyn FnMut(ScheduleEntry),
    ) -> Result<()> {
        self.inner.for_each_scheduled(until_ms, visit)
    }

    fn for_each_deadline_between(
        &self,
        after_ms: u64,
        until_ms: u64,
        visit: &mut dyn FnMut(ScheduleEntry),
    ) -> Result<()> {
        self.inner
            .for_each_deadline_between(after_ms, until_ms, visit)
    }
}

impl<S: Store> EndpointStore for GatedStore<S> {
    fn put_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        self.inner.put_endpoint(endpoint)
    }

    fn delete_endpoint(&self, id: EndpointId) -> Result<()> {
        self.inner.delete_endpoint(id)
    }

    fn endpoints(&self) -> Result<Vec<Endpoint>> {
        self.inner.endpoints()
    }

    fn endpoint_stats(&self, id: EndpointId) -> Result<EndpointStats> {
        self.inner.endpoint_stats(id)
    }

    fn replay_answer(&self, endpoint: EndpointId, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.replay_answer(endpoint, key)
    }

    fn put_replay_answer(&self, endpoint: EndpointId, key: &str, answer: &[u8]) -> Result<()> {
        self.inner.put_replay_answer(endpoint, key, answer)
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get_meta(key)
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.inner.put_meta(key, value)
    }

    fn flush(&self) -> Result<()> {
        self.pass();
        self.inner.flush()
    }
}
