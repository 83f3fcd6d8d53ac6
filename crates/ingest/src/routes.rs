//! `POST /v1/events`, `POST /v1/events/batch`, `GET /v1/events/{id}`, `GET /v1/event-types`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::value::RawValue;

use hookd_http::error::ErrorBody;
use hookd_http::json::{check_depth, parse_json, read_body, JsonLimits};
use hookd_http::ratelimit::RateLimiter;
use hookd_http::views::{DeliveryView, EventView};
use hookd_http::{Access, ApiError, ErrorCode, Principal, RouteAccess};
use hookd_log::AsyncStore;
use hookd_types::{Event, Scope};

use crate::committer::{CommitError, Committer, Outcome};
use crate::validate::{candidate, Candidate, EventIn};

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub max_batch: usize,
    /// Events per second per tenant; 0 = unlimited.
    pub rate_limit: u32,
    pub event_types: Vec<String>,
}

#[derive(Clone)]
pub struct IngestState {
    inner: Arc<Inner>,
}

struct Inner {
    committer: Committer,
    reads: Arc<dyn AsyncStore>,
    types: HashSet<String>,
    sorted_types: Vec<String>,
    limiter: RateLimiter,
    max_batch: usize,
}

impl IngestState {
    pub fn new(cfg: IngestConfig, committer: Committer, reads: Arc<dyn AsyncStore>) -> Self {
        let mut sorted_types = cfg.event_types.clone();
        sorted_types.sort();
        sorted_types.dedup();
        Self {
            inner: Arc::new(Inner {
                committer,
                reads,
                types: cfg.event_types.into_iter().collect(),
                sorted_types,
                limiter: RateLimiter::new(cfg.rate_limit),
                max_batch: cfg.max_batch,
            }),
        }
    }
}

impl std::fmt::Debug for IngestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestState").finish_non_exhaustive()
    }
}

/// What each route asks of an API key (the authentication layer applies it).
pub const ACCESS: &[RouteAccess] = &[
    ("POST", "/v1/events", Access::Scope(Scope::EventsWrite)),
    (
        "POST",
        "/v1/events/batch",
        Access::Scope(Scope::EventsWrite),
    ),
    ("GET", "/v1/events/{id}", Access::Scope(Scope::EventsRead)),
    ("GET", "/v1/event-types", Access::AnyKey),
];

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(post_event, post_batch, get_event, event_types))]
pub struct Doc;

pub fn router(state: IngestState) -> Router {
    routes().with_state(state)
}

/// The routes, before their state.
pub fn routes() -> Router<IngestState> {
    Router::new()
        .route("/v1/events", post(post_event))
        .route("/v1/events/batch", post(post_batch))
        .route("/v1/events/{id}", get(get_event))
        .route("/v1/event-types", get(event_types))
}

impl Inner {
    async fn commit(&self, items: Vec<Candidate>) -> Result<(Vec<Outcome>, bool), ApiError> {
        let mut tenants: Vec<&str> = items.iter().map(|c| &*c.entry.event.tenant).collect();
        tenants.sort_unstable();
        tenants.dedup();
        for t in tenants {
            let n = items.iter().filter(|c| c.entry.event.tenant == t).count();
            if let Err(secs) = self.limiter.take(t, n) {
                return Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!("tenant {t:?} is over its ingest rate limit"),
                )
                .with_retry_after(secs));
            }
        }
        let outcomes = self.committer.submit(items).await.map_err(|e| match e {
            CommitError::Conflict(m) => ApiError::conflict(m),
            CommitError::Storage(e) => e.into(),
            CommitError::Stopped => {
                ApiError::new(ErrorCode::Unavailable, "hookd is shutting down").with_retry_after(5)
            }
        })?;
        let replayed = outcomes.iter().all(|o| matches!(o, Outcome::Replayed(_)));
        Ok((outcomes, replayed))
    }
}

fn event_of(o: &Outcome) -> &Event {
    match o {
        Outcome::Accepted(e) | Outcome::Replayed(e) => e,
    }
}

fn accepted<T: Serialize>(body: T, replayed: bool) -> Response {
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if replayed {
        resp.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    resp
}

/// An event takes its caller's tenant: a tenant key posts for its own tenant only.
fn for_caller<'a>(caller: &Principal, mut input: EventIn<'a>) -> Result<EventIn<'a>, ApiError> {
    input.tenant = caller.claim(input.tenant.as_deref())?.map(str::to_owned);
    Ok(input)
}

/// The `Idempotency-Key` header of the event routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the headers by hand; declared for the OpenAPI document
pub struct IdempotencyKey {
    /// 1..=255 printable ASCII characters. The same key with the same body (same tenant) answers
    /// the original event with `Idempotent-Replayed: true`; with another body, 409. A batch
    /// keys its events `<key>:<index>`.
    #[param(rename = "Idempotency-Key", pattern = r"^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

/// The events of one batch, in request order.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = EventBatch)]
pub struct Batch<'a> {
    pub data: Vec<EventView<'a>>,
}

/// `{"data": [...]}`: the daemon's event types, sorted.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventTypes {
    #[schema(example = json!(["instance.ready", "job.completed"]))]
    pub data: Vec<String>,
}

