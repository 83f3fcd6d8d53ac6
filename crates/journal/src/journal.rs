//! [`Journal`]: opening (with recovery), appending, syncing, checkpoints and removal of old
//! segments. The writer thread lives in `writer`, readers in [`crate::reader`].

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use tokio::sync::{oneshot, watch};

use crate::checkpoint::{self, Checkpoint};
use crate::error::{io, JournalError, Result};
use crate::frame;
use crate::reader::{Reader, Tail};
use crate::recover::{recover, Recovered};
use crate::segment::{sync_dir, ChunkReader, SegmentMeta};
use crate::writer::{Reply, Request};
use crate::Seq;

/// What an append waits for before it returns its seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On the disk: the record's group was written and `fdatasync`ed. Survives power loss.
    Sync,
    /// Written to the segment file (in the page cache). Survives the process dying, not the
    /// machine; made durable by the next [`Journal::sync`], a `Sync` append, a segment roll or
    /// a clean close.
    Buffered,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// A segment is sealed and a new one started when the next record would take it past this
    /// size (a record bigger than this gets a segment of its own).
    pub segment_bytes: u64,
    /// The largest payload accepted; also bounds what recovery believes a length field.
    pub max_record_bytes: u32,
    /// A group stops taking requests at this many records or bytes.
    pub max_group_records: usize,
    pub max_group_bytes: usize,
    /// A segment's index samples one record at least every this many bytes.
    pub index_interval_bytes: u64,
    /// What [`Journal::append`] and [`Journal::append_async`] wait for.
    pub durability: Durability,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            max_record_bytes: 16 << 20,
            max_group_records: 4096,
            max_group_bytes: 8 << 20,
            index_interval_bytes: 64 << 10,
            durability: Durability::Sync,
        }
    }
}

/// Counters of one open journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `fdatasync` calls on segment files.
    pub flushes: u64,
    /// Groups written (one `write` each, plus one per segment roll inside a group).
    pub groups: u64,
    pub records: u64,
    pub bytes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub flushes: AtomicU64,
    pub groups: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
}

/// State shared by the handle, the writer thread and the readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub config: Config,
    pub(crate) segments: RwLock<Vec<SegmentMeta>>,
    /// One past the last seq readers may see.
    pub visible: watch::Receiver<Seq>,
    /// One past the last seq known to be on disk.
    pub durable: AtomicU64,
    pub stats: Counters,
}

impl Shared {
    pub fn read_segments(&self) -> RwLockReadGuard<'_, Vec<SegmentMeta>> {
        self.segments.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write_segments(&self) -> RwLockWriteGuard<'_, Vec<SegmentMeta>> {
        self.segments.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A reader positioned at the sampled record at or before `seq`. The file is opened under
    /// the index lock, so removal cannot take it away in between.
    pub fn open_at(&self, seq: Seq) -> Result<ChunkReader> {
        let segments = self.read_segments();
        let meta = holding(&segments, seq)?;
        ChunkReader::open(&meta.path, meta.seek(seq), self.config.max_record_bytes)
    }

    /// The segment file holding `seq`, opened under the index lock (so removal cannot take it
    /// away in between), and its path.
    fn open_holding(&self, seq: Seq) -> Result<(File, PathBuf)> {
        if seq >= *self.visible.borrow() {
            return Err(JournalError::Compacted {
                requested: seq,
                first: self.read_segments().first().map_or(1, |m| m.first_seq),
            });
        }
        let segments = self.read_segments();
        let path = holding(&segments, seq)?.path.clone();
        let file = File::open(&path).map_err(io("opening", &path))?;
        Ok((file, path))
    }
}

/// The segment whose records include `seq` (the last one starting at or before it);
/// [`JournalError::Compacted`] when `seq` lies before the first.
fn holding(segments: &[SegmentMeta], seq: Seq) -> Result<&SegmentMeta> {
    let i = segments.partition_point(|m| m.first_seq <= seq);
    match i.checked_sub(1) {
        Some(i) => Ok(&segments[i]),
        None => Err(JournalError::Compacted {
            requested: seq,
            first: segments.first().map_or(1, |m| m.first_seq),
        }),
    }
}

