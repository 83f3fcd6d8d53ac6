//! `/v1/api-keys`: the admin issues, lists and revokes tenants' API keys. A key's text is in the
//! answer that creates it and nowhere else; only its digest is stored.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use hookd_http::auth::new_key;
use hookd_http::views::Page;
use hookd_http::{blocking, Access, ApiError, JsonBody, RouteAccess};
use hookd_types::id::is_valid_token;
use hookd_types::time::{now_ms, parse_time, rfc3339, MAX_MS};
use hookd_types::{ApiKey, KeyId, Scope, Scopes};

use crate::{parse_limit, ApiState};

/// Keys never manage keys: these routes are the admin's alone.
pub const ACCESS: &[RouteAccess] = &[
    ("POST", "/v1/api-keys", Access::Admin),
    ("GET", "/v1/api-keys", Access::Admin),
    ("GET", "/v1/api-keys/{id}", Access::Admin),
    ("DELETE", "/v1/api-keys/{id}", Access::Admin),
];

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, read, revoke))]
pub struct Doc;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/api-keys", post(create).get(list))
        .route("/v1/api-keys/{id}", get(read).delete(revoke))
}

/// A new tenant key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKeyInput, example = json!({
    "tenant": "acme", "name": "ci", "scopes": ["events:write", "deliveries:read"]
}))]
struct CreateIn {
    #[schema(required = true, value_type = String, pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    tenant: Option<String>,
    #[schema(required = true, value_type = String, min_length = 1, max_length = 256)]
    name: Option<String>,
    #[schema(required = true, value_type = Vec<Scope>, min_items = 1)]
    scopes: Option<Vec<String>>,
    /// In the future; never expires when absent.
    expires_at: Option<TimeIn>,
}

/// A time as the API takes it: RFC 3339 text, or unix milliseconds as a number or as text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum TimeIn {
    Ms(u64),
    Text(String),
}

impl TimeIn {
    /// Unix milliseconds; a 400 naming `field` when it is no time up to year 9999.
    pub(crate) fn ms(self, field: &str) -> Result<u64, ApiError> {
        match self {
            TimeIn::Ms(ms) => (ms <= MAX_MS).then_some(ms),
            TimeIn::Text(t) => parse_time(&t),
        }
        .ok_or_else(|| {
            ApiError::validation(format!(
                "`{field}` must be RFC 3339 or unix milliseconds, up to year 9999"
            ))
        })
    }
}

/// A tenant's API key (never its text, which only its creation shows).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
struct KeyView<'a> {
    #[schema(example = "key_01JTQ8Z4X5C6V7B8N9M0K1J2H3")]
    id: String,
    tenant: &'a str,
    name: &'a str,
    #[schema(value_type = Vec<Scope>)]
    scopes: Vec<&'static str>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// A new key and its text, shown this once.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKeyCreated)]
#[allow(dead_code)] // the answer is built as JSON; this is its shape, for the document
pub struct Created<'a> {
    #[serde(flatten)]
    view: KeyView<'a>,
    /// Use as `Authorization: Bearer <key>`.
    #[schema(
        example = "hk_01JTQ8Z4X5C6V7B8N9M0K1J2H3_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )]
    key: String,
}

impl<'a> From<&'a ApiKey> for KeyView<'a> {
    fn from(k: &'a ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            tenant: &k.tenant,
            name: &k.name,
            scopes: k.scopes.iter().map(Scope::as_str).collect(),
            created_at: rfc3339(k.created_at_ms),
            expires_at: k.expires_at_ms.map(rfc3339),
        }
    }
}

