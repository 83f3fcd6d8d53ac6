//! Domain types shared by every hookd crate: events, endpoints, deliveries, attempts, ids,
//! time helpers, the retry policy and process-wide metrics.
//!
//! This crate owns *data and pure functions only*. It must not do I/O, spawn tasks or know
//! about HTTP or storage; everything here is unit-testable without a runtime.
//!
//! - [`id`]: sortable unique ids (`evt_`, `ep_`, `dlv_`, `key_` prefixes over ULIDs).
//! - [`api_key`]: a tenant's API key record, its scopes and the text form of a key.
//! - [`event`]: an ingested event and the validation of its type name.
//! - [`check`]: the field checks every door shares (known event types, tenants), whose failures
//!   name their field; with `test-util`, the known-types fixture tests use.
//! - [`endpoint`]: a subscription and its event-type filter.
//! - [`format`]: an endpoint's wire format (signature scheme, headers, envelope) and presets.
//! - [`delivery`]: one event to one endpoint, its status and its attempts.
//! - [`retry`]: the retry schedule with jitter.
//! - [`time`]: unix-millisecond clock and RFC 3339 formatting.
//! - [`metrics`]: lock-free counters, gauges and histograms rendered as Prometheus text.
//!
//! Types the API shows by name (statuses, scopes, format words) carry their OpenAPI schema here,
//! built from the same `as_str` names the API prints, so the document cannot drift from them.

/// The OpenAPI schema of an enum the API shows as its `as_str` names: a string, one of `$all`.
macro_rules! names_schema {
    ($ty:ty, $all:expr, $description:literal) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($all.iter().map(|v| v.as_str())))
                    .description(Some($description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $ty {}
    };
}

pub mod api_key;
pub mod check;
pub mod delivery;
pub mod endpoint;
pub mod event;
pub mod format;
pub mod id;
pub mod metrics;
pub mod retry;
pub mod time;

pub use api_key::{ApiKey, Scope, Scopes};
pub use delivery::{
    Attempt, Delivery, DeliveryStatus, ErrorKind, Signal, Streak, RESPONSE_EXCERPT_BYTES,
};
pub use endpoint::{DeliveryControls, Endpoint, EventFilter, RateLimit};
pub use event::Event;
pub use id::{DeliveryId, EndpointId, KeyId};

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_take_any_string(s in any::<String>()) {
            let _ = s.parse::<crate::DeliveryId>();
            let _ = s.parse::<crate::EndpointId>();
            let _ = crate::api_key::split_key(&s);
            let _ = crate::Scope::parse(&s);
            let _ = crate::time::parse_time(&s);
            let _ = crate::DeliveryStatus::parse(&s);
            let _ = crate::event::is_valid_type_name(&s);
            if let Some(f) = crate::EventFilter::parse(&s) {
                let _ = f.matches(&s);
            }
        }
    }
}
