//! The OpenAPI 3.1 document of everything the daemon serves, and `GET /openapi.json`.
//!
//! Nothing here is written by hand twice: each route module declares its operations beside its
//! handlers (`#[utoipa::path]`, gathered in the module's `Doc`), the body types carry their
//! schemas, and this module only assembles them and adds what follows from the code's own tables:
//!
//! - security: every `/v1` route takes the bearer key; the scopes it needs come from the same
//!   [`RouteAccess`] tables the authentication layer enforces (a route in no table is the
//!   admin's alone, there as here);
//! - the error answers every route shares (the `{"error": {"code", "message"}}` envelope with the
//!   codes of [`ErrorCode`]), by what the route takes: a key, a path id, a body;
//! - what only the running daemon knows: its event types, and the web inspector's pages.
//!
//! A test in the daemon crate compares the routers' paths and methods with this document.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, HeaderBuilder, OpenApi, Ref, RefOr};
use utoipa::OpenApi as _;

use hookd_http::{Access, ErrorCode, RouteAccess};

/// What the document tells that the code alone does not know.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// `[events] types`: what `type` and `event_type` accept.
    pub event_types: Vec<String>,
    /// Static pages served beside the API: `(path, content type)`.
    pub pages: Vec<(String, &'static str)>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "hookd",
        description = "Webhook delivery: producers post events, hookd signs and delivers them to \
            every matching endpoint, retries failures and keeps every attempt.\n\n\
            Every `/v1` route takes `Authorization: Bearer <key>`: the admin key (every route, \
            every tenant) or a tenant's API key (its own tenant, the routes of its scopes). A \
            record of another tenant answers 404 exactly as a missing one. Every error is \
            `{\"error\": {\"code\", \"message\"}}` with a stable code; a refused request changes \
            nothing.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(openapi_json),
    tags(
        (name = "events", description = "Ingest: events are on disk before the answer"),
        (name = "endpoints", description = "Subscriptions and their wire formats"),
        (name = "deliveries", description = "Delivery history, attempts, manual retry"),
        (name = "api-keys", description = "Tenants' API keys (admin only)"),
        (name = "ops", description = "Probes, metrics and this document (no key)"),
        (name = "ui", description = "The web inspector's page and assets (no key)"),
    )
)]
struct ApiDoc;

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
async fn openapi_json(State(text): State<Arc<str>>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        text.to_string(),
    )
        .into_response()
}

/// `GET /openapi.json`, open to all (it holds no data). The document is built once, here.
pub fn router(site: &Site) -> Router {
    let text: Arc<str> = to_json(&document(site)).to_string().into();
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .with_state(text)
}

/// The document as JSON. utoipa 5 writes a response link's fields in snake case
/// (`operation_id`); OpenAPI spells them in camel case, as utoipa 6 does.
pub fn to_json(doc: &OpenApi) -> serde_json::Value {
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    let links = v["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|r| r.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(x) = link.remove(snake) {
                link.insert(camel.to_owned(), x);
            }
        }
    }
    v
}

/// The whole document.
pub fn document(site: &Site) -> OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in [
        hookd_ingest::routes::Doc::openapi(),
        crate::endpoints::Doc::openapi(),
        crate::deliveries::Doc::openapi(),
        crate::recovery::Doc::openapi(),
        crate::replay::Doc::openapi(),
        crate::keys::Doc::openapi(),
        crate::ops::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    for (path, content_type) in &site.pages {
        doc.paths
            .add_path_operation(path, vec![HttpMethod::Get], page(content_type));
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The admin key, or a tenant's API key (`hk_...`) from `POST /v1/api-keys`. \
                     The scopes listed on an operation are what a tenant key needs; `admin` means \
                     the admin key only.",
                ))
                .build(),
        ),
    );
    for (name, code, description) in SHARED_ERRORS {
        components.responses.insert(
            name.to_string(),
            RefOr::T(error_response(*code, description)),
        );
    }
    known_types(&mut components.schemas, &site.event_types);
    let tables: Vec<&[RouteAccess]> = crate::ACCESS
        .iter()
        .copied()
        .chain([hookd_ingest::ACCESS])
        .collect();
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            shared_errors(path, op);
            if path.starts_with("/v1/") {
                let access = tables
                    .iter()
                    .flat_map(|t| t.iter())
                    .find(|(m, p, _)| *m == method && p == path)
                    .map_or(Access::Admin, |(_, _, a)| *a);
                secure(op, access);
            }
        }
    }
    doc
}

/// The operations of a path item, with their method as the access tables name it.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("POST", item.post.as_mut()),
        ("PUT", item.put.as_mut()),
        ("PATCH", item.patch.as_mut()),
        ("DELETE", item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
}

