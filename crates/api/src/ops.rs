//! Liveness and metrics, open to probes and scrapers (no key).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use hookd_http::Draining;
use hookd_types::metrics::METRICS;

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, metrics))]
pub struct Doc;

/// `{"status": "ok"}`
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

pub fn router(draining: Draining) -> Router {
    routes().with_state(draining)
}

/// The routes, before their state.
pub fn routes() -> Router<Draining> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// Liveness: 200 while serving, 503 once shutting down.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    operation_id = "health",
    security(()),
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "`UNAVAILABLE`: shutting down", body = hookd_http::error::ErrorBody),
    )
)]
async fn health(State(draining): State<Draining>) -> Response {
    match draining.check() {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    security(()),
    responses((status = 200, description = "Every metric", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"))
)]
async fn metrics() -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        METRICS.render(),
    )
        .into_response()
}
