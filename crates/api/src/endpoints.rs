//! `/v1/endpoints`: subscriptions. The secret is returned by create and rotate only.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use hookd_http::error::ErrorBody;
use hookd_http::views::{EndpointView, Page, StatsView};
use hookd_http::{Access, ApiError, ErrorCode, JsonBody, Principal, RouteAccess};
use hookd_sender::policy::UrlError;
use hookd_types::check::{check_event_type, tenant_or_default};
use hookd_types::endpoint::EventFilter;
use hookd_types::time::{now_ms, rfc3339};
use hookd_types::{Endpoint, EndpointId, Scope};

use crate::controls::{self, RateLimitIn};
use crate::formats::{self, FormatIn};
use crate::{parse_limit, ApiState};

/// What each route asks of an API key (the authentication layer applies it).
pub const ACCESS: &[RouteAccess] = &[
    (
        "POST",
        "/v1/endpoints",
        Access::Scope(Scope::EndpointsWrite),
    ),
    ("GET", "/v1/endpoints", Access::Scope(Scope::EndpointsRead)),
    (
        "GET",
        "/v1/endpoints/{id}",
        Access::Scope(Scope::EndpointsRead),
    ),
    (
        "PATCH",
        "/v1/endpoints/{id}",
        Access::Scope(Scope::EndpointsWrite),
    ),
    (
        "DELETE",
        "/v1/endpoints/{id}",
        Access::Scope(Scope::EndpointsWrite),
    ),
    (
        "POST",
        "/v1/endpoints/{id}/rotate-secret",
        Access::Scope(Scope::EndpointsWrite),
    ),
    (
        "POST",
        "/v1/endpoints/{id}/test",
        Access::Scope(Scope::EndpointsWrite),
    ),
];

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, read, update, remove, rotate, test))]
pub struct Doc;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/endpoints", post(create).get(list))
        .route("/v1/endpoints/{id}", get(read).patch(update).delete(remove))
        .route("/v1/endpoints/{id}/rotate-secret", post(rotate))
        .route("/v1/endpoints/{id}/test", post(test))
}

/// A new endpoint: `name`, `url` and `event_types`, the rest optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EndpointInput, example = json!({
    "name": "ops", "url": "https://example.com/hooks", "event_types": ["instance.*"]
}))]
struct CreateIn {
    #[schema(required = true, value_type = String, min_length = 1, max_length = 256)]
    name: Option<String>,
    /// An absolute http(s) URL; private and loopback targets are 403 unless allowed.
    #[schema(required = true, value_type = String, format = "uri")]
    url: Option<String>,
    /// Exact names, `prefix.*` or `*`.
    #[schema(required = true, value_type = Vec<String>, min_items = 1, max_items = 256)]
    event_types: Option<Vec<String>>,
    /// Defaults to `default`; with an API key, the key's tenant.
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    tenant: Option<String>,
    /// Generated when absent, in the form the signature scheme takes.
    secret: Option<String>,
    /// Defaults to `true`.
    enabled: Option<bool>,
    #[schema(max_length = 1024)]
    description: Option<String>,
    /// At most 64 keys of <= 128 bytes, values of <= 1024 bytes.
    metadata: Option<BTreeMap<String, String>>,
    /// A reference document's whole format, applied before the fields below.
    #[schema(value_type = Option<hookd_types::format::Preset>)]
    preset: Option<String>,
    #[schema(value_type = Option<hookd_types::format::Scheme>)]
    signature_scheme: Option<String>,
    /// Header name (default `webhook-signature`).
    signature_header: Option<String>,
    timestamp_header: Option<String>,
    /// A header carrying the event id, e.g. `Gpuai-Event-Id`.
    event_id_header: Option<String>,
    /// Static headers sent with every delivery (at most 32).
    headers: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<hookd_types::format::Envelope>)]
    envelope: Option<String>,
    #[schema(value_type = Option<hookd_types::format::BodyJson>)]
    body_json: Option<String>,
    /// Seconds between attempts (1..=20 entries of 1..=604800), overriding `[retry] schedule`.
    #[schema(min_items = 1, max_items = 20)]
    retry_schedule: Option<Vec<u64>>,
    /// At most this many attempts started per second, with a burst; default none.
    rate_limit: Option<RateLimitIn>,
    /// Strict ingest order, one delivery in flight; default `false`. A FIFO endpoint's
    /// `rate_limit.burst` must be 1.
    fifo: Option<bool>,
}

