//! One delivery's bytes on the wire, in the endpoint's [`DeliveryFormat`]: the body (envelope,
//! then JavaScript printing where asked) and the headers (signature scheme, timestamp and event-id
//! headers, the endpoint's static headers).
//!
//! During a rotation overlap, schemes with room for several signatures carry one per live
//! secret, the current secret first: Standard Webhooks `v1,<new> v1,<old>`, and
//! `t=<t>,v1=<new>,v1=<old>`. Single-value schemes sign with the current secret only.

use http::header::{HeaderName, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};

use hookd_types::format::{BodyJson, DeliveryFormat, Envelope, Scheme};
use hookd_types::time::rfc3339;
use hookd_types::{Endpoint, Event};

use crate::deliver::envelope;
use crate::jsjson;
use crate::sign::{hex_hmac, sign, SecretError, SigningKey};

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("endpoint secret: {0}")]
    Secret(#[from] SecretError),
    #[error("header name: {0}")]
    HeaderName(#[from] http::header::InvalidHeaderName),
    #[error("header value: {0}")]
    HeaderValue(#[from] http::header::InvalidHeaderValue),
}

/// The body of a delivery of `event` in `format`.
pub fn body(format: &DeliveryFormat, event: &Event) -> Vec<u8> {
    let text = match format.envelope {
        Envelope::Standard => envelope(event),
        Envelope::Camel => keyed_envelope(event, "createdAt"),
        Envelope::Flat => flat_envelope(event),
        Envelope::Raw => event.data.as_bytes().to_vec(),
    };
    match format.body_json {
        BodyJson::Producer => text,
        BodyJson::Javascript => jsjson::normalize(&text).unwrap_or_else(|e| {
            // Stored data is validated JSON, so this is a bug, not bad input: send what there is.
            tracing::warn!(event = %event.id, error = %e, "printing the body as JavaScript");
            text
        }),
    }
}

/// `{"id","type",<created>,"data"}` with the creation time under `created`.
fn keyed_envelope(event: &Event, created: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.data.len() + 128);
    out.extend_from_slice(b"{\"id\":");
    json_str(&mut out, &event.id);
    out.extend_from_slice(b",\"type\":");
    json_str(&mut out, &event.event_type);
    out.push(b',');
    json_str(&mut out, created);
    out.push(b':');
    json_str(&mut out, &rfc3339(event.created_at_ms));
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(event.data.as_bytes());
    out.push(b'}');
    out
}

/// `{"event":<type>, <the data object's members as they came>, "timestamp":<created>}`; data
/// that is not an object is sent under `"data"`. A data member named `event` or `timestamp`
/// appears twice; JSON.parse (and so the JavaScript printing) keeps the first position and the
/// last value.
fn flat_envelope(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.data.len() + 96);
    out.extend_from_slice(b"{\"event\":");
    json_str(&mut out, &event.event_type);
    let data = event.data.trim();
    match data.strip_prefix('{').and_then(|d| d.strip_suffix('}')) {
        Some(members) if !members.trim().is_empty() => {
            out.push(b',');
            out.extend_from_slice(members.as_bytes());
        }
        Some(_) => {}
        None => {
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(data.as_bytes());
        }
    }
    out.extend_from_slice(b",\"timestamp\":");
    json_str(&mut out, &rfc3339(event.created_at_ms));
    out.push(b'}');
    out
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The headers and body of a delivery of `event` to `endpoint` stamped at `at_ms`: what the
/// sender POSTs, and what the API shows for an attempt (rebuilt from the attempt's time).
/// The transport adds only `host` and `content-length`.
pub fn request(
    endpoint: &Endpoint,
    event: &Event,
    at_ms: u64,
) -> Result<(HeaderMap, Vec<u8>), WireError> {
    let body = body(&endpoint.format, event);
    let mut headers = headers(endpoint, &event.id, (at_ms / 1000) as i64, &body, at_ms)?;
    crate::client::add_user_agent(&mut headers);
    Ok((headers, body))
}

/// The headers of a delivery of `body` (event `event_id`) to `endpoint`, signed at unix second
/// `ts` with the current secret and every previous secret still live at `now_ms`.
pub fn headers(
    endpoint: &Endpoint,
    event_id: &str,
    ts: i64,
    body: &[u8],
    now_ms: u64,
) -> Result<HeaderMap, WireError> {
    let f = &endpoint.format;
    let mut secrets = vec![endpoint.secret.as_str()];
    if f.scheme.multi_signature() {
        secrets.extend(endpoint.live_previous_secrets(now_ms));
    }
    let ts_text = ts.to_string();
    let mut h = HeaderMap::with_capacity(5 + f.headers.len());
    for (name, value) in &f.headers {
        h.insert(
            HeaderName::try_from(name.as_str())?,
            HeaderValue::from_str(value)?,
        );
    }
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let signature = match f.scheme {
        Scheme::StandardWebhooks => {
            h.insert("webhook-id", HeaderValue::from_str(event_id)?);
            let mut sigs = Vec::with_capacity(secrets.len());
            for s in &secrets {
                sigs.push(sign(&SigningKey::from_secret(s)?, event_id, ts, body));
            }
            sigs.join(" ")
        }
        Scheme::TimestampedV1 => {
            let mut v = format!("t={ts_text}");
            for s in &secrets {
                v.push_str(",v1=");
                v.push_str(&hex_hmac(s, &[ts_text.as_bytes(), b".", body]));
            }
            v
        }
        Scheme::BodyHex => hex_hmac(secrets[0], &[body]),
        Scheme::TimestampDotBodyHex => hex_hmac(secrets[0], &[ts_text.as_bytes(), b".", body]),
    };
    if f.scheme.has_timestamp_header() {
        let name = f
            .timestamp_header
            .as_deref()
            .or(f.scheme.default_headers().1)
            .unwrap_or("webhook-timestamp");
        h.insert(HeaderName::try_from(name)?, HeaderValue::from(ts));
    }
    h.insert(
        HeaderName::try_from(f.signature_header.as_str())?,
        HeaderValue::from_str(&signature)?,
    );
    if let Some(name) = &f.event_id_header {
        h.insert(
            HeaderName::try_from(name.as_str())?,
            HeaderValue::from_str(event_id)?,
        );
    }
    Ok(h)
}

#[cfg(test)]
mod tests;
