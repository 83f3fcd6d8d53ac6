//! [`Store`] on the event log (a journal beside the sled directory, `db.events`) and sled 0.34
//! for the state derived from the logs: the default tree with keys prefixed by record kind;
//! values in bincode.
//!
//! # Key layout
//! | key | value |
//! |---|---|
//! | journal `db.events`: seq | [`LogRecord`]: every event of one group commit (one record, one `fdatasync`) |
//! | `m` `events_cursor` | first event-log seq not yet fanned out (u64 BE) |
//! | `m` `outcomes_applied` | last outcome-log seq applied by the indexer (u64 BE; see [`crate::outcome`]) |
//! | `m` `outcomes_replay_from` | first outcome-log seq a restart reads: fresh deliveries live in the log from there (u64 BE; see [`fresh`]) |
//! | `m` `cursor`, tree `log` | engine v1's cursor and event tree: read once by [`SledStore::open`] to migrate |
//! | `m` name | daemon metadata (e.g. the admin key hash, the master key check) |
//! | `e` event id | where the event's body lies in the event log (or, for events kept past their segment and in older stores, the [`Event`] itself), and the ids of the deliveries fan-out made of it (see [`bodies`]) |
//! | `k` tenant `\0` key | [`IdemRecord`] |
//! | `d` delivery(16) | `0u8`, then [`Delivery`] with its first attempt once made (older stores: [`Delivery`] alone; see [`record`]) |
//! | `x` endpoint(16) delivery(16) | `()`: deliveries of an endpoint (ids sort by creation time) |
//! | `a` delivery(16) attempt(4) | [`Attempt`]: attempts after the first (older records: every attempt) |
//! | `s` due_ms(8) delivery(16) | endpoint(16) attempts made(4, BE): durable deadlines, in time order (older stores: endpoint only) |
//! | `p` endpoint(16) | [`Endpoint`] in plain text (older stores; stores opened without a master key) |
//! | `q` endpoint(16) | the endpoint with its secrets sealed (see `sled_store/secrets.rs`) |
//! | `l` endpoint(16) | the endpoint's [`hookd_types::DeliveryControls`]: a version byte (1), then bincode; only for endpoints with controls, written and deleted in the endpoint's own batch (see `sled_store/controls.rs`) |
//! | `c` endpoint(16) | stats: 6 x i64 LE (delivered, failed, retrying, last delivery ms, failing since ms, consecutive failures; stores from before the last two: 4) |
//! | `t` created_ms(8) event id | tenant `\0` type (older keys: empty): events by time, for retention and replays (stores from before it: their events are kept, and not replayed) |
//! | `j` created_ms(8) tenant `\0` key | `()`: idempotency keys by time, for retention |
//! | `z` endpoint(16) | deletion time (ms, u64 BE): a deleted endpoint whose deliveries are being deleted (see [`purge`]) |
//! | `r` endpoint(16) key | a keyed replay's answer: stored ms (u64 BE), then the answer (see [`replay_keys`]) |
//! | `y` stored_ms(8) endpoint(16) key | `()`: keyed replays by time, for retention |
//! | tree `api_keys`: key id(16) | [`hookd_types::ApiKey`] (a digest, never the key; see [`api_keys`]) |
//!
//! # Invariants and recovery
//! - Integers in keys are big-endian so byte order is numeric order.
//! - A delivery has a deadline key `s` exactly when `next_attempt_ms` is set, and both change in
//!   one atomic batch. One state tree makes every batch atomic across all state record kinds.
//! - Fan-out's decisions are outcome-log records ([`Change::FannedOut`]). The indexer applies
//!   them like every other fact: the durable fan-out cursor moves in the same batch, so it
//!   alone says what is done. The event log is checkpointed below it once the state is durable
//!   ([`SledStore::checkpoint_events`]); its segments go with retention ([`SledStore::retain`]),
//!   once every event in them is deleted or holds its body in its own record.
//! - Only the outcome indexer writes delivery state ([`SledStore::apply`]), with the seq it
//!   applied through in the same batch. A delivery not attempted yet may live only in memory
//!   and in the outcome log ([`fresh`]); its records are written with its first outcome.
//! - sled recovers a prefix of its writes, so a fan-out or outcome lost in a crash leaves the
//!   event-log record or the deadline in place, and the work is redone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use hookd_journal::{Config as JournalConfig, Durability, Journal};
use hookd_types::time::now_ms;
use hookd_types::{
    Attempt, Delivery, DeliveryId, DeliveryStatus, Endpoint, EndpointId, Event, Signal, Streak,
};

use crate::error::{LogError, Result};
use crate::outcome::{Change, FannedEvent};
use crate::sealed::MasterKey;
use crate::store::*;

mod bodies;
mod controls;
mod fresh;
mod purge;
mod record;
mod secrets;
use bodies::{Body, BodyRef, EventAt, StoredEvent};
use fresh::{Entry, Fresh, FreshEvent};
pub use fresh::{LINGER_MS, MAX_FRESH, OUT_PER_BATCH};
pub use purge::{Purged, GRACE_MS as PURGE_GRACE_MS};
use record::StoredDelivery;
pub use secrets::rekey;
use secrets::{open_endpoint, seal_endpoint, sealed_endpoint_key};

#[derive(Debug, Clone)]
pub struct SledConfig {
    pub path: PathBuf,
    /// sled's page cache; its default (1 GiB) is far too big for a daemon that keeps its hot state
    /// in memory already.
    pub cache_bytes: u64,
}

/// How often sled flushes on its own when [`SledStore::open`] is used: sled's usual setting.
pub const DEFAULT_BACKGROUND_FLUSH: Duration = Duration::from_millis(200);

pub struct SledStore {
    db: sled::Db,
    /// The event log: every group commit of ingest, one record each, synced before the 202.
    events: Journal,
    /// First event-log seq fan-out has not passed (in memory; the durable cursor is written by
    /// the indexer when it applies fan-out's record).
    cursor: AtomicU64,
    /// Deliveries fan-out made that are not yet in sled (see [`fresh`]); only the indexer
    /// writes it.
    fresh: RwLock<Fresh>,
    /// sled's directory.
    path: PathBuf,
    /// Seals endpoint secrets when set ([`SledStore::open_sealed`]).
    master: Option<MasterKey>,
    /// The event-log end at open: a record below it may have been indexed before a crash, so
    /// fan-out redoing it keeps the deliveries its events' records already list and that
    /// still exist (a replay's; see [`SledStore::index_events`]).
    redo_below: Seq,
    /// Where the events of the event-log records read by [`EventLog::read_log`] lie, by seq,
    /// until [`EventLog::index_events`] takes them (see [`bodies`]).
    located: Mutex<HashMap<Seq, Vec<EventAt>>>,
    /// Where retention's scans go on from ([`SledStore::retain`]); only the indexer uses it.
    sweep: Mutex<Sweep>,
    /// The oldest event time indexed since the last retention pass (`u64::MAX`: none): an
    /// event fanned out late may sort before where the events passes go on from.
    indexed_from_ms: AtomicU64,
    /// Fan-outs indexed (their events' records list their deliveries) whose outcome record the
    /// indexer has not applied yet, by event-log seq, with their lowest delivery id: until it
    /// is applied a delivery is neither fresh nor in sled, and retention must not take it for
    /// one deleted (see [`SledStore::deliveries_left`]).
    fanning: Mutex<BTreeMap<Seq, DeliveryId>>,
}

/// Where retention's next pass starts, so that a pass does not walk again over what earlier
/// passes deleted. sled leaves emptied leaves in place until it merges them, and a range scan
/// from the first key visited every one of them (reading them back from disk once evicted):
/// under a sustained load each pass took longer, and retention fell further behind.
#[derive(Debug, Default)]
struct Sweep {
    /// The first delivery id the next pass reads. Every delivery below it was deleted, or is
    /// unfinished and at or above `unfinished`. Never above the oldest fresh delivery (not in
    /// sled, so no pass has seen it).
    deliveries_from: u128,
    /// The lowest unfinished delivery this sweep passed over: the next sweep starts there once
    /// this one reaches the cutoff.
    unfinished: Option<u128>,
    /// The first idempotency time key the next pass reads: every one below it is deleted.
    idempotency_from: Vec<u8>,
    /// Every finished delivery made before this time (ms) has been deleted at least once by
    /// a pass: events from before it may have none left. Later ones surely have theirs, and
    /// the events pass stops there rather than read every delivery of each of them.
    swept_ms: u64,
    /// The first event time key the next events pass reads (empty: the first there is). Every
    /// one below it was deleted, or kept and counted in `events_kept_logged_ms`.
    events_from: Vec<u8>,
    /// The oldest time of the events passed over and kept since the passes last started from
    /// the first key whose bodies are still in the event log: its segments from then on stay.
    events_kept_logged_ms: Option<u64>,
    /// The last pass deleted all that was due: the next starts over from the first key, for
    /// the events kept (their deliveries may be gone since) and for any indexed late with an
    /// older time. Once per caught-up pass (every `retention.every`), never while behind.
    events_over: bool,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("next_seq", &self.events.next_seq())
            .field("cursor", &self.cursor)
            .finish()
    }
}

