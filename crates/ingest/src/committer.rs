//! Group commit. Request handlers hand their validated events to one committer thread through a
//! channel; the thread takes everything queued (up to `max_batch` events), resolves idempotency,
//! appends the new events as **one** log record with **one** flush, and only then answers every
//! waiter. Under load many requests share a flush; alone, a request pays for one.
//!
//! Idempotency is resolved here, on the one thread that also writes, so two concurrent requests
//! with the same key can never both be written. Keys and ids of events already fanned out are
//! found in the store; those still in the log (written, not yet indexed by fan-out) are in the
//! `pending` view, which is rebuilt from the log on start.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::{oneshot, Notify};

use hookd_log::{LogEntry, LogError, LogRecord, Seq, Store};
use hookd_types::metrics::{inc, METRICS};
use hookd_types::Event;

use crate::validate::Candidate;

#[derive(Debug, Clone)]
pub struct CommitterConfig {
    /// Most events in one log record.
    pub max_batch: usize,
}

/// What became of one submitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Newly written and durable.
    Accepted(Event),
    /// A repeat of an earlier request: the original event, nothing written.
    Replayed(Event),
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Storage(#[from] LogError),
    #[error("the committer has stopped")]
    Stopped,
}

struct Submission {
    items: Vec<Candidate>,
    reply: oneshot::Sender<Result<Vec<Outcome>, CommitError>>,
}

/// Position of events accepted into the group being written: not acknowledged, not readable.
const NOT_DURABLE: Seq = Seq::MAX;

/// `(tenant, Idempotency-Key)`
type KeyOf = (String, String);

/// Events written to the log but not yet indexed by fan-out, by id and by idempotency key.
#[derive(Default)]
struct Pending {
    by_id: HashMap<String, (Seq, Arc<Event>, u64)>,
    by_key: HashMap<KeyOf, (Seq, Arc<Event>, u64)>,
    /// Durable entries in log order, so pruning pops from the front instead of scanning all.
    order: VecDeque<(Seq, String, Option<KeyOf>)>,
}

impl Pending {
    fn add(&mut self, seq: Seq, entry: &LogEntry) {
        let ev = Arc::new(entry.event.clone());
        let hash = entry.request_hash;
        let key = entry
            .idempotency_key
            .as_ref()
            .map(|k| (ev.tenant.clone(), k.clone()));
        if let Some(k) = &key {
            self.by_key.insert(k.clone(), (seq, ev.clone(), hash));
        }
        if seq != NOT_DURABLE {
            self.order.push_back((seq, ev.id.clone(), key));
        }
        self.by_id.insert(ev.id.clone(), (seq, ev, hash));
    }

    /// Drops a not-yet-durable entry (its group is being re-keyed or failed).
    fn forget(&mut self, entry: &LogEntry) {
        self.by_id.remove(&entry.event.id);
        if let Some(k) = &entry.idempotency_key {
            self.by_key.remove(&(entry.event.tenant.clone(), k.clone()));
        }
    }

    /// Forgets what fan-out has indexed (positions below `cursor`).
    fn prune(&mut self, cursor: Seq) {
        while let Some((seq, id, key)) = self.order.front() {
            if *seq >= cursor {
                break;
            }
            if self.by_id.get(id).is_some_and(|(s, _, _)| s == seq) {
                self.by_id.remove(id);
            }
            if let Some(k) = key {
                if self.by_key.get(k).is_some_and(|(s, _, _)| s == seq) {
                    self.by_key.remove(k);
                }
            }
            self.order.pop_front();
        }
    }
}

/// Could a later submission of the same group name `c` before it is written? Only by an id the
/// producer chose or by an Idempotency-Key: a generated id is a fresh ULID nobody knows yet.
fn findable_early(c: &Candidate) -> bool {
    c.client_id || c.entry.idempotency_key.is_some()
}

/// Handle to the committer thread. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    tx: Sender<Submission>,
    pending: Arc<Mutex<Pending>>,
    store: Arc<dyn Store>,
    /// Log records appended (one flush each) by this committer.
    flushes: Arc<AtomicU64>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the committer thread. `appended` is notified after every durable append.
    pub fn start(
        store: Arc<dyn Store>,
        cfg: CommitterConfig,
        appended: Arc<Notify>,
    ) -> hookd_log::error::Result<(Self, thread::JoinHandle<()>)> {
        let mut pending = Pending::default();
        let mut from = store.fanout_cursor();
        loop {
            let records = store.read_log(from, 256)?;
            let Some((last, _)) = records.last() else {
                break;
            };
            from = last + 1;
            for (seq, rec) in &records {
                for entry in rec {
                    pending.add(*seq, entry);
                }
            }
        }
        let pending = Arc::new(Mutex::new(pending));
        let (tx, rx) = crossbeam_channel::unbounded();
        let flushes = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            rx,
            store: store.clone(),
            pending: pending.clone(),
            appended,
            max_batch: cfg.max_batch.max(1),
            flushes: flushes.clone(),
        };
        let handle = thread::Builder::new()
            .name("hookd-committer".into())
            .spawn(move || worker.run())
            .map_err(|source| LogError::Spawn {
                thread: "committer",
                source,
            })?;
        let committer = Self {
            tx,
            pending,
            store,
            flushes,
        };
        Ok((committer, handle))
    }

    /// Commits `items` all or nothing; returns once they are durable.
    pub async fn submit(&self, items: Vec<Candidate>) -> Result<Vec<Outcome>, CommitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Submission { items, reply })
            .map_err(|_| CommitError::Stopped)?;
        rx.await.map_err(|_| CommitError::Stopped)?
    }

    /// An event by id, whether already indexed or still only in the log.
    pub fn event(&self, id: &str) -> Result<Option<Event>, LogError> {
        if let Some(ev) = self.store.get_event(id)? {
            return Ok(Some(ev));
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // What fan-out has indexed is the store's to answer (and may be gone by retention).
        pending.prune(self.store.fanout_cursor());
        Ok(pending
            .by_id
            .get(id)
            .filter(|(seq, _, _)| *seq != NOT_DURABLE)
            .map(|(_, ev, _)| (**ev).clone()))
    }

    /// Log records appended so far: one flush each.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Submissions waiting for the next group.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Stops accepting submissions; the thread exits once the queue is drained.
    pub fn close(self) {
        drop(self.tx);
    }
}

