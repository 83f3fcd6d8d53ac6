//! The JSON shapes of events, endpoints, deliveries and attempts, as documented in `docs/API.md`.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use hookd_log::EndpointStats;
use hookd_types::format::DeliveryFormat;
use hookd_types::time::rfc3339;
use hookd_types::{Attempt, Delivery, Endpoint, Event};

/// Producer data is re-emitted as the exact text it arrived as.
fn raw(data: &str) -> &RawValue {
    serde_json::from_str(data).unwrap_or_else(|_| {
        // Stored data was validated JSON; an unreadable record shows as null, not a panic.
        serde_json::from_str("null").unwrap_or_else(|_| unreachable!())
    })
}

/// An event as it was accepted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event, example = json!({
    "id": "evt_01JTQ8Z4X5C6V7B8N9M0K1J2H3", "tenant": "acme", "type": "instance.ready",
    "created_at": "2026-05-08T17:01:30.123Z", "data": {"instance_id": "i-42"}
}))]
pub struct EventView<'a> {
    pub id: &'a str,
    pub tenant: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The producer's JSON object, byte for byte.
    #[schema(value_type = Object)]
    pub data: &'a RawValue,
    /// Present when the event is read back with its deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryView<'a>>>,
}

impl<'a> From<&'a Event> for EventView<'a> {
    fn from(e: &'a Event) -> Self {
        Self {
            id: &e.id,
            tenant: &e.tenant,
            event_type: &e.event_type,
            created_at: rfc3339(e.created_at_ms),
            data: raw(&e.data),
            deliveries: None,
        }
    }
}

/// A subscription: where events of some types go, and how they look on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Endpoint)]
pub struct EndpointView<'a> {
    #[schema(example = "ep_01JTQ8Z4X5C6V7B8N9M0K1J2H3")]
    pub id: String,
    pub tenant: &'a str,
    pub name: &'a str,
    pub url: &'a str,
    pub description: &'a str,
    #[schema(value_type = Vec<String>)]
    pub event_types: &'a [String],
    pub enabled: bool,
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub metadata: &'a std::collections::BTreeMap<String, String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub format: FormatView<'a>,
    /// When the last secret a rotation replaced stops being signed with, if one still is.
    #[schema(format = DateTime)]
    pub previous_secret_valid_until: Option<String>,
    /// Attempts started per second, with a burst; `null`: no limit.
    pub rate_limit: Option<RateLimitView>,
    /// Strict ingest order, one delivery in flight; a failing head holds the rest.
    pub fifo: bool,
}

/// An endpoint's rate limit: a token bucket.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RateLimit)]
pub struct RateLimitView {
    /// Attempts started per second.
    #[schema(minimum = 1, maximum = 10000)]
    pub per_second: u32,
    /// Attempts that may start at once after a quiet spell.
    #[schema(minimum = 1, maximum = 10000)]
    pub burst: u32,
}

/// An endpoint's wire format, with the field names the API takes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Format)]
pub struct FormatView<'a> {
    #[schema(value_type = hookd_types::format::Preset)]
    pub preset: &'static str,
    #[schema(value_type = hookd_types::format::Scheme)]
    pub signature_scheme: &'static str,
    pub signature_header: &'a str,
    pub timestamp_header: Option<&'a str>,
    pub event_id_header: Option<&'a str>,
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub headers: &'a std::collections::BTreeMap<String, String>,
    #[schema(value_type = hookd_types::format::Envelope)]
    pub envelope: &'static str,
    #[schema(value_type = hookd_types::format::BodyJson)]
    pub body_json: &'static str,
    /// Seconds; `null` follows the daemon's `[retry]` schedule.
    #[schema(value_type = Option<Vec<u64>>)]
    pub retry_schedule: Option<&'a [u64]>,
}

impl<'a> From<&'a DeliveryFormat> for FormatView<'a> {
    fn from(f: &'a DeliveryFormat) -> Self {
        Self {
            preset: f.preset.as_str(),
            signature_scheme: f.scheme.as_str(),
            signature_header: &f.signature_header,
            timestamp_header: f.timestamp_header.as_deref(),
            event_id_header: f.event_id_header.as_deref(),
            headers: &f.headers,
            envelope: f.envelope.as_str(),
            body_json: f.body_json.as_str(),
            retry_schedule: f.retry_schedule_secs.as_deref(),
        }
    }
}

