//! The outcome log: every fact about deliveries (fan-out making them, an attempt's outcome, a
//! manual retry) is appended here as a record, and nothing else writes delivery state. One
//! indexer thread follows the log and applies each record, in log order, to the read model the
//! API and restarts read (deliveries, attempts, durable deadlines, endpoint stats in
//! [`SledStore`]).
//!
//! Why a log and not read-modify-write of shared records: two writers of one delivery record (an
//! attempt finishing and a manual retry) could each read the old record and write back their own
//! version, losing the other's. Here writers only append facts; the indexer is the one writer of
//! the derived records, and it applies facts in one order. An attempt no longer reads, writes or
//! flushes the read model on a runtime thread: it appends one record (the journal's writer
//! thread writes every queued record with one `write`).
//!
//! # Durability
//! - [`OutcomeLog::record`] returns once the record is written to the journal file (in the page
//!   cache): it survives the process being killed. [`OutcomeLog::record_durable`] returns once
//!   it is on the disk (`fdatasync`): a manual retry is acknowledged only then.
//! - The indexer syncs the journal before it applies what it read, so the read model never
//!   holds a fact the log could lose in a power cut. The read model itself is flushed lazily;
//!   the last applied seq is stored in the same atomic batch as the facts, so a restart replays
//!   exactly the records after it ([`OutcomeLog::open`]), and reads the ones before it that
//!   still hold deliveries kept in memory only (see `sled_store/fresh.rs`).
//! - A record lost in a crash (written but never synced) loses an attempt's outcome: the
//!   delivery's durable deadline is still there and the attempt is made again (at-least-once).
//!   A lost fan-out record loses every record after it too (the log keeps a prefix), and the
//!   durable fan-out cursor has not passed its event-log record: fan-out is made again.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use hookd_journal::{Config as JournalConfig, Durability, Journal};
use hookd_types::metrics::{inc, METRICS};
use hookd_types::{Attempt, DeliveryId, DeliveryStatus, EndpointId};

use crate::error::{LogError, Result};
use crate::sled_store::SledStore;
use crate::store::{BoxFuture, Outcomes, Seq};

/// The deliveries fan-out made of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FannedEvent {
    pub event_id: String,
    pub tenant: String,
    pub event_type: String,
    /// Each delivery and its endpoint; a delivery's creation time is its id's time.
    pub deliveries: Vec<(DeliveryId, EndpointId)>,
}

/// One fact about deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Fan-out made these deliveries of the events of event-log record `seq` (pending, due
    /// now), and is past that record.
    FannedOut { seq: Seq, events: Vec<FannedEvent> },
    /// An attempt was made; the delivery is now `status`, due again at `next_attempt_ms`.
    Attempted {
        delivery: DeliveryId,
        attempt: Attempt,
        status: DeliveryStatus,
        next_attempt_ms: Option<u64>,
        at_ms: u64,
    },
    /// A manual retry: the delivery is due at `due_ms`.
    Retried {
        delivery: DeliveryId,
        due_ms: u64,
        at_ms: u64,
    },
    /// A replay (`POST /v1/endpoints/{id}/replay`) made these deliveries of events indexed
    /// before (pending, due now). Like [`Change::FannedOut`] but for no event-log record: it
    /// moves no fan-out cursor. The events keep their ids, so receivers can deduplicate.
    /// (Last in the enum: records written before it decode unchanged.)
    Replayed { events: Vec<FannedEvent> },
    /// Fan-out made these deliveries of some of the events of event-log record `seq`. A record
    /// that alone makes more deliveries than one outcome record should hold is recorded in
    /// parts of whole events; its last part is a [`Change::FannedOut`], which moves the fan-out
    /// cursor past the record. A part moves nothing: after a crash before the last part the
    /// record is fanned out again, and the events of its earlier parts are delivered twice
    /// (each time with its event id). (Last in the enum: records written before it decode
    /// unchanged.)
    FannedOutPart { seq: Seq, events: Vec<FannedEvent> },
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpointed {
    pub outcomes_through: Seq,
    pub outcome_segments_removed: usize,
}

/// How far (in records) the indexer may fall behind the outcome log's writers before they
/// wait for it ([`OutcomeLog::record`]): a restart replays at most about this much.
pub const MAX_LAG: Seq = 50_000;
/// The longest one append waits for the indexer.
pub const LAG_WAIT: Duration = Duration::from_secs(1);

impl Outcomes for OutcomeLog {
    fn record<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<Seq>> {
        Box::pin(self.append(changes))
    }

    fn record_durable<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<Seq>> {
        Box::pin(self.append_durable(changes))
    }

