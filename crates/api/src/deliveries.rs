//! Delivery history and manual retry.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use hookd_http::error::{ErrorBody, ErrorCode};
use hookd_http::views::{AttemptView, DeliveryView, Page, RequestView};
use hookd_http::{Access, ApiError, Principal, RouteAccess};
use hookd_log::{Change, DeliveryQuery};
use hookd_scheduler::{Job, Reservation};
use hookd_sender::wire;
use hookd_types::metrics::{inc, METRICS};
use hookd_types::time::{now_ms, parse_time};
use hookd_types::{Attempt, DeliveryId, DeliveryStatus, Endpoint, ErrorKind, Event, Scope};
use serde::Serialize;
use utoipa::ToSchema;

use crate::endpoints;
use crate::{parse_limit, ApiState};

/// What each route asks of an API key (the authentication layer applies it).
pub const ACCESS: &[RouteAccess] = &[
    (
        "GET",
        "/v1/endpoints/{id}/deliveries",
        Access::Scope(Scope::DeliveriesRead),
    ),
    (
        "GET",
        "/v1/deliveries/{id}",
        Access::Scope(Scope::DeliveriesRead),
    ),
    (
        "POST",
        "/v1/deliveries/{id}/retry",
        Access::Scope(Scope::DeliveriesWrite),
    ),
];

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, read, retry))]
pub struct Doc;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/endpoints/{id}/deliveries", get(list))
        .route("/v1/deliveries/{id}", get(read))
        .route("/v1/deliveries/{id}/retry", post(retry))
}

fn parse_statuses(s: &str) -> Result<Vec<DeliveryStatus>, ApiError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part {
            "failed" => out.extend([DeliveryStatus::Retrying, DeliveryStatus::DeadLettered]),
            other => out.push(DeliveryStatus::parse(other).ok_or_else(|| {
                ApiError::validation(format!(
                    "`status` {other:?} is not one of pending, retrying, delivered, dead_lettered, failed"
                ))
            })?),
        }
    }
    Ok(out)
}

/// The filters of `GET .../deliveries`: `status`, `from`, `to`, `cursor`, `limit`.
pub fn parse_query(q: &HashMap<String, String>) -> Result<DeliveryQuery, ApiError> {
    let time = |name: &str| -> Result<Option<u64>, ApiError> {
        q.get(name)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    ApiError::validation(format!("`{name}` must be RFC 3339 or unix milliseconds"))
                })
            })
            .transpose()
    };
    Ok(DeliveryQuery {
        statuses: q
            .get("status")
            .map(|s| parse_statuses(s))
            .transpose()?
            .unwrap_or_default(),
        from_ms: time("from")?,
        to_ms: time("to")?,
        cursor: q
            .get("cursor")
            .map(|c| {
                c.parse::<DeliveryId>()
                    .map_err(|_| ApiError::validation("`cursor` is not a cursor from this API"))
            })
            .transpose()?,
        limit: parse_limit(q.get("limit"))?,
    })
}

/// The filters of the deliveries list, for the OpenAPI document ([`parse_query`] reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Filters {
    /// Comma-separated: `pending`, `retrying`, `delivered`, `dead_lettered`, and `failed`
    /// (retrying or dead-lettered).
    #[param(example = "failed")]
    status: Option<String>,
    /// Created at or after: RFC 3339, or unix milliseconds.
    #[param(example = "2026-05-08T17:01:30.123Z")]
    from: Option<String>,
    /// Created before: RFC 3339, or unix milliseconds.
    to: Option<String>,
}

/// One attempt, with the request it sent rebuilt (`null` when nothing was sent).
#[derive(Serialize, ToSchema)]
#[schema(as = AttemptDetail)]
pub struct AttemptDetail<'a> {
    #[serde(flatten)]
    pub attempt: AttemptView<'a>,
    pub request: Option<RequestView>,
}

/// A delivery with its attempts, oldest first: a [`DeliveryView`] whose `attempts` (there a
/// count) is the list itself, as [`read`] writes it.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryDetail)]
pub struct Detail<'a> {
    pub id: String,
    pub event_id: &'a str,
    pub endpoint_id: String,
    pub tenant: &'a str,
    pub event_type: &'a str,
    #[schema(value_type = hookd_types::DeliveryStatus)]
    pub status: &'static str,
    /// Every attempt made, oldest first.
    pub attempts: Vec<AttemptDetail<'a>>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_attempt_at: Option<String>,
    pub last_status_code: Option<u16>,
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/deliveries",
    tag = "deliveries",
    operation_id = "list_deliveries",
    params(crate::IdParam, crate::ListParams, Filters),
    responses((status = 200, description = "A page of deliveries", body = Page<DeliveryView>,
        links(
            ("GetDelivery" = (operation_id = "get_delivery", parameters(("id" = "$response.body#/data/0/id")))),
            ("RetryDelivery" = (operation_id = "retry_delivery", parameters(("id" = "$response.body#/data/0/id")))),
        )))
)]
async fn list(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    endpoints::parse_id(&id)?;
    let query = parse_query(&q)?;
    let ep = endpoints::load(&state, &caller, &id)?.id;
    let page = state.reads.endpoint_deliveries(ep, query).await?;
    Ok(Json(Page {
        data: page.items.iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    })
    .into_response())
}

