//! Deciding *when* each delivery is attempted.
//!
//! - [`fanout`]: tails the log, turns each event into one delivery per matching endpoint,
//!   records that decision in the outcome log, and hands the deliveries to the shards.
//! - [`shard`]: N shard tasks; endpoints are hashed to shards. Each shard owns a [`wheel`] of
//!   deadlines and the per-endpoint in-flight limits, and asks a [`Dispatch`] to make attempts.
//!   Shards keep time on a monotonic [`Clock`] (tokio's, so tests can pause it), share their
//!   in-flight budget fairly among endpoints, and keep a circuit breaker and an adaptive
//!   concurrency limit per endpoint. They also enforce each endpoint's delivery controls: a
//!   rate limit (token bucket) and FIFO (one in flight, in delivery-id order), told to them by
//!   [`SchedulerHandle::set_controls`] / [`Loader::set_controls`].
//! - [`wheel`]: the hierarchical timing wheel (64-slot levels, occupancy bitmaps).
//! - [`pager`]: moves the horizon: shards hold deadlines due within it, the store the rest.
//!
//! Deadlines are durable in the store (the log crate); the wheels are only an in-memory index of
//! those due within the horizon, rebuilt from [`hookd_log::Store::for_each_scheduled`] on start. This crate must not send HTTP or
//! write attempt outcomes: the dispatcher (the sender) does, and reports the next deadline back.

pub mod fanout;
pub mod pager;
pub mod shard;
pub mod wheel;

pub use fanout::Fanout;
pub use shard::{
    Breaker, BreakerConfig, Clock, Dispatch, EndpointHealth, Job, Loader, Reservation, Scheduler,
    SchedulerConfig, SchedulerHandle, Slot, START_CONCURRENCY,
};