    fn watch_applied(&self) -> watch::Receiver<Seq> {
        self.applied.clone()
    }

    fn last_appended(&self) -> Seq {
        self.journal.next_seq().saturating_sub(1)
    }
}

/// How long finished deliveries and idempotency keys are kept (`[retention]`). The indexer
/// deletes what is older every `every`, as the read model's one writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub history: Duration,
    pub idempotency: Duration,
    pub every: Duration,
}

impl Retention {
    /// Deletes at most this many records of each kind per pass, so a pass never holds the
    /// indexer long.
    const BUDGET: usize = 10_000;
}

/// Most records the indexer applies in one batch of the read model.
const APPLY_BATCH: usize = 4096;

/// How often the indexer writes out lingering fresh deliveries and purges deleted endpoints.
const WRITE_OUT_EVERY: Duration = Duration::from_secs(1);

/// The outcome log and its indexer. Dropping it stops the indexer after it has applied
/// everything appended before.
pub struct OutcomeLog {
    journal: Arc<Journal>,
    applied: watch::Receiver<Seq>,
    stop: watch::Sender<bool>,
    indexer: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for OutcomeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeLog")
            .field("applied", &*self.applied.borrow())
            .finish_non_exhaustive()
    }
}

fn encode(changes: &[Change]) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(changes, bincode::config::standard()).map_err(LogError::from)
}

fn decode(seq: Seq, payload: &[u8]) -> Result<Vec<Change>> {
    bincode::serde::decode_from_slice(payload, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| LogError::Corrupt {
            key: format!("outcome record {seq}"),
            detail: e.to_string(),
        })
}

impl OutcomeLog {
    /// Opens the log in `dir`, applies to `store` every record it has not applied yet, and
    /// starts the indexer thread (keeping everything: no retention).
    pub fn open(dir: &Path, store: Arc<SledStore>) -> Result<Self> {
        Self::open_with(dir, store, None)
    }

    /// [`OutcomeLog::open`], with the indexer deleting what is past `retention`.
    pub fn open_with(
        dir: &Path,
        store: Arc<SledStore>,
        retention: Option<Retention>,
    ) -> Result<Self> {
        let (journal, report) = Journal::open(
            dir,
            JournalConfig {
                durability: Durability::Buffered,
                ..JournalConfig::default()
            },
        )?;
        if let Some(t) = &report.truncated {
            tracing::warn!(file = %t.path.display(), offset = t.offset, bytes = t.dropped_bytes,
                "outcome log: cut a torn tail (outcomes never synced; their attempts are redone)");
        }
        // What a killed process left in the page cache is read back as written: make it
        // durable before the read model may reflect it.
        journal.sync()?;
        let journal = Arc::new(journal);
        let mut applied = store.outcomes_applied()?;
        // Records already applied are read again from where fresh deliveries were made: they
        // live in memory only and are restored from their fan-out records.
        let mut reader = journal.read_from(store.outcomes_replay_from()?.min(applied + 1))?;
        let mut batch = Vec::new();
        let (mut first, mut replayed, mut reread) = (0, 0usize, 0usize);
        let mut restorer = store.restorer()?;
        loop {
            let record = reader.next().transpose()?;
            let done = record.is_none();
            if let Some(r) = record {
                let changes = decode(r.seq, &r.payload)?;
                store.reindex(&changes)?;
                if r.seq <= applied {
                    restorer.restore(&changes, r.seq)?;
                    reread += 1;
                    continue;
                }
                if batch.is_empty() {
                    first = r.seq;
                }
                batch.extend(changes);
                applied = r.seq;
                replayed += 1;
            }
            if !batch.is_empty() && (done || batch.len() >= APPLY_BATCH) {
                store.apply(&batch, first, applied)?;
                batch.clear();
            }
            if done {
                break;
            }
        }
        if reread > 0 {
            tracing::info!(
                records = reread,
                looked_up = restorer.looked_up,
                restored = restorer.restored,
                "outcome log: fresh deliveries restored"
            );
        }
        drop(restorer);
        if replayed > 0 {
            tracing::info!(
                records = replayed,
                "outcome log replayed into the read model"
            );
        }
        let (applied_tx, applied_rx) = watch::channel(applied);
        let (stop, stop_rx) = watch::channel(false);
        let indexer = Indexer {
            journal: journal.clone(),
            store,
            applied: applied_tx,
            retention,
        };
        let handle = thread::Builder::new()
            .name("hookd-indexer".into())
            .spawn(move || indexer.run(stop_rx))
            .map_err(|source| LogError::Spawn {
                thread: "indexer",
                source,
            })?;
        Ok(Self {
            journal,
            applied: applied_rx,
            stop,
            indexer: Some(handle),
        })
    }

