//! The durable state of hookd: the event log and everything derived from it (events, deliveries,
//! attempts, durable deadlines, endpoints), behind the narrow [`Store`] trait so a second backend
//! (NATS JetStream streams + KV) can slot in beside [`SledStore`]; and API keys, behind the even
//! narrower [`KeyStore`].
//!
//! - [`store`]: the [`Store`] trait, its record types and the durability each call promises.
//! - [`reads`]: the same store for async code ([`AsyncStore`]: every call a future), and
//!   [`OnBlockingPool`], which lifts a synchronous backend into it.
//! - [`sled_store`]: the sled implementation, its key layout and recovery rules.
//! - [`sealed`]: the master key and AES-256-GCM sealing of endpoint secrets at rest.
//! - [`registry`]: the in-memory read model of endpoints, written through to the store.
//! - [`keys`]: API key records: the small [`KeyStore`] interface and the in-memory
//!   [`KeyRegistry`] requests are authenticated against, written through to it.
//! - [`outcome`]: the outcome log (fan-out's decisions, attempt outcomes, manual retries) and
//!   the indexer thread that applies it, in order, to the read model: the one writer of
//!   delivery state.
//! - `testing` (feature `test-util`): a store in a temporary directory, and a store whose
//!   durable writes can be held back.
//!
//! This crate owns *what is on disk*. It must not know about HTTP, signing or timers; callers
//! (ingest, scheduler, sender, api) decide *when* to write, the store decides *how*.

pub mod error;
pub mod keys;
pub mod outcome;
pub mod reads;
pub mod registry;
pub mod sealed;
pub mod sled_store;
pub mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use error::LogError;
pub use keys::{KeyRegistry, KeyStore};
pub use outcome::{Change, OutcomeLog, Retention};
pub use reads::{
    AsyncDeadlineReads, AsyncEndpointStore, AsyncHistoryReads, AsyncStore, EventsFound,
    OnBlockingPool,
};
pub use registry::EndpointRegistry;
pub use sealed::MasterKey;
pub use sled_store::{rekey, SledConfig, SledStore};
pub use store::{
    DeadlineReads, DeliveryPage, DeliveryQuery, EndpointStats, EndpointStore, EventLog, EventRef,
    HistoryReads, IdemRecord, LogEntry, LogRecord, Outcomes, ScheduleEntry, Seq, Store,
};