/// The delivery `id`, if it exists and the caller may see it (404 otherwise, either way).
async fn load(
    state: &ApiState,
    caller: &Principal,
    id: &str,
) -> Result<hookd_types::Delivery, ApiError> {
    let id: DeliveryId = id.parse().map_err(|_| ApiError::not_found("delivery"))?;
    let d = state
        .reads
        .get_delivery(id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    caller.owns(&d.tenant, "delivery")?;
    Ok(d)
}

/// A delivery with every attempt and the exact request each sent.
#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    tag = "deliveries",
    operation_id = "get_delivery",
    params(("id" = String, Path, description = "The delivery's id (`dlv_...`)")),
    responses((status = 200, description = "The delivery", body = Detail))
)]
async fn read(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let d = load(&state, &caller, &id).await?;
    // The delivery and its attempts are two reads, and the indexer may apply an outcome
    // between them: read again until they agree (they change in one batch).
    let reads = &state.reads;
    let mut d = d;
    let mut attempts = reads.attempts(d.id).await?;
    for _ in 0..8 {
        if attempts.len() == d.attempts as usize {
            break;
        }
        d = reads
            .get_delivery(d.id)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        attempts = reads.attempts(d.id).await?;
    }
    let event = reads.get_event(d.event_id.clone()).await?;
    let endpoint = state.registry.get(d.endpoint_id);
    let mut v = serde_json::to_value(DeliveryView::from(&d)).unwrap_or_default();
    v["attempts"] = attempts
        .iter()
        .map(|a| {
            let mut av = serde_json::to_value(AttemptView::from(a)).unwrap_or_default();
            av["request"] =
                serde_json::to_value(sent_request(endpoint.as_deref(), event.as_ref(), a))
                    .unwrap_or_default();
            av
        })
        .collect();
    Ok(Json(v))
}

/// The request `attempt` sent, rebuilt with the sender's own [`wire::request`]; `None` when
/// nothing was sent (endpoint disabled or deleted, event gone, URL refused before sending).
fn sent_request(
    endpoint: Option<&Endpoint>,
    event: Option<&Event>,
    attempt: &Attempt,
) -> Option<RequestView> {
    if matches!(
        attempt.error,
        Some(
            ErrorKind::EndpointDisabled
                | ErrorKind::EndpointDeleted
                | ErrorKind::InvalidUrl
                | ErrorKind::ForbiddenTarget
        )
    ) {
        return None;
    }
    let (endpoint, event) = (endpoint?, event?);
    let (headers, body) = wire::request(endpoint, event, attempt.at_ms).ok()?;
    Some(RequestView::new(
        &endpoint.url,
        &headers,
        &body,
        endpoint.updated_at_ms > attempt.at_ms,
    ))
}

/// Put a retrying or dead-lettered delivery back on the schedule, due now.
#[utoipa::path(
    post,
    path = "/v1/deliveries/{id}/retry",
    tag = "deliveries",
    operation_id = "retry_delivery",
    params(("id" = String, Path, description = "The delivery's id (`dlv_...`)")),
    responses(
        (status = 202, description = "Scheduled", body = DeliveryView),
        (status = 409, description = "`CONFLICT`: the delivery is pending or delivered", body = ErrorBody),
    )
)]
async fn retry(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let before = load(&state, &caller, &id).await?;
    if !matches!(
        before.status,
        DeliveryStatus::Retrying | DeliveryStatus::DeadLettered
    ) {
        return Err(ApiError::conflict(format!(
            "delivery is {}; only retrying or dead_lettered deliveries can be retried",
            before.status.as_str()
        )));
    }
    let mut put_back = requeue(&state, vec![before]).await?;
    let Some(after) = put_back.scheduled.pop() else {
        return Err(ApiError::conflict(
            "delivery is being attempted right now; retry once the attempt is over".to_owned(),
        ));
    };
    tracing::info!(delivery = %after.id, "manual retry");
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&after))).into_response())
}

/// What [`requeue`] did.
pub(crate) struct Requeued {
    /// Put back on the schedule, due now (as they read after it).
    pub scheduled: Vec<hookd_types::Delivery>,
    /// Being attempted right now, or held by another retry: left alone.
    pub busy: usize,
}

/// Puts retrying or dead-lettered deliveries back on the schedule, due now, in one durable
/// record. The shard owning each endpoint is the one that knows whether an attempt is queued
/// or running: it reserves the delivery, or says it is busy.
pub(crate) async fn requeue(
    state: &ApiState,
    found: Vec<hookd_types::Delivery>,
) -> Result<Requeued, ApiError> {
    let mut reserved = Vec::with_capacity(found.len());
    let mut busy = 0;
    let give_back = |reserved: &[hookd_types::Delivery]| {
        for d in reserved {
            state.scheduler.unreserve(d.id, d.endpoint_id);
        }
    };
    for d in found {
        match state.scheduler.reserve(d.id, d.endpoint_id).await {
            Reservation::Reserved => reserved.push(d),
            Reservation::Busy => busy += 1,
            Reservation::Stopped => {
                give_back(&reserved);
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "hookd is shutting down",
                ));
            }
        }
    }
    if reserved.is_empty() {
        return Ok(Requeued {
            scheduled: reserved,
            busy,
        });
    }
    let now = now_ms();
    let changes: Vec<Change> = reserved
        .iter()
        .map(|d| Change::Retried {
            delivery: d.id,
            due_ms: now,
            at_ms: now,
        })
        .collect();
    // Rare and asked for: durable before saying so, and visible to the next read.
    let recorded = match state.outcomes.record_durable(&changes).await {
        Ok(seq) => state.outcomes.applied(seq).await,
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        give_back(&reserved);
        return Err(e.into());
    }
    for d in &mut reserved {
        if d.status == DeliveryStatus::DeadLettered {
            // Back on the schedule: pending again (a retrying one never left).
            inc(&METRICS.deliveries_pending, 1);
        }
        state.scheduler.schedule(Job {
            delivery: d.id,
            endpoint: d.endpoint_id,
            due_ms: now,
            attempts: d.attempts,
            event: None,
        });
        d.next_attempt_ms = Some(now);
        d.updated_at_ms = now;
    }
    Ok(Requeued {
        scheduled: reserved,
        busy,
    })
}
