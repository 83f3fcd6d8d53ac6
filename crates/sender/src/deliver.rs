//! One attempt of one delivery, end to end: build the envelope, sign it, POST it, classify the
//! answer, decide the next step on the retry schedule, and append the outcome to the outcome
//! log. The shard that started the attempt owns which job is current; the outcome log's indexer
//! derives the delivery's stored state from the outcome.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use hookd_log::{AsyncStore, Change, EndpointRegistry, Outcomes};
use hookd_types::metrics::{dec, inc, METRICS};
use hookd_types::retry::RetryPolicy;
use hookd_types::time::{now_ms, rfc3339};
use hookd_types::{
    Attempt, DeliveryId, DeliveryStatus, Endpoint, EndpointId, ErrorKind, Event, Signal,
    RESPONSE_EXCERPT_BYTES,
};

use crate::client::{HttpClient, Response, SendError};
use crate::disable::{Announce, Disabler, Reason};
use crate::sign::{sign, SigningKey};
use crate::wire;

/// `{"id":..,"type":..,"created_at":..,"data":<producer's bytes>}`
pub fn envelope(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.data.len() + 128);
    out.extend_from_slice(b"{\"id\":");
    json_str(&mut out, &event.id);
    out.extend_from_slice(b",\"type\":");
    json_str(&mut out, &event.event_type);
    out.extend_from_slice(b",\"created_at\":\"");
    out.extend_from_slice(rfc3339(event.created_at_ms).as_bytes());
    out.extend_from_slice(b"\",\"data\":");
    out.extend_from_slice(event.data.as_bytes());
    out.push(b'}');
    out
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Ids and type names are validated tokens; serde_json still escapes whatever is there.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The headers of a Standard Webhooks delivery.
pub fn signed_headers(
    key: &SigningKey,
    event_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<HeaderMap, http::header::InvalidHeaderValue> {
    let mut h = HeaderMap::with_capacity(4);
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("webhook-id", HeaderValue::from_str(event_id)?);
    h.insert("webhook-timestamp", HeaderValue::from(timestamp));
    h.insert(
        "webhook-signature",
        HeaderValue::from_str(&sign(key, event_id, timestamp, body))?,
    );
    Ok(h)
}

/// What a test send returns.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub event_id: String,
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    pub error: Option<ErrorKind>,
}

pub struct Sender {
    client: HttpClient,
    reads: Arc<dyn AsyncStore>,
    registry: Arc<EndpointRegistry>,
    retry: RetryPolicy,
    outcomes: Arc<dyn Outcomes>,
    disabler: Disabler,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

struct InFlight;

impl InFlight {
    fn start() -> Self {
        inc(&METRICS.deliveries_in_flight, 1);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        dec(&METRICS.deliveries_in_flight, 1);
    }
}

/// One attempt to make: which delivery, for whom, how many came before, and the event when the
/// caller has it at hand.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery: DeliveryId,
    pub endpoint: EndpointId,
    pub attempts: u32,
    pub event: Option<Arc<Event>>,
}

/// The result, why nothing was sent if the endpoint is gone or disabled, and what the exchange
/// says of the endpoint's health.
type Exchange = (Result<Response, SendError>, Option<String>, Signal);

impl Sender {
    pub fn new(
        client: HttpClient,
        reads: Arc<dyn AsyncStore>,
        registry: Arc<EndpointRegistry>,
        retry: RetryPolicy,
        outcomes: Arc<dyn Outcomes>,
    ) -> Self {
        Self {
            client,
            reads,
            disabler: Disabler::new(registry.clone()),
            registry,
            retry,
            outcomes,
        }
    }

    /// Disables endpoints that have been failing this long (`None` or zero: never).
    pub fn auto_disable_after(mut self, after: Option<Duration>) -> Self {
        self.disabler.set_after(after);
        self
    }

    /// At start: `endpoint` has been failing since `since_ms` (auto-disable counts from it).
    pub fn resume_failing(&self, endpoint: hookd_types::EndpointId, since_ms: u64) {
        self.disabler.resume(endpoint, since_ms);
    }

    /// Where `endpoint.disabled` events go; set once, after the ingest path has started.
    pub fn announce_with(&self, announce: Arc<dyn Announce>) {
        self.disabler.set_announce(announce);
    }