fn parse_scopes(names: &[String]) -> Result<Scopes, ApiError> {
    if names.is_empty() {
        return Err(ApiError::validation(
            "`scopes` must list at least one scope",
        ));
    }
    names
        .iter()
        .map(|n| {
            Scope::parse(n).ok_or_else(|| {
                let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::validation(format!(
                    "`scopes`: {n:?} is not one of {}",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// A key's expiry: a time after `now`.
fn expiry(t: TimeIn, now: u64) -> Result<u64, ApiError> {
    let ms = t.ms("expires_at")?;
    if ms <= now {
        return Err(ApiError::validation("`expires_at` must be in the future"));
    }
    Ok(ms)
}

/// Issue a tenant's API key (admin only). The answer holds its text; nothing else ever shows it.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "api-keys",
    operation_id = "create_api_key",
    request_body = CreateIn,
    responses((status = 201, description = "Created", body = Created))
)]
async fn create(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<CreateIn>,
) -> Result<Response, ApiError> {
    let tenant = input
        .tenant
        .ok_or_else(|| ApiError::validation("`tenant` is required"))?;
    if !is_valid_token(&tenant) {
        return Err(ApiError::validation(
            "`tenant` must be 1..=128 characters of [A-Za-z0-9_.:-]",
        ));
    }
    let name = input
        .name
        .ok_or_else(|| ApiError::validation("`name` is required"))?;
    if name.trim().is_empty() || name.len() > 256 {
        return Err(ApiError::validation("`name` must be 1..=256 characters"));
    }
    let scopes = parse_scopes(
        input
            .scopes
            .as_deref()
            .ok_or_else(|| ApiError::validation("`scopes` is required"))?,
    )?;
    let now = now_ms();
    let expires_at_ms = input.expires_at.map(|t| expiry(t, now)).transpose()?;
    let id = KeyId::generate();
    let (text, key_sha256) = new_key(id)?;
    let record = ApiKey {
        id,
        tenant,
        name,
        scopes,
        key_sha256,
        created_at_ms: now,
        expires_at_ms,
    };
    let keys = state.keys.clone();
    let key = blocking(move || Ok(keys.insert(record)?)).await?;
    tracing::info!(key = %key.id, tenant = %key.tenant, scopes = ?key.scopes, "API key created");
    let mut v = serde_json::to_value(KeyView::from(&*key)).unwrap_or_default();
    v["key"] = serde_json::Value::String(text.expose().to_owned());
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// List API keys (admin only).
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "api-keys",
    operation_id = "list_api_keys",
    params(
        crate::ListParams,
        ("tenant" = Option<String>, Query, description = "Only this tenant's keys"),
    ),
    responses((status = 200, description = "A page of keys", body = Page<KeyView>))
)]
async fn list(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = parse_limit(q.get("limit"))?;
    let cursor = q
        .get("cursor")
        .map(|c| {
            c.parse::<KeyId>()
                .map_err(|_| ApiError::validation("`cursor` is not a cursor from this API"))
        })
        .transpose()?;
    let (page, next) = state
        .keys
        .list(q.get("tenant").map(String::as_str), cursor, limit);
    Ok(Json(Page {
        data: page.iter().map(|k| KeyView::from(&**k)).collect(),
        next_cursor: next.map(|c| c.to_string()),
    })
    .into_response())
}

fn parse_id(id: &str) -> Result<KeyId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("API key"))
}

/// One API key (admin only).
#[utoipa::path(
    get,
    path = "/v1/api-keys/{id}",
    tag = "api-keys",
    operation_id = "get_api_key",
    params(("id" = String, Path, description = "The key's id (`key_...`)")),
    responses((status = 200, description = "The key", body = KeyView))
)]
async fn read(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = state
        .keys
        .get(parse_id(&id)?)
        .ok_or_else(|| ApiError::not_found("API key"))?;
    Ok(Json(
        serde_json::to_value(KeyView::from(&*key)).unwrap_or_default(),
    ))
}

/// Revoke an API key (admin only): it stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "api-keys",
    operation_id = "revoke_api_key",
    params(("id" = String, Path, description = "The key's id (`key_...`)")),
    responses((status = 204, description = "Revoked"))
)]
async fn revoke(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let keys = state.keys.clone();
    if !blocking(move || Ok(keys.remove(id)?)).await? {
        return Err(ApiError::not_found("API key"));
    }
    tracing::info!(key = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