    /// Appends `changes` as one record; returns its seq once it is written (survives the
    /// process, not the machine), and once the indexer is less than [`MAX_LAG`] records
    /// behind it (at most [`LAG_WAIT`] later).
    async fn append(&self, changes: &[Change]) -> Result<Seq> {
        let payload = encode(changes)?;
        let seq = self
            .journal
            .append_async_with(payload, Durability::Buffered)
            .await?;
        self.keep_up(seq).await;
        Ok(seq)
    }

    /// Backpressure: attempts and fan-out can append facts faster than the indexer applies
    /// them to the read model. Unchecked, the lag grew to 4 million records while making
    /// 3 million pending retries (the log to 1.2 GB, RSS to 14.8 GiB, and the restart replayed
    /// it all for 8 minutes); waiting here slows the writers to the indexer's pace instead.
    /// Bounded, so a stopped indexer never holds a writer for good.
    async fn keep_up(&self, seq: Seq) {
        let Some(floor) = seq.checked_sub(MAX_LAG) else {
            return;
        };
        if self.applied_seq() >= floor {
            return;
        }
        inc(&METRICS.outcome_backpressure_total, 1);
        let mut rx = self.applied.clone();
        let _ = tokio::time::timeout(LAG_WAIT, rx.wait_for(|&a| a >= floor)).await;
    }

    /// Appends `changes` as one record; returns its seq once it is on the disk.
    async fn append_durable(&self, changes: &[Change]) -> Result<Seq> {
        let payload = encode(changes)?;
        Ok(self
            .journal
            .append_async_with(payload, Durability::Sync)
            .await?)
    }

    /// The last seq the read model reflects.
    pub fn applied_seq(&self) -> Seq {
        *self.applied.borrow()
    }

    /// Makes the read model durable (sled flushed and `fsync`ed) up to what the indexer has
    /// applied, records that as the outcome log's checkpoint, and drops the segments before
    /// it; checkpoints the event log at the fan-out cursor (its segments go with retention,
    /// they hold the events' bodies). A restart replays only what came after. Blocks: call it
    /// from a blocking thread.
    pub fn checkpoint(&self, store: &SledStore) -> Result<Checkpointed> {
        // Read before the sync: what the sync makes durable is at least this. Records from
        // `replay_from` on are kept: they hold the fresh deliveries a restart restores.
        let applied = self.applied_seq();
        let keep_from = store.outcomes_replay_from()?.min(applied + 1);
        store.checkpoint_events()?;
        let mut outcome_segments_removed = 0;
        let through = keep_from.saturating_sub(1);
        if through > 0 && self.journal.last_checkpoint() != Some(through) {
            self.journal.checkpoint(through, Vec::new())?;
            outcome_segments_removed = self.journal.remove_before(keep_from)?.segments;
        }
        Ok(Checkpointed {
            outcomes_through: through,
            outcome_segments_removed,
        })
    }

    /// Stops the indexer once it has applied everything appended so far, and syncs the log.
    pub fn close(mut self) -> Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<()> {
        let _ = self.stop.send(true);
        if let Some(h) = self.indexer.take() {
            let _ = h.join();
        }
        self.journal.sync()?;
        Ok(())
    }
}

impl Drop for OutcomeLog {
    fn drop(&mut self) {
        if let Err(e) = self.shut_down() {
            tracing::error!(error = %e, "closing the outcome log");
        }
    }
}

struct Indexer {
    journal: Arc<Journal>,
    store: Arc<SledStore>,
    applied: watch::Sender<Seq>,
    retention: Option<Retention>,
}