/// `(component name, code, when)` of the error answers routes share.
const SHARED_ERRORS: &[(&str, ErrorCode, &str)] = &[
    (
        "ValidationError",
        ErrorCode::ValidationError,
        "`VALIDATION_ERROR`: malformed JSON, a missing or invalid field, a bad query parameter",
    ),
    (
        "Unauthorized",
        ErrorCode::Unauthorized,
        "`UNAUTHORIZED`: no bearer key, or a wrong, revoked or expired one",
    ),
    (
        "Forbidden",
        ErrorCode::Forbidden,
        "`FORBIDDEN`: the API key lacks the route's scope, or names another tenant",
    ),
    (
        "NotFound",
        ErrorCode::NotFound,
        "`NOT_FOUND`: no such id (for an API key, also another tenant's id)",
    ),
    (
        "PayloadTooLarge",
        ErrorCode::PayloadTooLarge,
        "`PAYLOAD_TOO_LARGE`: the body is over `[ingest] max_body_bytes`",
    ),
    (
        "RateLimitExceeded",
        ErrorCode::RateLimitExceeded,
        "`RATE_LIMIT_EXCEEDED`: the API key is over `[auth] key_rate_limit` requests per second",
    ),
    (
        "InternalError",
        ErrorCode::InternalError,
        "`INTERNAL_ERROR`: a storage failure (the detail is in the daemon's log)",
    ),
    (
        "Unavailable",
        ErrorCode::Unavailable,
        "`UNAVAILABLE`: the daemon is shutting down, or at `[server] max_connections`",
    ),
];

fn error_response(code: ErrorCode, description: &str) -> utoipa::openapi::Response {
    let example = json!({"error": {"code": code.as_str(), "message": description}});
    let mut r = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::builder()
            .schema(Some(Ref::from_schema_name("Error")))
            .example(Some(example))
            .build(),
    );
    if matches!(
        code,
        ErrorCode::RateLimitExceeded | ErrorCode::RateLimited | ErrorCode::Unavailable
    ) {
        r = r.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds"))
                .build(),
        );
    }
    r.build()
}

/// Adds the shared error answers `op` can give, unless the route documents its own for that
/// status.
fn shared_errors(path: &str, op: &mut Operation) {
    let has_id = path.contains('{');
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, name: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    // The listener refuses connections over its limit on every route.
    add("503", "Unavailable");
    if !path.starts_with("/v1/") {
        return;
    }
    add("400", "ValidationError");
    add("401", "Unauthorized");
    add("403", "Forbidden");
    if has_id {
        add("404", "NotFound");
    }
    if has_body {
        add("413", "PayloadTooLarge");
    }
    add("429", "RateLimitExceeded");
    add("500", "InternalError");
}

/// The bearer key, with the scope a tenant key needs for `access`.
fn secure(op: &mut Operation, access: Access) {
    let (scopes, who): (Vec<&str>, String) = match access {
        Access::Admin => (vec!["admin"], "the admin key only".into()),
        Access::Scope(s) => (
            vec![s.as_str()],
            format!("the admin key, or an API key with scope `{s}`"),
        ),
        Access::AnyKey => (vec![], "the admin key or any API key".into()),
    };
    op.security = Some(vec![SecurityRequirement::new("bearer", scopes)]);
    let note = format!("Access: {who}.");
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
        _ => note,
    });
}

/// The daemon's event types, as the enum of the fields that must name one.
fn known_types(schemas: &mut std::collections::BTreeMap<String, RefOr<Schema>>, types: &[String]) {
    if types.is_empty() {
        return;
    }
    let names = || types.iter().map(|t| json!(t));
    for (schema, field) in [("EventInput", "type"), ("TestInput", "event_type")] {
        if let Some(f) = property(schemas, schema, field) {
            f.enum_values = Some(names().collect());
        }
    }
    // Endpoints subscribe to known names, `*`, or any `prefix.*`.
    let filter = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names().chain([json!("*")]))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.\*$")),
        )
        .description(Some("An event type, `prefix.*` or `*`"))
        .build();
    for schema in ["EndpointInput", "EndpointPatch"] {
        if let Some(RefOr::T(Schema::Array(a))) = schemas.get_mut(schema).and_then(|s| match s {
            RefOr::T(Schema::Object(o)) => o.properties.get_mut("event_types"),
            _ => None,
        }) {
            a.items = ArrayItems::RefOrSchema(Box::new(RefOr::T(Schema::OneOf(filter.clone()))));
        }
    }
}

/// The object schema of `schema`'s property `field`, if both are there.
fn property<'a>(
    schemas: &'a mut std::collections::BTreeMap<String, RefOr<Schema>>,
    schema: &str,
    field: &str,
) -> Option<&'a mut utoipa::openapi::schema::Object> {
    match schemas.get_mut(schema)? {
        RefOr::T(Schema::Object(o)) => match o.properties.get_mut(field)? {
            RefOr::T(Schema::Object(f)) => Some(f),
            _ => None,
        },
        _ => None,
    }
}

/// A static page of the web inspector.
fn page(content_type: &str) -> Operation {
    OperationBuilder::new()
        .tag("ui")
        .summary(Some("A page or asset of the web inspector"))
        .response(
            "200",
            ResponseBuilder::new().description("The file").content(
                content_type,
                Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
            ),
        )
        .build()
}

#[cfg(test)]
mod tests;
