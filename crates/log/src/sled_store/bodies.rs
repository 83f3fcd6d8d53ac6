//! Where an event's body lives once it is fanned out, and the `e` record's two layouts.
//!
//! An event's body stays where ingest wrote it: in the event log, inside the record of its
//! group commit. The `e` record keeps only where (an [`EventAt`]) and the ids of the event's
//! deliveries, so indexing an event writes a few dozen bytes to sled rather than the whole
//! body. Reading it back is one positional read of the event's own bytes, checked against the
//! CRC-32C kept beside the place.
//!
//! The event log keeps its segments for `[retention] history`. An event that outlives that
//! (a delivery still retrying) has its body copied into its `e` record first ([`Body::Inline`],
//! the only layout of stores from before this one), so a segment can go once every event in it
//! is either deleted or copied; see [`super::SledStore::retain`].
//!
//! Layouts of the `e` value:
//! - logged: `0u8`, then bincode of ([`EventAt`], delivery ids);
//! - inline: bincode of (event, delivery ids). An event id is 1..=128 characters, so its
//!   length, the first byte, is never 0.
//!
//! Owns nothing but formats: the store decides when to write which.

use serde::{Deserialize, Serialize};

use hookd_types::{DeliveryId, Event};

use super::{dec, enc};
use crate::error::{LogError, Result};
use crate::store::{LogEntry, LogRecord};
use crate::Seq;

/// The first byte of an `e` value whose body is in the event log.
const LOGGED: u8 = 0;

/// An event's bytes in the event log: record `seq`, whose frame starts at `frame` in its
/// segment file; bytes `start .. start + len` of its payload are the event's [`LogEntry`],
/// whose CRC-32C is `crc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct EventAt {
    pub seq: Seq,
    pub frame: u64,
    pub start: u32,
    pub len: u32,
    pub crc: u32,
}

/// Where an event's body is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Body {
    Inline(Event),
    Logged(EventAt),
}

impl Body {
    pub fn as_ref(&self) -> BodyRef<'_> {
        match self {
            Body::Inline(e) => BodyRef::Inline(e),
            Body::Logged(at) => BodyRef::Logged(*at),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum BodyRef<'a> {
    Inline(&'a Event),
    Logged(EventAt),
}

/// An `e` record, decoded.
#[derive(Debug)]
pub(super) struct StoredEvent {
    pub body: Body,
    pub deliveries: Vec<DeliveryId>,
}

/// The inline layout, for reading (same fields, same order as [`InlineRef`]).
#[derive(Deserialize)]
struct Inline {
    event: Event,
    deliveries: Vec<DeliveryId>,
}

#[derive(Serialize)]
struct InlineRef<'a> {
    event: &'a Event,
    deliveries: &'a [DeliveryId],
}

/// The start of the inline layout: its event's id, tenant and type (bincode reads fields in
/// order and leaves the rest, the data, unread). `None` for the logged layout, which keeps no
/// tenant or type (its time key holds them).
pub(super) fn head(key: &[u8], bytes: &[u8]) -> Result<Option<(String, String)>> {
    #[derive(Deserialize)]
    struct Head {
        #[allow(dead_code)]
        id: String,
        tenant: String,
        event_type: String,
    }
    if bytes.first() == Some(&LOGGED) {
        return Ok(None);
    }
    let h: Head = dec(key, bytes)?;
    Ok(Some((h.tenant, h.event_type)))
}

pub(super) fn encode(body: BodyRef<'_>, deliveries: &[DeliveryId]) -> Result<Vec<u8>> {
    match body {
        BodyRef::Inline(event) => enc(&InlineRef { event, deliveries }),
        BodyRef::Logged(at) => {
            let mut out = vec![LOGGED];
            out.extend(enc(&(at, deliveries))?);
            Ok(out)
        }
    }
}

pub(super) fn decode(key: &[u8], bytes: &[u8]) -> Result<StoredEvent> {
    if let Some((&LOGGED, rest)) = bytes.split_first() {
        let (at, deliveries): (EventAt, Vec<DeliveryId>) = dec(key, rest)?;
        return Ok(StoredEvent {
            body: Body::Logged(at),
            deliveries,
        });
    }
    let Inline { event, deliveries } = dec(key, bytes)?;
    Ok(StoredEvent {
        body: Body::Inline(event),
        deliveries,
    })
}

/// Decodes an event-log record entry by entry, noting where each entry's bytes are: the
/// record is bincode of a `Vec<LogEntry>`, a length and then the entries one after another.
pub(super) fn decode_located(
    seq: Seq,
    frame: u64,
    payload: &[u8],
) -> Result<(LogRecord, Vec<EventAt>)> {
    let corrupt = |detail: String| LogError::Corrupt {
        key: format!("event log {seq}"),
        detail,
    };
    let config = bincode::config::standard();
    let (n, mut pos): (u64, usize) =
        bincode::decode_from_slice(payload, config).map_err(|e| corrupt(e.to_string()))?;
    // Every entry takes bytes: a length beyond them is damage, not a reason to allocate.
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= payload.len())
        .ok_or_else(|| corrupt(format!("{n} entries in {} bytes", payload.len())))?;
    let mut record = Vec::with_capacity(n);
    let mut places = Vec::with_capacity(n);
    for _ in 0..n {
        let rest = &payload[pos..];
        let (entry, used): (LogEntry, usize) =
            bincode::serde::decode_from_slice(rest, config).map_err(|e| corrupt(e.to_string()))?;
        places.push(EventAt {
            seq,
            frame,
            start: pos as u32,
            len: used as u32,
            crc: crc32c::crc32c(&rest[..used]),
        });
        pos += used;
        record.push(entry);
    }
    if pos != payload.len() {
        return Err(corrupt(format!(
            "{} bytes after the last entry",
            payload.len() - pos
        )));
    }
    Ok((record, places))
}

