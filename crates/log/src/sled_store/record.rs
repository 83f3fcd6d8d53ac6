//! The `d` record's two layouts: a delivery, and since this layout its first attempt inline.
//!
//! Most deliveries succeed on their first attempt. Written as a record, an index key and an
//! attempt key, each one cost the indexer three sled inserts (a tree walk and a delta each),
//! the largest part of its time in a 100-endpoint fan-out. The record now carries the first
//! attempt itself, so such a delivery costs two keys; attempts after the first (retries, whose
//! response excerpts may reach 4 KiB each and would make every rewrite of the record longer)
//! keep their own `a` keys.
//!
//! Layouts of the `d` value:
//! - current: `0u8`, then bincode of ([`Delivery`], `Option<Attempt>`: attempt 1 once made);
//! - older: bincode of [`Delivery`] alone, every attempt under its `a` key. A delivery id is a
//!   ULID whose top 48 bits are its creation time, so its bincode varint starts with 254 (a
//!   `u128` above `u64::MAX`), never 0.
//!
//! Owns nothing but the format: the indexer decides when to write.

use serde::{Deserialize, Serialize};

use hookd_types::{Attempt, Delivery};

use super::dec;
use crate::error::{LogError, Result};

/// The first byte of a `d` value in the current layout.
const WITH_FIRST: u8 = 0;

/// A `d` record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StoredDelivery {
    pub delivery: Delivery,
    /// Attempt 1, when this record holds it (always in the current layout once it was made).
    pub first: Option<Attempt>,
    /// Whether the record is in the current layout (else every attempt has an `a` key).
    pub current: bool,
}

impl StoredDelivery {
    /// Whether attempt `n` lives under its own `a` key.
    pub fn keyed(&self, n: u32) -> bool {
        !(self.current && n == 1)
    }
}

#[derive(Serialize)]
struct Ref<'a> {
    delivery: &'a Delivery,
    first: Option<&'a Attempt>,
}

#[derive(Deserialize)]
struct Owned {
    delivery: Delivery,
    first: Option<Attempt>,
}

/// The current layout of `d`'s record holding `first`.
pub(super) fn encode(delivery: &Delivery, first: Option<&Attempt>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(160);
    out.push(WITH_FIRST);
    bincode::serde::encode_into_std_write(
        Ref { delivery, first },
        &mut out,
        bincode::config::standard(),
    )
    .map_err(LogError::from)?;
    Ok(out)
}

/// Reads a `d` value of either layout.
pub(super) fn decode(key: &[u8], bytes: &[u8]) -> Result<StoredDelivery> {
    match bytes.split_first() {
        Some((&WITH_FIRST, rest)) => {
            let o: Owned = dec(key, rest)?;
            Ok(StoredDelivery {
                delivery: o.delivery,
                first: o.first,
                current: true,
            })
        }
        _ => Ok(StoredDelivery {
            delivery: dec(key, bytes)?,
            first: None,
            current: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookd_types::{DeliveryId, DeliveryStatus, EndpointId};

    fn delivery() -> Delivery {
        Delivery {
            id: DeliveryId::generate(),
            event_id: "evt_1".into(),
            endpoint_id: EndpointId::generate(),
            tenant: "t".into(),
            event_type: "job.created".into(),
            status: DeliveryStatus::Delivered,
            attempts: 1,
            created_at_ms: 1,
            updated_at_ms: 2,
            next_attempt_ms: None,
            last_attempt_ms: Some(2),
            last_status_code: Some(204),
        }
    }

    fn attempt() -> Attempt {
        Attempt {
            number: 1,
            at_ms: 2,
            status_code: Some(204),
            latency_ms: 3,
            error: None,
            error_detail: String::new(),
            response_body: "ok".into(),
        }
    }

    #[test]
    fn both_layouts_read_back() {
        let d = delivery();
        let a = attempt();
        let now = decode(b"d", &encode(&d, Some(&a)).unwrap()).unwrap();
        assert_eq!(now.delivery, d);
        assert_eq!(now.first, Some(a));
        assert!(now.current && !now.keyed(1) && now.keyed(2));
        let none = decode(b"d", &encode(&d, None).unwrap()).unwrap();
        assert_eq!((none.first, none.current), (None, true));
        let older = super::super::enc(&d).unwrap();
        assert_ne!(older[0], WITH_FIRST, "a ULID's varint never starts with 0");
        let old = decode(b"d", &older).unwrap();
        assert_eq!(old.delivery, d);
        assert!(!old.current && old.keyed(1));
    }

    #[test]
    fn damage_is_corrupt_not_a_panic() {
        let bytes = encode(&delivery(), Some(&attempt())).unwrap();
        for n in 0..bytes.len() {
            let _ = decode(b"d", &bytes[..n]);
        }
        assert!(decode(b"d", &[WITH_FIRST, 255, 255]).is_err());
    }
}
