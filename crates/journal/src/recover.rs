//! Opening a journal directory: the lock, the checkpoint, a scan of every segment holding
//! records after the checkpoint (those it covers are only listed), the cut of a torn tail, the
//! checks that the segments and the checkpoint fit together, and the writer that will carry on
//! from the end.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::checkpoint;
use crate::error::{io, JournalError, Result};
use crate::journal::{Config, Counters, OpenReport, Shared, Truncation};
use crate::segment::{self, sync_dir};
use crate::writer::Writer;
use crate::Seq;

fn lock_dir(dir: &Path) -> Result<File> {
    use rustix::fs::{flock, FlockOperation};
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("opening", &path))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(JournalError::Locked {
            path: dir.to_owned(),
        }),
        Err(e) => Err(io("locking", &path)(e.into())),
    }
}

/// The recovered journal, before its writer thread starts.
pub(crate) struct Recovered {
    pub shared: Arc<Shared>,
    pub writer: Writer,
    pub report: OpenReport,
    pub lock: File,
}

/// Finds the segments and the checkpoint, checks every record, cuts a torn tail, and builds
/// the index and the writer.
pub(crate) fn recover(dir: &Path, config: Config) -> Result<Recovered> {
    fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let lock = lock_dir(dir)?;
    let checkpoint = checkpoint::read(dir)?;
    let layout = |detail: String| JournalError::Layout {
        path: dir.to_owned(),
        detail,
    };

    let mut firsts: Vec<Seq> = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("listing", dir))? {
        let entry = entry.map_err(io("listing", dir))?;
        if let Some(first) = entry.file_name().to_str().and_then(segment::parse_name) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    if firsts.is_empty() {
        if let Some(c) = &checkpoint {
            return Err(layout(format!(
                "a checkpoint at seq {} but no segments",
                c.seq
            )));
        }
        let path = dir.join(segment::file_name(1));
        File::create(&path).map_err(io("creating", &path))?;
        sync_dir(dir)?;
        firsts.push(1);
    }

    let (max_record, interval) = (config.max_record_bytes, config.index_interval_bytes);
    let mut metas = Vec::with_capacity(firsts.len());
    let mut truncated = None;
    for (i, &first) in firsts.iter().enumerate() {
        // A sealed segment whose records the checkpoint covers is not read (see
        // `segment::sealed`); the rest are scanned and checked record by record.
        let next = firsts.get(i + 1).copied();
        if let (Some(next), Some(c)) = (next, &checkpoint) {
            if next <= c.seq + 1 {
                metas.push(segment::sealed(dir, first, next)?);
                continue;
            }
        }
        let (meta, tail) = segment::scan(dir, first, max_record, interval)?;
        if let segment::Tail::Bad { offset, detail } = tail {
            if i + 1 < firsts.len() {
                return Err(JournalError::Corrupt {
                    path: meta.path,
                    offset,
                    detail,
                });
            }
            let file = OpenOptions::new()
                .write(true)
                .open(&meta.path)
                .map_err(io("opening", &meta.path))?;
            let len = file.metadata().map_err(io("reading", &meta.path))?.len();
            file.set_len(offset).map_err(io("truncating", &meta.path))?;
            file.sync_all().map_err(io("syncing", &meta.path))?;
            truncated = Some(Truncation {
                path: meta.path.clone(),
                offset,
                dropped_bytes: len - offset,
                detail,
            });
        }
        metas.push(meta);
    }

    // Segments must follow one another. A gap is only allowed right after segments that the
    // checkpoint covers entirely: a removal was cut short, and they go now.
    let mut removed = Vec::new();
    if let Some(gap) = metas
        .windows(2)
        .rposition(|w| w[0].next_seq != w[1].first_seq)
    {
        let covered = checkpoint.as_ref().is_some_and(|c| {
            metas[gap].next_seq <= c.seq + 1 && metas[gap + 1].first_seq <= c.seq + 1
        });
        if !covered {
            return Err(layout(format!(
                "records {} to {} are missing between {} and {}",
                metas[gap].next_seq,
                metas[gap + 1].first_seq - 1,
                metas[gap].path.display(),
                metas[gap + 1].path.display()
            )));
        }
        for meta in metas.drain(..=gap) {
            fs::remove_file(&meta.path).map_err(io("removing", &meta.path))?;
            removed.push(meta.path);
        }
        sync_dir(dir)?;
    }

    let first_seq = metas[0].first_seq;
    let next_seq = metas[metas.len() - 1].next_seq;
    match &checkpoint {
        Some(c) if c.seq >= next_seq => {
            return Err(layout(format!(
                "the checkpoint covers seq {} but the log ends before {next_seq}",
                c.seq
            )))
        }
        Some(c) if first_seq > c.seq + 1 => {
            return Err(layout(format!(
                "the log starts at {first_seq}, after the checkpoint at {}",
                c.seq
            )))
        }
        None if first_seq > 1 => {
            return Err(layout(format!(
                "the log starts at {first_seq} without a checkpoint"
            )))
        }
        _ => {}
    }

    let active = metas[metas.len() - 1].clone();
    // Timestamps never go back, even if the clock did while the journal was closed.
    let last_ts = metas.iter().map(|m| m.max_ts).max().unwrap_or(0);
    let file = OpenOptions::new()
        .append(true)
        .open(&active.path)
        .map_err(io("opening", &active.path))?;
    // What the last process wrote may still be only in the page cache.
    file.sync_data().map_err(io("syncing", &active.path))?;
    let (visible_tx, visible) = watch::channel(next_seq);
    let shared = Arc::new(Shared {
        dir: dir.to_owned(),
        config,
        segments: RwLock::new(metas),
        visible,
        durable: AtomicU64::new(next_seq),
        stats: Counters::default(),
    });
    let writer = Writer {
        shared: shared.clone(),
        file,
        last_ts,
        active,
        visible: visible_tx,
        dirty: false,
        poisoned: None,
        buf: Vec::new(),
    };
    let report = OpenReport {
        checkpoint,
        truncated,
        removed,
        first_seq,
        next_seq,
    };
    Ok(Recovered {
        shared,
        writer,
        report,
        lock,
    })
}