/// The event in bytes read back from `at`, checked against its CRC.
pub(super) fn event_from(id: &str, at: &EventAt, bytes: &[u8]) -> Result<Event> {
    let key = format!("event {id} in event log {}", at.seq);
    if crc32c::crc32c(bytes) != at.crc {
        return Err(LogError::Corrupt {
            key,
            detail: "the event's bytes fail their checksum".into(),
        });
    }
    let entry: LogEntry = dec(key.as_bytes(), bytes)?;
    if entry.event.id != id {
        return Err(LogError::Corrupt {
            key,
            detail: format!("holds event {}", entry.event.id),
        });
    }
    Ok(entry.event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, data: &str) -> LogEntry {
        LogEntry {
            event: Event {
                id: id.into(),
                tenant: "t".into(),
                event_type: "job.done".into(),
                created_at_ms: 7,
                data: data.into(),
            },
            idempotency_key: (id == "b").then(|| "k".into()),
            request_hash: 3,
        }
    }

    #[test]
    fn entries_are_found_where_the_record_holds_them() {
        let long = "x".repeat(300);
        let record: LogRecord = vec![entry("a", "{}"), entry("b", &long), entry("c", "{\"n\":1}")];
        let payload = enc(&record).unwrap();
        let (back, places) = decode_located(9, 100, &payload).unwrap();
        assert_eq!(back.len(), 3);
        for (i, at) in places.iter().enumerate() {
            assert_eq!((at.seq, at.frame), (9, 100));
            let bytes = &payload[at.start as usize..(at.start + at.len) as usize];
            let ev = event_from(&record[i].event.id, at, bytes).unwrap();
            assert_eq!(ev, record[i].event);
        }
        // A flipped byte fails the checksum; another event's place is refused.
        let at = places[1];
        let mut bytes = payload[at.start as usize..(at.start + at.len) as usize].to_vec();
        bytes[5] ^= 1;
        assert!(event_from("b", &at, &bytes).is_err());
        let a = &payload[places[0].start as usize..(places[0].start + places[0].len) as usize];
        assert!(event_from("b", &places[0], a).is_err());
        // Damage is an error, never a panic or a huge allocation.
        assert!(decode_located(9, 0, &[0xfc, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(decode_located(9, 0, &payload[..payload.len() - 1]).is_err());
    }

    #[test]
    fn both_layouts_round_trip_and_tell_themselves_apart() {
        let e = entry("evt_1", "{}").event;
        let ids = vec![DeliveryId(1), DeliveryId(2)];
        let inline = encode(BodyRef::Inline(&e), &ids).unwrap();
        let s = decode(b"e", &inline).unwrap();
        assert_eq!(
            (s.body, s.deliveries),
            (Body::Inline(e.clone()), ids.clone())
        );
        assert_eq!(
            head(b"e", &inline).unwrap(),
            Some(("t".into(), "job.done".into()))
        );
        let at = EventAt {
            seq: 4,
            frame: 96,
            start: 1,
            len: 50,
            crc: 77,
        };
        let logged = encode(BodyRef::Logged(at), &ids).unwrap();
        assert!(logged.len() < 60, "{} bytes", logged.len());
        let s = decode(b"e", &logged).unwrap();
        assert_eq!((s.body, s.deliveries), (Body::Logged(at), ids));
        assert_eq!(head(b"e", &logged).unwrap(), None);
    }
}
