//! The store as async code reads it: the same concerns as [`crate::store`], every call a
//! future, every argument owned. The management API, the sender and the pager take these, so
//! they never wait on the disk on a runtime thread and never name a backend.
//!
//! A backend whose calls wait on the disk (sled) is lifted into them by [`OnBlockingPool`],
//! which runs each call on tokio's blocking pool; a backend that talks to a server (JetStream)
//! implements them directly, awaiting its server without a thread of its own.
//!
//! Not here: the event log (ingest's committer and fan-out run on threads of their own) and
//! the outcome log (already async: [`crate::Outcomes`]). Endpoint writes are here, but only
//! the [`crate::EndpointRegistry`] makes them: it is their one writer.

use std::sync::Arc;

use hookd_types::{Attempt, Delivery, DeliveryId, Endpoint, EndpointId, Event, EventFilter};

use crate::error::{LogError, Result};
use crate::store::{BoxFuture, DeliveryPage, DeliveryQuery, EndpointStats, ScheduleEntry, Store};

/// [`crate::HistoryReads`] for async code.
pub trait AsyncHistoryReads: Send + Sync + 'static {
    fn get_event(&self, id: String) -> BoxFuture<'_, Result<Option<Event>>>;
    fn event_deliveries(&self, event_id: String) -> BoxFuture<'_, Result<Vec<Delivery>>>;
    fn get_delivery(&self, id: DeliveryId) -> BoxFuture<'_, Result<Option<Delivery>>>;
    /// A delivery and the event it carries (`None` if either is gone): what a retry sends.
    fn delivery_event(&self, id: DeliveryId) -> BoxFuture<'_, Result<Option<Event>>>;
    fn endpoint_deliveries(
        &self,
        endpoint: EndpointId,
        q: DeliveryQuery,
    ) -> BoxFuture<'_, Result<DeliveryPage>>;
    fn attempts(&self, id: DeliveryId) -> BoxFuture<'_, Result<Vec<Attempt>>>;
    /// The events of `tenant` made in `range` (`[from_ms, until_ms)`) whose type one of `patterns`
    /// accepts (endpoint `event_types` patterns), oldest first: at most `max` of them, and
    /// whether more were there.
    fn events_between(
        &self,
        tenant: String,
        range: (u64, u64),
        patterns: Vec<String>,
        max: usize,
    ) -> BoxFuture<'_, Result<EventsFound>>;
}

/// What [`AsyncHistoryReads::events_between`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsFound {
    /// (event id, event type), oldest first.
    pub events: Vec<(String, String)>,
    /// More events matched than were asked for.
    pub more: bool,
}

/// [`crate::DeadlineReads`] for async code.
pub trait AsyncDeadlineReads: Send + Sync + 'static {
    /// The durable deadlines due after `after_ms` and up to `until_ms`, earliest first; only
    /// those of `endpoint` if given.
    fn deadlines_between(
        &self,
        after_ms: u64,
        until_ms: u64,
        endpoint: Option<EndpointId>,
    ) -> BoxFuture<'_, Result<Vec<ScheduleEntry>>>;
}

/// [`crate::EndpointStore`] for async code (less its metadata, read and written on start).
pub trait AsyncEndpointStore: Send + Sync + 'static {
    /// Stores the whole endpoint, its controls included; durable on return.
    fn put_endpoint(&self, endpoint: Arc<Endpoint>) -> BoxFuture<'_, Result<()>>;
    /// Deletes the endpoint and its controls, and marks its deliveries for deletion.
    fn delete_endpoint(&self, id: EndpointId) -> BoxFuture<'_, Result<()>>;
    fn endpoint_stats(&self, id: EndpointId) -> BoxFuture<'_, Result<EndpointStats>>;
    fn replay_answer(
        &self,
        endpoint: EndpointId,
        key: String,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>>>;
    fn put_replay_answer(
        &self,
        endpoint: EndpointId,
        key: String,
        answer: Vec<u8>,
    ) -> BoxFuture<'_, Result<()>>;
}

/// Everything async code reads (and the replay answers it keeps) of the store.
pub trait AsyncStore: AsyncHistoryReads + AsyncDeadlineReads + AsyncEndpointStore {}

impl<T: AsyncHistoryReads + AsyncDeadlineReads + AsyncEndpointStore> AsyncStore for T {}