impl Indexer {
    fn run(self, stop: watch::Receiver<bool>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "indexer: no runtime");
                return;
            }
        };
        rt.block_on(self.follow(stop));
    }

    async fn follow(&self, mut stop: watch::Receiver<bool>) {
        let from = *self.applied.borrow() + 1;
        let mut tail = match self.journal.tail(from) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "indexer: opening the outcome log");
                return;
            }
        };
        let mut stopping = false;
        let every = self
            .retention
            .map_or(Duration::from_secs(3600), |r| r.every)
            .max(Duration::from_millis(100));
        // Periodic work is due by these times, checked on every turn of the loop: under a
        // steady load `tail.next()` is always ready, this future never returns `Pending`, and
        // the current-thread runtime never turns its timer driver, so a `tokio::time::interval`
        // in the `select!` never fired (retention deleted nothing in a 5-minute sustained run:
        // disk grew 870 MiB/min with `history = "1m"`). The sleep below only wakes an idle loop.
        let mut retain_at = Instant::now();
        // Fresh deliveries nobody attempted (an open breaker, a paused endpoint) are written out
        // after their linger even when no outcome arrives to do it.
        let mut write_out_at = Instant::now();
        // How long the last batch took to apply: retention, when behind, may take as long.
        let mut last_apply = Duration::ZERO;
        loop {
            let now = Instant::now();
            if self.retention.is_some() && now >= retain_at {
                // Behind (a pass hit its budget): more passes, for as long as the last batch
                // took, then on right after applying what arrived meanwhile. One pass per
                // batch deleted 140,000 deliveries a minute while 580,000 were made (a batch
                // of outcome records holds many more than a pass's budget), so history piled
                // up under a sustained load; sharing the indexer's time evenly makes
                // deleting keep up with making, and the outcome log's backpressure slows
                // making to what both cost.
                let mut behind = self.retain();
                while behind && now.elapsed() < last_apply {
                    behind = self.retain();
                }
                retain_at = if behind { Instant::now() } else { now + every };
            }
            if now >= write_out_at {
                match self.write_out_and_purge() {
                    // A full batch: more may be due, go on right after what arrived.
                    Ok(full) => write_out_at = if full { now } else { now + WRITE_OUT_EVERY },
                    Err(e) => {
                        tracing::error!(error = %e, "indexer: writing out fresh deliveries or purging; stopping");
                        return;
                    }
                }
            }
            let mut records = Vec::new();
            if !stopping {
                let wake = if self.retention.is_some() {
                    retain_at.min(write_out_at)
                } else {
                    write_out_at
                };
                tokio::select! {
                    r = tail.next() => match r {
                        Ok(r) => records.push(r),
                        Err(e) => {
                            tracing::error!(error = %e, "indexer: reading the outcome log");
                            return;
                        }
                    },
                    _ = tokio::time::sleep_until(wake) => {}
                    _ = stop.wait_for(|&s| s) => stopping = true,
                }
            }
            while records.len() < APPLY_BATCH {
                match tail.try_next() {
                    Some(Ok(r)) => records.push(r),
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "indexer: reading the outcome log");
                        return;
                    }
                    None => break,
                }
            }
            if records.is_empty() {
                if stopping {
                    return;
                }
                continue;
            }
            let started = Instant::now();
            if let Err(e) = self.apply(&records) {
                // The facts stay in the log; a restart applies them.
                tracing::error!(error = %e, "indexer: applying outcomes; stopping");
                return;
            }
            last_apply = started.elapsed();
        }
    }

    /// Writes out fresh deliveries that lingered, then purges deleted endpoints' deliveries
    /// ([`SledStore::purge_deleted`]); answers whether either stopped at its budget.
    fn write_out_and_purge(&self) -> Result<bool> {
        let written = self.store.write_out_fresh()?;
        let purged = self.store.purge_deleted(hookd_types::time::now_ms())?;
        self.store.advance_replay_from()?;
        if purged.deliveries + purged.fresh + purged.done > 0 {
            tracing::debug!(?purged, "deleted endpoints: their deliveries deleted");
        }
        Ok(written >= crate::sled_store::OUT_PER_BATCH || purged.full())
    }

    /// One retention pass; answers whether it stopped at its budget (more is due).
    fn retain(&self) -> bool {
        let Some(r) = self.retention else {
            return false;
        };
        let now = hookd_types::time::now_ms();
        let before = |d: Duration| now.saturating_sub(d.as_millis() as u64);
        match self
            .store
            .retain(before(r.history), before(r.idempotency), Retention::BUDGET)
        {
            Ok(done) => {
                inc(
                    &METRICS.retention_deliveries_deleted_total,
                    done.deliveries as u64,
                );
                inc(&METRICS.retention_events_deleted_total, done.events as u64);
                inc(
                    &METRICS.retention_event_log_segments_deleted_total,
                    done.log_segments as u64,
                );
                if done != Default::default() {
                    tracing::debug!(?done, "retention: deleted what is past its time");
                }
                done.behind(Retention::BUDGET)
            }
            Err(e) => {
                tracing::error!(error = %e, "retention");
                false
            }
        }
    }

    fn apply(&self, records: &[hookd_journal::Record]) -> Result<()> {
        // Never let the read model run ahead of what the log keeps after a power cut.
        self.journal.sync()?;
        inc(&METRICS.outcome_flushes_total, 1);
        let mut changes = Vec::with_capacity(records.len());
        for r in records {
            changes.extend(decode(r.seq, &r.payload)?);
        }
        let first = records.first().map_or(0, |r| r.seq);
        let last = records.last().map_or(0, |r| r.seq);
        self.store.apply(&changes, first, last)?;
        let _ = self.applied.send(last);
        Ok(())
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
