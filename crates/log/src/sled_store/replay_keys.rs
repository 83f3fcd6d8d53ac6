//! The answers of replays made under an `Idempotency-Key`, per endpoint: `r` endpoint(16) key
//! holds the time it was stored (ms, u64 BE) and the answer; `y` stored_ms(8) endpoint(16) key
//! orders them by time for retention ([`SledStore::retain`] deletes both once older than
//! `[retention] idempotency`). Deleting the endpoint deletes them ([`SledStore::purge_deleted`]).

use hookd_types::EndpointId;

use super::{key, Kind, SledStore};
use crate::error::Result;

fn answer_key(endpoint: EndpointId, idem: &str) -> Vec<u8> {
    key(&[
        Kind::ReplayKey.prefix(),
        &endpoint.to_bytes(),
        idem.as_bytes(),
    ])
}

fn time_key(stored_ms: u64, rest: &[u8]) -> Vec<u8> {
    key(&[Kind::ReplayKeyTime.prefix(), &stored_ms.to_be_bytes(), rest])
}

impl SledStore {
    pub(super) fn read_replay_answer(
        &self,
        endpoint: EndpointId,
        idem: &str,
    ) -> Result<Option<Vec<u8>>> {
        let Some(v) = self.db.get(answer_key(endpoint, idem))? else {
            return Ok(None);
        };
        Ok(v.get(8..).map(<[u8]>::to_vec))
    }

    pub(super) fn write_replay_answer(
        &self,
        endpoint: EndpointId,
        idem: &str,
        stored_ms: u64,
        answer: &[u8],
    ) -> Result<()> {
        let k = answer_key(endpoint, idem);
        let mut batch = sled::Batch::default();
        batch.insert(time_key(stored_ms, &k[1..]), &[][..]);
        batch.insert(k, key(&[&stored_ms.to_be_bytes(), answer]));
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Adds the deletion of replay answers stored before `before_ms` to `batch`, at most
    /// `budget`; answers how many.
    pub(super) fn expire_replay_answers(
        &self,
        batch: &mut sled::Batch,
        before_ms: u64,
        budget: usize,
    ) -> Result<usize> {
        let end = time_key(before_ms, &[]);
        let mut n = 0;
        for kv in self
            .db
            .range(Kind::ReplayKeyTime.prefix().to_vec()..end)
            .keys()
        {
            if n == budget {
                break;
            }
            let k = kv?;
            batch.remove(key(&[Kind::ReplayKey.prefix(), &k[9..]]));
            batch.remove(k);
            n += 1;
        }
        Ok(n)
    }

    /// Adds the deletion of every replay answer of `endpoint` to `batch`.
    pub(super) fn forget_replay_answers(
        &self,
        batch: &mut sled::Batch,
        endpoint: EndpointId,
    ) -> Result<()> {
        let prefix = key(&[Kind::ReplayKey.prefix(), &endpoint.to_bytes()]);
        for kv in self.db.scan_prefix(prefix) {
            let (k, v) = kv?;
            if let Some(at) = v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                batch.remove(time_key(u64::from_be_bytes(at), &k[1..]));
            }
            batch.remove(k);
        }
        Ok(())
    }
}
