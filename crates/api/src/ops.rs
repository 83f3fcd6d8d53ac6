//! Liveness and metrics, open to probes and scrapers (no key).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use hookd_http::Draining;
use hookd_types::metrics::METRICS;

pub fn router(draining: Draining) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(draining)
}

async fn health(State(draining): State<Draining>) -> Response {
    match draining.check() {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => e.into_response(),
    }
}

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
