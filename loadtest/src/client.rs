//! The pooled keep-alive hyper-util client, target parsing (127.0.0.1 only) and request helpers.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled HTTP/1.1 keep-alive client keeping up to `max_idle` idle connections per host.
pub fn new_client(max_idle: usize) -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .build(conn)
}

/// A hookd base URL, always `http://127.0.0.1:PORT`.
#[derive(Debug, Clone)]
pub struct Target {
    pub base: String,
}

/// Accepts only `http://127.0.0.1[:port][/]`: this tool never sends anywhere else.
pub fn parse_target(s: &str) -> Result<Target> {
    let uri: Uri = s.parse().with_context(|| format!("bad target URL {s:?}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("target {s:?}: only http:// is supported");
    }
    if uri.host() != Some("127.0.0.1") {
        bail!("target {s:?}: refusing any host but 127.0.0.1");
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        bail!("target {s:?}: no userinfo allowed");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        bail!("target {s:?}: give the base URL only (no path or query)");
    }
    let port = uri.port_u16().unwrap_or(80);
    Ok(Target {
        base: format!("http://127.0.0.1:{port}"),
    })
}

/// Builds a request to `base` + `path` with an optional bearer key and a JSON body.
pub fn request(
    method: Method,
    base: &str,
    path: &str,
    key: Option<&str>,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    b.body(Full::new(body)).expect("valid request")
}

/// What became of one request.
#[derive(Debug)]
pub enum Outcome {
    /// A full response: status and body.
    Response(u16, Bytes),
    /// No response: `deadline` (cut off by --max-seconds), `connect` or `io`.
    Failed(&'static str),
}

/// Sends `req`, reads the whole response body, gives up at `deadline`.
pub async fn send(client: &HttpClient, req: Request<Full<Bytes>>, deadline: Instant) -> Outcome {
    let fut = async {
        let resp =
            client
                .request(req)
                .await
                .map_err(|e| if e.is_connect() { "connect" } else { "io" })?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|_| "io")?
            .to_bytes();
        Ok::<_, &'static str>((status, body))
    };
    match tokio::time::timeout_at(deadline, fut).await {
        Err(_) => Outcome::Failed("deadline"),
        Ok(Ok((s, b))) => Outcome::Response(s, b),
        Ok(Err(kind)) => Outcome::Failed(kind),
    }
}

/// Latency histogram in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// Counts of failures by HTTP status or transport error kind.
pub type Errors = BTreeMap<String, u64>;

pub fn add_error(errors: &mut Errors, key: impl Into<String>) {
    *errors.entry(key.into()).or_default() += 1;
}

pub fn merge_errors(into: &mut Errors, from: Errors) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

pub fn errors_line(errors: &Errors) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert_eq!(
            parse_target("http://127.0.0.1:8080").unwrap().base,
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            parse_target("http://127.0.0.1:9/").unwrap().base,
            "http://127.0.0.1:9"
        );
        assert_eq!(
            parse_target("http://127.0.0.1").unwrap().base,
            "http://127.0.0.1:80"
        );
        for bad in [
            "http://localhost:8080",
            "http://10.0.0.1:8080",
            "http://127.0.0.2:8080",
            "http://[::1]:8080",
            "https://127.0.0.1:8080",
            "http://example.com",
            "http://127.0.0.1:8080/v1",
            "http://user@127.0.0.1:8080",
            "127.0.0.1:8080",
        ] {
            assert!(parse_target(bad).is_err(), "{bad} accepted");
        }
    }
}
