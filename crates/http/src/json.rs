//! A JSON body extractor whose every failure is a `VALIDATION_ERROR` or `PAYLOAD_TOO_LARGE` in the
//! envelope, with serde's message (which names the position) after the path of the offending
//! field (which serde's message alone does not name for a value of the wrong type).

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Reads the whole body, mapping the body-limit rejection to 413.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge, "request body too large")
        } else {
            ApiError::validation(format!("could not read body: {rej}"))
        }
    })
}

pub fn parse_json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        if e.path().iter().next().is_none() {
            ApiError::validation(format!("invalid JSON: {}", e.inner()))
        } else {
            ApiError::validation(format!("`{}`: {}", e.path(), e.inner()))
        }
    })?;
    // Trailing characters after the value are an error, as in `serde_json::from_slice`.
    de.end()
        .map_err(|e| ApiError::validation(format!("invalid JSON: {e}")))?;
    Ok(value)
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}
