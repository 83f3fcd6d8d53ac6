//! The storage interface. Small on purpose: it names what hookd needs from durable state, not
//! how a backend lays it out.
//!
//! Durability promised by each call:
//! - [`EventLog::append`] and the endpoint and meta writes return only once the data is on disk.
//! - [`EventLog::index_events`] is atomic but buffered. It indexes events only; the deliveries
//!   fan-out made of them, and every later change of a delivery (attempt outcomes, manual
//!   retries), are not made through this trait: they are appended to the outcome log
//!   ([`crate::outcome`]) and applied to the read model by its one indexer, which also moves the
//!   durable fan-out cursor. A fan-out lost in a crash is redone from the event log; a lost
//!   outcome leaves the durable deadline (or the fresh delivery) in place, and the attempt is
//!   redone. That is what makes delivery at-least-once.

use serde::{Deserialize, Serialize};

use hookd_types::{Attempt, Delivery, DeliveryId, DeliveryStatus, Endpoint, EndpointId, Event};

use crate::error::Result;
use crate::outcome::{Change, FannedEvent};

/// Position of a record in the log.
pub type Seq = u64;

/// One event as written by ingest, with what fan-out needs to index it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub event: Event,
    /// The producer's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// Hash of the request that created the event (detects a key reused for other content).
    pub request_hash: u64,
}

/// One log record: every event of one group commit.
pub type LogRecord = Vec<LogEntry>;

/// What an `Idempotency-Key` points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    pub event_id: String,
    pub request_hash: u64,
}

/// A durable deadline: attempt `delivery` (bound for `endpoint`) at `due_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleEntry {
    pub due_ms: u64,
    pub delivery: DeliveryId,
    pub endpoint: EndpointId,
    /// Attempts made before the one due.
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub delivered: u64,
    /// Deliveries now dead-lettered.
    pub failed: u64,
    /// Deliveries now waiting for a retry.
    pub retrying: u64,
    pub last_delivery_ms: Option<u64>,
    /// When its current failing streak began: the first attempt since its last 2xx that got
    /// none (attempts not sent do not count).
    pub failing_since_ms: Option<u64>,
    /// Its consecutive failures as the circuit breaker counts them (5xx and no answer; any
    /// other answer ends the run).
    pub consecutive_failures: u32,
}

/// A page request over one endpoint's deliveries, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Any of these statuses (empty: all).
    pub statuses: Vec<DeliveryStatus>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// Continue after this delivery (exclusive).
    pub cursor: Option<DeliveryId>,
    pub limit: usize,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<DeliveryId>,
}

/// The event log: ingest appends, fan-out reads and indexes. (JetStream: a stream, see
/// docs/STORAGE.md section 3.)
pub trait EventLog: Send + Sync + 'static {
    /// Appends one record and returns its position once it is on disk.
    fn append(&self, record: &LogRecord) -> Result<Seq>;
    /// Records from `from` on (at most `max`), in order.
    fn read_log(&self, from: Seq, max: usize) -> Result<Vec<(Seq, LogRecord)>>;
    /// The first position fan-out has not passed.
    fn fanout_cursor(&self) -> Seq;
    /// Atomically: index the events of record `seq`, their idempotency keys and the ids of the
    /// deliveries `fanned` made of them; move fan-out's position past `seq`. The deliveries
    /// themselves, and the durable cursor, come from the fan-out's outcome-log record.
    fn index_events(&self, seq: Seq, record: &LogRecord, fanned: &[FannedEvent]) -> Result<()>;
    /// [`EventLog::index_events`] for several records in order, each atomically (a backend may
    /// write them all in one batch: fan-out calls this with every record it read at once).
    fn index_records(&self, records: &[(Seq, &LogRecord, &[FannedEvent])]) -> Result<()> {
        for (seq, record, fanned) in records {
            self.index_events(*seq, record, fanned)?;
        }
        Ok(())
    }
}

/// Reads of history: events, deliveries and attempts, as the read model derived them from the
/// logs. Pages cost what they return, never a scan.
pub trait HistoryReads: Send + Sync + 'static {
    fn get_event(&self, id: &str) -> Result<Option<Event>>;
    fn get_idempotency(&self, tenant: &str, key: &str) -> Result<Option<IdemRecord>>;
    fn event_deliveries(&self, event_id: &str) -> Result<Vec<Delivery>>;
    /// Visits the indexed events of `tenant` made in `from_ms..until_ms` (their `created_at`),
    /// oldest first, until `visit` answers `false`; what a replay needs of each, not its data.
    /// Events past `[retention] history` are gone; events indexed by a store from before the
    /// time index are not visited. A backend answers from its time index without reading
    /// other tenants' events.
    fn for_each_event_between(
        &self,
        tenant: &str,
        from_ms: u64,
        until_ms: u64,
        visit: &mut dyn FnMut(EventRef<'_>) -> bool,
    ) -> Result<()>;
    fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>>;
    fn endpoint_deliveries(&self, endpoint: EndpointId, q: &DeliveryQuery) -> Result<DeliveryPage>;
    fn attempts(&self, id: DeliveryId) -> Result<Vec<Attempt>>;
}