/// The first byte of every key in the state tree: the kind of record under it (see the key
/// layout above). No two kinds share a byte, so a prefix scan sees one kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Meta,
    Event,
    Idempotency,
    Delivery,
    EndpointDelivery,
    Attempt,
    Deadline,
    /// An endpoint with its secrets in plain text: only in stores from before sealing, migrated
    /// to [`Kind::SealedEndpoint`] on open.
    Endpoint,
    /// An endpoint whose secrets are sealed under the master key.
    SealedEndpoint,
    Stats,
    /// An endpoint's delivery controls, beside its record (which stays in its older layout).
    Controls,
    /// Events by the time they were made, for retention.
    EventTime,
    /// Idempotency keys by the time they were stored, for retention.
    IdempotencyTime,
    /// A deleted endpoint whose deliveries are still being deleted ([`purge`]).
    Tombstone,
    /// A keyed replay's answer ([`replay_keys`]).
    ReplayKey,
    /// Keyed replays' answers by the time they were stored, for retention.
    ReplayKeyTime,
}

impl Kind {
    #[cfg(test)]
    const ALL: [Kind; 16] = [
        Kind::Meta,
        Kind::Event,
        Kind::Idempotency,
        Kind::Delivery,
        Kind::EndpointDelivery,
        Kind::Attempt,
        Kind::Deadline,
        Kind::Endpoint,
        Kind::SealedEndpoint,
        Kind::Stats,
        Kind::Controls,
        Kind::EventTime,
        Kind::IdempotencyTime,
        Kind::Tombstone,
        Kind::ReplayKey,
        Kind::ReplayKeyTime,
    ];

    const fn prefix(self) -> &'static [u8] {
        match self {
            Kind::Meta => b"m",
            Kind::Event => b"e",
            Kind::Idempotency => b"k",
            Kind::Delivery => b"d",
            Kind::EndpointDelivery => b"x",
            Kind::Attempt => b"a",
            Kind::Deadline => b"s",
            Kind::Endpoint => b"p",
            Kind::SealedEndpoint => b"q",
            Kind::Stats => b"c",
            Kind::Controls => b"l",
            Kind::EventTime => b"t",
            Kind::IdempotencyTime => b"j",
            Kind::Tombstone => b"z",
            Kind::ReplayKey => b"r",
            Kind::ReplayKeyTime => b"y",
        }
    }
}

/// Ends the tenant in an idempotency key, which tokens never contain.
const TENANT_END: &[u8] = b"\0";
/// The fan-out cursor of stores from before the event journal (numbering of the old `log` tree).
const CURSOR: &str = "cursor";
/// The fan-out cursor: the first event-log seq not yet fanned out.
const EVENTS_CURSOR: &str = "events_cursor";
/// The last outcome record applied, among the metadata.
const OUTCOMES_APPLIED: &str = "outcomes_applied";
/// The first outcome record a restart must read (fresh deliveries are made from there on).
const OUTCOMES_REPLAY_FROM: &str = "outcomes_replay_from";
/// Endpoint stats are one record of four i64 (LE): delivered, failed (dead-lettered),
/// retrying, last delivery time. Only the outcome indexer writes them, inside its batches.
const STAT_DELIVERED: usize = 0;
const STAT_FAILED: usize = 1;
const STAT_RETRYING: usize = 2;
const STAT_LAST: usize = 3;
/// When the endpoint's current failing streak began (ms; 0: not failing): the first attempt
/// after its last 2xx that got no 2xx (attempts not sent, endpoint disabled or deleted, do not
/// count). Auto-disable resumes from it after a restart.
const STAT_FAILING_SINCE: usize = 4;
/// Its consecutive failures as the circuit breaker counts them (5xx, no answer; any other
/// answer resets them): a restart opens the breaker of an endpoint at its threshold.
const STAT_FAILURES: usize = 5;
/// Six i64; stores from before the streak fields have the first four (32 bytes).
type Stats = [i64; 6];

/// What an event's time key holds: its tenant, `\0`, its type, so a replay scan passes over
/// other tenants' events without reading them. Empty in stores from before it: none.
fn time_value(v: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = v.iter().position(|b| *b == 0)?;
    Some((&v[..end], &v[end + 1..]))
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).map_err(LogError::from)
}

fn dec<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| LogError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            detail: e.to_string(),
        })
}

/// An endpoint as stored before endpoints had a wire format and rotation overlap: same fields,
/// same order, ending at `updated_at_ms`.
#[derive(Deserialize)]
struct EndpointV0 {
    id: EndpointId,
    tenant: String,
    name: String,
    url: String,
    description: String,
    event_types: Vec<String>,
    secret: String,
    enabled: bool,
    metadata: std::collections::BTreeMap<String, String>,
    created_at_ms: u64,
    updated_at_ms: u64,
}

/// Reads an endpoint record of either layout. bincode is not self-describing, so the current
/// layout is tried first and must use every byte; a record it cannot read whole is read as the
/// older layout (whose endpoints all signed with Standard Webhooks), which must too.
fn decode_endpoint(key: &[u8], bytes: &[u8]) -> Result<Endpoint> {
    let cfg = bincode::config::standard();
    if let Ok((ep, n)) = bincode::serde::decode_from_slice::<Endpoint, _>(bytes, cfg) {
        if n == bytes.len() {
            return Ok(ep);
        }
    }
    match bincode::serde::decode_from_slice::<EndpointV0, _>(bytes, cfg) {
        Ok((v0, n)) if n == bytes.len() => Ok(Endpoint {
            id: v0.id,
            tenant: v0.tenant,
            name: v0.name,
            url: v0.url,
            description: v0.description,
            event_types: v0.event_types,
            secret: v0.secret,
            enabled: v0.enabled,
            metadata: v0.metadata,
            created_at_ms: v0.created_at_ms,
            updated_at_ms: v0.updated_at_ms,
            format: Default::default(),
            previous_secrets: Vec::new(),
            controls: Default::default(),
        }),
        // Neither layout: report it the way every other record kind does.
        _ => dec(key, bytes),
    }
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Event-log records whose places are kept for indexing, at most (fan-out reads 16 at a time
/// and indexes each one it read).
const LOCATED_BOUND: usize = 1024;

/// The largest event-log record: a group commit of many large events.
const MAX_EVENT_RECORD_BYTES: u32 = 1 << 30;

/// The event log's directory: beside the sled directory (a re-seal swaps that one whole).
pub fn events_dir(db: &Path) -> PathBuf {
    db.with_extension("events")
}

/// Opens a sled database, waiting (at most 5 s) for one this process just dropped to let go
/// of its file lock: sled's flusher thread may hold it a moment after the drop, and a reopen
/// (the secrets' rewrite, tests) then failed with `could not acquire lock` on a loaded machine.
/// Another process holding the directory is still refused, after the wait.
pub(crate) fn open_sled(config: sled::Config) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match config.open() {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return Ok(r?),
        }
    }
}

/// `fsync`s every file under `dir`, and the directories themselves.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}
fn delivery_key(id: DeliveryId) -> Vec<u8> {
    key(&[Kind::Delivery.prefix(), &id.to_bytes()])
}
fn due_key(due: u64, id: DeliveryId) -> Vec<u8> {
    key(&[Kind::Deadline.prefix(), &due.to_be_bytes(), &id.to_bytes()])
}
fn endpoint_key(id: EndpointId) -> Vec<u8> {
    key(&[Kind::Endpoint.prefix(), &id.to_bytes()])
}
fn stat_key(id: EndpointId) -> Vec<u8> {
    key(&[Kind::Stats.prefix(), &id.to_bytes()])
}
fn event_key(id: &str) -> Vec<u8> {
    key(&[Kind::Event.prefix(), id.as_bytes()])
}
fn idempotency_key(tenant: &str, k: &str) -> Vec<u8> {
    key(&[
        Kind::Idempotency.prefix(),
        tenant.as_bytes(),
        TENANT_END,
        k.as_bytes(),
    ])
}
fn meta_key(name: &str) -> Vec<u8> {
    key(&[Kind::Meta.prefix(), name.as_bytes()])
}

/// What a deadline key holds: who the delivery is for and how many attempts it has had.
fn deadline_value(d: &Delivery) -> Vec<u8> {
    key(&[&d.endpoint_id.to_bytes(), &d.attempts.to_be_bytes()])
}

fn read_stats(bytes: Option<&[u8]>) -> Stats {
    let mut out = [0i64; 6];
    if let Some(b) = bytes.filter(|b| b.len() == 32 || b.len() == 48) {
        for (i, chunk) in b.chunks_exact(8).enumerate() {
            out[i] = i64::from_le_bytes(chunk.try_into().unwrap_or_default());
        }
    }
    out
}

fn write_stats(s: &Stats) -> Vec<u8> {
    s.iter().flat_map(|v| v.to_le_bytes()).collect()
}
fn attempt_key(id: DeliveryId, n: u32) -> Vec<u8> {
    key(&[Kind::Attempt.prefix(), &id.to_bytes(), &n.to_be_bytes()])
}