/// The tail of the newest segment that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub path: PathBuf,
    pub offset: u64,
    pub dropped_bytes: u64,
    pub detail: String,
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// The last checkpoint: replay from `seq + 1`.
    pub checkpoint: Option<Checkpoint>,
    pub truncated: Option<Truncation>,
    /// Segments left by a removal that a crash interrupted, entirely covered by the
    /// checkpoint; they were deleted.
    pub removed: Vec<PathBuf>,
    pub first_seq: Seq,
    pub next_seq: Seq,
}

/// What a removal deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub segments: usize,
    pub bytes: u64,
    /// The first seq still in the journal.
    pub first_seq: Seq,
}

/// A segmented, append-only log of opaque records with group commit. See the crate docs.
pub struct Journal {
    shared: Arc<Shared>,
    tx: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    last_checkpoint: Mutex<Option<Seq>>,
    _lock: File,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, recovering it first; see the crate docs for
    /// what recovery does. Only one process may hold a directory open.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<(Self, OpenReport)> {
        let Recovered {
            shared,
            writer,
            report,
            lock,
        } = recover(dir.as_ref(), config)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("hookd-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(io("starting the writer for", dir.as_ref()))?;
        let journal = Self {
            shared,
            tx: Some(tx),
            writer: Some(thread),
            last_checkpoint: Mutex::new(report.checkpoint.as_ref().map(|c| c.seq)),
            _lock: lock,
        };
        Ok((journal, report))
    }

    fn send(&self, request: Request) -> Result<()> {
        let tx = self.tx.as_ref().ok_or(JournalError::Closed)?;
        tx.send(request).map_err(|_| JournalError::Closed)
    }

    fn check_len(&self, payload: &[u8]) -> Result<()> {
        let max = self.shared.config.max_record_bytes;
        if payload.len() > max as usize {
            return Err(JournalError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        Ok(())
    }

    /// Appends one record with the configured durability and returns its seq. Blocks the
    /// thread: from async code use [`Journal::append_async`].
    pub fn append(&self, payload: Vec<u8>) -> Result<Seq> {
        self.append_with(payload, self.shared.config.durability)
    }

    pub fn append_with(&self, payload: Vec<u8>, durability: Durability) -> Result<Seq> {
        self.check_len(&payload)?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Request::Append {
            payload,
            durability,
            reply: Reply::Blocking(tx),
        })?;
        rx.recv().map_err(|_| JournalError::Closed)?
    }

    /// [`Journal::append`] for async code. Dropping the future after its first poll does not
    /// take the record back: it may still be written.
    pub async fn append_async(&self, payload: Vec<u8>) -> Result<Seq> {
        self.append_async_with(payload, self.shared.config.durability)
            .await
    }

    pub async fn append_async_with(&self, payload: Vec<u8>, durability: Durability) -> Result<Seq> {
        self.check_len(&payload)?;
        let (tx, rx) = oneshot::channel();
        self.send(Request::Append {
            payload,
            durability,
            reply: Reply::Async(tx),
        })?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Returns once every record appended before the call is on the disk.
    pub fn sync(&self) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Request::Sync {
            reply: Reply::Blocking(tx),
        })?;
        rx.recv().map_err(|_| JournalError::Closed)?
    }

    pub async fn sync_async(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Sync {
            reply: Reply::Async(tx),
        })?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Reads `len` bytes from `start` on of the payload of record `seq`, whose frame begins at
    /// `frame_offset` in its segment ([`Reader::last_offset`]): one positional read, no scan.
    /// The frame's checksum covers the whole record, so it is not checked here: a caller that
    /// wants its part checked keeps a checksum of that part. [`JournalError::Compacted`] when
    /// the record's segment was removed.
    pub fn read_part(&self, seq: Seq, frame_offset: u64, start: u32, len: u32) -> Result<Vec<u8>> {
        let (file, path) = self.shared.open_holding(seq)?;
        let mut buf = vec![0; len as usize];
        let at = frame_offset + frame::HEADER as u64 + u64::from(start);
        file.read_exact_at(&mut buf, at)
            .map_err(io("reading", &path))?;
        Ok(buf)
    }

