//! The management API: endpoints (create, list, read with stats, update, delete, rotate the
//! secret, send a test event), deliveries (list with filters, read with attempts, retry by hand),
//! tenants' API keys, health and metrics.
//!
//! - [`endpoints`]: `/v1/endpoints...` and the validation of endpoint input.
//! - [`controls`]: the delivery controls of endpoint input (rate limit, FIFO), checked and
//!   handed to the scheduler.
//! - [`formats`]: the wire-format fields of endpoint input, secrets by scheme, rotation overlap.
//! - [`deliveries`]: `/v1/endpoints/{id}/deliveries` and `/v1/deliveries...`.
//! - [`recovery`]: `/v1/endpoints/{id}/recover`: every failed delivery since a time, re-sent.
//! - [`replay`]: `/v1/endpoints/{id}/replay`: the events of a time range, sent to an endpoint
//!   again as new deliveries.
//! - [`keys`]: `/v1/api-keys...`: the admin issues, lists and revokes tenants' keys.
//! - [`ops`]: `/health` and `/metrics`.
//! - [`openapi`]: the OpenAPI 3.1 document of every route, assembled from the handlers'
//!   annotations, and `GET /openapi.json` that serves it.
//!
//! Each route module declares what its routes ask of an API key ([`ACCESS`]); handlers take the
//! caller and load records through it, so another tenant's ids are simply not found.
//!
//! This crate reads state and changes endpoints; it must not write events or attempts. A manual
//! retry (or a recovery) only moves deliveries' deadlines and hands the jobs to the scheduler; a
//! replay records new deliveries of stored events in the outcome log, as fan-out does, and
//! hands their jobs over the same way.

pub mod controls;
pub mod deliveries;
pub mod endpoints;
pub mod formats;
pub mod keys;
pub mod openapi;
pub mod ops;
pub mod recovery;
pub mod replay;

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;

use hookd_http::RouteAccess;
use hookd_log::{AsyncStore, EndpointRegistry, KeyRegistry};
use hookd_scheduler::SchedulerHandle;
use hookd_sender::policy::TargetPolicy;
use hookd_sender::Sender;

#[derive(Clone)]
pub struct ApiState {
    /// The store's reads, as futures (a sled read runs on the blocking pool).
    pub reads: Arc<dyn AsyncStore>,
    pub registry: Arc<EndpointRegistry>,
    pub keys: Arc<KeyRegistry>,
    pub scheduler: SchedulerHandle,
    /// Where manual retries and replays are recorded.
    pub outcomes: Arc<dyn hookd_log::Outcomes>,
    pub sender: Arc<Sender>,
    pub policy: TargetPolicy,
    pub event_types: Arc<HashSet<String>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// What every management route asks of an API key, for the authentication layer.
pub const ACCESS: [&[RouteAccess]; 5] = [
    endpoints::ACCESS,
    deliveries::ACCESS,
    recovery::ACCESS,
    replay::ACCESS,
    keys::ACCESS,
];

/// Every `/v1` management route (authentication is layered on by the caller).
pub fn router(state: ApiState) -> Router {
    routes().with_state(state)
}

/// The `/v1` management routes, before their state.
pub fn routes() -> Router<ApiState> {
    endpoints::routes()
        .merge(deliveries::routes())
        .merge(recovery::routes())
        .merge(replay::routes())
        .merge(keys::routes())
}

/// The paging of every list route ([`parse_limit`] and the modules read them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Items per page.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The `{id}` of the endpoint routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct IdParam {
    /// The endpoint's id (`ep_...`).
    id: String,
}

/// Limit/cursor parsing shared by the list routes.
pub(crate) fn parse_limit(v: Option<&String>) -> Result<usize, hookd_http::ApiError> {
    match v {
        None => Ok(50),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(hookd_http::ApiError::validation(
                "`limit` must be an integer in 1..=500",
            )),
        },
    }
}
