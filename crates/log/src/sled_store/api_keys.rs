//! [`KeyStore`] on sled: API key records in a tree of their own, keyed by the id's 16 bytes,
//! bincode values (digests only, never keys).

use hookd_types::{ApiKey, KeyId};

use super::{dec, enc, SledStore};
use crate::error::Result;
use crate::keys::KeyStore;

/// The tree of API key records.
pub const API_KEYS_TREE: &str = "api_keys";

impl SledStore {
    /// Opened on use: keys are written rarely and read all at once on start.
    fn api_key_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree(API_KEYS_TREE)?)
    }
}

impl KeyStore for SledStore {
    fn put_api_key(&self, key: &ApiKey) -> Result<()> {
        self.api_key_tree()?.insert(key.id.to_bytes(), enc(key)?)?;
        self.db.flush()?;
        Ok(())
    }

    fn delete_api_key(&self, id: KeyId) -> Result<()> {
        self.api_key_tree()?.remove(id.to_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    fn api_keys(&self) -> Result<Vec<ApiKey>> {
        self.api_key_tree()?
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                dec(&k, &v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hookd_types::{Scope, Scopes};

    use super::*;
    use crate::keys::KeyRegistry;
    use crate::SledConfig;

    fn open(dir: &tempfile::TempDir) -> Arc<SledStore> {
        Arc::new(
            SledStore::open(&SledConfig {
                path: dir.path().join("db"),
                cache_bytes: 1 << 20,
            })
            .unwrap(),
        )
    }

    fn key(tenant: &str) -> ApiKey {
        ApiKey {
            id: KeyId::generate(),
            tenant: tenant.into(),
            name: "ci".into(),
            scopes: [Scope::EventsWrite].into_iter().collect::<Scopes>(),
            key_sha256: [7; 32],
            created_at_ms: 1,
            expires_at_ms: Some(99),
        }
    }

    #[test]
    fn keys_survive_reopen_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (key("acme"), key("globex"));
        {
            let reg = KeyRegistry::load(open(&dir)).unwrap();
            reg.insert(a.clone()).unwrap();
            reg.insert(b.clone()).unwrap();
            assert!(reg.remove(b.id).unwrap());
            assert!(
                !reg.remove(b.id).unwrap(),
                "a second revocation finds nothing"
            );
        }
        let reg = KeyRegistry::load(open(&dir)).unwrap();
        assert_eq!(reg.get(a.id).as_deref(), Some(&a));
        assert!(reg.get(b.id).is_none());
    }

    #[test]
    fn lists_are_newest_first_by_tenant_with_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let reg = KeyRegistry::load(open(&dir)).unwrap();
        let mut acme = Vec::new();
        for _ in 0..3 {
            acme.push(reg.insert(key("acme")).unwrap().id);
            reg.insert(key("globex")).unwrap();
        }
        acme.sort();
        acme.reverse();
        let (page, next) = reg.list(Some("acme"), None, 2);
        assert_eq!(page.iter().map(|k| k.id).collect::<Vec<_>>(), acme[..2]);
        let (rest, end) = reg.list(Some("acme"), next, 2);
        assert_eq!(rest.iter().map(|k| k.id).collect::<Vec<_>>(), acme[2..]);
        assert_eq!(end, None);
        assert_eq!(reg.list(None, None, 10).0.len(), 6);
    }
}
