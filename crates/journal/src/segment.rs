//! Segment files, their in-memory index, and the chunked reader that both recovery and readers
//! use.
//!
//! A segment is named after the seq of its first record (`00000000000000000001.seg`), so even an
//! empty segment says which seq comes next. Its [`SegmentMeta`] is rebuilt by a scan on open and
//! kept up to date by the writer afterwards.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{io, Result};
use crate::frame::{self, Decoded, Record, HEADER};
use crate::Seq;

const SUFFIX: &str = ".seg";

pub fn file_name(first_seq: Seq) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// The first seq a segment file name stands for, or `None` for a file that is not a segment.
pub fn parse_name(name: &str) -> Option<Seq> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What the journal knows about one segment without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    pub path: PathBuf,
    pub first_seq: Seq,
    /// One past the last record's seq; equal to `first_seq` while the segment is empty.
    pub next_seq: Seq,
    /// Bytes of whole records in the file.
    pub bytes: u64,
    /// Timestamps of the oldest and newest record (`0, 0` while empty).
    pub min_ts: u64,
    pub max_ts: u64,
    /// `(seq, offset)` of sampled records, ascending: the first record, then one at least every
    /// `index_interval` bytes. A read from any seq starts at the sample at or before it.
    pub samples: Vec<(Seq, u64)>,
    last_sample: Option<u64>,
}

