//! How deliveries to one endpoint look on the wire: signature scheme and header names, extra
//! headers, envelope, JSON printing and retry schedule; and the presets that name the formats of
//! the platforms hookd serves (`standard`, `coreweave`, `gpuai`, `huddle01`, `cortex`).
//!
//! Pure data: signing and body building live in the sender, validation in the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a delivery is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`
    /// over `"{id}.{t}.{body}"` with the base64-decoded `whsec_` key.
    StandardWebhooks,
    /// One header `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
    TimestampedV1,
    /// Hex HMAC-SHA256 of the body.
    BodyHex,
    /// Hex HMAC-SHA256 of `"<t>.<body>"`, the timestamp in a header of its own.
    TimestampDotBodyHex,
}

names_schema!(Scheme, Scheme::ALL, "How a delivery is signed");

impl Scheme {
    pub const ALL: [Scheme; 4] = [
        Self::StandardWebhooks,
        Self::TimestampedV1,
        Self::BodyHex,
        Self::TimestampDotBodyHex,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::TimestampedV1 => "t-v1",
            Self::BodyHex => "body-hex",
            Self::TimestampDotBodyHex => "timestamp-body-hex",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Header names a scheme sends when the endpoint names none.
    pub fn default_headers(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::StandardWebhooks => ("webhook-signature", Some("webhook-timestamp")),
            Self::TimestampedV1 | Self::BodyHex => ("webhook-signature", None),
            Self::TimestampDotBodyHex => ("webhook-signature", Some("webhook-timestamp")),
        }
    }

    /// Whether the scheme has a header of its own for the timestamp.
    pub fn has_timestamp_header(self) -> bool {
        matches!(self, Self::StandardWebhooks | Self::TimestampDotBodyHex)
    }

    /// Whether a header can carry a second signature during a rotation overlap.
    pub fn multi_signature(self) -> bool {
        matches!(self, Self::StandardWebhooks | Self::TimestampedV1)
    }
}

/// The JSON document a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Envelope {
    /// `{"id","type","created_at","data"}`.
    Standard,
    /// `{"id","type","createdAt","data"}`.
    Camel,
    /// `{"event":<type>, ...the data's own members, "timestamp"}`; data that is not an object
    /// goes under `"data"`.
    Flat,
    /// The producer's `data` alone.
    Raw,
}

names_schema!(Envelope, Envelope::ALL, "The delivered body's shape");

impl Envelope {
    pub const ALL: [Envelope; 4] = [Self::Standard, Self::Camel, Self::Flat, Self::Raw];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Camel => "camel",
            Self::Flat => "flat",
            Self::Raw => "raw",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// How the body's JSON is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyJson {
    /// The producer's `data` bytes as they came.
    Producer,
    /// Exactly what JavaScript's `JSON.stringify(JSON.parse(body))` prints, for verifiers that
    /// HMAC a re-serialised body.
    Javascript,
}

names_schema!(
    BodyJson,
    BodyJson::ALL,
    "`producer`: the data's bytes as they came; `javascript`: what `JSON.stringify(JSON.parse(body))` prints"
);

impl BodyJson {
    pub const ALL: [BodyJson; 2] = [Self::Producer, Self::Javascript];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Producer => "producer",
            Self::Javascript => "javascript",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The form of secrets generated for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretForm {
    /// `whsec_` + base64 of 32 random bytes (Standard Webhooks).
    WhsecBase64,
    /// 64 lowercase hex characters.
    Hex64,
    /// `whsec_` + 64 lowercase hex characters, used as plain text.
    WhsecHex,
}

/// Everything about the wire format of one endpoint's deliveries. Its `Debug` shows header
/// names only: static header values may be credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFormat {
    /// The preset this format started from (informational).
    pub preset: Preset,
    pub scheme: Scheme,
    pub signature_header: String,
    /// For schemes with a timestamp header of their own.
    pub timestamp_header: Option<String>,
    /// A header carrying the event id (besides Standard Webhooks' `webhook-id`).
    pub event_id_header: Option<String>,
    /// Static headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    pub envelope: Envelope,
    pub body_json: BodyJson,
    pub secret_form: SecretForm,
    /// Seconds between attempts; `None` uses the daemon's `[retry]` schedule.
    pub retry_schedule_secs: Option<Vec<u64>>,
}

impl std::fmt::Debug for DeliveryFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryFormat")
            .field("preset", &self.preset)
            .field("scheme", &self.scheme)
            .field("signature_header", &self.signature_header)
            .field("timestamp_header", &self.timestamp_header)
            .field("event_id_header", &self.event_id_header)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("envelope", &self.envelope)
            .field("body_json", &self.body_json)
            .field("retry_schedule_secs", &self.retry_schedule_secs)
            .finish()
    }
}

impl Default for DeliveryFormat {
    fn default() -> Self {
        Preset::Standard.format()
    }
}

/// One word for each reference format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    Standard,
    Coreweave,
    Gpuai,
    Huddle01,
    Cortex,
    /// No preset was named and the fields were set one by one.
    Custom,
}

