//! Bulk recovery: every failed delivery of an endpoint since a time, back on the schedule.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use hookd_http::error::ErrorBody;
use hookd_http::{Access, ApiError, JsonBody, Principal, RouteAccess};
use hookd_log::DeliveryQuery;
use hookd_types::time::now_ms;
use hookd_types::{DeliveryStatus, Endpoint, Scope};

use crate::deliveries::requeue;
use crate::keys::TimeIn;
use crate::{endpoints, ApiState};

/// The most deliveries one call recovers; more is refused (choose a later `since`).
pub const MAX_RECOVER: usize = 100_000;

pub const ACCESS: &[RouteAccess] = &[(
    "POST",
    "/v1/endpoints/{id}/recover",
    Access::Scope(Scope::DeliveriesWrite),
)];

/// The `since` of a recovery or a replay in unix ms: required, and not after `now`.
pub(crate) fn since_ms(since: Option<TimeIn>, now: u64) -> Result<u64, ApiError> {
    let since = since
        .ok_or_else(|| ApiError::validation("`since` is required"))?
        .ms("since")?;
    if since > now {
        return Err(ApiError::validation("`since` must not be in the future"));
    }
    Ok(since)
}

/// Recovery and replay send to an endpoint at once: a disabled one is refused (409), `doing`
/// naming what it must be enabled for.
pub(crate) fn require_enabled(ep: &Endpoint, doing: &str) -> Result<(), ApiError> {
    if ep.enabled {
        Ok(())
    } else {
        Err(ApiError::conflict(format!(
            "endpoint is disabled; enable it before {doing}"
        )))
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(recover))]
pub struct Doc;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/v1/endpoints/{id}/recover", post(recover))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RecoverInput, example = json!({"since": "2026-05-08T17:00:00Z"}))]
struct RecoverIn {
    /// Deliveries created at or after this time (RFC 3339 or unix milliseconds), not in the
    /// future.
    #[schema(required = true, value_type = String)]
    since: Option<TimeIn>,
}

/// What a recovery did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Recovered)]
struct RecoveredView {
    /// Failed deliveries put back on the schedule, due now.
    scheduled: usize,
    /// Failed deliveries being attempted right now (or held by a manual retry): left alone.
    busy: usize,
}

/// Re-send every failed (retrying or dead-lettered) delivery of an endpoint created since a
/// time: each is put back on the schedule, due now, keeping its attempts.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/recover",
    tag = "deliveries",
    operation_id = "recover_endpoint",
    params(crate::IdParam),
    request_body = RecoverIn,
    responses(
        (status = 202, description = "Scheduled", body = RecoveredView),
        (status = 400, description = "`VALIDATION_ERROR`: `since` missing, malformed or in the future, or more than 100,000 deliveries to recover", body = ErrorBody),
        (status = 409, description = "`CONFLICT`: the endpoint is disabled", body = ErrorBody),
    )
)]
async fn recover(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<RecoverIn>,
) -> Result<Response, ApiError> {
    let ep = endpoints::load(&state, &caller, &id)?;
    let since = since_ms(input.since, now_ms())?;
    require_enabled(&ep, "recovering its deliveries")?;
    let mut query = DeliveryQuery {
        statuses: vec![DeliveryStatus::Retrying, DeliveryStatus::DeadLettered],
        from_ms: Some(since),
        limit: 500,
        ..DeliveryQuery::default()
    };
    let mut found = Vec::new();
    loop {
        let page = state
            .reads
            .endpoint_deliveries(ep.id, query.clone())
            .await?;
        found.extend(page.items);
        if found.len() > MAX_RECOVER {
            return Err(ApiError::validation(format!(
                "more than {MAX_RECOVER} failed deliveries since `since`: choose a later one"
            )));
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    let done = requeue(&state, found).await?;
    tracing::info!(endpoint = %ep.id, scheduled = done.scheduled.len(), busy = done.busy,
        "recovery");
    let view = RecoveredView {
        scheduled: done.scheduled.len(),
        busy: done.busy,
    };
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}