struct Worker {
    rx: Receiver<Submission>,
    store: Arc<dyn Store>,
    pending: Arc<Mutex<Pending>>,
    appended: Arc<Notify>,
    max_batch: usize,
    flushes: Arc<AtomicU64>,
}

impl Worker {
    fn run(self) {
        while let Ok(first) = self.rx.recv() {
            let mut group = vec![first];
            let mut events = group[0].items.len();
            while events < self.max_batch {
                match self.rx.try_recv() {
                    Ok(s) => {
                        events += s.items.len();
                        group.push(s);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        tracing::debug!("committer stopped");
    }

    fn commit_group(&self, group: Vec<Submission>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.prune(self.store.fanout_cursor());
        let mut record: LogRecord = Vec::new();
        // Which entries of `record` later submissions of this group can see before the append.
        let mut seen = Vec::new();
        let mut answers = Vec::with_capacity(group.len());
        for sub in group {
            let mut resolved = Pending::default();
            let result = sub
                .items
                .iter()
                .map(|c| {
                    self.resolve(c, &pending, &resolved).inspect(|o| {
                        if let Outcome::Accepted(_) = o {
                            if findable_early(c) {
                                // Later items of the same submission see earlier ones.
                                resolved.add(NOT_DURABLE, &c.entry);
                            }
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>();
            if let Ok(outcomes) = &result {
                for (c, o) in sub.items.into_iter().zip(outcomes) {
                    if let Outcome::Accepted(_) = o {
                        let early = findable_early(&c);
                        if early {
                            // Visible to the next submissions of this group at once.
                            pending.add(NOT_DURABLE, &c.entry);
                        }
                        seen.push(early);
                        record.push(c.entry);
                    }
                }
            }
            answers.push((sub.reply, result));
        }
        // Readers must not wait for the flush: let go of the view while appending. What this
        // group added is marked NOT_DURABLE, which readers skip.
        drop(pending);
        let appended = if record.is_empty() {
            Ok(None)
        } else {
            self.store.append(&record).map(Some)
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // Re-key what was added with its real position, or forget it if the write failed.
        for (entry, early) in record.iter().zip(seen) {
            if early {
                pending.forget(entry);
            }
            if let Ok(Some(seq)) = appended {
                pending.add(seq, entry);
            }
        }
        drop(pending);
        match appended {
            Ok(seq) => {
                if seq.is_some() {
                    self.flushes.fetch_add(1, Ordering::Relaxed);
                    inc(&METRICS.events_ingested_total, record.len() as u64);
                    inc(&METRICS.log_flushes_total, 1);
                    self.appended.notify_one();
                }
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "log append failed");
                let source = Arc::new(e);
                for (reply, _) in answers {
                    let _ = reply.send(Err(CommitError::Storage(LogError::Group {
                        op: "log append",
                        source: source.clone(),
                    })));
                }
            }
        }
    }

    /// Is `c` new, a replay, or a conflict?
    fn resolve(
        &self,
        c: &Candidate,
        pending: &Pending,
        same_submission: &Pending,
    ) -> Result<Outcome, CommitError> {
        let ev = &c.entry.event;
        if let Some(key) = &c.entry.idempotency_key {
            let k = (ev.tenant.clone(), key.clone());
            let hit = match same_submission
                .by_key
                .get(&k)
                .or_else(|| pending.by_key.get(&k))
            {
                Some((_, ev, hash)) => Some(((**ev).clone(), *hash)),
                None => match self.store.get_idempotency(&ev.tenant, key)? {
                    Some(rec) => self
                        .lookup(&rec.event_id, pending)?
                        .map(|e| (e, rec.request_hash)),
                    None => None,
                },
            };
            if let Some((original, hash)) = hit {
                return if hash == c.entry.request_hash {
                    Ok(Outcome::Replayed(original))
                } else {
                    Err(CommitError::Conflict(format!(
                        "Idempotency-Key {key:?} was already used for a different request"
                    )))
                };
            }
        }
        if !c.client_id {
            // A generated id is a fresh ULID: nothing can hold it yet, skip the lookups.
            return Ok(Outcome::Accepted(ev.clone()));
        }
        let existing = match same_submission.by_id.get(&ev.id) {
            Some((_, e, _)) => Some((**e).clone()),
            None => self.lookup(&ev.id, pending)?,
        };
        match existing {
            None => Ok(Outcome::Accepted(ev.clone())),
            Some(original) if original.tenant == ev.tenant && c.client_id => {
                Ok(Outcome::Replayed(original))
            }
            Some(_) => Err(CommitError::Conflict(format!(
                "event id {:?} is already taken",
                ev.id
            ))),
        }
    }

    fn lookup(&self, id: &str, pending: &Pending) -> Result<Option<Event>, CommitError> {
        if let Some((_, ev, _)) = pending.by_id.get(id) {
            return Ok(Some((**ev).clone()));
        }
        Ok(self.store.get_event(id)?)
    }
}

#[cfg(test)]
mod tests;