names_schema!(
    Preset,
    Preset::ALL,
    "A reference document's format; `custom` (never taken) when fields were set one by one"
);

impl Preset {
    pub const ALL: [Preset; 6] = [
        Self::Standard,
        Self::Coreweave,
        Self::Gpuai,
        Self::Huddle01,
        Self::Cortex,
        Self::Custom,
    ];

    pub const NAMED: [Preset; 5] = [
        Self::Standard,
        Self::Coreweave,
        Self::Gpuai,
        Self::Huddle01,
        Self::Cortex,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Coreweave => "coreweave",
            Self::Gpuai => "gpuai",
            Self::Huddle01 => "huddle01",
            Self::Cortex => "cortex",
            Self::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::NAMED.into_iter().find(|v| v.as_str() == s)
    }

    /// The format of the preset's reference document.
    pub fn format(self) -> DeliveryFormat {
        let f = |scheme, sig: &str, ts: Option<&str>, id: Option<&str>, envelope, json, form| {
            DeliveryFormat {
                preset: self,
                scheme,
                signature_header: sig.to_owned(),
                timestamp_header: ts.map(str::to_owned),
                event_id_header: id.map(str::to_owned),
                headers: BTreeMap::new(),
                envelope,
                body_json: json,
                secret_form: form,
                retry_schedule_secs: None,
            }
        };
        use BodyJson::*;
        use Envelope::*;
        use SecretForm::*;
        let mut out = match self {
            Self::Standard | Self::Custom => f(
                Scheme::StandardWebhooks,
                "webhook-signature",
                Some("webhook-timestamp"),
                None,
                Standard,
                Producer,
                WhsecBase64,
            ),
            Self::Coreweave => f(
                Scheme::TimestampDotBodyHex,
                "X-CoreWeave-Signature",
                Some("X-CoreWeave-Timestamp"),
                None,
                Standard,
                Producer,
                Hex64,
            ),
            Self::Gpuai => f(
                Scheme::TimestampedV1,
                "Gpuai-Signature",
                None,
                Some("Gpuai-Event-Id"),
                Standard,
                Producer,
                Hex64,
            ),
            Self::Huddle01 => f(
                Scheme::BodyHex,
                "X-Webhook-Signature",
                None,
                None,
                Flat,
                Javascript,
                WhsecHex,
            ),
            Self::Cortex => f(
                Scheme::TimestampedV1,
                "X-Cortex-Signature",
                None,
                None,
                Camel,
                Javascript,
                Hex64,
            ),
        };
        out.retry_schedule_secs = match self {
            // 5 attempts over about 24 h.
            Self::Gpuai => Some(vec![10 * 60, 60 * 60, 5 * 3600, 18 * 3600]),
            // 30 s, 2 m, 10 m, 30 m, 1 h, then failed.
            Self::Cortex => Some(vec![30, 120, 600, 1800, 3600]),
            _ => None,
        };
        out
    }
}

/// A secret still accepted by verifiers until `expires_at_ms`, after a rotation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviousSecret")
            .field("secret", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scheme::ALL {
            assert_eq!(Scheme::parse(s.as_str()), Some(s));
        }
        for e in Envelope::ALL {
            assert_eq!(Envelope::parse(e.as_str()), Some(e));
        }
        for p in Preset::NAMED {
            assert_eq!(Preset::parse(p.as_str()), Some(p));
            assert_eq!(p.format().preset, p);
        }
        assert_eq!(Preset::parse("custom"), None);
        assert_eq!(Scheme::parse("hmac"), None);
    }

    #[test]
    fn presets_match_their_documents() {
        let g = Preset::Gpuai.format();
        assert_eq!(g.signature_header, "Gpuai-Signature");
        assert_eq!(g.event_id_header.as_deref(), Some("Gpuai-Event-Id"));
        assert_eq!(g.retry_schedule_secs.as_ref().map(Vec::len), Some(4));
        let c = Preset::Cortex.format();
        assert_eq!(
            c.retry_schedule_secs,
            Some(vec![30, 120, 600, 1800, 3600]),
            "cortex retries"
        );
        assert_eq!(c.body_json, BodyJson::Javascript);
        assert_eq!(Preset::Huddle01.format().envelope, Envelope::Flat);
        assert_eq!(
            Preset::Coreweave.format().timestamp_header.as_deref(),
            Some("X-CoreWeave-Timestamp")
        );
    }

    #[test]
    fn format_debug_shows_header_names_only() {
        let mut f = Preset::Gpuai.format();
        f.headers
            .insert("Authorization".into(), "Bearer tok_123".into());
        let d = format!("{f:?}");
        assert!(d.contains("Authorization") && !d.contains("tok_123"), "{d}");
    }

    #[test]
    fn previous_secret_debug_is_redacted() {
        let p = PreviousSecret {
            secret: "hunter2hunter2".into(),
            expires_at_ms: 1,
        };
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
