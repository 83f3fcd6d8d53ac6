//! FIFO endpoints: strict order, one delivery in flight.
//!
//! For each FIFO endpoint the shard keeps its *line*: every delivery of the endpoint it will
//! attempt (waiting for a deadline, due, parked behind the breaker, reserved by a manual retry
//! or in flight), ordered by delivery id. Fan-out makes delivery ids with a monotonic ULID
//! generator as it reads the event log, so for one endpoint their order is ingest order
//! (across restarts too, as long as the wall clock does not step back). Only the head of the
//! line may be attempted, and only once it is due and nothing else of the endpoint is in flight;
//! the endpoint's due queue is kept sorted the same way. A failing head goes back to the wheel
//! for its retry and stays the head: everything behind it waits until it is delivered or
//! dead-lettered (its attempt reports no next deadline), then the next one goes.
//!
//! - Retries from the wheel, deliveries loaded at start and paged in by the horizon all enter
//!   the line by id, whatever order they arrive in.
//! - A FIFO endpoint's jobs are kept whatever their deadline: the horizon would otherwise drop a
//!   head whose retry is far away, and let the next one go. At start (and when an endpoint
//!   turns FIFO) the deliveries due beyond the horizon are handed in too (see `hookd`).
//! - A manual retry (or bulk recovery) re-queues a delivery at its place by id: it goes before
//!   every newer delivery still pending, after the one in flight. While it is reserved it holds
//!   its place.
//! - The breaker applies as to any endpoint: while it is open nothing goes; its probe is the
//!   head.

use std::collections::BTreeSet;

use hookd_types::{DeliveryId, EndpointId};

use super::{Dispatch, Job, Shard};

impl<D: Dispatch> Shard<D> {
    /// Turns FIFO on or off for `endpoint`. Turning it on builds the line from every job of the
    /// endpoint the shard holds; those in flight join as their attempts report back.
    pub(super) fn set_fifo(&mut self, endpoint: EndpointId, fifo: bool) {
        if !fifo {
            if self.fifo.remove(&endpoint).is_some() {
                self.wake(endpoint);
            }
            return;
        }
        if self.fifo.contains_key(&endpoint) {
            return;
        }
        let mut line = BTreeSet::new();
        self.wheel.for_each(|p| {
            let job = Job::from(*p);
            if job.endpoint == endpoint && self.live.get(&job.delivery) == Some(&job.due_ms) {
                line.insert(job.delivery);
            }
        });
        let queued = self.endpoints.get(&endpoint).map(|st| &st.queue);
        let parked = self.parked.get(&endpoint);
        for job in queued.into_iter().chain(parked).flatten() {
            if self.live.contains_key(&job.delivery) {
                line.insert(job.delivery);
            }
        }
        self.fifo.insert(endpoint, line);
        if let Some(st) = self.endpoints.get_mut(&endpoint) {
            st.queue.make_contiguous().sort_by_key(|j| j.delivery);
        }
        self.wake(endpoint);
    }

    /// `job` is (again) the current job of its delivery: it holds its place in the line.
    /// (Also called as a job comes due: one that was in flight or reserved when the endpoint
    /// turned FIFO joins then.)
    pub(super) fn fifo_join(&mut self, job: &Job) {
        if let Some(line) = self.fifo.get_mut(&job.endpoint) {
            if self.live.get(&job.delivery) == Some(&job.due_ms) {
                line.insert(job.delivery);
            }
        }
    }

    /// `delivery` will not be attempted any more (delivered, dead-lettered, or a reservation
    /// given up): the next one may go.
    pub(super) fn fifo_leave(&mut self, endpoint: EndpointId, delivery: DeliveryId) {
        let Some(line) = self.fifo.get_mut(&endpoint) else {
            return;
        };
        if line.remove(&delivery) {
            self.wake(endpoint);
        }
    }

    /// Whether `endpoint` is FIFO and may not start its first due job now: drops stale jobs
    /// from the front of its queue, then answers whether that front is not the head of the line
    /// (the head waits for its deadline, is reserved or in flight).
    pub(super) fn fifo_blocked(&mut self, endpoint: EndpointId) -> bool {
        let Some(line) = self.fifo.get_mut(&endpoint) else {
            return false;
        };
        // Nothing the shard no longer attempts may hold the line (a safety net: every path
        // that drops a delivery also leaves the line).
        while let Some(first) = line.first() {
            if self.live.contains_key(first) {
                break;
            }
            line.pop_first();
        }
        let Some(st) = self.endpoints.get_mut(&endpoint) else {
            return false;
        };
        while let Some(front) = st.queue.front() {
            if self.live.get(&front.delivery) == Some(&front.due_ms) {
                break;
            }
            st.queue.pop_front();
        }
        match st.queue.front() {
            Some(front) => line.first() != Some(&front.delivery),
            None => false,
        }
    }

    /// Where a due job of `endpoint` goes in its queue: at the back, or for a FIFO endpoint at
    /// its place by delivery id.
    pub(super) fn queue_position(&self, endpoint: EndpointId, job: &Job) -> Option<usize> {
        self.fifo.get(&endpoint)?;
        let q = &self.endpoints.get(&endpoint)?.queue;
        Some(q.partition_point(|j| j.delivery <= job.delivery))
    }
}