impl SegmentMeta {
    pub fn empty(dir: &Path, first_seq: Seq) -> Self {
        Self {
            path: dir.join(file_name(first_seq)),
            first_seq,
            next_seq: first_seq,
            bytes: 0,
            min_ts: 0,
            max_ts: 0,
            samples: Vec::new(),
            last_sample: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.next_seq == self.first_seq
    }

    /// Notes a record of `len` framed bytes written at the segment's current end.
    pub fn push(&mut self, seq: Seq, timestamp_ms: u64, len: u64, index_interval: u64) {
        let offset = self.bytes;
        if self
            .last_sample
            .is_none_or(|at| offset - at >= index_interval)
        {
            self.samples.push((seq, offset));
            self.last_sample = Some(offset);
        }
        if self.is_empty() {
            self.min_ts = timestamp_ms;
        }
        self.max_ts = self.max_ts.max(timestamp_ms);
        self.next_seq = seq + 1;
        self.bytes += len;
    }

    /// The offset of the sampled record at or before `seq`: where a read of `seq` starts.
    pub fn seek(&self, seq: Seq) -> u64 {
        let i = self.samples.partition_point(|&(s, _)| s <= seq);
        if i == 0 {
            0
        } else {
            self.samples[i - 1].1
        }
    }
}

/// One step of a [`ChunkReader`].
#[derive(Debug)]
pub enum Step {
    Record {
        offset: u64,
        record: Record,
    },
    /// Clean end: the file ends at a record boundary.
    End {
        offset: u64,
    },
    /// The file ends inside a frame.
    Torn {
        offset: u64,
    },
    Corrupt {
        offset: u64,
        detail: &'static str,
    },
}

/// Reads frames from a file in large positional reads. Each read asks the file afresh, so a
/// reader following the live segment sees records as they are written.
#[derive(Debug)]
pub struct ChunkReader {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    pos: usize,
    max_record: u32,
}

const CHUNK: usize = 256 << 10;

impl ChunkReader {
    pub fn open(path: &Path, offset: u64, max_record: u32) -> Result<Self> {
        let file = File::open(path).map_err(io("opening", path))?;
        Ok(Self {
            file,
            path: path.to_owned(),
            buf: Vec::new(),
            base: offset,
            pos: 0,
            max_record,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn next_step(&mut self) -> Result<Step> {
        loop {
            let offset = self.base + self.pos as u64;
            match frame::decode(&self.buf[self.pos..], self.max_record) {
                Decoded::Record {
                    seq,
                    timestamp_ms,
                    len,
                } => {
                    let payload = self.buf[self.pos + HEADER..self.pos + len].to_vec();
                    self.pos += len;
                    let record = Record {
                        seq,
                        timestamp_ms,
                        payload,
                    };
                    return Ok(Step::Record { offset, record });
                }
                Decoded::Corrupt(detail) => return Ok(Step::Corrupt { offset, detail }),
                Decoded::Incomplete => {
                    if self.fill()? == 0 {
                        return Ok(if self.pos == self.buf.len() {
                            Step::End { offset }
                        } else {
                            Step::Torn { offset }
                        });
                    }
                }
            }
        }
    }

    /// Drops consumed bytes and reads more; returns how many bytes arrived.
    fn fill(&mut self) -> Result<usize> {
        self.buf.drain(..self.pos);
        self.base += self.pos as u64;
        self.pos = 0;
        let have = self.buf.len();
        // Enough for the frame in progress when it is longer than a chunk.
        let want = match self.buf.get(4..8) {
            Some(len) => {
                let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
                (HEADER + len).max(have + CHUNK)
            }
            None => have + CHUNK,
        };
        self.buf.resize(want, 0);
        let at = self.base + have as u64;
        let n = loop {
            match self.file.read_at(&mut self.buf[have..], at) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io("reading", &self.path)(e)),
            }
        };
        self.buf.truncate(have + n);
        Ok(n)
    }
}

/// How a segment ends, from a full scan.
#[derive(Debug)]
pub enum Tail {
    Clean,
    /// Bytes from `offset` on do not form whole, valid records in sequence.
    Bad {
        offset: u64,
        detail: String,
    },
}

/// Scans a whole segment, checking every record and rebuilding its index.
pub fn scan(
    dir: &Path,
    first_seq: Seq,
    max_record: u32,
    index_interval: u64,
) -> Result<(SegmentMeta, Tail)> {
    let mut meta = SegmentMeta::empty(dir, first_seq);
    let mut reader = ChunkReader::open(&meta.path, 0, max_record)?;
    loop {
        let tail = match reader.next_step()? {
            Step::Record { offset, record } => {
                if record.seq != meta.next_seq {
                    Tail::Bad {
                        offset,
                        detail: format!("seq {} where {} was expected", record.seq, meta.next_seq),
                    }
                } else {
                    let len = frame::framed_len(record.payload.len());
                    meta.push(record.seq, record.timestamp_ms, len, index_interval);
                    continue;
                }
            }
            Step::End { .. } => Tail::Clean,
            Step::Torn { offset } => Tail::Bad {
                offset,
                detail: "the file ends inside a record".into(),
            },
            Step::Corrupt { offset, detail } => Tail::Bad {
                offset,
                detail: detail.into(),
            },
        };
        return Ok((meta, tail));
    }
}

/// Describes a sealed segment without reading its records: `next_seq` is the next segment's
/// first, the oldest timestamp comes from the first frame's header and the newest is the file's
/// modification time plus a second (when its last record was written). Its index has
/// one sample, the start, so a read of it scans from there. Recovery uses this for segments the
/// checkpoint covers entirely: they were synced whole when sealed, and reading every retained
/// segment on each open would make the start as slow as the history is long. Their records are
/// still checked (CRC, seq) whenever they are read.
pub fn sealed(dir: &Path, first_seq: Seq, next_seq: Seq) -> Result<SegmentMeta> {
    let mut meta = SegmentMeta::empty(dir, first_seq);
    let file = File::open(&meta.path).map_err(io("opening", &meta.path))?;
    let fs_meta = file.metadata().map_err(io("reading", &meta.path))?;
    let mut head = [0u8; HEADER];
    if next_seq > first_seq && file.read_exact_at(&mut head, 0).is_ok() {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&head[16..24]);
        meta.min_ts = u64::from_le_bytes(ts);
        let written = fs_meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        // The file system's clock is coarser than the writer's: a second's margin keeps this
        // at or above the newest record's timestamp.
        meta.max_ts = (written + 1000).max(meta.min_ts);
        meta.samples.push((first_seq, 0));
        meta.last_sample = Some(0);
    }
    meta.next_seq = next_seq;
    meta.bytes = fs_meta.len();
    Ok(meta)
}

/// Makes a directory's entries (created, renamed or removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_records(path: &Path, first: Seq, payloads: &[&[u8]]) {
        let mut buf = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            frame::encode(&mut buf, first + i as u64, 1000 + i as u64, p);
        }
        File::create(path).unwrap().write_all(&buf).unwrap();
    }

    #[test]
    fn names_round_trip_and_reject_strangers() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("checkpoint"), None);
        assert_eq!(parse_name("42.seg"), None);
        assert_eq!(parse_name("0000000000000000004x.seg"), None);
    }

    #[test]
    fn scan_rebuilds_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let big = [7u8; 100];
        let payloads: Vec<&[u8]> = (0..10).map(|_| &big[..]).collect();
        write_records(&dir.path().join(file_name(5)), 5, &payloads);
        let (meta, tail) = scan(dir.path(), 5, 1 << 20, 300).unwrap();
        assert!(matches!(tail, Tail::Clean));
        assert_eq!((meta.first_seq, meta.next_seq), (5, 15));
        assert_eq!((meta.min_ts, meta.max_ts), (1000, 1009));
        assert_eq!(meta.bytes, 10 * 124);
        // A sample every 3 records (3 * 124 >= 300).
        let seqs: Vec<Seq> = meta.samples.iter().map(|s| s.0).collect();
        assert_eq!(seqs, vec![5, 8, 11, 14]);
        assert_eq!(
            meta.seek(10),
            3 * 124,
            "seq 10 starts from the sample at seq 8"
        );
        assert_eq!(meta.seek(5), 0);
    }

    #[test]
    fn scan_reports_a_torn_tail_and_a_seq_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(1));
        write_records(&path, 1, &[b"a", b"b"]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let (meta, tail) = scan(dir.path(), 1, 1024, 4096).unwrap();
        assert_eq!(meta.next_seq, 3);
        assert!(matches!(tail, Tail::Bad { offset, .. } if offset == 2 * 25));

        write_records(&path, 2, &[b"a"]);
        let (meta, tail) = scan(dir.path(), 1, 1024, 4096).unwrap();
        assert_eq!(meta.next_seq, 1);
        assert!(matches!(tail, Tail::Bad { offset: 0, ref detail } if detail.contains("seq 2")));
    }

    #[test]
    fn reader_handles_records_longer_than_a_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(1));
        let big = vec![9u8; CHUNK * 2 + 17];
        write_records(&path, 1, &[b"x", &big, b"y"]);
        let mut r = ChunkReader::open(&path, 0, u32::MAX).unwrap();
        let mut seen = Vec::new();
        while let Step::Record { record, .. } = r.next_step().unwrap() {
            seen.push(record.payload.len());
        }
        assert_eq!(seen, vec![1, big.len(), 1]);
    }
}