    /// Signs and POSTs `event` to `endpoint` in the endpoint's wire format, stamped `at_ms`.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        event: &Event,
        at_ms: u64,
    ) -> Result<Response, SendError> {
        let fail = |kind, detail: String| SendError {
            kind,
            detail,
            latency: Duration::ZERO,
        };
        let uri: http::Uri = endpoint
            .url
            .parse()
            .map_err(|e| fail(ErrorKind::InvalidUrl, format!("{e}")))?;
        let (headers, body) = wire::request(endpoint, event, at_ms)
            .map_err(|e| fail(ErrorKind::InvalidUrl, e.to_string()))?;
        self.client.post(&uri, headers, Bytes::from(body)).await
    }

    /// Makes the attempt and records its outcome; returns the next deadline, if any. `sent` is
    /// called once the exchange with the endpoint is over, before the outcome is recorded, with
    /// what it says of the endpoint's health (it frees the endpoint's concurrency slot).
    /// Makes one attempt of `due`. `sent` learns, before the outcome is recorded, what the
    /// attempt told of its endpoint and, when it got an answer, how long the exchange took.
    pub async fn attempt(
        &self,
        due: Due,
        sent: impl FnOnce(Signal, Option<Duration>) + Send,
    ) -> Option<u64> {
        let id = due.delivery;
        let _guard = InFlight::start();
        let started = now_ms();
        let (result, refused, signal) = self.exchange(&due, started).await;
        let gone = matches!(&result, Ok(r) if r.status == 410);
        let disable = if gone {
            Some(Reason::Gone)
        } else {
            self.disabler.observe(due.endpoint, signal, started)
        };
        if let Some(reason) = disable {
            // Before the slot is free: no later delivery is sent to it.
            self.disabler.disable(due.endpoint, reason).await;
        }
        sent(signal, result.as_ref().ok().map(|r| r.latency));
        let number = due.attempts + 1;
        let mut attempt = Attempt {
            number,
            at_ms: started,
            status_code: None,
            latency_ms: 0,
            error: None,
            error_detail: String::new(),
            response_body: String::new(),
        };
        match &result {
            Ok(r) => {
                attempt.status_code = Some(r.status);
                attempt.latency_ms = r.latency.as_millis() as u32;
                let n = r.body_excerpt.len().min(RESPONSE_EXCERPT_BYTES);
                attempt.response_body = String::from_utf8_lossy(&r.body_excerpt[..n]).into_owned();
                if !(200..300).contains(&r.status) {
                    attempt.error = Some(ErrorKind::HttpStatus);
                }
            }
            Err(e) => {
                attempt.error = Some(e.kind);
                attempt.error_detail = e.detail.clone();
                attempt.latency_ms = e.latency.as_millis() as u32;
            }
        }
        let now = now_ms();
        inc(&METRICS.attempts_total, 1);
        let (status, next_attempt_ms) = if attempt.succeeded() {
            inc(&METRICS.deliveries_succeeded_total, 1);
            (DeliveryStatus::Delivered, None)
        } else {
            inc(&METRICS.attempts_failed_total, 1);
            let answer = result.as_ref().ok();
            let delay = match refused {
                // No endpoint to send to: retrying cannot help.
                Some(_) => None,
                None if gone => None,
                // A wait the endpoint asked for replaces the schedule's, if one is left.
                None => self
                    .policy_for(&due.endpoint)
                    .delay_after(number, rand::random::<f64>())
                    .map(|d| answer.and_then(|r| r.retry_after).unwrap_or(d)),
            };
            match delay {
                Some(d) => (DeliveryStatus::Retrying, Some(now + d.as_millis() as u64)),
                None => {
                    inc(&METRICS.deliveries_dead_lettered_total, 1);
                    (DeliveryStatus::DeadLettered, None)
                }
            }
        };
        tracing::debug!(delivery = %id, attempt = number, status = status.as_str(),
            code = ?attempt.status_code, error = ?attempt.error, "attempt");
        let change = Change::Attempted {
            delivery: id,
            attempt,
            status,
            next_attempt_ms,
            at_ms: now,
        };
        // Written before the shard hears of it: a crash of the process from here on neither
        // repeats a delivered attempt nor moves a retry earlier.
        if let Err(e) = self.outcomes.record(std::slice::from_ref(&change)).await {
            // The old deadline is still stored: the attempt is redone after a restart.
            tracing::error!(delivery = %id, error = %e, "recording attempt");
            return None;
        }
        crate::observe::attempt(&result, due.endpoint, status);
        next_attempt_ms
    }

    /// The endpoint's own retry schedule (with the daemon's jitter), else the daemon's.
    fn policy_for(&self, endpoint: &hookd_types::EndpointId) -> std::borrow::Cow<'_, RetryPolicy> {
        let own = self
            .registry
            .get(*endpoint)
            .and_then(|ep| ep.format.retry_schedule_secs.clone());
        match own {
            Some(secs) => std::borrow::Cow::Owned(RetryPolicy {
                schedule: secs.into_iter().map(Duration::from_secs).collect(),
                jitter: self.retry.jitter,
            }),
            None => std::borrow::Cow::Borrowed(&self.retry),
        }
    }

    /// Looks up endpoint and event and sends. The second value names why nothing was sent when
    /// the endpoint is gone or disabled.
    async fn exchange(&self, due: &Due, at_ms: u64) -> Exchange {
        let refuse = |kind: ErrorKind, what: &str| {
            let e = SendError {
                kind,
                detail: what.to_owned(),
                latency: Duration::ZERO,
            };
            (Err(e), Some(what.to_owned()), Signal::NotSent)
        };
        let Some(ep) = self.registry.get(due.endpoint) else {
            return refuse(ErrorKind::EndpointDeleted, "endpoint deleted");
        };
        if !ep.enabled {
            return refuse(ErrorKind::EndpointDisabled, "endpoint disabled");
        }
        let event = match &due.event {
            Some(ev) => ev.clone(),
            None => match self.load_event(due.delivery).await {
                Ok(Some(ev)) => Arc::new(ev),
                Ok(None) => return refuse(ErrorKind::Io, "event missing from the store"),
                Err(e) => {
                    tracing::error!(error = %e, "reading event");
                    let err = SendError {
                        kind: ErrorKind::Io,
                        detail: "storage error reading the event".into(),
                        latency: Duration::ZERO,
                    };
                    return (Err(err), None, Signal::NotSent);
                }
            },
        };
        let result = self.send(&ep, &event, at_ms).await;
        crate::observe::answered(&result, event.created_at_ms);
        let signal = match &result {
            Ok(r) => match r.retry_after {
                Some(wait) => Signal::AskedToWait(wait),
                None => Signal::of(Some(r.status), None),
            },
            Err(e) => Signal::of(None, Some(e.kind)),
        };
        (result, None, signal)
    }

    /// The event of a delivery. A quick retry can come before the read model shows the
    /// delivery (the indexer applies fan-out's record a moment later): then it waits until the
    /// read model reflects everything recorded so far, and looks again.
    async fn load_event(&self, delivery: DeliveryId) -> hookd_log::error::Result<Option<Event>> {
        if let Some(ev) = self.read_event(delivery).await? {
            return Ok(Some(ev));
        }
        self.outcomes.caught_up().await?;
        self.read_event(delivery).await
    }

    /// The event of a delivery, read back from the store.
    async fn read_event(&self, delivery: DeliveryId) -> hookd_log::error::Result<Option<Event>> {
        self.reads.delivery_event(delivery).await
    }

    /// Sends a synthetic `event_type` event to `endpoint` now; nothing is recorded.
    pub async fn send_test(&self, endpoint: &Endpoint, event_type: &str) -> TestOutcome {
        let event = Event {
            id: hookd_types::id::new_event_id(),
            tenant: endpoint.tenant.clone(),
            event_type: event_type.to_owned(),
            created_at_ms: now_ms(),
            data: r#"{"test":true,"message":"hookd test event"}"#.into(),
        };
        let result = self.send(endpoint, &event, event.created_at_ms).await;
        let (status_code, latency, error) = match &result {
            Ok(r) => (
                Some(r.status),
                r.latency,
                (!(200..300).contains(&r.status)).then_some(ErrorKind::HttpStatus),
            ),
            Err(e) => (None, e.latency, Some(e.kind)),
        };
        TestOutcome {
            event_id: event.id,
            delivered: error.is_none(),
            status_code,
            latency_ms: latency.as_millis() as u32,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_keeps_data_bytes() {
        let ev = Event {
            id: "evt_1".into(),
            tenant: "t".into(),
            event_type: "job.completed".into(),
            created_at_ms: 1_746_723_690_123,
            data: r#"{"z":1, "a":{"b":[1,2]}}"#.into(),
        };
        assert_eq!(
            String::from_utf8(envelope(&ev)).unwrap(),
            r#"{"id":"evt_1","type":"job.completed","created_at":"2025-05-08T17:01:30.123Z","data":{"z":1, "a":{"b":[1,2]}}}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&envelope(&ev)).unwrap();
        assert_eq!(v["data"]["a"]["b"][1], 2);
    }
}
