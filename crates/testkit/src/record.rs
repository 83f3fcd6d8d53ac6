//! What the receiver keeps: every request ([`Recorded`]) or only running totals ([`Counts`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Version;
use serde_json::Value;

/// What the receiver keeps of each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Every request as a [`Recorded`], plus the [`Counts`].
    Requests,
    /// Only the [`Counts`]: the fast path for load runs.
    Counts,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: Version,
    /// Lowercase names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
    /// When the request head arrived.
    pub at: Instant,
    /// 1-based number of this request among the requests to its path.
    pub nth: usize,
    /// 1-based number of the connection it came on.
    pub conn: u64,
    /// The status the receiver decided to answer; 0 when it sends none (hang, close, reset).
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id").unwrap_or("")
    }

    /// The body as text; panics when it is not UTF-8.
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One request as an [`Observer`] sees it: read to its end, counted, not yet answered.
#[derive(Debug)]
pub struct Observed<'a> {
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    /// The status the receiver is about to answer; 0 when it sends none.
    pub status: u16,
}

/// Called with every request counted, in both [`Record`] modes, on the connection's task: keep
/// it short (load runs take their per-path counts and latencies from it).
#[derive(Clone)]
pub struct Observer(Arc<dyn Fn(&Observed<'_>) + Send + Sync>);

impl Observer {
    pub fn new(f: impl Fn(&Observed<'_>) + Send + Sync + 'static) -> Observer {
        Observer(Arc::new(f))
    }

    pub(crate) fn call(&self, seen: &Observed<'_>) {
        (self.0)(seen)
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer(..)")
    }
}

/// Running totals, kept in both [`Record`] modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered as scripted (not the ones refused by [`Builder::post_only`]).
    pub requests: u64,
    /// Distinct `webhook-id` values.
    pub unique_ids: u64,
    /// Distinct (path, `webhook-id`) pairs: one per endpoint and event.
    pub deliveries: u64,
    pub body_bytes: u64,
    /// Requests refused with 405 by [`Builder::post_only`].
    pub non_post: u64,
    /// TCP connections accepted.
    pub connections: u64,
}

/// One line per request, for failure messages.
pub fn describe(reqs: &[Recorded]) -> String {
    reqs.iter()
        .map(|r| {
            format!(
                "  {} {} webhook-id={:?} -> {} body={}",
                r.method,
                r.path,
                r.webhook_id(),
                r.status,
                String::from_utf8_lossy(&r.body)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
