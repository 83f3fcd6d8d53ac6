//! Bearer-key authentication and the draining switch, as axum middleware.
//!
//! Only the SHA-256 of the admin key is kept in memory and on disk; comparison is constant-time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{ApiError, ErrorCode};

#[derive(Clone)]
pub struct AdminKey {
    hash: Arc<[u8; 32]>,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl AdminKey {
    pub fn from_hash(hash: [u8; 32]) -> Self {
        Self {
            hash: Arc::new(hash),
        }
    }

    pub fn verify(&self, presented: &str) -> bool {
        // Comparing digests (not keys) in constant time: nothing about the key leaks.
        let digest = sha256(presented.as_bytes());
        digest
            .iter()
            .zip(self.hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Rejects requests without `Authorization: Bearer <admin key>`.
pub async fn require_admin(State(key): State<AdminKey>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(k) if key.verify(k) => next.run(req).await,
        Some(_) => axum::response::IntoResponse::into_response(ApiError::new(
            ErrorCode::Unauthorized,
            "invalid API key",
        )),
        None => axum::response::IntoResponse::into_response(ApiError::new(
            ErrorCode::Unauthorized,
            "missing 'Authorization: Bearer <key>' header",
        )),
    }
}

/// Set once shutdown starts: new work is refused with 503 while in-flight work finishes.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn check(&self) -> Result<(), ApiError> {
        if self.is_draining() {
            Err(ApiError::new(ErrorCode::Unavailable, "hookd is shutting down").with_retry_after(5))
        } else {
            Ok(())
        }
    }
}

/// Answers 503 UNAVAILABLE to everything once draining.
pub async fn refuse_when_draining(
    State(draining): State<Draining>,
    req: Request,
    next: Next,
) -> Response {
    match draining.check() {
        Ok(()) => next.run(req).await,
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}