/// An event as [`HistoryReads::for_each_event_between`] visits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
}

/// The deliveries waiting for an attempt, for the scheduler: rebuilt on start, paged in as its
/// horizon moves.
pub trait DeadlineReads: Send + Sync + 'static {
    /// Visits the deliveries waiting for an attempt that are due up to `until_ms` (never
    /// attempted ones, whatever their time, then durable deadlines earliest first) without
    /// collecting them: the wheels are rebuilt from this on start (a million pending retries
    /// must not need a second copy).
    fn for_each_scheduled(&self, until_ms: u64, visit: &mut dyn FnMut(ScheduleEntry))
        -> Result<()>;
    /// Visits the durable deadlines due after `after_ms` and up to `until_ms`, earliest first
    /// (the scheduler's horizon moving on).
    fn for_each_deadline_between(
        &self,
        after_ms: u64,
        until_ms: u64,
        visit: &mut dyn FnMut(ScheduleEntry),
    ) -> Result<()>;

    /// Every delivery waiting for an attempt, as visited, collected (for tests and tools).
    fn scheduled(&self) -> Result<Vec<ScheduleEntry>> {
        let mut out = Vec::new();
        self.for_each_scheduled(u64::MAX, &mut |e| out.push(e))?;
        Ok(out)
    }
}

/// Endpoints (with their derived stats) and daemon metadata; every write is durable on return.
/// (JetStream: KV buckets.)
pub trait EndpointStore: Send + Sync + 'static {
    /// Stores the whole endpoint, its delivery `controls` included: they are not part of its
    /// serde form (`#[serde(skip)]`, so older records keep their layout), and a backend keeps
    /// them beside the endpoint, written at once with it.
    fn put_endpoint(&self, endpoint: &Endpoint) -> Result<()>;
    /// Deletes the endpoint and its controls, and marks its deliveries for deletion: they go
    /// afterwards, in the background (a backend deletes them as soon as it can, with their
    /// attempts and indexes; reads may see them until then).
    fn delete_endpoint(&self, id: EndpointId) -> Result<()>;
    /// Every endpoint with its controls (the default for one stored without).
    fn endpoints(&self) -> Result<Vec<Endpoint>>;
    fn endpoint_stats(&self, id: EndpointId) -> Result<EndpointStats>;
    /// The answer stored for a replay made under `key` (an `Idempotency-Key`) for `endpoint`.
    fn replay_answer(&self, endpoint: EndpointId, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores a keyed replay's answer: kept for `[retention] idempotency`, and deleted with
    /// its endpoint.
    fn put_replay_answer(&self, endpoint: EndpointId, key: &str, answer: &[u8]) -> Result<()>;
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Makes every buffered write durable.
    fn flush(&self) -> Result<()>;
}

/// Everything the daemon needs of storage, one concern per trait (the outcome log's writers
/// take [`Outcomes`]). A component that needs one concern can take that trait alone
/// (`Arc<dyn Store>` upcasts to `Arc<dyn HistoryReads>`).
pub trait Store: EventLog + HistoryReads + DeadlineReads + EndpointStore {}

impl<T: EventLog + HistoryReads + DeadlineReads + EndpointStore> Store for T {}

/// A future a trait object can return (the store's traits stay object-safe).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The outcome log as its writers see it: facts appended as records, and how far the one
/// indexer has applied them to the read model. Fan-out, the sender, the pager and the API take
/// this, not a backend. (JetStream: a stream; `applied` follows the indexer's consumer, whose
/// acknowledged sequence is the durable "applied" mark.)
pub trait Outcomes: Send + Sync + 'static {
    /// Appends `changes` as one record; its seq once written (survives the process, not the
    /// machine). May wait while the indexer is far behind (backpressure).
    fn record<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<Seq>>;
    /// Appends `changes` as one record; its seq once it is on the disk.
    fn record_durable<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<Seq>>;
    /// Follows the last seq the read model reflects.
    fn watch_applied(&self) -> tokio::sync::watch::Receiver<Seq>;
    /// The last seq appended so far (0: none).
    fn last_appended(&self) -> Seq;

    /// Waits until the read model reflects record `seq` (and all before it).
    fn applied(&self, seq: Seq) -> BoxFuture<'_, Result<()>> {
        let mut rx = self.watch_applied();
        Box::pin(async move {
            rx.wait_for(|&a| a >= seq)
                .await
                .map(|_| ())
                .map_err(|_| crate::LogError::IndexerStopped)
        })
    }

    /// Waits until the read model reflects every record appended before the call.
    fn caught_up(&self) -> BoxFuture<'_, Result<()>> {
        self.applied(self.last_appended())
    }
}
