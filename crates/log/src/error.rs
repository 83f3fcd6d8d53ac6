//! Storage errors. Every one of them is the daemon's fault or the disk's, never the caller's
//! input: the HTTP layers map them to `INTERNAL_ERROR`. Each failure has its own variant and
//! keeps its cause as its `source()`.

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("encoding a record: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("corrupt record under {key}: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("starting the {thread} thread: {source}")]
    Spawn {
        thread: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// One failed write or flush made for a whole group (a group commit, a group flush), as
    /// each waiter of the group sees it.
    #[error("group {op} failed: {source}")]
    Group {
        op: &'static str,
        #[source]
        source: Arc<LogError>,
    },
    #[error("the syncer has stopped")]
    SyncerStopped,
    #[error("outcome log: {0}")]
    Journal(#[from] hookd_journal::JournalError),
    #[error("the outcome indexer has stopped")]
    IndexerStopped,
    /// A store call run on the blocking pool ([`crate::OnBlockingPool`]) panicked or was
    /// cancelled.
    #[error("a store call on the blocking pool failed: {0}")]
    BlockingCall(#[source] tokio::task::JoinError),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the master key does not open the endpoint secrets stored here: \
         they were sealed under another key"
    )]
    WrongMasterKey,
    #[error("sealing endpoint secrets: {0}")]
    Seal(#[from] crate::sealed::KeyError),
    #[error("the endpoint secrets stored here are sealed and no master key was given")]
    NoMasterKey,
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
