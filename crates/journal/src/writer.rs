//! The writer thread: the only code that appends to segment files. It takes every request queued
//! when it wakes (up to a group's limits), frames them into one buffer, makes one `write` and,
//! when any request in the group asks for it, one `fdatasync`; then it answers them all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use tokio::sync::{oneshot, watch};

use crate::error::{io, JournalError, Result};
use crate::frame;
use crate::journal::{Durability, Shared};
use crate::segment::{sync_dir, SegmentMeta};
use crate::Seq;

/// Where an answer goes: a blocked thread or an awaiting task.
pub(crate) enum Reply<T> {
    Blocking(crossbeam_channel::Sender<Result<T>>),
    Async(oneshot::Sender<Result<T>>),
}

impl<T> Reply<T> {
    fn send(self, value: Result<T>) {
        // The asker may have given up (a dropped future): nothing to tell it then.
        match self {
            Reply::Blocking(tx) => drop(tx.send(value)),
            Reply::Async(tx) => drop(tx.send(value)),
        }
    }
}

pub(crate) enum Request {
    Append {
        payload: Vec<u8>,
        durability: Durability,
        reply: Reply<Seq>,
    },
    Sync {
        reply: Reply<()>,
    },
}

impl Request {
    fn bytes(&self) -> usize {
        match self {
            Request::Append { payload, .. } => frame::HEADER + payload.len(),
            Request::Sync { .. } => 0,
        }
    }
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub file: File,
    pub active: SegmentMeta,
    pub visible: watch::Sender<Seq>,
    pub last_ts: u64,
    /// Written since the last `fdatasync`.
    pub dirty: bool,
    pub poisoned: Option<String>,
    pub buf: Vec<u8>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Writer {
    /// Serves requests until every sender is gone, then syncs what is still buffered.
    pub fn run(mut self, rx: Receiver<Request>) {
        let (max_records, max_bytes) = (
            self.shared.config.max_group_records.max(1),
            self.shared.config.max_group_bytes,
        );
        while let Ok(first) = rx.recv() {
            let mut bytes = first.bytes();
            let mut group = vec![first];
            while group.len() < max_records && bytes < max_bytes {
                match rx.try_recv() {
                    Ok(next) => {
                        bytes += next.bytes();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
        if self.poisoned.is_none() && self.dirty {
            // Nobody is left to tell of a failure; the next open recovers whatever is on disk.
            drop(self.sync());
        }
    }

    fn commit(&mut self, group: Vec<Request>) {
        let result = match &self.poisoned {
            Some(why) => Err(why.clone()),
            None => self.write_group(&group).map_err(|e| {
                let why = e.to_string();
                self.poisoned = Some(why.clone());
                why
            }),
        };
        let mut seqs = match result {
            Ok(seqs) => seqs.into_iter(),
            Err(why) => {
                for req in group {
                    match req {
                        Request::Append { reply, .. } => {
                            reply.send(Err(JournalError::Poisoned(why.clone())))
                        }
                        Request::Sync { reply } => {
                            reply.send(Err(JournalError::Poisoned(why.clone())))
                        }
                    }
                }
                return;
            }
        };
        for req in group {
            match req {
                Request::Append { reply, .. } => {
                    reply.send(seqs.next().ok_or(JournalError::Closed))
                }
                Request::Sync { reply } => reply.send(Ok(())),
            }
        }
    }

    /// Frames, writes and (if asked) syncs one group; returns the seqs of its appends in order.
    fn write_group(&mut self, group: &[Request]) -> Result<Vec<Seq>> {
        let cfg = &self.shared.config;
        let (segment_bytes, interval) = (cfg.segment_bytes, cfg.index_interval_bytes);
        let ts = now_ms().max(self.last_ts);
        self.last_ts = ts;
        let mut seqs = Vec::with_capacity(group.len());
        let mut need_sync = false;
        for req in group {
            match req {
                Request::Append {
                    payload,
                    durability,
                    ..
                } => {
                    need_sync |= *durability == Durability::Sync;
                    let len = frame::framed_len(payload.len());
                    if self.active.bytes > 0 && self.active.bytes + len > segment_bytes {
                        self.roll()?;
                    }
                    let seq = self.active.next_seq;
                    frame::encode(&mut self.buf, seq, ts, payload);
                    self.active.push(seq, ts, len, interval);
                    seqs.push(seq);
                }
                Request::Sync { .. } => need_sync = true,
            }
        }
        self.write_buf()?;
        if need_sync && self.dirty {
            self.sync()?;
        }
        self.publish();
        let stats = &self.shared.stats;
        stats.groups.fetch_add(1, Ordering::Relaxed);
        stats
            .records
            .fetch_add(seqs.len() as u64, Ordering::Relaxed);
        Ok(seqs)
    }

    fn write_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(io("writing", &self.active.path))?;
        self.shared
            .stats
            .bytes
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(io("syncing", &self.active.path))?;
        self.dirty = false;
        self.shared.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.shared
            .durable
            .store(self.active.next_seq, Ordering::Release);
        Ok(())
    }

    /// Copies the active segment's index into the shared one and lets readers see the records.
    fn publish(&mut self) {
        {
            let mut segments = self.shared.write_segments();
            if let Some(last) = segments.last_mut() {
                last.clone_from(&self.active);
            }
        }
        self.visible.send_replace(self.active.next_seq);
    }

    /// Seals the active segment (all of it written and synced) and starts the next one. The new
    /// file is made durable in the directory before any record goes into it.
    fn roll(&mut self) -> Result<()> {
        self.write_buf()?;
        if self.dirty {
            self.sync()?;
        }
        self.publish();
        let next = SegmentMeta::empty(&self.shared.dir, self.active.next_seq);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&next.path)
            .map_err(io("creating", &next.path))?;
        sync_dir(&self.shared.dir)?;
        self.shared.write_segments().push(next.clone());
        self.file = file;
        self.active = next;
        Ok(())
    }
}