impl<'a> From<&'a Endpoint> for EndpointView<'a> {
    fn from(e: &'a Endpoint) -> Self {
        Self {
            id: e.id.to_string(),
            tenant: &e.tenant,
            name: &e.name,
            url: &e.url,
            description: &e.description,
            event_types: &e.event_types,
            enabled: e.enabled,
            metadata: &e.metadata,
            created_at: rfc3339(e.created_at_ms),
            updated_at: rfc3339(e.updated_at_ms),
            format: FormatView::from(&e.format),
            previous_secret_valid_until: e
                .previous_secrets
                .iter()
                .map(|p| p.expires_at_ms)
                .max()
                .filter(|t| *t > hookd_types::time::now_ms())
                .map(rfc3339),
            rate_limit: e.controls.rate_limit.map(|r| RateLimitView {
                per_second: r.per_second,
                burst: r.burst,
            }),
            fifo: e.controls.fifo,
        }
    }
}

/// An endpoint's delivery counts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EndpointStats)]
pub struct StatsView {
    pub delivered: u64,
    pub failed: u64,
    pub retrying: u64,
    #[schema(format = DateTime)]
    pub last_delivery_at: Option<String>,
    /// When its current failing streak began: the first attempt since its last 2xx that got
    /// none; `null` when its last attempt succeeded. Auto-disable counts from it.
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
}

impl From<EndpointStats> for StatsView {
    fn from(s: EndpointStats) -> Self {
        Self {
            delivered: s.delivered,
            failed: s.failed,
            retrying: s.retrying,
            last_delivery_at: s.last_delivery_ms.map(rfc3339),
            failing_since: s.failing_since_ms.map(rfc3339),
        }
    }
}

/// One event bound for one endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Delivery)]
pub struct DeliveryView<'a> {
    #[schema(example = "dlv_01JTQ8Z4X5C6V7B8N9M0K1J2H3")]
    pub id: String,
    pub event_id: &'a str,
    pub endpoint_id: String,
    pub tenant: &'a str,
    pub event_type: &'a str,
    #[schema(value_type = hookd_types::DeliveryStatus)]
    pub status: &'static str,
    /// Attempts made so far.
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_attempt_at: Option<String>,
    pub last_status_code: Option<u16>,
}

impl<'a> From<&'a Delivery> for DeliveryView<'a> {
    fn from(d: &'a Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            event_id: &d.event_id,
            endpoint_id: d.endpoint_id.to_string(),
            tenant: &d.tenant,
            event_type: &d.event_type,
            status: d.status.as_str(),
            attempts: d.attempts,
            created_at: rfc3339(d.created_at_ms),
            updated_at: rfc3339(d.updated_at_ms),
            next_attempt_at: d.next_attempt_ms.map(rfc3339),
            last_attempt_at: d.last_attempt_ms.map(rfc3339),
            last_status_code: d.last_status_code,
        }
    }
}

/// One try of a delivery.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptView<'a> {
    pub number: u32,
    #[schema(format = DateTime)]
    pub at: String,
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    #[schema(value_type = Option<hookd_types::ErrorKind>)]
    pub error: Option<&'static str>,
    pub error_detail: Option<&'a str>,
    /// The start of the response body (the first bytes only).
    pub response_body: &'a str,
}

impl<'a> From<&'a Attempt> for AttemptView<'a> {
    fn from(a: &'a Attempt) -> Self {
        Self {
            number: a.number,
            at: rfc3339(a.at_ms),
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error.map(|e| e.as_str()),
            error_detail: (!a.error_detail.is_empty()).then_some(&*a.error_detail),
            response_body: &a.response_body,
        }
    }
}

/// `{"data": [...], "next_cursor": ...}`
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One header of a rebuilt request.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Header)]
pub struct HeaderView {
    pub name: String,
    pub value: String,
}

/// The request an attempt sent, rebuilt on read by the sender's own code from the event, the
/// endpoint's current format and secrets, and the attempt's time. Exact unless the endpoint was
/// updated after the attempt (`endpoint_updated_since`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SentRequest)]
pub struct RequestView {
    #[schema(value_type = String, example = "POST")]
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<HeaderView>,
    pub body: String,
    pub endpoint_updated_since: bool,
}

impl RequestView {
    pub fn new(url: &str, headers: &http::HeaderMap, body: &[u8], updated_since: bool) -> Self {
        Self {
            method: "POST",
            url: url.to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| HeaderView {
                    name: n.as_str().to_owned(),
                    value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                })
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
            endpoint_updated_since: updated_since,
        }
    }
}
