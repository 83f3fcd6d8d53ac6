//! Fan-out: the stage between the log and the shards. It reads log records from the fan-out
//! cursor, makes one delivery per enabled endpoint of the event's tenant whose filter matches,
//! indexes the events, and appends its decision (every delivery of the record) to the outcome
//! log as one record. Only then are the jobs handed to the shards, so a job's outcome always
//! follows its delivery's making in the log, and a restart finds every delivery not yet
//! attempted. The indexer applies the decision and moves the durable cursor; a decision lost in
//! a crash is made again from the event log.

use std::sync::Arc;
use std::time::Duration;

use std::thread::JoinHandle;
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use hookd_log::outcome::FannedEvent;
use hookd_log::{Change, EndpointRegistry, LogRecord, Outcomes, Seq, Store};
use hookd_types::metrics::{inc, METRICS};
use hookd_types::DeliveryId;

use crate::shard::{Job, SchedulerHandle};

pub struct Fanout {
    store: Arc<dyn Store>,
    outcomes: Arc<dyn Outcomes>,
    registry: Arc<EndpointRegistry>,
    scheduler: SchedulerHandle,
    /// Notified by ingest after every durable append.
    appended: Arc<Notify>,
    /// Delivery ids increase strictly, even within one millisecond, so listings sorted by id are
    /// sorted by creation time.
    ids: ulid::Generator,
    /// Most deliveries in one group ([`MAX_GROUP_DELIVERIES`] unless a test lowers it).
    group_limit: usize,
    /// The first record not yet fanned out and recorded; read from the store's cursor at the
    /// first pass. Fan-out's own, because indexing a group moves the store's cursor before
    /// its outcome record is written: if that write fails, the group is read again from here
    /// (its deliveries made anew, replacing the index's), not skipped.
    next: Option<Seq>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").finish_non_exhaustive()
    }
}

/// Records read per pass.
const READ_AHEAD: usize = 16;

/// Most deliveries in one outcome record of fan-out's (about 32 bytes each: 3.2 MB), unless
/// one event makes more. Records read together are committed in groups under it, and one
/// record that alone makes more is recorded in parts: sixteen batches of 1,000 events to 100
/// endpoints made an outcome record of 31 MB, over the outcome log's limit of 16 MiB, and
/// fan-out stopped there.
pub const MAX_GROUP_DELIVERIES: usize = 100_000;

