//! The in-memory read model of endpoints. Fan-out asks it which endpoints take an event, the
//! sender asks it where and with which secret to send; neither touches storage for that. Writes go
//! to the store first (durably) and then here, so a restart rebuilds the same view. Writes are
//! async (the store's [`AsyncEndpointStore`]); reads never wait.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hookd_types::{Endpoint, EndpointId};

use crate::error::Result;
use crate::reads::AsyncEndpointStore;

#[derive(Default)]
struct View {
    by_id: HashMap<EndpointId, Arc<Endpoint>>,
    by_tenant: HashMap<String, Vec<Arc<Endpoint>>>,
}

pub struct EndpointRegistry {
    store: Arc<dyn AsyncEndpointStore>,
    view: RwLock<View>,
    /// Held by every write from reading the current endpoint to publishing the new one, so
    /// writes of one endpoint apply one after another: a change can neither overwrite another
    /// it never saw nor bring back an endpoint deleted meanwhile.
    writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EndpointRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRegistry").finish_non_exhaustive()
    }
}

impl EndpointRegistry {
    /// The registry of `endpoints` (every endpoint stored, read once on start); its writes go
    /// to `store`.
    pub fn new(endpoints: Vec<Endpoint>, store: Arc<dyn AsyncEndpointStore>) -> Self {
        let mut view = View::default();
        for ep in endpoints {
            view.insert(Arc::new(ep));
        }
        Self {
            store,
            view: RwLock::new(view),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    pub fn get(&self, id: EndpointId) -> Option<Arc<Endpoint>> {
        self.read().by_id.get(&id).cloned()
    }

    /// Enabled endpoints of `tenant` whose filter accepts `event_type`.
    pub fn matching(&self, tenant: &str, event_type: &str, out: &mut Vec<Arc<Endpoint>>) {
        if let Some(eps) = self.read().by_tenant.get(tenant) {
            out.extend(eps.iter().filter(|e| e.accepts(event_type)).cloned());
        }
    }

    /// Endpoints newest first (ids sort by creation time), optionally of one tenant, after
    /// (older than) `cursor`.
    pub fn list(
        &self,
        tenant: Option<&str>,
        cursor: Option<EndpointId>,
        limit: usize,
    ) -> (Vec<Arc<Endpoint>>, Option<EndpointId>) {
        let view = self.read();
        let mut all: Vec<_> = match tenant {
            Some(t) => view.by_tenant.get(t).cloned().unwrap_or_default(),
            None => view.by_id.values().cloned().collect(),
        };
        all.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
        let start = cursor.map_or(0, |c| all.partition_point(|e| e.id >= c));
        let page: Vec<_> = all.iter().skip(start).take(limit).cloned().collect();
        let more = all.len() > start + page.len();
        let next = if more {
            page.last().map(|e| e.id)
        } else {
            None
        };
        (page, next)
    }

    /// Stores a new `endpoint` durably, then publishes it.
    pub async fn insert(&self, endpoint: Endpoint) -> Result<Arc<Endpoint>> {
        let _writing = self.writer.lock().await;
        self.publish(endpoint).await
    }

    /// Changes endpoint `id` by `change`, which sees the current endpoint (not one read before
    /// another write), then stores and publishes the result. `None` when there is no such
    /// endpoint (any more).
    pub async fn update<E: From<crate::LogError>>(
        &self,
        id: EndpointId,
        change: impl FnOnce(&Endpoint) -> std::result::Result<Endpoint, E>,
    ) -> std::result::Result<Option<Arc<Endpoint>>, E> {
        let _writing = self.writer.lock().await;
        let Some(current) = self.get(id) else {
            return Ok(None);
        };
        let next = change(&current)?;
        Ok(Some(self.publish(next).await?))
    }

    /// Deletes endpoint `id`; says whether there was one.
    pub async fn remove(&self, id: EndpointId) -> Result<bool> {
        let _writing = self.writer.lock().await;
        if self.get(id).is_none() {
            return Ok(false);
        }
        self.store.delete_endpoint(id).await?;
        self.write().remove(id);
        Ok(true)
    }

    async fn publish(&self, endpoint: Endpoint) -> Result<Arc<Endpoint>> {
        let ep = Arc::new(endpoint);
        self.store.put_endpoint(ep.clone()).await?;
        let mut view = self.write();
        view.remove(ep.id);
        view.insert(ep.clone());
        Ok(ep)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl View {
    fn insert(&mut self, ep: Arc<Endpoint>) {
        self.by_tenant
            .entry(ep.tenant.clone())
            .or_default()
            .push(ep.clone());
        self.by_id.insert(ep.id, ep);
    }

    fn remove(&mut self, id: EndpointId) {
        if let Some(old) = self.by_id.remove(&id) {
            if let Some(list) = self.by_tenant.get_mut(&old.tenant) {
                list.retain(|e| e.id != id);
                if list.is_empty() {
                    self.by_tenant.remove(&old.tenant);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
