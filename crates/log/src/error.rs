//! Storage errors. Every one of them is the daemon's fault or the disk's, never the caller's
//! input: the HTTP layers map them to `INTERNAL_ERROR`.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("encoding a record: {0}")]
    Encode(String),
    #[error("corrupt record under {key}: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the master key does not open the endpoint secrets stored here: \
         they were sealed under another key"
    )]
    WrongMasterKey,
    #[error("the endpoint secrets stored here are sealed and no master key was given")]
    NoMasterKey,
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
