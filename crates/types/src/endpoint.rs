//! A subscription: where to send which of a tenant's events, and with which secret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::is_valid_type_name;
use crate::format::{DeliveryFormat, PreviousSecret};
use crate::id::EndpointId;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub tenant: String,
    pub name: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    /// The signing secret, in the form of `format.scheme` (`whsec_` + base64 of the key for
    /// Standard Webhooks, the HMAC key text itself for the others). Never logged, never returned
    /// after creation.
    pub secret: String,
    pub enabled: bool,
    pub metadata: BTreeMap<String, String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// How deliveries look on the wire. Records written before it existed read as Standard
    /// Webhooks (see `hookd-log`).
    pub format: DeliveryFormat,
    /// Secrets replaced by a rotation that verifiers may still hold, until they expire.
    pub previous_secrets: Vec<PreviousSecret>,
    /// How the scheduler paces its deliveries. Not in the endpoint's own (positional) record:
    /// `#[serde(skip)]` keeps that layout as it was, and a backend stores the controls beside
    /// it, written and deleted together (see `hookd-log`). Endpoints stored before controls
    /// existed read as the default: no rate limit, not FIFO.
    #[serde(skip)]
    pub controls: DeliveryControls,
}

/// Per-endpoint delivery controls, enforced by the scheduler shard that owns the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryControls {
    /// At most this many attempts started per second, with a burst.
    pub rate_limit: Option<RateLimit>,
    /// Strict order: one delivery in flight at a time, in the order the deliveries were made
    /// (ingest order); a failing head holds the rest until it is delivered or dead-lettered.
    pub fifo: bool,
}

impl DeliveryControls {
    /// No limit, not FIFO: nothing for the scheduler to remember.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A token bucket: `burst` attempts may start at once, then `per_second` a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// The largest `per_second` and `burst` accepted.
    pub const MAX: u32 = 10_000;

    /// Checks both numbers: each in `1..=MAX`. The error names the field at fault.
    pub fn check(&self) -> Result<(), &'static str> {
        if !(1..=Self::MAX).contains(&self.per_second) {
            return Err("per_second");
        }
        if !(1..=Self::MAX).contains(&self.burst) {
            return Err("burst");
        }
        Ok(())
    }
}

/// Everything but the secret, so a stray `{:?}` cannot leak it into logs.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("secret", &"<redacted>")
            .field("previous_secrets", &self.previous_secrets.len())
            .field("enabled", &self.enabled)
            .field("format", &self.format)
            .field("controls", &self.controls)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An enabled endpoint in the default (Standard Webhooks) format, without description or
    /// metadata, created at `now_ms`.
    pub fn new(
        id: EndpointId,
        tenant: &str,
        name: &str,
        url: &str,
        event_types: Vec<String>,
        secret: &str,
        now_ms: u64,
    ) -> Self {
        Self {
            id,
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            url: url.to_owned(),
            description: String::new(),
            event_types,
            secret: secret.to_owned(),
            enabled: true,
            metadata: BTreeMap::new(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            format: DeliveryFormat::default(),
            previous_secrets: Vec::new(),
            controls: DeliveryControls::default(),
        }
    }

    pub fn accepts(&self, event_type: &str) -> bool {
        self.enabled && EventFilter::matches_any(&self.event_types, event_type)
    }

    /// Previous secrets still valid at `now_ms`.
    pub fn live_previous_secrets(&self, now_ms: u64) -> impl Iterator<Item = &str> {
        self.previous_secrets
            .iter()
            .filter(move |p| p.expires_at_ms > now_ms)
            .map(|p| p.secret.as_str())
    }
}

/// One `event_types` entry: an exact name, a prefix wildcard `job.*`, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter<'a> {
    All,
    Prefix(&'a str),
    Exact(&'a str),
}

impl<'a> EventFilter<'a> {
    /// Parses a filter entry; `None` if it is not a valid pattern.
    pub fn parse(s: &'a str) -> Option<Self> {
        if s == "*" {
            return Some(Self::All);
        }
        if let Some(prefix) = s.strip_suffix(".*") {
            return is_valid_type_name(prefix).then_some(Self::Prefix(prefix));
        }
        is_valid_type_name(s).then_some(Self::Exact(s))
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Exact(name) => *name == event_type,
            // `job.*` matches `job.completed` and `job.gpu.lost`, not `job` or `jobs.x`.
            Self::Prefix(p) => event_type
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('.')),
        }
    }

    pub fn matches_any(patterns: &[String], event_type: &str) -> bool {
        patterns
            .iter()
            .filter_map(|p| EventFilter::parse(p))
            .any(|f| f.matches(event_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let mut ep = Endpoint::new(
            EndpointId(1),
            "t",
            "n",
            "https://example.com",
            vec!["*".into()],
            "whsec_c2VjcmV0",
            0,
        );
        ep.previous_secrets.push(PreviousSecret {
            secret: "whsec_b2xkc2VjcmV0".into(),
            expires_at_ms: 10,
        });
        assert!(!format!("{ep:?}").contains("c2VjcmV0"));
        assert!(!format!("{ep:?}").contains("b2xkc2VjcmV0"));
        assert_eq!(ep.live_previous_secrets(9).count(), 1);
        assert_eq!(ep.live_previous_secrets(10).count(), 0);
    }

    #[test]
    fn filters() {
        let pats = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(EventFilter::matches_any(&pats(&["*"]), "job.completed"));
        assert!(EventFilter::matches_any(&pats(&["job.*"]), "job.completed"));
        assert!(!EventFilter::matches_any(
            &pats(&["job.*"]),
            "jobs.completed"
        ));
        assert!(!EventFilter::matches_any(&pats(&["job.*"]), "job"));
        assert!(EventFilter::matches_any(
            &pats(&["instance.ready", "job.*"]),
            "instance.ready"
        ));
        assert!(!EventFilter::matches_any(
            &pats(&["instance.ready"]),
            "instance.readyx"
        ));
        assert_eq!(EventFilter::parse("job.**"), None);
        assert_eq!(EventFilter::parse("*.job"), None);
    }
}
