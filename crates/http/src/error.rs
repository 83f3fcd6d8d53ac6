//! `{"error": {"code": "...", "message": "..."}}` with a fixed set of codes.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ValidationError,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    RateLimitExceeded,
    Unavailable,
    InternalError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        Self::ValidationError,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::RateLimitExceeded,
        Self::Unavailable,
        Self::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "VALIDATION_ERROR",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            Self::Unavailable => "UNAVAILABLE",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::ValidationError => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited | Self::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The stable codes, as the OpenAPI document shows them.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Self::ALL.iter().map(|c| c.as_str())))
            .description(Some(
                "A stable code; the status of the answer follows from it",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The body of every error answer: `{"error": {"code": "...", "message": "..."}}`, as
/// [`ApiError`] writes it and the OpenAPI document shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error, example = json!({
    "error": {"code": "VALIDATION_ERROR", "message": "`name` is required"}
}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people: names the offending field where there is one. Not stable.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, sent as `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

/// A rejected field is the caller's to fix; the message names the field.
impl From<hookd_types::check::FieldError> for ApiError {
    fn from(e: hookd_types::check::FieldError) -> Self {
        Self::validation(e.to_string())
    }
}

/// Storage failures are ours, not the caller's: log the detail, answer a generic 500.
impl From<hookd_log::LogError> for ApiError {
    fn from(e: hookd_log::LogError) -> Self {
        tracing::error!(error = %e, "storage failure");
        Self::new(ErrorCode::InternalError, "internal storage error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut resp = (self.code.status(), axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Fallback for unknown routes.
pub async fn not_found_route() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

/// The code a bare status maps to when something below the handlers (a routing miss, an
/// extractor's rejection) answered without the envelope.
fn code_for(status: http::StatusCode) -> (http::StatusCode, ErrorCode) {
    use http::StatusCode as S;
    match status {
        // A known route without this method: there is no such route for the request.
        S::NOT_FOUND | S::METHOD_NOT_ALLOWED => (S::NOT_FOUND, ErrorCode::NotFound),
        S::UNAUTHORIZED => (status, ErrorCode::Unauthorized),
        S::FORBIDDEN => (status, ErrorCode::Forbidden),
        S::CONFLICT => (status, ErrorCode::Conflict),
        S::PAYLOAD_TOO_LARGE => (status, ErrorCode::PayloadTooLarge),
        S::TOO_MANY_REQUESTS => (status, ErrorCode::RateLimited),
        S::SERVICE_UNAVAILABLE => (status, ErrorCode::Unavailable),
        s if s.is_client_error() => (S::BAD_REQUEST, ErrorCode::ValidationError),
        _ => (S::INTERNAL_SERVER_ERROR, ErrorCode::InternalError),
    }
}

/// Middleware, outermost: every error answer leaves in the envelope. Answers already in JSON
/// (the handlers' own) pass untouched; bare ones from axum get a code by status and keep their
/// text as the message.
pub async fn envelope_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
    let (new_status, code) = code_for(status);
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        t => t.to_owned(),
    };
    let mut out = ApiError::new(code, message).into_response();
    *out.status_mut() = new_status;
    if let Some(allow) = parts.headers.get(http::header::ALLOW) {
        out.headers_mut().insert(http::header::ALLOW, allow.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(e: ApiError) -> (StatusCode, serde_json::Value, Option<String>) {
        body_of_response(e.into_response()).await
    }

    async fn body_of_response(resp: Response) -> (StatusCode, serde_json::Value, Option<String>) {
        let status = resp.status();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap(), retry)
    }

    #[tokio::test]
    async fn storage_failure_is_internal_error() {
        let err: ApiError = hookd_log::LogError::Corrupt {
            key: "e1".into(),
            detail: "disk on fire".into(),
        }
        .into();
        let (status, body, _) = body_of(err).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "INTERNAL_ERROR");
        // The detail is logged, never sent.
        assert!(!body.to_string().contains("disk on fire"));
    }

    #[tokio::test]
    async fn every_code_has_its_status_and_shape() {
        use ErrorCode::*;
        for (code, status) in [
            (ValidationError, 400),
            (Unauthorized, 401),
            (Forbidden, 403),
            (NotFound, 404),
            (Conflict, 409),
            (PayloadTooLarge, 413),
            (RateLimited, 429),
            (RateLimitExceeded, 429),
            (Unavailable, 503),
            (InternalError, 500),
        ] {
            let (s, body, retry) = body_of(ApiError::new(code, "m").with_retry_after(2)).await;
            assert_eq!(s.as_u16(), status);
            assert_eq!(body["error"]["code"], code.as_str());
            assert_eq!(body["error"]["message"], "m");
            assert_eq!(retry.as_deref(), Some("2"));
        }
    }

    #[tokio::test]
    async fn bare_errors_get_the_envelope_json_ones_pass() {
        use axum::routing::get;
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route("/own", get(|| async { ApiError::conflict("mine") }))
            .layer(axum::middleware::from_fn(envelope_errors));
        let call = |method: &str, uri: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let resp = app.clone().oneshot(call("POST", "/ok")).await.unwrap();
        assert_eq!(resp.headers()["allow"], "GET,HEAD");
        let (status, body, _) = body_of_response(resp).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "NOT_FOUND");
        let resp = app.clone().oneshot(call("GET", "/own")).await.unwrap();
        let (status, body, _) = body_of_response(resp).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["message"], "mine");
        let resp = app.oneshot(call("GET", "/ok")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
