//! hookd-journal: a segmented, append-only log of opaque records with group commit,
//! checkpoints and removal of old segments. It is the storage the delivery engine's logs (events,
//! fan-out decisions, attempt outcomes, control records) will be kept in; each record is a batch
//! the engine encodes, the journal never looks inside. `docs/STORAGE.md` says how the engine
//! uses it and how each part maps to NATS JetStream.
//!
//! - [`journal`]: [`Journal`]: open, append, sync, checkpoint, removal.
//! - `recover` (private): what opening does: the lock, the scan, the cut of a torn tail.
//! - `writer` (private): the one thread that writes; group commit.
//! - [`reader`]: [`Reader`] (from any seq to the present) and [`Tail`] (follows the live log).
//! - [`frame`]: the record format. `segment` (private): segment files, their
//!   in-memory index, the scan recovery does. [`checkpoint`]: the checkpoint file.
//!
//! # On disk
//!
//! A directory holds `LOCK` (an exclusive `flock`: one process at a time), segment files named
//! after the seq of their first record (`00000000000000000001.seg`), and `checkpoint`. A
//! segment is a run of frames and nothing else:
//!
//! ```text
//! | crc32c u32 | len u32 | seq u64 | timestamp_ms u64 | payload (len bytes) | next frame ...
//! ```
//!
//! All integers are little endian; the CRC-32C covers everything after itself, header fields
//! included, so a torn length or a zero-filled tail cannot pass for a record. The timestamp is
//! the writer's clock when it took the record, never going backwards within a journal.
//!
//! # Invariants
//!
//! 1. Seqs start at 1 and every record's seq is one more than the one before it, across
//!    segments: segment `n + 1` starts at segment `n`'s last seq + 1. There are no gaps.
//! 2. Only the newest segment (the active one) is ever written, only at its end, and only by the
//!    writer thread. Every older segment was synced in full before the next was created.
//! 3. A segment is created, and made durable in the directory (`fsync` of the directory),
//!    before any record goes into it; removals sync the directory too.
//! 4. An append in [`Durability::Sync`] returns its seq only after the `fdatasync` of its group
//!    returned. Readers see records once the group holding them is written (and synced, if any
//!    append in it asked for that).
//! 5. No segment holding a record after the last checkpoint is ever removed, and the active
//!    segment is never removed: a reopen can always replay from `checkpoint.seq + 1`.
//! 6. After a write or an `fdatasync` fails, the journal takes no more writes (every call
//!    returns [`JournalError::Poisoned`]): a failed `fsync` may have dropped dirty pages, so only
//!    a reopen, which rereads the disk, can say what is there.
//!
//! # Group commit and what a flush promises
//!
//! Appenders (threads via [`Journal::append`], tasks via [`Journal::append_async`]) send their
//! records down a channel to the writer thread. It takes every request queued when it wakes, up
//! to [`Config::max_group_records`] / [`Config::max_group_bytes`], frames them into one buffer,
//! makes one `write`, and one `fdatasync` if any request of the group wants durability; then it
//! answers them all. While it syncs, the next group queues up, so the cost of a sync is shared
//! by everyone who arrived during the previous one, with no timer. [`Stats::flushes`] counts the
//! syncs.
//!
//! A flush promises that every record with a seq below [`Journal::durable_seq`] is on the disk:
//! its bytes by `fdatasync` of the active segment (older ones were synced when sealed), its
//! file's existence by the directory sync at creation. [`Durability::Buffered`] appends return
//! after the `write`: they survive a crash of the process (the page cache keeps them) but not of
//! the machine, until the next [`Journal::sync`], `Sync` append, segment roll or clean close.
//!
//! # Recovery
//!
//! [`Journal::open`] scans every segment holding a record after the checkpoint and checks every
//! record (CRC, length, seq in order), rebuilding each segment's index: first and next seq,
//! oldest and newest timestamp, and the offset of one sampled record every
//! [`Config::index_interval_bytes`], so a read from any seq starts near it. Segments the
//! checkpoint covers entirely were synced whole when sealed and are only listed (first seq from
//! the name, next from the next file's, oldest timestamp from the first header, newest from the
//! file's modification time): an owner that keeps old segments for their records (the event
//! log keeps event bodies for `[retention] history`) does not pay for reading them all on every
//! start. Their records are checked when read.
//!
//! - The tail of the newest segment may be torn: a crash during a group's write leaves part of
//!   it, or, since the page cache writes pages back in any order, valid records after garbage.
//!   None of it was acknowledged as durable (its `fdatasync` had not returned), so recovery
//!   truncates the segment at the first bad record and reports it in
//!   [`OpenReport::truncated`]. It cannot tell a torn write from a bit flip in the newest
//!   segment, so a flip there also loses what follows it.
//! - A bad record anywhere else is [`JournalError::Corrupt`], naming the file and the offset:
//!   a sealed segment was synced whole, so damage there is the disk's, and the journal stops
//!   rather than guess.
//! - Segments left behind by a removal a crash interrupted (a gap right after segments that the
//!   checkpoint covers entirely) are deleted and listed in [`OpenReport::removed`]; any other
//!   gap, a checkpoint past the end of the log, or a log starting after the checkpoint is
//!   [`JournalError::Layout`].
//! - A leftover `checkpoint.tmp` is deleted: its rename never happened.
//!
//! Finally the active segment is `fdatasync`ed, since what the previous process wrote may
//! still be only in the page cache.
//!
//! # Checkpoints and compaction
//!
//! The owner of some state derived from the log saves it with [`Journal::checkpoint`]
//! (`seq`, opaque blob): written to `checkpoint.tmp`, synced, renamed over `checkpoint`, the
//! directory synced. The seq must be durable (the journal syncs first if needed) and never goes
//! back. [`Journal::open`] returns it, and the owner replays from `seq + 1` with
//! [`Journal::read_from`].
//!
//! The journal removes whole segments only, oldest first: [`Journal::remove_before`] (every
//! record below a seq) and [`Journal::remove_older_than`] (retention by age, from the segment's
//! newest timestamp), both bounded by the checkpoint. It never rewrites a record. An owner that
//! must keep some old records (deliveries still pending) compacts by appending them again as
//! new records, checkpointing past them, and then removing the segments below.

pub mod checkpoint;
mod error;
pub mod frame;
pub mod journal;
pub mod reader;
mod recover;
mod segment;
mod writer;

pub use checkpoint::Checkpoint;
pub use error::{JournalError, Result};
pub use frame::Record;
pub use journal::{Config, Durability, Journal, OpenReport, Removed, Stats, Truncation};
pub use reader::{Reader, Tail};
pub use segment::SegmentMeta;

/// A record's position in the journal: 1 for the first, then one more for each.
pub type Seq = u64;

#[cfg(test)]
mod tests;