/// Changes to an endpoint: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EndpointPatch, example = json!({"enabled": false}))]
struct PatchIn {
    #[schema(min_length = 1, max_length = 256)]
    name: Option<String>,
    #[schema(format = "uri")]
    url: Option<String>,
    #[schema(min_items = 1, max_items = 256)]
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
    #[schema(max_length = 1024)]
    description: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    /// A reference document's whole format, applied before the fields below.
    #[schema(value_type = Option<hookd_types::format::Preset>)]
    preset: Option<String>,
    #[schema(value_type = Option<hookd_types::format::Scheme>)]
    signature_scheme: Option<String>,
    /// Header name (default `webhook-signature`).
    signature_header: Option<String>,
    timestamp_header: Option<String>,
    /// A header carrying the event id, e.g. `Gpuai-Event-Id`.
    event_id_header: Option<String>,
    /// Static headers sent with every delivery (at most 32).
    headers: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<hookd_types::format::Envelope>)]
    envelope: Option<String>,
    #[schema(value_type = Option<hookd_types::format::BodyJson>)]
    body_json: Option<String>,
    /// Seconds between attempts (1..=20 entries of 1..=604800), overriding `[retry] schedule`.
    #[schema(min_items = 1, max_items = 20)]
    retry_schedule: Option<Vec<u64>>,
    /// A new rate limit; `null` lifts it.
    #[serde(default, deserialize_with = "controls::nullable")]
    #[schema(value_type = Option<RateLimitIn>, nullable)]
    rate_limit: Option<Option<RateLimitIn>>,
    /// Strict ingest order, one delivery in flight. A FIFO endpoint's `rate_limit.burst` must
    /// be 1.
    fifo: Option<bool>,
}

/// Moves the format fields of a create or update body into a [`FormatIn`].
macro_rules! format_in {
    ($input:ident) => {
        FormatIn {
            preset: $input.preset.take(),
            signature_scheme: $input.signature_scheme.take(),
            signature_header: $input.signature_header.take(),
            timestamp_header: $input.timestamp_header.take(),
            event_id_header: $input.event_id_header.take(),
            headers: $input.headers.take(),
            envelope: $input.envelope.take(),
            body_json: $input.body_json.take(),
            retry_schedule: $input.retry_schedule.take(),
        }
    };
}

pub(crate) fn parse_id(s: &str) -> Result<EndpointId, ApiError> {
    s.parse().map_err(|_| ApiError::not_found("endpoint"))
}

/// The endpoint `id`, if it exists and the caller may see it (404 otherwise, either way).
pub(crate) fn load(
    state: &ApiState,
    caller: &Principal,
    id: &str,
) -> Result<std::sync::Arc<Endpoint>, ApiError> {
    let ep = state
        .registry
        .get(parse_id(id)?)
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    caller.owns(&ep.tenant, "endpoint")?;
    Ok(ep)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 256 {
        return Err(ApiError::validation("`name` must be 1..=256 characters"));
    }
    Ok(())
}

fn check_url(state: &ApiState, url: &str) -> Result<(), ApiError> {
    state
        .policy
        .check_url(url)
        .map(|_| ())
        .map_err(|e| match e {
            UrlError::Forbidden(m) => ApiError::new(
                ErrorCode::Forbidden,
                format!("target not allowed: {m} (see [sender] allow_private_targets)"),
            ),
            other => ApiError::validation(format!("`url`: {other}")),
        })
}

