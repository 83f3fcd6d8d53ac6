//! A tenant's API key: whose data it reaches, what it may do there and until when.
//!
//! The text of a key is `hk_<ULID>_<64 hex digits>`. The ULID is the key's id (`key_<ULID>` in
//! the API), so the record is found with one map lookup before anything secret is compared; the
//! hex digits are 32 random bytes. Only the SHA-256 of the whole text is ever stored: the text is
//! shown once, when the key is created.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::KeyId;

/// The recognisable start of every API key.
pub const KEY_PREFIX: &str = "hk_";
/// Hex digits of the random part (32 bytes).
pub const SECRET_HEX_LEN: usize = 64;
/// Length of a ULID in its text form.
const ULID_LEN: usize = 26;

/// One permission. Reading and changing are separate, per kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    EventsWrite,
    EventsRead,
    EndpointsRead,
    EndpointsWrite,
    DeliveriesRead,
    DeliveriesWrite,
}

/// Other names a scope is known by. The gpu.ai reference document creates endpoints with scope
/// `webhooks: write`; its endpoints are hookd's endpoints.
const ALIASES: [(&str, Scope); 2] = [
    ("webhooks:write", Scope::EndpointsWrite),
    ("webhooks:read", Scope::EndpointsRead),
];

names_schema!(
    Scope,
    Scope::ALL,
    "A permission of an API key (`webhooks:write` and `webhooks:read` are taken as aliases of `endpoints:write` and `endpoints:read`)"
);

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::EventsWrite,
        Scope::EventsRead,
        Scope::EndpointsRead,
        Scope::EndpointsWrite,
        Scope::DeliveriesRead,
        Scope::DeliveriesWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventsWrite => "events:write",
            Self::EventsRead => "events:read",
            Self::EndpointsRead => "endpoints:read",
            Self::EndpointsWrite => "endpoints:write",
            Self::DeliveriesRead => "deliveries:read",
            Self::DeliveriesWrite => "deliveries:write",
        }
    }

    /// A scope by its name or an alias; spaces around the colon are ignored
    /// (`webhooks: write` as the gpu.ai document spells it).
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, action) = s.split_once(':')?;
        let name = format!("{}:{}", kind.trim(), action.trim());
        Self::ALL
            .into_iter()
            .find(|sc| sc.as_str() == name)
            .or_else(|| ALIASES.iter().find(|(a, _)| *a == name).map(|(_, sc)| *sc))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, stored as one byte.
#[derive(Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(u8);

impl Scopes {
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn is_empty(self) -> bool {
        self.iter().next().is_none()
    }

    /// The scopes held, in [`Scope::ALL`] order (bits of unknown scopes are ignored).
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut out = Scopes::default();
        for s in iter {
            out.insert(s);
        }
        out
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

/// A stored API key. It holds the digest of the key, never the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: KeyId,
    pub tenant: String,
    pub name: String,
    pub scopes: Scopes,
    /// SHA-256 of the key's whole text.
    pub key_sha256: [u8; 32],
    pub created_at_ms: u64,
    /// The key answers 401 from this instant on.
    pub expires_at_ms: Option<u64>,
}

impl ApiKey {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|t| now_ms >= t)
    }
}

/// Everything but the digest: a stray `{:?}` shows nothing an attacker could test guesses with.
impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("key_sha256", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// The text of key `id` with random part `secret_hex`.
pub fn format_key(id: KeyId, secret_hex: &str) -> String {
    format!("{KEY_PREFIX}{}_{secret_hex}", ulid::Ulid(id.0))
}

/// The id a presented key claims, when it has the shape of an API key. Nothing is verified: the
/// caller still compares the digest.
pub fn split_key(text: &str) -> Option<KeyId> {
    let rest = text.strip_prefix(KEY_PREFIX)?;
    let (ulid, secret) = rest.split_at_checked(ULID_LEN)?;
    let secret = secret.strip_prefix('_')?;
    if secret.len() != SECRET_HEX_LEN || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    ulid::Ulid::from_string(ulid).ok().map(|u| KeyId(u.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_with_aliases_and_spacing() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("webhooks: write"), Some(Scope::EndpointsWrite));
        assert_eq!(Scope::parse("webhooks:read"), Some(Scope::EndpointsRead));
        assert_eq!(Scope::parse("events:delete"), None);
        assert_eq!(Scope::parse("events"), None);
        assert_eq!(Scope::parse(""), None);
    }

    #[test]
    fn scope_sets_hold_what_was_put_in() {
        let set: Scopes = [Scope::EventsWrite, Scope::DeliveriesRead]
            .into_iter()
            .collect();
        assert!(set.contains(Scope::EventsWrite));
        assert!(set.contains(Scope::DeliveriesRead));
        assert!(!set.contains(Scope::EndpointsWrite));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Scope::EventsWrite, Scope::DeliveriesRead]
        );
        assert!(Scopes::default().is_empty());
        assert_eq!(format!("{set:?}"), r#"["events:write", "deliveries:read"]"#);
    }

    #[test]
    fn keys_round_trip_their_id_and_reject_other_shapes() {
        let id = KeyId::generate();
        let secret = "ab".repeat(32);
        let text = format_key(id, &secret);
        assert!(text.starts_with("hk_"));
        assert_eq!(split_key(&text), Some(id));
        assert_eq!(split_key(&text[..text.len() - 1]), None, "short secret");
        assert_eq!(split_key(&format!("{text}0")), None, "long secret");
        assert_eq!(split_key(&text.replace("hk_", "hx_")), None);
        assert_eq!(split_key(&format!("{}z", &text[..text.len() - 1])), None);
        assert_eq!(split_key("hk_"), None);
        assert_eq!(split_key("hk_é"), None, "no panic on a char boundary");
    }

    #[test]
    fn debug_hides_the_digest_and_expiry_is_inclusive() {
        let key = ApiKey {
            id: KeyId::generate(),
            tenant: "acme".into(),
            name: "ci".into(),
            scopes: Scopes::default(),
            key_sha256: [0xab; 32],
            created_at_ms: 1,
            expires_at_ms: Some(10),
        };
        let dbg = format!("{key:?}");
        assert!(dbg.contains("redacted") && !dbg.contains("171"), "{dbg}");
        assert!(!key.is_expired(9));
        assert!(key.is_expired(10));
    }
}
