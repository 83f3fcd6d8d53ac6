//! API keys: the [`KeyStore`] interface a backend provides, and [`KeyRegistry`], the in-memory
//! view every request is authenticated against.
//!
//! The interface is apart from [`crate::Store`] and as small as the registry needs (write one,
//! delete one, read all on start), so a backend is free to keep keys wherever it likes. Writes
//! go to the store first, durably, and then to the view: a key answered as created survives a
//! crash, and a key answered as revoked is refused by the next request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hookd_types::{ApiKey, KeyId};

use crate::error::Result;

/// Durable storage of API key records (digests, never keys). Every write is durable on return.
pub trait KeyStore: Send + Sync + 'static {
    fn put_api_key(&self, key: &ApiKey) -> Result<()>;
    fn delete_api_key(&self, id: KeyId) -> Result<()>;
    fn api_keys(&self) -> Result<Vec<ApiKey>>;
}

pub struct KeyRegistry {
    store: Arc<dyn KeyStore>,
    by_id: RwLock<HashMap<KeyId, Arc<ApiKey>>>,
}

impl std::fmt::Debug for KeyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRegistry").finish_non_exhaustive()
    }
}

impl KeyRegistry {
    pub fn load(store: Arc<dyn KeyStore>) -> Result<Self> {
        let by_id = store
            .api_keys()?
            .into_iter()
            .map(|k| (k.id, Arc::new(k)))
            .collect();
        Ok(Self {
            store,
            by_id: RwLock::new(by_id),
        })
    }

    pub fn get(&self, id: KeyId) -> Option<Arc<ApiKey>> {
        self.read().get(&id).cloned()
    }

    /// Keys newest first (ids sort by creation time), optionally of one tenant, after (older
    /// than) `cursor`; and the cursor of the next page, if there is one.
    pub fn list(
        &self,
        tenant: Option<&str>,
        cursor: Option<KeyId>,
        limit: usize,
    ) -> (Vec<Arc<ApiKey>>, Option<KeyId>) {
        let mut all: Vec<_> = self
            .read()
            .values()
            .filter(|k| tenant.is_none_or(|t| k.tenant == t))
            .filter(|k| cursor.is_none_or(|c| k.id < c))
            .cloned()
            .collect();
        all.sort_unstable_by_key(|k| std::cmp::Reverse(k.id));
        let more = all.len() > limit;
        all.truncate(limit);
        let next = if more { all.last().map(|k| k.id) } else { None };
        (all, next)
    }

    /// Stores `key` durably, then makes it usable.
    pub fn insert(&self, key: ApiKey) -> Result<Arc<ApiKey>> {
        self.store.put_api_key(&key)?;
        let key = Arc::new(key);
        self.write().insert(key.id, key.clone());
        Ok(key)
    }

    /// Deletes `id` durably, then refuses it. Answers whether there was such a key.
    pub fn remove(&self, id: KeyId) -> Result<bool> {
        if self.get(id).is_none() {
            return Ok(false);
        }
        self.store.delete_api_key(id)?;
        Ok(self.write().remove(&id).is_some())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<KeyId, Arc<ApiKey>>> {
        self.by_id.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<KeyId, Arc<ApiKey>>> {
        self.by_id.write().unwrap_or_else(|p| p.into_inner())
    }
}