fn check_types(state: &ApiState, types: &[String]) -> Result<(), ApiError> {
    if types.is_empty() || types.len() > 256 {
        return Err(ApiError::validation(
            "`event_types` must list 1..=256 entries",
        ));
    }
    for t in types {
        match EventFilter::parse(t) {
            None => {
                return Err(ApiError::validation(format!(
                    "`event_types`: {t:?} is not a name, a `prefix.*` or `*`"
                )))
            }
            Some(EventFilter::Exact(name)) => {
                check_event_type("event_types", name, &state.event_types)?
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn check_extras(description: &str, metadata: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if description.len() > 1024 {
        return Err(ApiError::validation(
            "`description` is limited to 1024 bytes",
        ));
    }
    if metadata.len() > 64
        || metadata
            .iter()
            .any(|(k, v)| k.len() > 128 || v.len() > 1024)
    {
        return Err(ApiError::validation(
            "`metadata`: at most 64 keys of <= 128 bytes with values of <= 1024 bytes",
        ));
    }
    Ok(())
}

fn with_secret(ep: &Endpoint, status: StatusCode) -> Response {
    let mut v = serde_json::to_value(EndpointView::from(ep)).unwrap_or_default();
    v["secret"] = serde_json::Value::String(ep.secret.clone());
    (status, Json(v)).into_response()
}

/// An endpoint with its secret: the answer of a create, the only one that shows the secret.
#[derive(Serialize, ToSchema)]
#[schema(as = EndpointCreated)]
pub struct Created<'a> {
    #[serde(flatten)]
    pub endpoint: EndpointView<'a>,
    pub secret: String,
}

/// An endpoint with its delivery counts.
#[derive(Serialize, ToSchema)]
#[schema(as = EndpointDetail)]
pub struct Detail<'a> {
    #[serde(flatten)]
    pub endpoint: EndpointView<'a>,
    pub stats: StatsView,
    pub health: HealthView,
}

/// How the scheduler treats an endpoint now, from its recent attempts.
#[derive(Serialize, ToSchema)]
#[schema(as = EndpointHealth)]
pub struct HealthView {
    /// `closed` (delivering), `open` (deliveries wait, no attempt) or `probing` (one attempt
    /// at a time).
    pub breaker: &'static str,
    /// Attempts it may have in flight now (before its fair share of the in-flight budget).
    pub concurrency: usize,
    /// Failures (5xx, timeouts, connection errors) since its last success or other answer.
    pub consecutive_failures: u32,
    /// Its usual answer time in milliseconds, against which rising latency is judged (a
    /// success more than twice as slow, and 50 ms over it, shrinks `concurrency` by a
    /// quarter); null before its first answer since the start.
    pub usual_latency_ms: Option<u64>,
    /// The share of its recent attempts that failed, 0 to 1 (each attempt moves it an eighth
    /// of the way).
    pub failure_share: f64,
    /// A failure share of a quarter or more, or a breaker not closed: while healthy endpoints
    /// are delivering, failing ones start one attempt for every thirty-two of theirs.
    pub failing: bool,
    /// Failing, with due deliveries held back now while healthy endpoints deliver; they go one
    /// at a time as the healthy ones leave room.
    pub yielding: bool,
    /// Due deliveries waiting behind an open breaker.
    pub waiting: usize,
    /// Due deliveries waiting for a free slot, a token of the endpoint's rate limit, or their
    /// turn on a FIFO endpoint.
    pub queued: usize,
}

/// Create an endpoint. The answer holds its secret; nothing else ever shows it.
#[utoipa::path(
    post,
    path = "/v1/endpoints",
    tag = "endpoints",
    operation_id = "create_endpoint",
    request_body = CreateIn,
    responses(
        (status = 201, description = "Created", body = Created, links(
            ("GetEndpoint" = (operation_id = "get_endpoint", parameters(("id" = "$response.body#/id")))),
            ("ListDeliveries" = (operation_id = "list_deliveries", parameters(("id" = "$response.body#/id")))),
            ("TestEndpoint" = (operation_id = "test_endpoint", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 403, description = "`FORBIDDEN`: the URL targets a private or loopback address while `allow_private_targets = false`, the key lacks the scope, or names another tenant", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<ApiState>,
    caller: Principal,
    JsonBody(mut input): JsonBody<CreateIn>,
) -> Result<Response, ApiError> {
    let name = input
        .name
        .ok_or_else(|| ApiError::validation("`name` is required"))?;
    check_name(&name)?;
    let url = input
        .url
        .ok_or_else(|| ApiError::validation("`url` is required"))?;
    let event_types = input
        .event_types
        .ok_or_else(|| ApiError::validation("`event_types` is required"))?;
    check_types(&state, &event_types)?;
    let tenant = tenant_or_default(caller.claim(input.tenant.as_deref())?.map(str::to_owned))?;
    let description = input.description.unwrap_or_default();
    let metadata = input.metadata.unwrap_or_default();
    check_extras(&description, &metadata)?;
    let format = format_in!(input).apply(&Default::default(), true)?;
    let controls = hookd_types::DeliveryControls {
        rate_limit: input.rate_limit.map(controls::rate_limit).transpose()?,
        fifo: input.fifo.unwrap_or(false),
    };
    controls::check(&controls, input.fifo.is_some())?;
    let secret = formats::secret_or_generated(&format, input.secret)?;
    // Last: a forbidden target is a 403 only for an otherwise valid request.
    check_url(&state, &url)?;
    let now = now_ms();
    let ep = Endpoint {
        id: EndpointId::generate(),
        tenant,
        name,
        url,
        description,
        event_types,
        secret,
        enabled: input.enabled.unwrap_or(true),
        metadata,
        created_at_ms: now,
        updated_at_ms: now,
        format,
        previous_secrets: Vec::new(),
        controls,
    };
    let ep = state.registry.insert(ep).await?;
    controls::publish(&state, Default::default(), &ep).await;
    tracing::info!(endpoint = %ep.id, tenant = %ep.tenant, "endpoint created");
    Ok(with_secret(&ep, StatusCode::CREATED))
}

/// The paging of `GET /v1/endpoints`: `cursor` and `limit`.
pub fn parse_list_query(
    q: &HashMap<String, String>,
) -> Result<(Option<EndpointId>, usize), ApiError> {
    let limit = parse_limit(q.get("limit"))?;
    let cursor = match q.get("cursor") {
        Some(c) => Some(
            c.parse::<EndpointId>()
                .map_err(|_| ApiError::validation("`cursor` is not a cursor from this API"))?,
        ),
        None => None,
    };
    Ok((cursor, limit))
}

/// List endpoints, newest first.
#[utoipa::path(
    get,
    path = "/v1/endpoints",
    tag = "endpoints",
    operation_id = "list_endpoints",
    params(
        crate::ListParams,
        ("tenant" = Option<String>, Query, description = "Only this tenant's endpoints (a key sees only its own)"),
    ),
    responses((status = 200, description = "A page of endpoints", body = Page<EndpointView>))
)]
async fn list(
    State(state): State<ApiState>,
    caller: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenant = caller.claim(q.get("tenant").map(String::as_str))?;
    let (cursor, limit) = parse_list_query(&q)?;
    let (page, next) = state.registry.list(tenant, cursor, limit);
    Ok(Json(Page {
        data: page.iter().map(|e| EndpointView::from(&**e)).collect(),
        next_cursor: next.map(|c| c.to_string()),
    })
    .into_response())
}

/// An endpoint with its delivery counts.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    operation_id = "get_endpoint",
    params(crate::IdParam),
    responses((status = 200, description = "The endpoint", body = Detail))
)]
async fn read(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ep = load(&state, &caller, &id)?;
    let ep_id = ep.id;
    let stats = state.reads.endpoint_stats(ep_id).await?;
    let mut v = serde_json::to_value(EndpointView::from(&*ep)).unwrap_or_default();
    v["stats"] = serde_json::to_value(StatsView::from(stats)).unwrap_or_default();
    if let Some(h) = state.scheduler.health(ep_id).await {
        let health = HealthView {
            breaker: h.breaker.name(),
            concurrency: h.concurrency,
            consecutive_failures: h.consecutive_failures,
            usual_latency_ms: h.usual_latency_ms,
            failure_share: (h.failure_share * 1000.0).round() / 1000.0,
            failing: h.failing,
            yielding: h.yielding,
            waiting: h.parked,
            queued: h.queued,
        };
        v["health"] = serde_json::to_value(health).unwrap_or_default();
    }
    Ok(Json(v))
}

/// Change an endpoint's fields.
#[utoipa::path(
    patch,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    operation_id = "update_endpoint",
    params(crate::IdParam),
    request_body = PatchIn,
    responses(
        (status = 200, description = "The endpoint as changed", body = EndpointView),
        (status = 403, description = "`FORBIDDEN`: the new URL targets a forbidden address, or the key lacks the scope", body = ErrorBody),
    )
)]
async fn update(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
    JsonBody(mut input): JsonBody<PatchIn>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = load(&state, &caller, &id)?.id;
    let mut before = Default::default();
    let ep = state
        .registry
        .update(id, |current| -> Result<Endpoint, ApiError> {
            let mut ep = current.clone();
            before = current.controls;
            if let Some(limit) = input.rate_limit.take() {
                ep.controls.rate_limit = limit.map(controls::rate_limit).transpose()?;
            }
            if let Some(fifo) = input.fifo {
                ep.controls.fifo = fifo;
            }
            controls::check(&ep.controls, input.fifo.is_some())?;
            let format = format_in!(input).apply(&ep.format, false)?;
            if format.scheme != ep.format.scheme {
                ep.format = format;
                formats::check_scheme_change(&mut ep)?;
            } else {
                ep.format = format;
            }
            if let Some(name) = input.name {
                check_name(&name)?;
                ep.name = name;
            }
            if let Some(types) = input.event_types {
                check_types(&state, &types)?;
                ep.event_types = types;
            }
            if let Some(d) = input.description {
                ep.description = d;
            }
            if let Some(m) = input.metadata {
                ep.metadata = m;
            }
            check_extras(&ep.description, &ep.metadata)?;
            if let Some(enabled) = input.enabled {
                ep.enabled = enabled;
            }
            if let Some(url) = input.url {
                check_url(&state, &url)?;
                ep.url = url;
            }
            ep.updated_at_ms = now_ms();
            Ok(ep)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    controls::publish(&state, before, &ep).await;
    Ok(Json(
        serde_json::to_value(EndpointView::from(&*ep)).unwrap_or_default(),
    ))
}

/// Delete an endpoint; its deliveries are deleted with it, in the background. Those due are
/// dropped at once, with no attempt; a retry that comes due before its delivery is deleted ends
/// as `endpoint_deleted`.
#[utoipa::path(
    delete,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    operation_id = "delete_endpoint",
    params(crate::IdParam),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ep = load(&state, &caller, &id)?;
    let ep_id = ep.id;
    if !state.registry.remove(ep_id).await? {
        return Err(ApiError::not_found("endpoint"));
    }
    // Its shard drops its due jobs and forgets its health, limit and line; the store's purge
    // deletes its deliveries.
    state.scheduler.forget(ep_id);
    tracing::info!(endpoint = %ep.id, "endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Both optional: no body (or `{}`) asks for a generated secret.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RotateInput)]
struct RotateIn {
    secret: Option<String>,
    /// How long the replaced secret stays valid; default 24 h.
    #[schema(maximum = 604800)]
    overlap_seconds: Option<u64>,
}

/// The new secret, shown this once.
#[derive(Serialize, ToSchema)]
#[schema(as = Rotated)]
pub struct Rotated {
    pub secret: String,
    /// Until when the replaced secret is still signed with.
    #[schema(format = DateTime)]
    pub previous_secret_valid_until: Option<String>,
}

/// Replace the signing secret; the old one keeps signing alongside for the overlap.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/rotate-secret",
    tag = "endpoints",
    operation_id = "rotate_endpoint_secret",
    params(crate::IdParam),
    request_body(content = Option<RotateIn>, description = "Optional"),
    responses((status = 200, description = "Rotated", body = Rotated))
)]

async fn rotate(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
    limits: hookd_http::JsonLimits,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = load(&state, &caller, &id)?.id;
    // The body is optional: none (or `{}`) asks for a generated secret.
    let input: RotateIn = if body.iter().all(u8::is_ascii_whitespace) {
        RotateIn::default()
    } else {
        hookd_http::json::parse_json(&body, limits)?
    };
    let ep = state
        .registry
        .update(id, |current| -> Result<Endpoint, ApiError> {
            let mut ep = current.clone();
            let secret = formats::secret_or_generated(&ep.format, input.secret)?;
            let now = now_ms();
            formats::rotate(&mut ep, secret, input.overlap_seconds, now)?;
            ep.updated_at_ms = now;
            Ok(ep)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    tracing::info!(endpoint = %ep.id, "endpoint secret rotated");
    let until = ep.previous_secrets.iter().map(|p| p.expires_at_ms).max();
    Ok(Json(serde_json::json!({
        "secret": ep.secret,
        "previous_secret_valid_until": until.map(rfc3339),
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TestInput)]
struct TestIn {
    /// One of the daemon's event types.
    #[schema(required = true, value_type = String)]
    event_type: Option<String>,
}

/// How one test delivery went (it is sent once, now, and not recorded).
#[derive(Serialize, ToSchema)]
#[schema(as = TestResult)]
pub struct Tested {
    pub event_id: String,
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    #[schema(value_type = Option<hookd_types::ErrorKind>)]
    pub error: Option<&'static str>,
}

/// Send one test event to the endpoint now and report how it went.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/test",
    tag = "endpoints",
    operation_id = "test_endpoint",
    params(crate::IdParam),
    request_body = TestIn,
    responses((status = 200, description = "Attempted (see `delivered`)", body = Tested))
)]

async fn test(
    State(state): State<ApiState>,
    caller: Principal,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<TestIn>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ep = load(&state, &caller, &id)?;
    let event_type = input
        .event_type
        .ok_or_else(|| ApiError::validation("`event_type` is required"))?;
    check_event_type("event_type", &event_type, &state.event_types)?;
    let out = state.sender.send_test(&ep, &event_type).await;
    Ok(Json(serde_json::json!({
        "event_id": out.event_id,
        "delivered": out.delivered,
        "status_code": out.status_code,
        "latency_ms": out.latency_ms,
        "error": out.error.map(|e| e.as_str()),
    })))
}