/// Removes the attempt keys of a delivery being deleted (its first attempt may be in its
/// record instead: see [`record`]).
fn remove_attempts(batch: &mut sled::Batch, r: &StoredDelivery) {
    let d = &r.delivery;
    for n in (1..=d.attempts).filter(|n| r.keyed(*n)) {
        batch.remove(attempt_key(d.id, n));
    }
}

/// Takes an attempt's outcome into the endpoint's failing streak and breaker count.
fn streak(s: &mut Stats, signal: Signal, at_ms: u64) {
    match signal.streak() {
        Streak::Keeps => {}
        Streak::Ends => (s[STAT_FAILING_SINCE], s[STAT_FAILURES]) = (0, 0),
        Streak::Extends => {
            if s[STAT_FAILING_SINCE] == 0 {
                s[STAT_FAILING_SINCE] = at_ms.max(1) as i64;
            }
            s[STAT_FAILURES] = if signal.is_failure() {
                s[STAT_FAILURES].saturating_add(1)
            } else {
                0
            };
        }
    }
}

/// Restores fresh deliveries at a restart, record by record ([`SledStore::restorer`]).
pub struct Restorer<'a> {
    store: &'a SledStore,
    deleted: HashSet<EndpointId>,
    /// Deliveries looked up in sled (each a read that may pull a page into sled's cache).
    pub looked_up: usize,
    /// Deliveries made fresh again.
    pub restored: usize,
}

