//! The wire-format fields of endpoint input (`preset`, `signature_scheme`, header names,
//! `headers`, `envelope`, `body_json`, `retry_schedule`), their validation, and the secret checks
//! and rotation that depend on the scheme.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use hookd_http::ApiError;
use hookd_sender::sign::{check_plain_secret, generate_secret_in, SigningKey};
use hookd_types::format::{BodyJson, DeliveryFormat, Envelope, Preset, PreviousSecret, Scheme};
use hookd_types::Endpoint;

/// Static headers an endpoint may add.
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 1024;
/// Retry schedule bounds: entries, and seconds per entry (7 days).
const MAX_SCHEDULE: usize = 20;
const MAX_DELAY_SECS: u64 = 7 * 86_400;
/// Rotation overlap: default 24 h, at most 7 days.
pub const DEFAULT_OVERLAP_SECS: u64 = 86_400;
const MAX_OVERLAP_SECS: u64 = 7 * 86_400;
/// Previous secrets kept at once; the oldest goes first.
const MAX_PREVIOUS: usize = 3;

/// Names hookd sets itself or that belong to the connection, not the message.
const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "host",
    "expect",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// The format fields of a create or update body; every one optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatIn {
    pub preset: Option<String>,
    pub signature_scheme: Option<String>,
    pub signature_header: Option<String>,
    pub timestamp_header: Option<String>,
    pub event_id_header: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub envelope: Option<String>,
    pub body_json: Option<String>,
    pub retry_schedule: Option<Vec<u64>>,
}

impl FormatIn {
    fn is_empty(&self) -> bool {
        self.preset.is_none()
            && self.signature_scheme.is_none()
            && self.signature_header.is_none()
            && self.timestamp_header.is_none()
            && self.event_id_header.is_none()
            && self.headers.is_none()
            && self.envelope.is_none()
            && self.body_json.is_none()
            && self.retry_schedule.is_none()
    }

    /// `base` (the endpoint's format, or Standard Webhooks for a new one) with this input
    /// applied: a preset first, then each field over it.
    pub fn apply(self, base: &DeliveryFormat, creating: bool) -> Result<DeliveryFormat, ApiError> {
        let mut f = match &self.preset {
            Some(p) => Preset::parse(p).map(Preset::format).ok_or_else(|| {
                ApiError::validation(format!(
                    "`preset`: unknown preset {p:?} (standard, coreweave, gpuai, huddle01, cortex)"
                ))
            })?,
            None if creating && !self.is_empty() => {
                let mut f = Preset::Standard.format();
                f.preset = Preset::Custom;
                f
            }
            None => base.clone(),
        };
        if let Some(s) = &self.signature_scheme {
            let scheme = Scheme::parse(s).ok_or_else(|| {
                ApiError::validation(format!(
                    "`signature_scheme`: unknown scheme {s:?} (standard-webhooks, t-v1, body-hex, timestamp-body-hex)"
                ))
            })?;
            if scheme != f.scheme {
                let (sig, ts) = scheme.default_headers();
                f.signature_header = sig.to_owned();
                f.timestamp_header = ts.map(str::to_owned);
                f.scheme = scheme;
            }
        }
        if let Some(h) = self.signature_header {
            f.signature_header = h;
        }
        if let Some(h) = self.timestamp_header {
            f.timestamp_header = Some(h);
        }
        if let Some(h) = self.event_id_header {
            f.event_id_header = Some(h);
        }
        if let Some(h) = self.headers {
            f.headers = h;
        }
        if let Some(e) = &self.envelope {
            f.envelope = Envelope::parse(e).ok_or_else(|| {
                ApiError::validation(format!(
                    "`envelope`: unknown envelope {e:?} (standard, camel, flat, raw)"
                ))
            })?;
        }
        if let Some(j) = &self.body_json {
            f.body_json = BodyJson::parse(j).ok_or_else(|| {
                ApiError::validation(format!(
                    "`body_json`: unknown value {j:?} (producer, javascript)"
                ))
            })?;
        }
        if let Some(s) = self.retry_schedule {
            if s.is_empty() || s.len() > MAX_SCHEDULE {
                return Err(ApiError::validation(format!(
                    "`retry_schedule` must list 1..={MAX_SCHEDULE} delays in seconds"
                )));
            }
            if s.iter().any(|d| !(1..=MAX_DELAY_SECS).contains(d)) {
                return Err(ApiError::validation(format!(
                    "`retry_schedule`: every delay must be 1..={MAX_DELAY_SECS} seconds"
                )));
            }
            f.retry_schedule_secs = Some(s);
        }
        if !f.scheme.has_timestamp_header() {
            f.timestamp_header = None;
        }
        check_format(&f)?;
        Ok(f)
    }
}

