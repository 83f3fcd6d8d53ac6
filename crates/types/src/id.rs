//! Identifiers. Endpoint, delivery and API key ids are 128-bit ULIDs kept as `u128` (compact in memory and
//! in keys, time-sortable); they print with a kind prefix. Event ids are strings because producers
//! may bring their own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A fresh ULID: 48 bits of unix milliseconds then 80 random bits.
pub fn new_ulid() -> u128 {
    ulid::Ulid::new().0
}

/// A new generated event id: `evt_` + a ULID, sortable by creation time. Ids made by one
/// process increase strictly, also within a millisecond (a monotonic generator), so events
/// sorted by id are in the order their ids were made: a batch's in its request order.
pub fn new_event_id() -> String {
    static IDS: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let next = {
        let mut ids = IDS.lock().unwrap_or_else(|p| p.into_inner());
        ids.get_or_insert_with(ulid::Generator::new).generate()
    };
    // The random part ran out within one millisecond: a plain ULID, still unique.
    format!("evt_{}", next.unwrap_or_else(|_| ulid::Ulid::new()))
}

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub u128);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(new_ulid())
            }

            /// Big-endian bytes: the sort order of keys equals the order of ids.
            pub fn to_bytes(self) -> [u8; 16] {
                self.0.to_be_bytes()
            }

            pub fn from_bytes(b: &[u8]) -> Option<Self> {
                Some(Self(u128::from_be_bytes(b.try_into().ok()?)))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, ulid::Ulid(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                let rest = s.strip_prefix($prefix).ok_or(InvalidId)?;
                ulid::Ulid::from_string(rest)
                    .map(|u| Self(u.0))
                    .map_err(|_| InvalidId)
            }
        }
    };
}

prefixed_id!(EndpointId, "ep_");
prefixed_id!(DeliveryId, "dlv_");
prefixed_id!(KeyId, "key_");

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed id")]
pub struct InvalidId;

/// Client-supplied event ids and tenants: 1..=128 chars of `[A-Za-z0-9_.:-]`.
pub fn is_valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort() {
        let a = DeliveryId::generate();
        let s = a.to_string();
        assert!(s.starts_with("dlv_"));
        assert_eq!(s.parse::<DeliveryId>().unwrap(), a);
        assert!("ep_xyz".parse::<EndpointId>().is_err());
        assert!(s.parse::<EndpointId>().is_err());
        assert_eq!(DeliveryId::from_bytes(&a.to_bytes()), Some(a));
        assert!(new_event_id().starts_with("evt_"));
    }

    #[test]
    fn event_ids_increase_within_a_millisecond() {
        let ids: Vec<String> = (0..1000).map(|_| new_event_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not in the order made");
    }

    #[test]
    fn tokens() {
        assert!(is_valid_token("order-42:v1"));
        assert!(!is_valid_token(""));
        assert!(!is_valid_token("a b"));
        assert!(!is_valid_token(&"x".repeat(129)));
    }
}
