//! Authentication: the bearer key of each request resolved to a [`Principal`] by the [`Gate`]
//! layer, which also applies the per-key rate limit and the route's [`Access`]; and the draining
//! switch.
//!
//! Only SHA-256 digests of keys are kept, in memory and on disk; digests are compared in
//! constant time. A key's text exists only in the answer that creates it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::rand::{SecureRandom, SystemRandom};

use hookd_log::KeyRegistry;
use hookd_types::api_key::{format_key, split_key, SECRET_HEX_LEN};
use hookd_types::time::now_ms;
use hookd_types::KeyId;

use crate::error::{ApiError, ErrorCode};
use crate::principal::{Access, Principal, RouteAccess};
use crate::ratelimit::RateLimiter;

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

/// Whether `presented` hashes to `digest`. Digests (not keys) are compared, in constant time:
/// nothing about a key leaks through timing.
pub fn digest_matches(presented: &str, digest: &[u8; 32]) -> bool {
    sha256(presented.as_bytes())
        .iter()
        .zip(digest.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

impl AdminKey {
    pub fn from_hash(hash: [u8; 32]) -> Self {
        Self {
            hash: Arc::new(hash),
        }
    }

    pub fn verify(&self, presented: &str) -> bool {
        digest_matches(presented, &self.hash)
    }
}

/// The text of a new API key. Its `Debug` shows nothing; [`KeyText::expose`] is for the one
/// answer that hands it out.
pub struct KeyText(String);

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyText(<redacted>)")
    }
}

impl KeyText {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A new key for id `id` (32 random bytes from the system generator) and the digest to store.
pub fn new_key(id: KeyId) -> Result<(KeyText, [u8; 32]), ApiError> {
    let mut secret = [0u8; SECRET_HEX_LEN / 2];
    SystemRandom::new().fill(&mut secret).map_err(|_| {
        tracing::error!("the system random number generator failed");
        ApiError::new(ErrorCode::InternalError, "could not generate a key")
    })?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let text = format_key(id, &hex);
    let digest = sha256(text.as_bytes());
    Ok((KeyText(text), digest))
}

/// The `Authorization: Bearer <key>` of a request, if any.
fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Resolves each request's caller once and lets it through only where it may go.
pub struct Gate {
    admin: AdminKey,
    keys: Arc<KeyRegistry>,
    limiter: RateLimiter<KeyId>,
    routes: HashMap<(&'static str, &'static str), Access>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// `key_rate_limit`: requests per second per API key (0: unlimited); `tables`: the
    /// [`RouteAccess`] of every router behind the gate.
    pub fn new(
        admin: AdminKey,
        keys: Arc<KeyRegistry>,
        key_rate_limit: u32,
        tables: &[&[RouteAccess]],
    ) -> Self {
        let routes = tables
            .iter()
            .flat_map(|t| t.iter())
            .map(|(method, path, access)| ((*method, *path), *access))
            .collect();
        Self {
            admin,
            keys,
            limiter: RateLimiter::new(key_rate_limit),
            routes,
        }
    }

    /// The caller presenting `presented` at `now_ms`: the admin, a live tenant key, or 401.
    pub fn resolve(&self, presented: Option<&str>, now_ms: u64) -> Result<Principal, ApiError> {
        let Some(presented) = presented else {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "missing 'Authorization: Bearer <key>' header",
            ));
        };
        if self.admin.verify(presented) {
            return Ok(Principal::Admin);
        }
        let key = split_key(presented)
            .and_then(|id| self.keys.get(id))
            .filter(|k| digest_matches(presented, &k.key_sha256))
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "invalid API key"))?;
        if key.is_expired(now_ms) {
            return Err(ApiError::new(ErrorCode::Unauthorized, "API key expired"));
        }
        Ok(Principal::Tenant(key))
    }

    /// What the route `path` (as declared) asks for `method`; `None` if no table lists it.
    fn access(&self, method: &http::Method, path: &str) -> Option<Access> {
        let method = if method == http::Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        self.routes.get(&(method, path)).copied()
    }

    fn admit(&self, req: &Request) -> Result<Principal, ApiError> {
        let principal = self.resolve(bearer(req.headers()), now_ms())?;
        let Principal::Tenant(key) = &principal else {
            return Ok(principal);
        };
        self.limiter.take(&key.id, 1).map_err(|secs| {
            ApiError::new(
                ErrorCode::RateLimitExceeded,
                "this API key is over its request rate limit",
            )
            .with_retry_after(secs)
        })?;
        let access = req
            .extensions()
            .get::<MatchedPath>()
            .and_then(|p| self.access(req.method(), p.as_str()));
        match access {
            Some(a) => principal.check(a)?,
            // Unlisted: a method the route lacks, or a route nobody opened to keys.
            None => return Err(ApiError::new(ErrorCode::NotFound, "no such route")),
        }
        Ok(principal)
    }
}

/// Middleware over every `/v1` route: resolves the caller, applies its rate limit and the
/// route's access, and hands the [`Principal`] to the handler. Nothing of the key is logged.
pub async fn authenticate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    match gate.admit(&req) {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
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
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests;
