//! Fan-out: the stage between the log and the shards. It reads log records from the fan-out
//! cursor, makes one delivery per enabled endpoint of the event's tenant whose filter matches,
//! and commits them, with their deadlines and the event indexes, in one atomic batch that also
//! drops the record and moves the cursor. Only then are the jobs handed to the shards, so a job
//! never exists without its durable deadline.

use std::sync::Arc;
use std::time::Duration;

use std::thread::JoinHandle;
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use hookd_log::{EndpointRegistry, LogRecord, Seq, Store};
use hookd_types::metrics::{inc, METRICS};
use hookd_types::{Delivery, DeliveryId, DeliveryStatus};

use crate::shard::{Job, SchedulerHandle};

pub struct Fanout {
    store: Arc<dyn Store>,
    registry: Arc<EndpointRegistry>,
    scheduler: SchedulerHandle,
    /// Notified by ingest after every durable append.
    appended: Arc<Notify>,
    /// Delivery ids increase strictly, even within one millisecond, so listings sorted by id are
    /// sorted by creation time.
    ids: ulid::Generator,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").finish_non_exhaustive()
    }
}

/// Records read per pass.
const READ_AHEAD: usize = 16;

impl Fanout {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<EndpointRegistry>,
        scheduler: SchedulerHandle,
        appended: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            registry,
            scheduler,
            appended,
            ids: ulid::Generator::new(),
        }
    }

    /// Runs fan-out on a thread of its own (named `hookd-fanout`): its store reads and writes
    /// may wait on the disk, which a runtime worker must never do. It stops when `stop` turns
    /// true; join the handle (from a blocking context) to wait for it.
    pub fn spawn(mut self, mut stop: watch::Receiver<bool>) -> std::io::Result<JoinHandle<()>> {
        let runtime = tokio::runtime::Handle::current();
        let run = async move {
            loop {
                if let Err(e) = self.drain() {
                    tracing::error!(error = %e, "fan-out failed; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                tokio::select! {
                    _ = self.appended.notified() => {}
                    // A safety net only: every append notifies.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => break,
                }
            }
        };
        std::thread::Builder::new()
            .name("hookd-fanout".into())
            .spawn(move || runtime.block_on(run.instrument(tracing::info_span!("fanout"))))
    }

    /// Fans out every record from the cursor to the end of the log.
    pub fn drain(&mut self) -> hookd_log::error::Result<()> {
        loop {
            let records = self
                .store
                .read_log(self.store.fanout_cursor(), READ_AHEAD)?;
            if records.is_empty() {
                return Ok(());
            }
            for (seq, record) in records {
                self.fan_out(seq, &record)?;
            }
        }
    }

    fn next_id(&mut self) -> DeliveryId {
        match self.ids.generate() {
            Ok(u) => DeliveryId(u.0),
            // 2^80 ids in one millisecond: fall back to a random one rather than fail.
            Err(_) => DeliveryId::generate(),
        }
    }

    fn fan_out(&mut self, seq: Seq, record: &LogRecord) -> hookd_log::error::Result<()> {
        let mut deliveries = Vec::new();
        let mut events = Vec::with_capacity(record.len());
        let mut endpoints = Vec::new();
        for entry in record {
            let ev = &entry.event;
            // One copy per event, shared by its deliveries' first attempts.
            events.push(Arc::new(ev.clone()));
            endpoints.clear();
            self.registry
                .matching(&ev.tenant, &ev.event_type, &mut endpoints);
            for ep in &endpoints {
                let id = self.next_id();
                // Creation time is the id's own time: list order and `created_at` agree.
                let now = (id.0 >> 80) as u64;
                deliveries.push(Delivery {
                    id,
                    event_id: ev.id.clone(),
                    endpoint_id: ep.id,
                    tenant: ev.tenant.clone(),
                    event_type: ev.event_type.clone(),
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    created_at_ms: now,
                    updated_at_ms: now,
                    next_attempt_ms: Some(now),
                    last_attempt_ms: None,
                    last_status_code: None,
                });
            }
        }
        self.store.commit_fanout(seq, record, &deliveries)?;
        inc(&METRICS.deliveries_created_total, deliveries.len() as u64);
        inc(&METRICS.deliveries_pending, deliveries.len() as u64);
        let mut event = events.iter();
        let mut current: Option<&Arc<hookd_types::Event>> = None;
        for d in &deliveries {
            // Deliveries are in event order.
            while current.is_none_or(|e| e.id != d.event_id) {
                current = event.next();
                if current.is_none() {
                    break;
                }
            }
            self.scheduler.schedule(Job {
                delivery: d.id,
                endpoint: d.endpoint_id,
                due_ms: d.created_at_ms,
                attempts: 0,
                event: current.cloned(),
            });
        }
        // Counted last: once a reader sees it, the event's deliveries are stored and handed to
        // the shards (tests use it as the barrier before asserting that nothing was delivered).
        inc(&METRICS.events_fanned_out_total, record.len() as u64);
        tracing::debug!(
            seq,
            events = record.len(),
            deliveries = deliveries.len(),
            "fanned out"
        );
        Ok(())
    }
}
