//! The record frame: a fixed 24-byte header and the payload.
//!
//! ```text
//! offset  size  field
//!      0     4  crc32c (little endian) of bytes 4 .. 24 + len
//!      4     4  len: payload length in bytes (little endian)
//!      8     8  seq (little endian)
//!     16     8  timestamp: milliseconds since the Unix epoch, when the writer took the record
//!     24   len  payload (opaque)
//! ```
//!
//! The checksum covers the length, the seq and the timestamp as well as the payload, so a torn
//! length or a zero-filled tail never passes for a record.

use crate::Seq;

pub const HEADER: usize = 24;

/// A record as the journal hands it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: Seq,
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}

/// The framed length of a payload of `len` bytes.
pub fn framed_len(len: usize) -> u64 {
    (HEADER + len) as u64
}

/// Appends the frame of one record to `out`.
pub fn encode(out: &mut Vec<u8>, seq: Seq, timestamp_ms: u64, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// What the bytes at the start of a buffer hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, checked record: its header fields and its framed length.
    Record {
        seq: Seq,
        timestamp_ms: u64,
        len: usize,
    },
    /// The buffer ends inside a frame: more bytes are needed (or the write was torn).
    Incomplete,
    /// The bytes cannot be a record.
    Corrupt(&'static str),
}

/// Decodes the frame at the start of `buf`. `max_len` bounds the payload length, so a damaged
/// length field is reported as corrupt instead of asking for gigabytes more.
pub fn decode(buf: &[u8], max_len: u32) -> Decoded {
    if buf.len() < HEADER {
        return Decoded::Incomplete;
    }
    let word = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().unwrap_or_default());
    let long = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().unwrap_or_default());
    let (crc, len) = (word(0), word(4));
    if len > max_len {
        return Decoded::Corrupt("length over the record limit");
    }
    let end = HEADER + len as usize;
    if buf.len() < end {
        return Decoded::Incomplete;
    }
    if crc32c::crc32c(&buf[4..end]) != crc {
        return Decoded::Corrupt("checksum mismatch");
    }
    Decoded::Record {
        seq: long(8),
        timestamp_ms: long(16),
        len: end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(seq: Seq, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, seq, 1_700_000_000_000, payload);
        out
    }

    #[test]
    fn round_trip() {
        let buf = one(7, b"hello");
        assert_eq!(buf.len() as u64, framed_len(5));
        assert_eq!(
            decode(&buf, 1024),
            Decoded::Record {
                seq: 7,
                timestamp_ms: 1_700_000_000_000,
                len: HEADER + 5
            }
        );
        assert_eq!(&buf[HEADER..], b"hello");
    }

    #[test]
    fn empty_payload_round_trips() {
        let buf = one(1, b"");
        assert!(matches!(
            decode(&buf, 0),
            Decoded::Record {
                seq: 1,
                len: HEADER,
                ..
            }
        ));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let buf = one(3, b"some payload");
        for cut in 0..buf.len() {
            assert_eq!(
                decode(&buf[..cut], 1024),
                Decoded::Incomplete,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let buf = one(3, b"some payload");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    !matches!(decode(&bad, 1024), Decoded::Record { .. }),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn zeros_are_not_a_record() {
        assert!(matches!(decode(&[0; 64], 1024), Decoded::Corrupt(_)));
    }

    #[test]
    fn length_over_the_limit_is_corrupt_not_incomplete() {
        let buf = one(3, &[1; 100]);
        assert_eq!(
            decode(&buf, 99),
            Decoded::Corrupt("length over the record limit")
        );
    }
}