/// Accept one event: it is on disk before the answer.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    operation_id = "send_event",
    params(IdempotencyKey),
    request_body = EventIn,
    responses(
        (status = 202, description = "Stored (or, with `Idempotent-Replayed: true`, the original event of a replay)", body = EventView,
            headers(("Idempotent-Replayed" = String, description = "`true` when nothing new was stored")),
            links(("GetEvent" = (operation_id = "get_event", parameters(("id" = "$response.body#/id")))))),
        (status = 409, description = "`CONFLICT`: the `Idempotency-Key` was used with another body, or the `id` belongs to another tenant", body = ErrorBody),
        (status = 429, description = "`RATE_LIMITED`: the tenant is over `[ingest] rate_limit`; `RATE_LIMIT_EXCEEDED`: the key is over its request rate", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
    )
)]
async fn post_event(
    State(s): State<IngestState>,
    caller: Principal,
    req: Request,
) -> Result<Response, ApiError> {
    let key = hookd_http::idempotency::key(req.headers())?.map(str::to_owned);
    let limits = JsonLimits::of(req.extensions());
    let body = read_body(req, &()).await?;
    let input = for_caller(&caller, parse_json(&body, limits)?)?;
    let c = candidate(input, &s.inner.types, key.as_deref())?;
    let (outcomes, replayed) = s.inner.commit(vec![c]).await?;
    let ev = outcomes
        .first()
        .map(event_of)
        .ok_or_else(|| ApiError::new(ErrorCode::InternalError, "no outcome"))?;
    Ok(accepted(EventView::from(ev), replayed))
}

/// Accept up to `[ingest] max_batch` events, all or none.
#[utoipa::path(
    post,
    path = "/v1/events/batch",
    tag = "events",
    operation_id = "send_events",
    params(IdempotencyKey),
    request_body(content = Vec<EventIn>, description = "1..=`[ingest] max_batch` events; one invalid event refuses the batch (the message names its index)"),
    responses(
        (status = 202, description = "All stored, in request order", body = Batch,
            headers(("Idempotent-Replayed" = String, description = "`true` when every event was a replay"))),
        (status = 409, description = "`CONFLICT`: a key or an `id` was used with another body or tenant", body = ErrorBody),
        (status = 429, description = "`RATE_LIMITED`: a tenant is over `[ingest] rate_limit`; `RATE_LIMIT_EXCEEDED`: the key is over its request rate", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
    )
)]
async fn post_batch(
    State(s): State<IngestState>,
    caller: Principal,
    req: Request,
) -> Result<Response, ApiError> {
    let key = hookd_http::idempotency::key(req.headers())?.map(str::to_owned);
    let limits = JsonLimits::of(req.extensions());
    let body = read_body(req, &()).await?;
    check_depth(&body, limits.max_depth)?;
    let raw: Vec<&RawValue> = parse_json(&body, limits)
        .map_err(|_| ApiError::validation("body must be a JSON array of events"))?;
    if raw.is_empty() || raw.len() > s.inner.max_batch {
        return Err(ApiError::validation(format!(
            "a batch holds 1..={} events",
            s.inner.max_batch
        )));
    }
    let mut items = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let at = |e: ApiError| ApiError::new(e.code, format!("events[{i}]: {}", e.message));
        let input =
            for_caller(&caller, parse_json(r.get().as_bytes(), limits).map_err(at)?).map_err(at)?;
        // One key for a batch: each event gets `<key>:<index>`.
        let k = key.as_ref().map(|k| format!("{k}:{i}"));
        items.push(candidate(input, &s.inner.types, k.as_deref()).map_err(|e| at(e.into()))?);
    }
    let (outcomes, replayed) = s.inner.commit(items).await?;
    let data = outcomes
        .iter()
        .map(|o| EventView::from(event_of(o)))
        .collect();
    Ok(accepted(Batch { data }, replayed))
}

/// An event with its deliveries.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    operation_id = "get_event",
    params(("id" = String, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The event and its `deliveries`", body = EventView,
            links(("GetDelivery" = (operation_id = "get_delivery", parameters(("id" = "$response.body#/deliveries/0/id")))))),
    )
)]
async fn get_event(
    State(s): State<IngestState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let committer = s.inner.committer.clone();
    let lookup = id.clone();
    let ev = hookd_http::blocking(move || Ok(committer.event(&lookup)?))
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    caller.owns(&ev.tenant, "event")?;
    let deliveries = s.inner.reads.event_deliveries(id).await?;
    let mut view = EventView::from(&ev);
    view.deliveries = Some(deliveries.iter().map(DeliveryView::from).collect());
    Ok(Json(view).into_response())
}

/// The event types producers may send (`[events] types`).
#[utoipa::path(
    get,
    path = "/v1/event-types",
    tag = "events",
    operation_id = "list_event_types",
    responses((status = 200, description = "The known event types", body = EventTypes))
)]
async fn event_types(State(s): State<IngestState>) -> Json<EventTypes> {
    Json(EventTypes {
        data: s.inner.sorted_types.clone(),
    })
}