    /// Reads the records from `seq` up to the last one visible when each is asked for.
    pub fn read_from(&self, seq: Seq) -> Result<Reader> {
        Reader::new(self.shared.clone(), seq)
    }

    /// Follows the log from `seq`, waiting for new records.
    pub fn tail(&self, seq: Seq) -> Result<Tail> {
        Tail::new(self.shared.clone(), seq)
    }

    /// Saves `state` as covering every record up to and including `seq` (which must be
    /// durable; the journal is synced first if needed). A reopen reports it, and removal never
    /// deletes a record after it.
    pub fn checkpoint(&self, seq: Seq, state: Vec<u8>) -> Result<()> {
        let mut last = self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(last) = *last {
            if seq < last {
                return Err(JournalError::CheckpointBehind { seq, last });
            }
        }
        if seq >= self.durable_seq() {
            self.sync()?;
        }
        let durable = self.durable_seq();
        if seq >= durable {
            return Err(JournalError::CheckpointAhead { seq, next: durable });
        }
        checkpoint::write(&self.shared.dir, &Checkpoint { seq, state })?;
        *last = Some(seq);
        Ok(())
    }

    /// The seq of the last checkpoint.
    pub fn last_checkpoint(&self) -> Option<Seq> {
        *self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Deletes the oldest segments whose records all lie below `seq` and are covered by the
    /// checkpoint. The active segment always stays.
    pub fn remove_before(&self, seq: Seq) -> Result<Removed> {
        self.remove_prefix(|meta| meta.next_seq <= seq)
    }

    /// Deletes the oldest segments whose newest record is older than `cutoff` and which the
    /// checkpoint covers. Stops at the first segment that does not qualify: the journal stays
    /// one unbroken run of seqs.
    pub fn remove_older_than(&self, cutoff: SystemTime) -> Result<Removed> {
        let cutoff_ms = cutoff
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.remove_prefix(|meta| meta.max_ts < cutoff_ms)
    }

    /// Whether the oldest segment is sealed and its newest record older than `cutoff_ms`:
    /// whether [`Journal::remove_older_than`] may have something to do, without a copy of the
    /// index.
    pub fn oldest_sealed_before(&self, cutoff_ms: u64) -> bool {
        let segments = self.shared.read_segments();
        segments.len() > 1 && segments[0].max_ts < cutoff_ms
    }

    fn remove_prefix(&self, eligible: impl Fn(&SegmentMeta) -> bool) -> Result<Removed> {
        let last = self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(covered) = *last else {
            return Ok(Removed {
                first_seq: self.first_seq(),
                ..Removed::default()
            });
        };
        let mut removed = Removed::default();
        let mut paths = Vec::new();
        {
            let mut segments = self.shared.write_segments();
            let n = segments
                .iter()
                .take(segments.len() - 1)
                .take_while(|m| m.next_seq <= covered + 1 && eligible(m))
                .count();
            for meta in segments.drain(..n) {
                removed.segments += 1;
                removed.bytes += meta.bytes;
                paths.push(meta.path);
            }
            removed.first_seq = segments[0].first_seq;
        }
        // Oldest first, each made durable before the next: a crash part way leaves an
        // unbroken run of segments (an open lists covered segments without reading them, so it
        // would not see a gap between two of them).
        for path in &paths {
            fs::remove_file(path).map_err(io("removing", path))?;
            sync_dir(&self.shared.dir)?;
        }
        Ok(removed)
    }

    /// The oldest seq still in the journal.
    pub fn first_seq(&self) -> Seq {
        self.shared
            .read_segments()
            .first()
            .map_or(1, |m| m.first_seq)
    }

    /// One past the newest record readers can see.
    pub fn next_seq(&self) -> Seq {
        *self.shared.visible.borrow()
    }

    /// One past the newest record known to be on the disk.
    pub fn durable_seq(&self) -> Seq {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// The segments, oldest first, with their index.
    pub fn segments(&self) -> Vec<SegmentMeta> {
        self.shared.read_segments().clone()
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.stats;
        Stats {
            flushes: c.flushes.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Stops the writer after it has answered every queued request and synced what was
    /// buffered. Dropping the journal does the same.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(thread) = self.writer.take() {
            drop(thread.join());
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shutdown();
    }
}