fn header_name(field: &str, name: &str) -> Result<HeaderName, ApiError> {
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        ApiError::validation(format!("`{field}`: {name:?} is not a valid header name"))
    })?;
    if RESERVED.contains(&n.as_str()) && field == "headers" {
        return Err(ApiError::validation(format!(
            "`headers`: {name:?} is reserved (set by hookd or hop-by-hop)"
        )));
    }
    if field != "headers" && RESERVED[..15].contains(&n.as_str()) {
        return Err(ApiError::validation(format!(
            "`{field}`: {name:?} is reserved (set by hookd or hop-by-hop)"
        )));
    }
    Ok(n)
}

fn check_format(f: &DeliveryFormat) -> Result<(), ApiError> {
    let mut own = Vec::new();
    if f.scheme == Scheme::StandardWebhooks {
        own.push(HeaderName::from_static("webhook-id"));
    }
    own.push(header_name("signature_header", &f.signature_header)?);
    if let Some(ts) = &f.timestamp_header {
        own.push(header_name("timestamp_header", ts)?);
    }
    if let Some(id) = &f.event_id_header {
        own.push(header_name("event_id_header", id)?);
    }
    for (i, n) in own.iter().enumerate() {
        if own[..i].contains(n) {
            return Err(ApiError::validation(format!(
                "header {:?} is named twice among signature_header, timestamp_header and event_id_header",
                n.as_str()
            )));
        }
    }
    if f.headers.len() > MAX_HEADERS {
        return Err(ApiError::validation(format!(
            "`headers`: at most {MAX_HEADERS} headers"
        )));
    }
    for (name, value) in &f.headers {
        let n = header_name("headers", name)?;
        if own.contains(&n) {
            return Err(ApiError::validation(format!(
                "`headers`: {name:?} is the format's own signature, timestamp or event-id header"
            )));
        }
        if value.len() > MAX_HEADER_VALUE || HeaderValue::from_str(value).is_err() {
            return Err(ApiError::validation(format!(
                "`headers`: the value of {name:?} must be at most {MAX_HEADER_VALUE} bytes of visible ASCII, spaces and tabs"
            )));
        }
    }
    Ok(())
}

/// Whether `secret` can sign with `scheme`; the message names what it must look like.
pub fn check_secret(scheme: Scheme, secret: &str) -> Result<(), ApiError> {
    match scheme {
        Scheme::StandardWebhooks => SigningKey::from_secret(secret).map(|_| ()).map_err(|e| {
            ApiError::validation(format!(
                "`secret` must be whsec_ + base64 of 24..=64 bytes: {e}"
            ))
        }),
        _ => check_plain_secret(secret).map_err(|e| {
            ApiError::validation(format!(
                "`secret` for signature scheme {}: {e}",
                scheme.as_str()
            ))
        }),
    }
}

/// The caller's secret if `format` can use it, else a fresh one in the format's form.
pub fn secret_or_generated(
    format: &DeliveryFormat,
    given: Option<String>,
) -> Result<String, ApiError> {
    match given {
        Some(s) => check_secret(format.scheme, &s).map(|_| s),
        None => Ok(generate_secret_in(format.secret_form)),
    }
}

/// Replaces the secret, keeping the old one valid for `overlap_secs` (none if 0).
pub fn rotate(
    ep: &mut Endpoint,
    new_secret: String,
    overlap_secs: Option<u64>,
    now_ms: u64,
) -> Result<(), ApiError> {
    let overlap = overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(ApiError::validation(format!(
            "`overlap_seconds` must be 0..={MAX_OVERLAP_SECS}"
        )));
    }
    ep.previous_secrets.retain(|p| p.expires_at_ms > now_ms);
    let old = std::mem::replace(&mut ep.secret, new_secret);
    if overlap > 0 {
        ep.previous_secrets.push(PreviousSecret {
            secret: old,
            expires_at_ms: now_ms + overlap * 1000,
        });
    }
    while ep.previous_secrets.len() > MAX_PREVIOUS {
        ep.previous_secrets.remove(0);
    }
    Ok(())
}

/// After a format change: the secret must suit the scheme, and previous secrets that do not are
/// dropped (they can no longer sign).
pub fn check_scheme_change(ep: &mut Endpoint) -> Result<(), ApiError> {
    check_secret(ep.format.scheme, &ep.secret).map_err(|_| {
        ApiError::validation(format!(
            "`signature_scheme`: the endpoint's secret cannot sign with {}; create a new endpoint instead",
            ep.format.scheme.as_str()
        ))
    })?;
    let scheme = ep.format.scheme;
    ep.previous_secrets
        .retain(|p| check_secret(scheme, &p.secret).is_ok());
    Ok(())
}

#[cfg(test)]
mod tests;
