//! The web inspector: plain HTML, CSS and JavaScript modules compiled into the binary and
//! served under `/ui` with a strict Content-Security-Policy.
//!
//! - [`router`]: `GET /ui` (the page) and `GET /ui/<asset>`.
//! - `assets/`: the page. It holds no data: every read and action goes through the `/v1` API
//!   with the API key the user signs in with (kept in the tab's `sessionStorage` only), and
//!   everything the API returns is rendered as text, never as markup.
//!
//! This crate owns the assets and their headers. It must not read the store or check keys: the
//! page is public, the data behind it is not.

use axum::http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Same-origin everything, no inline script or style, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// `(path under /ui/, content type, bytes)`
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/dom.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

const INDEX: &str = include_str!("../assets/index.html");

fn respond(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Assets change with the binary; a restart after an upgrade must not serve stale scripts.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Every path [`router`] serves, with its content type (for the OpenAPI document).
pub fn pages() -> Vec<(String, &'static str)> {
    let html = "text/html; charset=utf-8";
    [("/ui".to_owned(), html), ("/ui/".to_owned(), html)]
        .into_iter()
        .chain(
            ASSETS
                .iter()
                .map(|&(name, ct, _)| (format!("/ui/{name}"), ct)),
        )
        .collect()
}

/// The inspector's routes. Mount on the daemon's root router, outside authentication.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let index = || async { respond("text/html; charset=utf-8", INDEX) };
    let mut r = Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index));
    for &(name, content_type, body) in ASSETS {
        r = r.route(
            &format!("/ui/{name}"),
            get(move || async move { respond(content_type, body) }),
        );
    }
    r
}

#[cfg(test)]
mod tests;
