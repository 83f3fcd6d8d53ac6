//! The `Idempotency-Key` request header, as every route that takes one reads it: at ingest
//! (one event per key and tenant) and on replays (one replay per key and endpoint).

use axum::http::HeaderMap;

use crate::ApiError;

/// The header's name.
pub const HEADER: &str = "idempotency-key";

/// Checks a key: 1 to 255 printable ASCII characters, no spaces.
pub fn check(k: &str) -> Result<(), ApiError> {
    if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(ApiError::validation(
            "Idempotency-Key must be 1..=255 printable ASCII characters",
        ));
    }
    Ok(())
}

/// The request's key, checked; none if the header is absent.
pub fn key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .map_err(|_| ApiError::validation("Idempotency-Key must be printable ASCII"))?;
    check(k)?;
    Ok(Some(k))
}