/// A synchronous [`Store`] as an [`AsyncStore`]: each call runs on tokio's blocking pool
/// (a sled read may wait for a page from the disk, and a runtime worker that waits stops every
/// task scheduled on it).
#[derive(Clone)]
pub struct OnBlockingPool(pub Arc<dyn Store>);

impl std::fmt::Debug for OnBlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnBlockingPool").finish_non_exhaustive()
    }
}

impl OnBlockingPool {
    /// Runs `f` on the store, on the blocking pool.
    fn run<T, F>(&self, f: F) -> BoxFuture<'_, Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T> + Send + 'static,
    {
        let store = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&*store))
                .await
                .map_err(LogError::BlockingCall)?
        })
    }
}

impl AsyncHistoryReads for OnBlockingPool {
    fn get_event(&self, id: String) -> BoxFuture<'_, Result<Option<Event>>> {
        self.run(move |s| s.get_event(&id))
    }

    fn event_deliveries(&self, event_id: String) -> BoxFuture<'_, Result<Vec<Delivery>>> {
        self.run(move |s| s.event_deliveries(&event_id))
    }

    fn get_delivery(&self, id: DeliveryId) -> BoxFuture<'_, Result<Option<Delivery>>> {
        self.run(move |s| s.get_delivery(id))
    }

    fn delivery_event(&self, id: DeliveryId) -> BoxFuture<'_, Result<Option<Event>>> {
        self.run(move |s| match s.get_delivery(id)? {
            Some(d) => s.get_event(&d.event_id),
            None => Ok(None),
        })
    }

    fn endpoint_deliveries(
        &self,
        endpoint: EndpointId,
        q: DeliveryQuery,
    ) -> BoxFuture<'_, Result<DeliveryPage>> {
        self.run(move |s| s.endpoint_deliveries(endpoint, &q))
    }

    fn attempts(&self, id: DeliveryId) -> BoxFuture<'_, Result<Vec<Attempt>>> {
        self.run(move |s| s.attempts(id))
    }

    fn events_between(
        &self,
        tenant: String,
        (from_ms, until_ms): (u64, u64),
        patterns: Vec<String>,
        max: usize,
    ) -> BoxFuture<'_, Result<EventsFound>> {
        self.run(move |s| {
            let mut found = EventsFound::default();
            s.for_each_event_between(&tenant, from_ms, until_ms, &mut |ev| {
                if !EventFilter::matches_any(&patterns, ev.event_type) {
                    return true;
                }
                if found.events.len() == max {
                    found.more = true;
                    return false;
                }
                found
                    .events
                    .push((ev.id.to_owned(), ev.event_type.to_owned()));
                true
            })?;
            Ok(found)
        })
    }
}

impl AsyncDeadlineReads for OnBlockingPool {
    fn deadlines_between(
        &self,
        after_ms: u64,
        until_ms: u64,
        endpoint: Option<EndpointId>,
    ) -> BoxFuture<'_, Result<Vec<ScheduleEntry>>> {
        self.run(move |s| {
            let mut out = Vec::new();
            s.for_each_deadline_between(after_ms, until_ms, &mut |e| {
                if endpoint.is_none_or(|id| e.endpoint == id) {
                    out.push(e);
                }
            })?;
            Ok(out)
        })
    }
}

impl AsyncEndpointStore for OnBlockingPool {
    fn put_endpoint(&self, endpoint: Arc<Endpoint>) -> BoxFuture<'_, Result<()>> {
        self.run(move |s| s.put_endpoint(&endpoint))
    }

    fn delete_endpoint(&self, id: EndpointId) -> BoxFuture<'_, Result<()>> {
        self.run(move |s| s.delete_endpoint(id))
    }

    fn endpoint_stats(&self, id: EndpointId) -> BoxFuture<'_, Result<EndpointStats>> {
        self.run(move |s| s.endpoint_stats(id))
    }

    fn replay_answer(
        &self,
        endpoint: EndpointId,
        key: String,
    ) -> BoxFuture<'_, Result<Option<Vec<u8>>>> {
        self.run(move |s| s.replay_answer(endpoint, &key))
    }

    fn put_replay_answer(
        &self,
        endpoint: EndpointId,
        key: String,
        answer: Vec<u8>,
    ) -> BoxFuture<'_, Result<()>> {
        self.run(move |s| s.put_replay_answer(endpoint, &key, &answer))
    }
}

#[cfg(test)]
mod tests;
