//! Journal errors. Corruption names the file and the byte offset, so an operator can look at it.

use std::io;
use std::path::PathBuf;

use crate::Seq;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record that fails its checks where a torn write cannot explain it (not at the tail of
    /// the newest segment).
    #[error("corrupt record in {path} at offset {offset}: {detail}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// The files of the directory do not form a journal (a gap between segments, a checkpoint
    /// past the end of the log, a damaged checkpoint file).
    #[error("journal directory {path}: {detail}")]
    Layout { path: PathBuf, detail: String },
    #[error("journal directory {path} is locked by another process")]
    Locked { path: PathBuf },
    #[error("a record of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: u32 },
    #[error(
        "seq {requested} was removed by compaction or retention; the journal starts at {first}"
    )]
    Compacted { requested: Seq, first: Seq },
    #[error("checkpoint at seq {seq} is not below the journal's next durable seq {next}")]
    CheckpointAhead { seq: Seq, next: Seq },
    #[error("checkpoint at seq {seq} goes back behind the last one at {last}")]
    CheckpointBehind { seq: Seq, last: Seq },
    /// A write or a flush failed. The page cache can no longer be trusted to match the disk
    /// (a failed fsync may have dropped dirty pages), so the journal refuses every later write
    /// until it is reopened and recovered.
    #[error("the journal stopped taking writes after a failure: {0}")]
    Poisoned(String),
    #[error("the journal is closed")]
    Closed,
}

pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Wraps an I/O error with what was being done and to which file.
pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> JournalError {
    let path = path.into();
    move |source| JournalError::Io { op, path, source }
}