impl Restorer<'_> {
    /// On start, for outcome records already applied (record `seq`), in order: makes the
    /// deliveries of their fan-outs and replays fresh again unless they were written to sled
    /// since, or attempted in a later record (then deleted since, or they would be in sled).
    pub fn restore(&mut self, changes: &[Change], seq: Seq) -> Result<()> {
        let store = self.store;
        let mut fresh = store.fresh_write();
        for change in changes {
            let events = match change {
                Change::FannedOut { seq: at, events } => {
                    store.cursor.fetch_max(at + 1, Ordering::SeqCst);
                    events
                }
                Change::Replayed { events } | Change::FannedOutPart { events, .. } => events,
                // Applied, so written to sled with this fact. Not there now means deleted
                // since (retention, a purge): it must not come back as fresh, to be delivered
                // again and listed as pending.
                Change::Attempted { delivery, .. } | Change::Retried { delivery, .. } => {
                    if fresh.remove(*delivery).is_some() {
                        self.restored = self.restored.saturating_sub(1);
                    }
                    continue;
                }
            };
            for ev in events {
                let shared = fresh_event(ev);
                for (id, endpoint) in &ev.deliveries {
                    if self.deleted.contains(endpoint) {
                        continue;
                    }
                    self.looked_up += 1;
                    if !store.db.contains_key(delivery_key(*id))? {
                        self.restored += 1;
                        let (endpoint, event) = (*endpoint, shared.clone());
                        fresh.insert(
                            *id,
                            Entry {
                                endpoint,
                                event,
                                seq,
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

fn stat_slot(status: DeliveryStatus) -> Option<usize> {
    match status {
        DeliveryStatus::Delivered => Some(STAT_DELIVERED),
        DeliveryStatus::DeadLettered => Some(STAT_FAILED),
        DeliveryStatus::Retrying => Some(STAT_RETRYING),
        DeliveryStatus::Pending => None,
    }
}

impl SledStore {
    /// Opens the store with sled flushing on its own every [`DEFAULT_BACKGROUND_FLUSH`].
    pub fn open(cfg: &SledConfig) -> Result<Self> {
        Self::open_with_background_flush(cfg, Some(DEFAULT_BACKGROUND_FLUSH))
    }

    /// Opens the store with sled's own periodic flush every `background_flush`, or never
    /// (`None`). hookd's durability never rests on it: appends, endpoint writes and attempt
    /// outcomes are flushed explicitly. It only bounds how long other buffered writes (fan-out)
    /// may take to reach the disk; turned off, crash tests prove the explicit flushes alone.
    pub fn open_with_background_flush(
        cfg: &SledConfig,
        background_flush: Option<Duration>,
    ) -> Result<Self> {
        secrets::finish_rewrite(&cfg.path)?;
        let every_ms = background_flush.map(|d| (d.as_millis() as u64).max(1));
        let db = open_sled(
            sled::Config::new()
                .path(&cfg.path)
                .cache_capacity(cfg.cache_bytes)
                .mode(sled::Mode::HighThroughput)
                .flush_every_ms(every_ms),
        )?;
        let journal = JournalConfig {
            // One record is one group commit of ingest: up to `max_commit_batch` events.
            max_record_bytes: MAX_EVENT_RECORD_BYTES,
            ..JournalConfig::default()
        };
        let (events, report) = Journal::open(events_dir(&cfg.path), journal)?;
        if let Some(t) = &report.truncated {
            // Never acknowledged: the 202 waits for the sync that did not complete.
            tracing::warn!(file = %t.path.display(), offset = t.offset, bytes = t.dropped_bytes,
                "event log: cut a torn tail of unacknowledged events");
        }
        let mut store = Self {
            db,
            events,
            cursor: AtomicU64::new(0),
            fresh: RwLock::new(Fresh::default()),
            path: cfg.path.clone(),
            master: None,
            redo_below: 0,
            located: Mutex::new(HashMap::new()),
            sweep: Mutex::new(Sweep::default()),
            indexed_from_ms: AtomicU64::new(u64::MAX),
            fanning: Mutex::new(BTreeMap::new()),
        };
        let cursor = match store.meta_u64_opt(EVENTS_CURSOR)? {
            Some(c) => c,
            None => store.adopt_legacy_log()?,
        };
        *store.cursor.get_mut() = cursor;
        store.redo_below = store.events.next_seq();
        Ok(store)
    }

    /// A store from before the event journal kept the events not yet fanned out in a sled
    /// tree `log`, numbered from 0 with the cursor under `mcursor`. They move to the journal
    /// (synced) in order, then the cursor is set in the journal's numbering and the tree is
    /// emptied. A crash in between moves them again on the next open: their events may be fanned
    /// out twice (delivered at least once, as always). A fresh store starts at the journal's end.
    fn adopt_legacy_log(&self) -> Result<Seq> {
        let old_cursor = self.meta_u64(CURSOR)?;
        let log = self.db.open_tree("log")?;
        let first = self.events.next_seq();
        let mut moved = 0usize;
        for kv in log.range(old_cursor.to_be_bytes()..) {
            let (_, v) = kv?;
            self.events.append(v.to_vec())?;
            moved += 1;
        }
        self.db
            .insert(meta_key(EVENTS_CURSOR), &first.to_be_bytes()[..])?;
        self.db.flush()?;
        log.clear()?;
        self.db.flush()?;
        if moved > 0 {
            tracing::info!(
                records = moved,
                "moved events not yet fanned out into the event log"
            );
        }
        Ok(first)
    }

    /// Makes what fan-out has committed durable and checkpoints the event log there: every
    /// event before the fan-out cursor is indexed in the store, and a restart reads the log
    /// from the cursor on. The segments stay: they hold the events' bodies until retention
    /// is done with them ([`SledStore::retain`]).
    pub fn checkpoint_events(&self) -> Result<()> {
        // The cursor the indexer stored (fan-out's records applied), not fan-out's own position.
        let cursor = self.meta_u64(EVENTS_CURSOR)?;
        self.sync_to_disk()?;
        let done = self
            .events
            .last_checkpoint()
            .is_some_and(|c| c + 1 >= cursor);
        if cursor <= self.events.first_seq() || done {
            return Ok(());
        }
        self.events.checkpoint(cursor - 1, Vec::new())?;
        Ok(())
    }

    /// Flushes sled and then `fsync`s its files: sled 0.34's own flush ends in
    /// `sync_file_range`, which leaves the device's write cache and file metadata unsynced.
    pub fn sync_to_disk(&self) -> Result<()> {
        self.db.flush()?;
        sync_tree(&self.path)?;
        Ok(())
    }

    fn stored_event(&self, id: &str) -> Result<Option<StoredEvent>> {
        let k = event_key(id);
        match self.db.get(&k)? {
            Some(v) => bodies::decode(&k, &v).map(Some),
            None => Ok(None),
        }
    }

    /// The event whose `e` record holds `body`: read back from the event log when it is there.
    fn event_body(&self, id: &str, body: Body) -> Result<Event> {
        match body {
            Body::Inline(event) => Ok(event),
            Body::Logged(at) => {
                let bytes = self.events.read_part(at.seq, at.frame, at.start, at.len)?;
                bodies::event_from(id, &at, &bytes)
            }
        }
    }

    fn get_decoded<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>> {
        match self.db.get(k)? {
            Some(v) => dec(k, &v).map(Some),
            None => Ok(None),
        }
    }

    /// The last outcome record applied ([`crate::outcome`]); 0 for none.
    pub fn outcomes_applied(&self) -> Result<Seq> {
        self.meta_u64(OUTCOMES_APPLIED)
    }

    fn meta_u64(&self, name: &str) -> Result<u64> {
        Ok(self.meta_u64_opt(name)?.unwrap_or(0))
    }

    fn meta_u64_opt(&self, name: &str) -> Result<Option<u64>> {
        match self.db.get(meta_key(name))? {
            Some(v) => Ok(Some(u64::from_be_bytes(v.as_ref().try_into().map_err(
                |_| LogError::Corrupt {
                    key: format!("m{name}"),
                    detail: "not 8 bytes".into(),
                },
            )?))),
            None => Ok(None),
        }
    }

    /// The first outcome record a restart reads: fresh deliveries (and everything after them)
    /// are made from the records from there on. Before any was stored: the one after the last
    /// applied.
    pub fn outcomes_replay_from(&self) -> Result<Seq> {
        match self.meta_u64_opt(OUTCOMES_REPLAY_FROM)? {
            Some(s) => Ok(s),
            None => Ok(self.outcomes_applied()? + 1),
        }
    }

    /// Moves `outcomes_replay_from` up to where the fresh set now starts (or past the last
    /// applied record when it is empty); answers whether it moved. [`SledStore::apply`]
    /// stores the start it sees before the batch settles its deliveries, and a write-out of
    /// lingering deliveries leaves it as it is, so after the last outcome of a burst the marker
    /// stayed where the burst began: a restart after 1,000,000 attempts re-read 999,991 records
    /// and looked up 600,000 deliveries in sled (pulling their pages into memory) to restore
    /// none. Only the indexer calls this, between its batches (the one writer of both).
    pub fn advance_replay_from(&self) -> Result<bool> {
        let stored = self.outcomes_replay_from()?;
        let start = match self.fresh_read().replay_from() {
            Some(seq) => seq,
            None => self.outcomes_applied()? + 1,
        };
        if start <= stored {
            return Ok(false);
        }
        self.db
            .insert(meta_key(OUTCOMES_REPLAY_FROM), &start.to_be_bytes()[..])?;
        Ok(true)
    }

    /// Deliveries not attempted yet and held in memory only (see [`fresh`]).
    pub fn fresh_deliveries(&self) -> usize {
        self.fresh_read().len()
    }

    /// How long ([`LINGER_MS`]) and how many ([`MAX_FRESH`]) deliveries stay fresh.
    pub fn set_fresh_limits(&self, linger_ms: u64, max: usize) {
        self.fresh_write().set_limits(linger_ms, max);
    }

    fn fanning_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Seq, DeliveryId>> {
        self.fanning.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh_read(&self) -> std::sync::RwLockReadGuard<'_, Fresh> {
        self.fresh.read().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh_write(&self) -> std::sync::RwLockWriteGuard<'_, Fresh> {
        self.fresh.write().unwrap_or_else(|p| p.into_inner())
    }

    fn stored_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>> {
        Ok(self.stored_record(id)?.map(|r| r.delivery))
    }

    fn stored_record(&self, id: DeliveryId) -> Result<Option<StoredDelivery>> {
        let k = delivery_key(id);
        match self.db.get(&k)? {
            Some(v) => record::decode(&k, &v).map(Some),
            None => Ok(None),
        }
    }

    /// On start, for every outcome record replayed: indexes again the events of its fan-outs if
    /// their index did not survive (sled lost its last batches; the outcome log kept the
    /// fan-out). Their event-log record is still there: its segments are dropped only below the
    /// durable cursor, which such a fan-out has not moved yet.
    pub fn reindex(&self, changes: &[Change]) -> Result<()> {
        for change in changes {
            let (Change::FannedOut { seq, events } | Change::FannedOutPart { seq, events }) =
                change
            else {
                continue;
            };
            let mut missing = false;
            for ev in events {
                missing |= !self.db.contains_key(event_key(&ev.event_id))?;
            }
            if !missing {
                continue;
            }
            match self.read_log(*seq, 1)?.pop() {
                Some((at, mut record)) if at == *seq => {
                    // Only this fact's events: a record fanned out in parts has each part's
                    // events indexed with that part's deliveries.
                    if events.len() < record.len() {
                        let named: HashSet<&str> =
                            events.iter().map(|e| e.event_id.as_str()).collect();
                        record.retain(|e| named.contains(e.event.id.as_str()));
                    }
                    self.index_events(*seq, &record, events)?;
                    // The open that called this applies or restores the record itself,
                    // before retention can run.
                    self.fanning_lock().remove(seq);
                }
                _ => {
                    return Err(LogError::Corrupt {
                        key: format!("event log {seq}"),
                        detail: "fanned out but neither indexed nor in the event log".into(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Starts restoring the fresh deliveries of outcome-log records already applied (a
    /// restart reads them again from `outcomes_replay_from`): see [`Restorer::restore`]. Only
    /// the outcome log calls this, before its indexer starts.
    pub fn restorer(&self) -> Result<Restorer<'_>> {
        Ok(Restorer {
            store: self,
            // Read once for the whole replay: a deleted endpoint's deliveries are not brought
            // back (see [`purge`]).
            deleted: self.tombstoned()?,
            looked_up: 0,
            restored: 0,
        })
    }

    /// Applies outcome-log facts (records `first..=through`), in order, in one atomic batch
    /// that also records `through` as applied. Only the indexer calls this: it is the one writer
    /// of delivery state, so reading a record and writing it back here loses nothing. A fact
    /// about a delivery the read model does not hold (its fan-out was lost in a crash and redone
    /// under new ids) is skipped.
    ///
    /// Fan-out's deliveries become fresh (memory only) unless an outcome in the same batch
    /// already settles them; a fresh delivery is written to sled with its first outcome, or when
    /// it has been fresh too long ([`LINGER_MS`], [`MAX_FRESH`]).
    pub fn apply(&self, changes: &[Change], first: Seq, through: Seq) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut touched: HashMap<DeliveryId, Touched> = HashMap::new();
        let mut made: HashMap<DeliveryId, Entry> = HashMap::new();
        let mut stats: HashMap<EndpointId, Stats> = HashMap::new();
        let mut cursor = None;
        // Events that replays made deliveries of, with their ids added (several replays of
        // one event in a batch add up).
        let mut replayed: HashMap<&str, Option<(Body, Vec<DeliveryId>)>> = HashMap::new();
        let (written_out, replay_from) = {
            let fresh = self.fresh_read();
            for change in changes {
                // New deliveries: fan-out's, or a replay's (which also lists them on the event).
                let made_now = match change {
                    Change::FannedOut { seq, events } => {
                        cursor = Some(seq + 1);
                        Some(events)
                    }
                    Change::Replayed { events } => {
                        for ev in events {
                            self.add_replayed(&mut replayed, ev)?;
                        }
                        Some(events)
                    }
                    // Not past the record yet: its last part moves the cursor.
                    Change::FannedOutPart { events, .. } => Some(events),
                    Change::Attempted { .. } | Change::Retried { .. } => None,
                };
                if let Some(events) = made_now {
                    for ev in events {
                        let shared = fresh_event(ev);
                        for (id, endpoint) in &ev.deliveries {
                            let (endpoint, event) = (*endpoint, shared.clone());
                            made.insert(
                                *id,
                                Entry {
                                    endpoint,
                                    event,
                                    seq: first,
                                },
                            );
                        }
                    }
                    continue;
                }
                let (id, at_ms) = match change {
                    Change::Attempted {
                        delivery, at_ms, ..
                    }
                    | Change::Retried {
                        delivery, at_ms, ..
                    } => (*delivery, *at_ms),
                    Change::FannedOut { .. }
                    | Change::Replayed { .. }
                    | Change::FannedOutPart { .. } => {
                        unreachable!("handled above")
                    }
                };
                let t = match touched.remove(&id) {
                    Some(t) => t,
                    None => match made.remove(&id).or_else(|| fresh.get(id).cloned()) {
                        Some(e) => Touched {
                            delivery: e.delivery(id),
                            first: None,
                            current: true,
                            stored: false,
                            stored_due: None,
                            stored_attempts: 0,
                        },
                        None => match self.stored_record(id)? {
                            Some(r) => Touched {
                                stored_due: r.delivery.next_attempt_ms,
                                stored_attempts: r.delivery.attempts,
                                // An older record not attempted yet has no `a` key to keep.
                                current: r.current || r.delivery.attempts == 0,
                                first: r.first,
                                delivery: r.delivery,
                                stored: true,
                            },
                            None => continue,
                        },
                    },
                };
                let before = t.delivery.status;
                let mut after = t.delivery;
                let mut first = t.first;
                match change {
                    Change::Attempted {
                        attempt,
                        status,
                        next_attempt_ms,
                        ..
                    } => {
                        let signal = Signal::of(attempt.status_code, attempt.error);
                        if signal != Signal::NotSent {
                            let s = self.stats_of(&mut stats, after.endpoint_id)?;
                            streak(s, signal, attempt.at_ms);
                        }
                        if attempt.number == 1 && t.current {
                            first = Some(attempt.clone());
                        } else {
                            batch.insert(attempt_key(id, attempt.number), enc(attempt)?);
                        }
                        after.attempts = attempt.number;
                        after.last_attempt_ms = Some(attempt.at_ms);
                        after.last_status_code = attempt.status_code;
                        after.status = *status;
                        after.next_attempt_ms = *next_attempt_ms;
                    }
                    Change::Retried { due_ms, .. } => after.next_attempt_ms = Some(*due_ms),
                    Change::FannedOut { .. }
                    | Change::Replayed { .. }
                    | Change::FannedOutPart { .. } => {
                        unreachable!("handled above")
                    }
                }
                after.updated_at_ms = at_ms;
                if before != after.status {
                    let s = self.stats_of(&mut stats, after.endpoint_id)?;
                    if let Some(slot) = stat_slot(before) {
                        s[slot] -= 1;
                    }
                    if let Some(slot) = stat_slot(after.status) {
                        s[slot] += 1;
                    }
                    if after.status == DeliveryStatus::Delivered {
                        let at = after.last_attempt_ms.unwrap_or(after.updated_at_ms) as i64;
                        s[STAT_LAST] = s[STAT_LAST].max(at);
                    }
                }
                touched.insert(
                    id,
                    Touched {
                        delivery: after,
                        first,
                        ..t
                    },
                );
            }
            // Fresh too long (or too many): written out as they stand, pending and due.
            let out: Vec<_> = fresh
                .due_out(now_ms(), made.len(), fresh::OUT_PER_BATCH)
                .into_iter()
                .filter(|(id, _)| !touched.contains_key(id))
                .collect();
            write_out(&mut batch, &out)?;
            let mut replay_from = fresh.replay_from().unwrap_or(through + 1);
            if !made.is_empty() {
                replay_from = replay_from.min(first);
            }
            (out, replay_from)
        };
        for t in touched.values() {
            let d = &t.delivery;
            // A retry due in the same millisecond as the one before still rewrites the value:
            // it carries the attempt count a restart resumes from.
            let recount = d.next_attempt_ms.is_some() && t.stored_attempts != d.attempts;
            if t.stored_due != d.next_attempt_ms || recount {
                if let Some(due) = t.stored_due {
                    batch.remove(due_key(due, d.id));
                }
                if let Some(due) = d.next_attempt_ms {
                    batch.insert(due_key(due, d.id), deadline_value(d));
                }
            }
            if !t.stored {
                write_new_delivery(&mut batch, d, t.first.as_ref())?;
            } else if t.current {
                batch.insert(delivery_key(d.id), record::encode(d, t.first.as_ref())?);
            } else {
                batch.insert(delivery_key(d.id), enc(d)?);
            }
        }
        for (ep, s) in &stats {
            batch.insert(stat_key(*ep), write_stats(s));
        }
        for (id, stored) in &replayed {
            if let Some((body, deliveries)) = stored {
                batch.insert(event_key(id), bodies::encode(body.as_ref(), deliveries)?);
            }
        }
        if let Some(c) = cursor {
            batch.insert(meta_key(EVENTS_CURSOR), &c.to_be_bytes()[..]);
        }
        batch.insert(meta_key(OUTCOMES_APPLIED), &through.to_be_bytes()[..]);
        batch.insert(
            meta_key(OUTCOMES_REPLAY_FROM),
            &replay_from.to_be_bytes()[..],
        );
        self.db.apply_batch(batch)?;
        // sled first, then the fresh set: a reader looks at the fresh set first, so it always
        // finds the delivery in one of them.
        let mut fresh = self.fresh_write();
        for (id, e) in made {
            fresh.insert(id, e);
        }
        for (id, t) in &touched {
            if !t.stored {
                fresh.remove(*id);
            }
        }
        for (id, _) in written_out {
            fresh.remove(id);
        }
        drop(fresh);
        if let Some(c) = cursor {
            self.cursor.fetch_max(c, Ordering::SeqCst);
            // Fan-outs below it are applied: their deliveries are fresh or in sled now.
            let mut fanning = self.fanning_lock();
            *fanning = fanning.split_off(&c);
        }
        Ok(())
    }

    /// The endpoint's stats as this batch has them: read once, then changed in `stats`.
    fn stats_of<'a>(
        &self,
        stats: &'a mut HashMap<EndpointId, Stats>,
        endpoint: EndpointId,
    ) -> Result<&'a mut Stats> {
        Ok(match stats.entry(endpoint) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(read_stats(self.db.get(stat_key(endpoint))?.as_deref()))
            }
        })
    }

    /// Writes out fresh deliveries that have lingered too long (or are too many), at most
    /// [`fresh::OUT_PER_BATCH`] in one batch; answers how many. The indexer calls it when no
    /// outcome arrives to do it in [`SledStore::apply`], and again at once while it writes a
    /// full batch; only the indexer may call it (the one writer of delivery state).
    /// `outcomes_replay_from` is left to the next apply: an older one replays more,
    /// which is safe (a delivery written to sled is not made fresh again).
    pub fn write_out_fresh(&self) -> Result<usize> {
        let out = self.fresh_read().due_out(now_ms(), 0, fresh::OUT_PER_BATCH);
        if out.is_empty() {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        write_out(&mut batch, &out)?;
        self.db.apply_batch(batch)?;
        // sled first, then the fresh set (see `apply`).
        let mut fresh = self.fresh_write();
        for (id, _) in &out {
            fresh.remove(*id);
        }
        Ok(out.len())
    }

    /// The deliveries event `id`'s record lists that still exist, other than `made`: when a
    /// fan-out lost in a crash is redone, the lost one's deliveries are gone (they lived in the
    /// lost outcome records only) and a replay's made meanwhile is kept.
    fn still_listed(&self, id: &str, made: &[DeliveryId]) -> Result<Vec<DeliveryId>> {
        let Some(old) = self.stored_event(id)? else {
            return Ok(Vec::new());
        };
        let mut kept = Vec::new();
        for d in old.deliveries {
            if made.contains(&d) {
                continue;
            }
            if self.fresh_read().get(d).is_some() || self.db.contains_key(delivery_key(d))? {
                kept.push(d);
            }
        }
        Ok(kept)
    }

    /// Adds the deliveries a replay made of `ev` to the event's record (read once per batch),
    /// so that the event lists them and retention keeps it while they live. An event gone
    /// meanwhile (retention) is left gone: its deliveries find no event and fail.
    fn add_replayed<'a>(
        &self,
        replayed: &mut HashMap<&'a str, Option<(Body, Vec<DeliveryId>)>>,
        ev: &'a FannedEvent,
    ) -> Result<()> {
        let entry = match replayed.entry(ev.event_id.as_str()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                self.stored_event(&ev.event_id)?
                    .map(|s| (s.body, s.deliveries)),
            ),
        };
        if let Some((_, ids)) = entry {
            ids.extend(ev.deliveries.iter().map(|(id, _)| *id));
        }
        Ok(())
    }

    /// Writes deliveries to the read model as they stand, with their index and deadline keys.
    /// For offline tools (seeding a store) and tests only: in the daemon, the indexer is the one
    /// writer of delivery state.
    pub fn seed_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for d in deliveries {
            write_new_delivery(&mut batch, d, None)?;
            if let Some(due) = d.next_attempt_ms {
                batch.insert(due_key(due, d.id), deadline_value(d));
            }
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Durable deadlines due in `from_ms..=until_ms`, earliest first.
    fn deadlines_between(
        &self,
        from_ms: u64,
        until_ms: u64,
        visit: &mut dyn FnMut(ScheduleEntry),
    ) -> Result<()> {
        let start = key(&[Kind::Deadline.prefix(), &from_ms.to_be_bytes()]);
        let range = match until_ms.checked_add(1) {
            Some(end) => {
                let end = key(&[Kind::Deadline.prefix(), &end.to_be_bytes()]);
                self.db.range(start..end)
            }
            None => self
                .db
                .range(start..key(&[&[Kind::Deadline.prefix()[0] + 1]])),
        };
        for kv in range {
            let (k, v) = kv?;
            let corrupt = || LogError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                detail: "bad deadline record".into(),
            };
            let (Some(delivery), Some(endpoint)) = (
                k.get(9..25).and_then(DeliveryId::from_bytes),
                v.get(..16).and_then(EndpointId::from_bytes),
            ) else {
                return Err(corrupt());
            };
            let attempts = match v.get(16..20) {
                Some(n) => u32::from_be_bytes(n.try_into().map_err(|_| corrupt())?),
                // An older store kept the endpoint only: the delivery knows.
                None => self.get_delivery(delivery)?.map_or(0, |d| d.attempts),
            };
            visit(ScheduleEntry {
                due_ms: u64::from_be_bytes(k[1..9].try_into().unwrap_or_default()),
                delivery,
                endpoint,
                attempts,
            });
        }
        Ok(())
    }

    /// Deletes what is past its retention: finished deliveries (delivered or dead-lettered, no
    /// retry due) made before `history_before_ms` with their attempts and index keys; events
    /// made before it once none of their deliveries is left; idempotency keys stored before
    /// `idempotency_before_ms`. At most `budget` records of each kind per call (the rest the
    /// next time). Only the indexer calls this: it is the one writer of delivery state, so a
    /// delivery it finds finished stays so until it is gone.
    pub fn retain(
        &self,
        history_before_ms: u64,
        idempotency_before_ms: u64,
        budget: usize,
    ) -> Result<Retained> {
        let mut out = Retained::default();
        let mut batch = sled::Batch::default();
        let mut sweep = self.sweep.lock().unwrap_or_else(|p| p.into_inner());
        let cutoff = (history_before_ms as u128) << 80;
        let first = delivery_key(DeliveryId(sweep.deliveries_from.min(cutoff)));
        let end = delivery_key(DeliveryId(cutoff));
        // Where this pass stopped for its budget; none: it reached the cutoff.
        let mut stopped = None;
        for kv in self.db.range(first..end) {
            let (k, v) = kv?;
            let r = record::decode(&k, &v)?;
            let d = &r.delivery;
            if out.deliveries == budget {
                stopped = Some(d.id.0);
                break;
            }
            if !finished(d) {
                sweep.unfinished = Some(sweep.unfinished.map_or(d.id.0, |u| u.min(d.id.0)));
                continue;
            }
            batch.remove(k);
            batch.remove(key(&[
                Kind::EndpointDelivery.prefix(),
                &d.endpoint_id.to_bytes(),
                &d.id.to_bytes(),
            ]));
            remove_attempts(&mut batch, &r);
            out.deliveries += 1;
        }
        let reached = match stopped {
            Some(id) => {
                sweep.deliveries_from = id;
                (id >> 80) as u64
            }
            // The sweep is through: the next one starts at what it had to leave.
            None => {
                sweep.deliveries_from = sweep.unfinished.take().unwrap_or(cutoff);
                history_before_ms
            }
        };
        // A fresh delivery is not in sled, so no pass saw it: the next goes back to the oldest,
        // which may be finished by then (it would be passed over for good otherwise).
        if let Some(oldest) = self.fresh_read().oldest() {
            sweep.deliveries_from = sweep.deliveries_from.min(oldest.0);
        }
        sweep.swept_ms = sweep.swept_ms.max(reached);
        self.db.apply_batch(std::mem::take(&mut batch))?;
        // Events made before this time are all deleted or hold their bodies themselves once
        // the pass is through: the event log may drop its segments from before it.
        let mut log_kept_from = history_before_ms;
        let end = key(&[Kind::EventTime.prefix(), &history_before_ms.to_be_bytes()]);
        if std::mem::take(&mut sweep.events_over) {
            sweep.events_from.clear();
            sweep.events_kept_logged_ms = None;
        }
        let late = self.indexed_from_ms.swap(u64::MAX, Ordering::SeqCst);
        let late = key(&[Kind::EventTime.prefix(), &late.to_be_bytes()]);
        if late < sweep.events_from {
            sweep.events_from = late;
        }
        let from = Kind::EventTime
            .prefix()
            .to_vec()
            .max(sweep.events_from.clone());
        // Where this pass stopped (its budget, or events whose deliveries are not swept yet);
        // none: it reached `end`.
        let mut stopped = None;
        for kv in self.db.range(from..end.clone()) {
            let (k, _) = kv?;
            let made_ms = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            // Its deliveries are not swept yet: reading them all (under a sustained load,
            // thousands of events of a hundred each, every pass) only finds them there.
            if out.events == budget || out.events_inlined == budget || made_ms >= sweep.swept_ms {
                log_kept_from = log_kept_from.min(made_ms);
                stopped = Some(k.to_vec());
                break;
            }
            let id = String::from_utf8_lossy(&k[9..]).into_owned();
            if let Some(stored) = self.stored_event(&id)? {
                match self.deliveries_left(&stored)? {
                    Left::None => batch.remove(event_key(&id)),
                    // Outliving the event log's segments: the body moves into the record.
                    Left::Unfinished => {
                        if let Body::Logged(_) = stored.body {
                            let event = self.event_body(&id, stored.body)?;
                            let v = bodies::encode(BodyRef::Inline(&event), &stored.deliveries)?;
                            batch.insert(event_key(&id), v);
                            out.events_inlined += 1;
                        }
                        continue;
                    }
                    // Deleted by a later pass: its segment waits for that.
                    Left::Finished => {
                        if let Body::Logged(_) = stored.body {
                            let kept = sweep.events_kept_logged_ms.get_or_insert(made_ms);
                            *kept = (*kept).min(made_ms);
                        }
                        continue;
                    }
                }
            }
            batch.remove(k);
            out.events += 1;
        }
        // Passes go on where this one stopped, not over the leaves sled emptied before it.
        sweep.events_from = stopped.unwrap_or(end);
        if let Some(kept) = sweep.events_kept_logged_ms {
            log_kept_from = log_kept_from.min(kept);
        }
        let end = key(&[
            Kind::IdempotencyTime.prefix(),
            &idempotency_before_ms.to_be_bytes(),
        ]);
        let from = Kind::IdempotencyTime
            .prefix()
            .to_vec()
            .max(sweep.idempotency_from.clone());
        for kv in self.db.range(from..end) {
            let (k, _) = kv?;
            batch.remove(key(&[Kind::Idempotency.prefix(), &k[9..]]));
            sweep.idempotency_from = k.to_vec();
            batch.remove(k);
            out.idempotency_keys += 1;
            if out.idempotency_keys == budget {
                break;
            }
        }
        let left = budget - out.idempotency_keys;
        out.idempotency_keys +=
            self.expire_replay_answers(&mut batch, idempotency_before_ms, left)?;
        self.db.apply_batch(batch)?;
        // Caught up: the next pass looks again at the events this one kept.
        sweep.events_over = !out.behind(budget);
        drop(sweep);
        out.log_segments = self.trim_event_log(log_kept_from)?;
        Ok(out)
    }

    /// What is left of an event's deliveries. A logged body needs to know whether the ones
    /// left are finished (their deletion is due) or not (the event outlives its segment).
    ///
    /// A delivery in neither sled nor the fresh set was deleted (retention, a purge), unless a
    /// fan-out the indexer has not applied yet made it: a pass that took it for deleted removed
    /// the event before its first retry, which then found no event to send.
    fn deliveries_left(&self, stored: &StoredEvent) -> Result<Left> {
        let fresh = self.fresh_read();
        // Fan-out's ids grow, and each fan-out's are above the one before (unless the clock
        // steps back: the lowest of all of them counts).
        let coming = self.fanning_lock().values().min().copied();
        let mut left = Left::None;
        for d in &stored.deliveries {
            if fresh.get(*d).is_some() || coming.is_some_and(|c| *d >= c) {
                return Ok(Left::Unfinished);
            }
            match stored.body {
                Body::Inline(_) => {
                    if self.db.contains_key(delivery_key(*d))? {
                        return Ok(Left::Unfinished);
                    }
                }
                Body::Logged(_) => match self.stored_delivery(*d)? {
                    Some(d) if !finished(&d) => return Ok(Left::Unfinished),
                    Some(_) => left = Left::Finished,
                    None => {}
                },
            }
        }
        Ok(left)
    }

    /// Drops the event log's segments whose records are all older than `kept_from_ms` (less a
    /// minute: an event's time is taken just before its record's) and fanned out. What
    /// [`SledStore::retain`] wrote (bodies moved into their records) is made durable first.
    fn trim_event_log(&self, kept_from_ms: u64) -> Result<usize> {
        let cutoff = kept_from_ms.saturating_sub(LOG_TIME_MARGIN_MS);
        if !self.events.oldest_sealed_before(cutoff) {
            return Ok(0);
        }
        self.sync_to_disk()?;
        let cutoff = std::time::UNIX_EPOCH + Duration::from_millis(cutoff);
        Ok(self.events.remove_older_than(cutoff)?.segments)
    }

    /// Fans out event-log record `seq` offline: indexes its events, writes `deliveries` as they
    /// stand ([`SledStore::seed_deliveries`]) and moves the durable fan-out cursor past it. For
    /// offline tools and tests only.
    pub fn seed_fanout(&self, seq: Seq, record: &LogRecord, deliveries: &[Delivery]) -> Result<()> {
        let mut by_event: HashMap<&str, Vec<(DeliveryId, EndpointId)>> = HashMap::new();
        for d in deliveries {
            by_event
                .entry(d.event_id.as_str())
                .or_default()
                .push((d.id, d.endpoint_id));
        }
        let fanned: Vec<FannedEvent> = record
            .iter()
            .map(|e| FannedEvent {
                event_id: e.event.id.clone(),
                tenant: e.event.tenant.clone(),
                event_type: e.event.event_type.clone(),
                deliveries: by_event.remove(e.event.id.as_str()).unwrap_or_default(),
            })
            .collect();
        self.index_events(seq, record, &fanned)?;
        self.seed_deliveries(deliveries)?;
        // Written as they stand: no outcome record will bring them.
        self.fanning_lock().remove(&seq);
        let cursor = self.meta_u64(EVENTS_CURSOR)?.max(seq + 1);
        self.db
            .insert(meta_key(EVENTS_CURSOR), &cursor.to_be_bytes()[..])?;
        Ok(())
    }
}

/// What one [`SledStore::retain`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    pub deliveries: usize,
    pub events: usize,
    pub idempotency_keys: usize,
    /// Events kept past `history` (deliveries still to finish) whose bodies moved from the
    /// event log into their records.
    pub events_inlined: usize,
    /// Event-log segments dropped.
    pub log_segments: usize,
}

impl Retained {
    /// Whether the pass stopped at its `budget` for some kind: more is due.
    pub fn behind(&self, budget: usize) -> bool {
        [
            self.deliveries,
            self.events,
            self.events_inlined,
            self.idempotency_keys,
        ]
        .contains(&budget)
    }
}

/// What is left of an event's deliveries, for retention.
enum Left {
    None,
    /// Only finished ones, which retention deletes.
    Finished,
    Unfinished,
}

/// Delivered or dead-lettered, with no retry due: retention may delete it.
fn finished(d: &Delivery) -> bool {
    matches!(
        d.status,
        DeliveryStatus::Delivered | DeliveryStatus::DeadLettered
    ) && d.next_attempt_ms.is_none()
}

/// How much older than the events retention has passed an event-log segment's newest record
/// must be to go: an event's time is taken a moment before its record's, and wall clocks step.
const LOG_TIME_MARGIN_MS: u64 = 60_000;

/// A delivery being changed by one [`SledStore::apply`].
struct Touched {
    delivery: Delivery,
    /// Attempt 1, held in the record (see [`record`]).
    first: Option<Attempt>,
    /// Whether the record is (or becomes) of the current layout; else its attempts all have
    /// `a` keys and it is rewritten in the older one.
    current: bool,
    /// Whether sled holds it already (else it was fresh).
    stored: bool,
    /// The deadline key sled holds for it.
    stored_due: Option<u64>,
    /// The attempt count its deadline key's value holds.
    stored_attempts: u32,
}

fn fresh_event(ev: &FannedEvent) -> Arc<FreshEvent> {
    Arc::new(FreshEvent {
        event_id: ev.event_id.clone(),
        tenant: ev.tenant.clone(),
        event_type: ev.event_type.clone(),
    })
}

/// Fresh deliveries written out as they stand: pending, due since they were made.
fn write_out(batch: &mut sled::Batch, out: &[(DeliveryId, fresh::Entry)]) -> Result<()> {
    for (id, e) in out {
        let d = e.delivery(*id);
        write_new_delivery(batch, &d, None)?;
        batch.insert(due_key(d.created_at_ms, *id), deadline_value(&d));
    }
    Ok(())
}

/// A delivery's record (holding its first attempt, if made) and its endpoint index key.
fn write_new_delivery(
    batch: &mut sled::Batch,
    d: &Delivery,
    first: Option<&Attempt>,
) -> Result<()> {
    batch.insert(delivery_key(d.id), record::encode(d, first)?);
    batch.insert(
        key(&[
            Kind::EndpointDelivery.prefix(),
            &d.endpoint_id.to_bytes(),
            &d.id.to_bytes(),
        ]),
        &[][..],
    );
    Ok(())
}

impl EventLog for SledStore {
    fn append(&self, record: &LogRecord) -> Result<Seq> {
        // Sized up front: a group of 1,000 events of 1 KiB grown by doubling cost two copies
        // and twice the fresh memory (page clearing showed as the committer's main cost).
        let size: usize = record
            .iter()
            .map(|e| {
                let ev = &e.event;
                let key = e.idempotency_key.as_ref().map_or(0, String::len);
                ev.id.len() + ev.tenant.len() + ev.event_type.len() + ev.data.len() + key + 40
            })
            .sum();
        let mut payload = Vec::with_capacity(size + 10);
        bincode::serde::encode_into_std_write(record, &mut payload, bincode::config::standard())?;
        Ok(self.events.append_with(payload, Durability::Sync)?)
    }

    fn read_log(&self, from: Seq, max: usize) -> Result<Vec<(Seq, LogRecord)>> {
        let mut out = Vec::new();
        let mut reader = self.events.read_from(from)?;
        let mut places = Vec::new();
        while out.len() < max {
            let Some(r) = reader.next() else { break };
            let r = r?;
            let (record, at) = bodies::decode_located(r.seq, reader.last_offset(), &r.payload)?;
            places.push((r.seq, at));
            out.push((r.seq, record));
        }
        let mut located = self.located.lock().unwrap_or_else(|p| p.into_inner());
        // Records read and never indexed (a reader other than fan-out) must not pile up.
        if located.len() > LOCATED_BOUND {
            located.retain(|seq, _| *seq >= from);
        }
        located.extend(places);
        Ok(out)
    }

    fn fanout_cursor(&self) -> Seq {
        self.cursor.load(Ordering::SeqCst)
    }

    fn index_events(&self, seq: Seq, record: &LogRecord, fanned: &[FannedEvent]) -> Result<()> {
        self.index_records(&[(seq, record, fanned)])
    }

    fn index_records(&self, records: &[(Seq, &LogRecord, &[FannedEvent])]) -> Result<()> {
        // Before the events' records list the deliveries: retention, reading one, must know
        // they are on their way.
        {
            let mut fanning = self.fanning_lock();
            for (seq, _, fanned) in records {
                let lowest = fanned
                    .iter()
                    .flat_map(|f| &f.deliveries)
                    .map(|(id, _)| *id)
                    .min();
                if let Some(lowest) = lowest {
                    fanning.insert(*seq, lowest);
                }
            }
        }
        // One sled batch for every record read at once: each batch rolls sled's IO buffer
        // twice, and single events made one record (and one batch) each.
        let mut batch = sled::Batch::default();
        let mut filled = Ok(());
        for (seq, record, fanned) in records {
            filled = self.index_into(&mut batch, *seq, record, fanned);
            if filled.is_err() {
                break;
            }
        }
        if let Err(e) = filled.and_then(|()| Ok(self.db.apply_batch(batch)?)) {
            let mut fanning = self.fanning_lock();
            for (seq, _, _) in records {
                fanning.remove(seq);
            }
            return Err(e);
        }
        // After the keys are in: a pass that took the mark before saw them.
        let oldest = records
            .iter()
            .flat_map(|(_, record, _)| record.iter())
            .map(|e| e.event.created_at_ms)
            .min();
        if let Some(oldest) = oldest {
            self.indexed_from_ms.fetch_min(oldest, Ordering::SeqCst);
        }
        if let Some(last) = records.iter().map(|(seq, _, _)| *seq).max() {
            self.cursor.fetch_max(last + 1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl SledStore {
    /// Adds the index of record `seq`'s events to `batch` (see [`EventLog::index_events`]).
    fn index_into(
        &self,
        batch: &mut sled::Batch,
        seq: Seq,
        record: &LogRecord,
        fanned: &[FannedEvent],
    ) -> Result<()> {
        // Fan-out makes all of an event's deliveries at once: their ids live in the event's
        // record, one write per event instead of an index key per delivery.
        let by_event: HashMap<&str, Vec<DeliveryId>> = fanned
            .iter()
            .map(|f| {
                let ids = f.deliveries.iter().map(|(id, _)| *id).collect();
                (f.event_id.as_str(), ids)
            })
            .collect();
        // Bodies stay in the event log when read_log said where they are (else, in offline
        // tools and tests, they go into the record).
        let places = self
            .located
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&seq)
            .filter(|p| p.len() == record.len());
        for (i, entry) in record.iter().enumerate() {
            let ev = &entry.event;
            let made = by_event.get(ev.id.as_str()).map_or(&[][..], Vec::as_slice);
            let merged = if seq < self.redo_below {
                let mut kept = self.still_listed(&ev.id, made)?;
                kept.extend_from_slice(made);
                Some(kept)
            } else {
                None
            };
            let body = match &places {
                Some(p) => BodyRef::Logged(p[i]),
                None => BodyRef::Inline(ev),
            };
            let deliveries = merged.as_deref().unwrap_or(made);
            batch.insert(event_key(&ev.id), bodies::encode(body, deliveries)?);
            let at = ev.created_at_ms.to_be_bytes();
            batch.insert(
                key(&[Kind::EventTime.prefix(), &at, ev.id.as_bytes()]),
                key(&[ev.tenant.as_bytes(), TENANT_END, ev.event_type.as_bytes()]),
            );
            if let Some(k) = &entry.idempotency_key {
                let rec = IdemRecord {
                    event_id: ev.id.clone(),
                    request_hash: entry.request_hash,
                };
                let idem = idempotency_key(&ev.tenant, k);
                batch.insert(
                    key(&[Kind::IdempotencyTime.prefix(), &at, &idem[1..]]),
                    &[][..],
                );
                batch.insert(idem, enc(&rec)?);
            }
        }
        Ok(())
    }
}

impl HistoryReads for SledStore {
    fn get_event(&self, id: &str) -> Result<Option<Event>> {
        match self.stored_event(id)? {
            Some(s) => self.event_body(id, s.body).map(Some),
            None => Ok(None),
        }
    }

    fn get_idempotency(&self, tenant: &str, k: &str) -> Result<Option<IdemRecord>> {
        self.get_decoded(&idempotency_key(tenant, k))
    }

    fn event_deliveries(&self, event_id: &str) -> Result<Vec<Delivery>> {
        let Some(stored) = self.stored_event(event_id)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(stored.deliveries.len());
        for id in stored.deliveries {
            out.extend(self.get_delivery(id)?);
        }
        Ok(out)
    }

    fn for_each_event_between(
        &self,
        tenant: &str,
        from_ms: u64,
        until_ms: u64,
        visit: &mut dyn FnMut(EventRef<'_>) -> bool,
    ) -> Result<()> {
        if from_ms >= until_ms {
            return Ok(());
        }
        let start = key(&[Kind::EventTime.prefix(), &from_ms.to_be_bytes()]);
        let end = key(&[Kind::EventTime.prefix(), &until_ms.to_be_bytes()]);
        for kv in self.db.range(start..end) {
            let (k, v) = kv?;
            let id = String::from_utf8_lossy(&k[9..]);
            // Retention deletes an event with its time key, in one batch.
            let event_type = match time_value(&v) {
                Some((t, _)) if t != tenant.as_bytes() => continue,
                Some((_, event_type)) => String::from_utf8_lossy(event_type),
                // A time key from before it named tenant and type: the event's head is read.
                None => {
                    let ek = event_key(&id);
                    let Some(bytes) = self.db.get(&ek)? else {
                        continue;
                    };
                    // Such keys came with the inline layout; a logged record's time key
                    // always names them.
                    let Some((t, event_type)) = bodies::head(&ek, &bytes)? else {
                        continue;
                    };
                    if t != tenant {
                        continue;
                    }
                    event_type.into()
                }
            };
            let event = EventRef {
                id: &id,
                event_type: &event_type,
            };
            if !visit(event) {
                break;
            }
        }
        Ok(())
    }

    fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>> {
        // The fresh set first: the indexer writes sled before it drops a delivery from it.
        if let Some(e) = self.fresh_read().get(id) {
            return Ok(Some(e.delivery(id)));
        }
        self.stored_delivery(id)
    }

    fn endpoint_deliveries(&self, endpoint: EndpointId, q: &DeliveryQuery) -> Result<DeliveryPage> {
        // Delivery ids are ULIDs: their top 48 bits are the creation time in ms, so the time
        // window is a key range and newest-first is a reverse scan.
        let ep = endpoint.to_bytes();
        let lo = q.from_ms.map_or(0u128, |ms| (ms as u128) << 80);
        let mut hi = q.to_ms.map_or(u128::MAX, |ms| ((ms as u128 + 1) << 80) - 1);
        if let Some(c) = q.cursor {
            match c.0.checked_sub(1) {
                Some(before) => hi = hi.min(before),
                None => return Ok(DeliveryPage::default()),
            }
        }
        if lo > hi {
            return Ok(DeliveryPage::default());
        }
        let start = key(&[Kind::EndpointDelivery.prefix(), &ep, &lo.to_be_bytes()]);
        let end = key(&[Kind::EndpointDelivery.prefix(), &ep, &hi.to_be_bytes()]);
        // Fresh deliveries are all pending: wanted unless the filter leaves pending out. Taken
        // before sled is read, so one written out meanwhile is found there (and kept once).
        let mut fresh: std::collections::VecDeque<Delivery> =
            if q.statuses.is_empty() || q.statuses.contains(&DeliveryStatus::Pending) {
                let set = self.fresh_read();
                set.endpoint_ids(endpoint, DeliveryId(lo), DeliveryId(hi), q.limit + 1)
                    .into_iter()
                    .filter_map(|id| set.get(id).map(|e| e.delivery(id)))
                    .collect()
            } else {
                Default::default()
            };
        // A status filter may skip many records: bound the work of one page.
        const SCAN_BUDGET: usize = 20_000;
        let mut page = DeliveryPage::default();
        let mut last_seen = None;
        let mut stored = self.db.range(start..=end).rev().enumerate().peekable();
        loop {
            // Newest first across both: the larger id of the two heads.
            let next_stored = match stored.peek() {
                Some((_, Ok((k, _)))) => DeliveryId::from_bytes(&k[17..]),
                Some((_, Err(_))) => None,
                None => None,
            };
            let from_fresh = match (fresh.front(), next_stored) {
                (Some(f), Some(s)) => f.id >= s,
                (Some(_), None) => stored.peek().is_none(),
                (None, _) => false,
            };
            let d = if from_fresh {
                let Some(d) = fresh.pop_front() else { break };
                if next_stored == Some(d.id) {
                    stored.next();
                }
                last_seen = Some(d.id);
                d
            } else {
                let Some((scanned, kv)) = stored.next() else {
                    break;
                };
                let (k, _) = kv?;
                let Some(id) = DeliveryId::from_bytes(&k[17..]) else {
                    continue;
                };
                if scanned >= SCAN_BUDGET {
                    page.next_cursor = last_seen;
                    return Ok(page);
                }
                last_seen = Some(id);
                match self.stored_delivery(id)? {
                    Some(d) => d,
                    None => continue,
                }
            };
            if q.statuses.is_empty() || q.statuses.contains(&d.status) {
                if page.items.len() == q.limit {
                    page.next_cursor = page.items.last().map(|d: &Delivery| d.id);
                    return Ok(page);
                }
                page.items.push(d);
            }
        }
        Ok(page)
    }

    fn attempts(&self, id: DeliveryId) -> Result<Vec<Attempt>> {
        let first = self.stored_record(id)?.and_then(|r| r.first);
        let keyed = self
            .db
            .scan_prefix(key(&[Kind::Attempt.prefix(), &id.to_bytes()]))
            .map(|kv| {
                let (k, v) = kv?;
                dec(&k, &v)
            });
        first.map(Ok).into_iter().chain(keyed).collect()
    }
}

impl DeadlineReads for SledStore {
    fn for_each_scheduled(
        &self,
        until_ms: u64,
        visit: &mut dyn FnMut(ScheduleEntry),
    ) -> Result<()> {
        // The indexer may write a fresh delivery to sled (then drop it from the set) between the
        // two reads below: it is visited once, as it was when the set was read.
        let mut seen = HashSet::new();
        for (id, e) in self.fresh_read().iter() {
            seen.insert(*id);
            visit(ScheduleEntry {
                due_ms: fresh::created_ms(*id),
                delivery: *id,
                endpoint: e.endpoint,
                attempts: 0,
            });
        }
        self.deadlines_between(0, until_ms, &mut |entry| {
            if !seen.contains(&entry.delivery) {
                visit(entry);
            }
        })
    }

    fn for_each_deadline_between(
        &self,
        after_ms: u64,
        until_ms: u64,
        visit: &mut dyn FnMut(ScheduleEntry),
    ) -> Result<()> {
        if after_ms >= until_ms {
            return Ok(());
        }
        self.deadlines_between(after_ms + 1, until_ms, visit)
    }
}

impl EndpointStore for SledStore {
    fn put_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let (plain, sealed) = (endpoint_key(endpoint.id), sealed_endpoint_key(endpoint.id));
        let mut batch = sled::Batch::default();
        match &self.master {
            Some(master) => {
                batch.insert(sealed, seal_endpoint(master, endpoint)?);
                batch.remove(plain);
            }
            None => {
                batch.insert(plain, enc(endpoint)?);
                batch.remove(sealed);
            }
        }
        controls::write(&mut batch, endpoint)?;
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn delete_endpoint(&self, id: EndpointId) -> Result<()> {
        let mut batch = sled::Batch::default();
        batch.remove(endpoint_key(id));
        batch.remove(sealed_endpoint_key(id));
        batch.remove(controls::key_of(id));
        purge::bury(&mut batch, id, now_ms());
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let plain = self.db.scan_prefix(Kind::Endpoint.prefix()).map(|kv| {
            let (k, v) = kv?;
            decode_endpoint(&k, &v)
        });
        let sealed = self
            .db
            .scan_prefix(Kind::SealedEndpoint.prefix())
            .map(|kv| {
                let (k, v) = kv?;
                open_endpoint(self.master.as_ref(), &k, &v)
            });
        let mut all: Vec<Endpoint> = plain.chain(sealed).collect::<Result<_>>()?;
        controls::read_into(&self.db, &mut all)?;
        Ok(all)
    }

    fn endpoint_stats(&self, id: EndpointId) -> Result<EndpointStats> {
        let s = read_stats(self.db.get(stat_key(id))?.as_deref());
        Ok(EndpointStats {
            delivered: s[STAT_DELIVERED].max(0) as u64,
            failed: s[STAT_FAILED].max(0) as u64,
            retrying: s[STAT_RETRYING].max(0) as u64,
            last_delivery_ms: (s[STAT_LAST] > 0).then_some(s[STAT_LAST] as u64),
            failing_since_ms: (s[STAT_FAILING_SINCE] > 0).then_some(s[STAT_FAILING_SINCE] as u64),
            consecutive_failures: s[STAT_FAILURES].clamp(0, u32::MAX as i64) as u32,
        })
    }

    fn replay_answer(&self, endpoint: EndpointId, key: &str) -> Result<Option<Vec<u8>>> {
        self.read_replay_answer(endpoint, key)
    }

    fn put_replay_answer(&self, endpoint: EndpointId, key: &str, answer: &[u8]) -> Result<()> {
        self.write_replay_answer(endpoint, key, now_ms(), answer)
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(meta_key(name))?.map(|v| v.to_vec()))
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        self.db.insert(meta_key(name), value)?;
        self.db.flush()?;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

pub mod api_keys;
#[cfg(test)]
mod endpoint_compat;
mod replay_keys;
#[cfg(test)]
mod secrets_tests;
#[cfg(test)]
mod tests;