impl Fanout {
    pub fn new(
        store: Arc<dyn Store>,
        outcomes: Arc<dyn Outcomes>,
        registry: Arc<EndpointRegistry>,
        scheduler: SchedulerHandle,
        appended: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            outcomes,
            registry,
            scheduler,
            appended,
            ids: ulid::Generator::new(),
            group_limit: MAX_GROUP_DELIVERIES,
            next: None,
        }
    }

    /// Commits groups of at most `deliveries` (at least 1) instead of
    /// [`MAX_GROUP_DELIVERIES`]: lets a test reach the limit with a few events.
    pub fn group_limit(mut self, deliveries: usize) -> Self {
        self.group_limit = deliveries.max(1);
        self
    }

    /// Runs fan-out on a thread of its own (named `hookd-fanout`): its store reads and writes
    /// may wait on the disk, which a runtime worker must never do. It stops when `stop` turns
    /// true; join the handle (from a blocking context) to wait for it.
    pub fn spawn(mut self, mut stop: watch::Receiver<bool>) -> std::io::Result<JoinHandle<()>> {
        let runtime = tokio::runtime::Handle::current();
        let run = async move {
            loop {
                if let Err(e) = self.drain().await {
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
    pub async fn drain(&mut self) -> hookd_log::error::Result<()> {
        loop {
            let from = *self.next.get_or_insert_with(|| self.store.fanout_cursor());
            let records = self.store.read_log(from, READ_AHEAD)?;
            if records.is_empty() {
                return Ok(());
            }
            self.fan_out(&records).await?;
        }
    }

    fn next_id(&mut self) -> DeliveryId {
        match self.ids.generate() {
            Ok(u) => DeliveryId(u.0),
            // 2^80 ids in one millisecond: fall back to a random one rather than fail.
            Err(_) => DeliveryId::generate(),
        }
    }

    /// Fans out `records` (read together): one index write and one outcome-log record for a
    /// group of them, one `FannedOut` fact per event-log record in it. Single events make a
    /// record each, and a sled batch and an outcome append apiece cost more than their events.
    /// A group holds at most `group_limit` deliveries, so its outcome record stays far below
    /// the outcome log's record limit; a record that alone makes more is recorded in parts
    /// ([`Fanout::commit_split`]).
    async fn fan_out(&mut self, records: &[(Seq, LogRecord)]) -> hookd_log::error::Result<()> {
        let mut group: Vec<(Seq, &LogRecord, Vec<FannedEvent>)> = Vec::new();
        let mut jobs = Vec::new();
        let mut endpoints = Vec::new();
        for (seq, record) in records {
            let mut fanned = Vec::with_capacity(record.len());
            let mut record_jobs = Vec::new();
            for entry in record {
                let ev = &entry.event;
                // One copy per event, shared by its deliveries' first attempts.
                let event = Arc::new(ev.clone());
                endpoints.clear();
                self.registry
                    .matching(&ev.tenant, &ev.event_type, &mut endpoints);
                let mut deliveries = Vec::with_capacity(endpoints.len());
                for ep in &endpoints {
                    let id = self.next_id();
                    deliveries.push((id, ep.id));
                    record_jobs.push(Job {
                        delivery: id,
                        endpoint: ep.id,
                        // Creation time is the id's own time: list order and `created_at` agree.
                        due_ms: (id.0 >> 80) as u64,
                        attempts: 0,
                        event: Some(event.clone()),
                    });
                }
                fanned.push(FannedEvent {
                    event_id: ev.id.clone(),
                    tenant: ev.tenant.clone(),
                    event_type: ev.event_type.clone(),
                    deliveries,
                });
            }
            if !group.is_empty() && jobs.len() + record_jobs.len() > self.group_limit {
                self.commit(std::mem::take(&mut group), std::mem::take(&mut jobs))
                    .await?;
            }
            if record_jobs.len() > self.group_limit {
                self.commit_split(*seq, record, fanned, record_jobs).await?;
                continue;
            }
            group.push((*seq, record, fanned));
            jobs.append(&mut record_jobs);
        }
        if !group.is_empty() {
            self.commit(group, jobs).await?;
        }
        Ok(())
    }

    /// Indexes a group of fanned-out records, records their decisions as one outcome record,
    /// and only then hands their jobs to the shards.
    async fn commit(
        &mut self,
        group: Vec<(Seq, &LogRecord, Vec<FannedEvent>)>,
        jobs: Vec<Job>,
    ) -> hookd_log::error::Result<()> {
        let index: Vec<(Seq, &LogRecord, &[FannedEvent])> = group
            .iter()
            .map(|(seq, record, fanned)| (*seq, *record, fanned.as_slice()))
            .collect();
        self.store.index_records(&index)?;
        let records = group.len();
        let last = group.iter().map(|(seq, _, _)| *seq).max();
        let events: u64 = group.iter().map(|(_, r, _)| r.len() as u64).sum();
        let changes: Vec<Change> = group
            .into_iter()
            .map(|(seq, _, events)| Change::FannedOut { seq, events })
            .collect();
        let recorded = self.outcomes.record(&changes).await?;
        if let Some(last) = last {
            self.next = Some(last + 1);
        }
        self.hand_over(jobs, recorded, events);
        tracing::debug!(records, events, "fanned out");
        Ok(())
    }

    /// Fans out one event-log record that alone makes more than `group_limit` deliveries:
    /// indexed once, then recorded in parts of whole events of at most `group_limit`
    /// deliveries (one event may make more), each a [`Change::FannedOutPart`] but the last, a
    /// [`Change::FannedOut`] that moves the cursor past the record. Each part's jobs go to
    /// the shards once its record is written.
    async fn commit_split(
        &mut self,
        seq: Seq,
        record: &LogRecord,
        fanned: Vec<FannedEvent>,
        jobs: Vec<Job>,
    ) -> hookd_log::error::Result<()> {
        self.store
            .index_records(&[(seq, record, fanned.as_slice())])?;
        let mut parts: Vec<Vec<FannedEvent>> = Vec::new();
        let mut filled = 0;
        for ev in fanned {
            let n = ev.deliveries.len();
            match parts.last_mut() {
                Some(part) if filled + n <= self.group_limit => part.push(ev),
                // The first part, or one full: a new part, which one event alone may fill.
                _ => {
                    parts.push(vec![ev]);
                    filled = 0;
                }
            }
            filled += n;
        }
        // Jobs are in event order, as the parts are.
        let mut jobs = jobs.into_iter();
        let count = parts.len();
        for (i, events) in parts.into_iter().enumerate() {
            let made: usize = events.iter().map(|e| e.deliveries.len()).sum();
            let n_events = events.len() as u64;
            let change = if i + 1 == count {
                Change::FannedOut { seq, events }
            } else {
                Change::FannedOutPart { seq, events }
            };
            let recorded = self.outcomes.record(std::slice::from_ref(&change)).await?;
            self.hand_over(jobs.by_ref().take(made).collect(), recorded, n_events);
        }
        self.next = Some(seq + 1);
        tracing::debug!(
            seq,
            parts = count,
            events = record.len(),
            "fanned out in parts"
        );
        Ok(())
    }

    /// Hands recorded jobs (their outcome record `recorded`, of `events` events) to the shards.
    fn hand_over(&mut self, jobs: Vec<Job>, recorded: Seq, events: u64) {
        let made = jobs.len();
        inc(&METRICS.deliveries_created_total, made as u64);
        inc(&METRICS.deliveries_pending, made as u64);
        for job in jobs {
            self.scheduler.schedule(job);
        }
        // Counted once the read model shows the deliveries (they are handed to the shards
        // already): tests use it as the barrier before reading them, or before asserting that
        // nothing was delivered. Fan-out goes on meanwhile.
        let mut applied = self.outcomes.watch_applied();
        tokio::spawn(async move {
            if applied.wait_for(|&a| a >= recorded).await.is_ok() {
                inc(&METRICS.events_fanned_out_total, events);
            }
        });
    }
}

#[cfg(test)]
mod tests;
