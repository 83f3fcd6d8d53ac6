//! An endpoint's delivery controls (rate limit, FIFO), kept in their own small record beside
//! the endpoint's.
//!
//! The endpoint record is positional bincode, and its sealed form is the endpoint followed by
//! its secrets, so a field added to it would make every older record unreadable. The controls
//! therefore live under their own key (`l` endpoint id), written in the same batch as the
//! endpoint record and deleted with it; an endpoint without one (every endpoint stored before
//! controls existed, and every endpoint with the default controls) has no limit and is not FIFO.
//! The value starts with a version byte, so a later layout can sit beside this one.

use std::collections::HashMap;

use hookd_types::{DeliveryControls, Endpoint, EndpointId};

use super::{dec, enc, key, Kind};
use crate::error::{LogError, Result};

/// The layout of the value after the version byte: [`DeliveryControls`] in bincode.
const V1: u8 = 1;

pub(super) fn key_of(id: EndpointId) -> Vec<u8> {
    key(&[Kind::Controls.prefix(), &id.to_bytes()])
}

/// Adds the endpoint's controls to `batch`: its record, or its removal when they are the
/// default.
pub(super) fn write(batch: &mut sled::Batch, ep: &Endpoint) -> Result<()> {
    if ep.controls.is_default() {
        batch.remove(key_of(ep.id));
    } else {
        let mut v = vec![V1];
        v.extend(enc(&ep.controls)?);
        batch.insert(key_of(ep.id), v);
    }
    Ok(())
}

fn decode(k: &[u8], v: &[u8]) -> Result<DeliveryControls> {
    match v.split_first() {
        Some((&V1, rest)) => dec(k, rest),
        _ => Err(LogError::Corrupt {
            key: String::from_utf8_lossy(k).into_owned(),
            detail: format!("delivery controls of an unknown layout ({:?})", v.first()),
        }),
    }
}

/// Gives every endpoint in `eps` its stored controls (the default where there is none).
pub(super) fn read_into(db: &sled::Db, eps: &mut [Endpoint]) -> Result<()> {
    let mut by_id = HashMap::new();
    for kv in db.scan_prefix(Kind::Controls.prefix()) {
        let (k, v) = kv?;
        let Some(id) = k.get(1..).and_then(EndpointId::from_bytes) else {
            continue;
        };
        by_id.insert(id, decode(&k, &v)?);
    }
    for ep in eps {
        ep.controls = by_id.remove(&ep.id).unwrap_or_default();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
