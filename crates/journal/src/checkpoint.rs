//! The checkpoint file: the seq a state blob covers, written atomically.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "HKDJCKP1"
//!      8     8  seq: the state includes every record up to and including it (little endian)
//!     16     4  len of the state (little endian)
//!     20     4  crc32c of bytes 8 .. 20 and of the state
//!     24   len  state (opaque)
//! ```
//!
//! It is written to `checkpoint.tmp`, synced, renamed over `checkpoint`, and the directory is
//! synced: after a crash the file is the old checkpoint or the new one, never a mix.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{io, JournalError, Result};
use crate::segment::sync_dir;
use crate::Seq;

pub const FILE: &str = "checkpoint";
pub const TMP: &str = "checkpoint.tmp";
const MAGIC: &[u8; 8] = b"HKDJCKP1";

/// A saved state and the seq it covers: a reopen replays from `seq + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: Seq,
    pub state: Vec<u8>,
}

fn crc(seq: Seq, state: &[u8]) -> u32 {
    let mut head = [0u8; 12];
    head[..8].copy_from_slice(&seq.to_le_bytes());
    head[8..].copy_from_slice(&(state.len() as u32).to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), state)
}

pub fn write(dir: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let tmp = dir.join(TMP);
    let mut bytes = Vec::with_capacity(24 + checkpoint.state.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&checkpoint.seq.to_le_bytes());
    bytes.extend_from_slice(&(checkpoint.state.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc(checkpoint.seq, &checkpoint.state).to_le_bytes());
    bytes.extend_from_slice(&checkpoint.state);
    let mut f = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(&bytes).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    drop(f);
    let path = dir.join(FILE);
    fs::rename(&tmp, &path).map_err(io("renaming into", &path))?;
    sync_dir(dir)
}

/// Reads the checkpoint, if there is one. A leftover temporary file (a crash during
/// [`write()`]) is removed: the rename never happened, so the old checkpoint stands.
pub fn read(dir: &Path) -> Result<Option<Checkpoint>> {
    let tmp = dir.join(TMP);
    if tmp.exists() {
        fs::remove_file(&tmp).map_err(io("removing", &tmp))?;
        sync_dir(dir)?;
    }
    let path = dir.join(FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", &path)(e)),
    };
    let bad = |detail: &str| JournalError::Layout {
        path: path.clone(),
        detail: format!("damaged checkpoint: {detail}"),
    };
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return Err(bad("no checkpoint header"));
    }
    let seq = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    let len = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default()) as usize;
    let sum = u32::from_le_bytes(bytes[20..24].try_into().unwrap_or_default());
    let state = &bytes[24..];
    if state.len() != len {
        return Err(bad("length mismatch"));
    }
    if crc(seq, state) != sum {
        return Err(bad("checksum mismatch"));
    }
    Ok(Some(Checkpoint {
        seq,
        state: state.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let a = Checkpoint {
            seq: 9,
            state: b"state a".to_vec(),
        };
        write(dir.path(), &a).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(a));
        let b = Checkpoint {
            seq: 12,
            state: Vec::new(),
        };
        write(dir.path(), &b).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(b));
    }

    #[test]
    fn a_leftover_temp_file_leaves_the_old_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let a = Checkpoint {
            seq: 3,
            state: b"old".to_vec(),
        };
        write(dir.path(), &a).unwrap();
        fs::write(dir.path().join(TMP), b"half a new checkp").unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(a));
        assert!(!dir.path().join(TMP).exists());
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &Checkpoint {
                seq: 3,
                state: b"state".to_vec(),
            },
        )
        .unwrap();
        let path = dir.path().join(FILE);
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("checkpoint") && err.contains("checksum"),
            "{err}"
        );
    }
}
