//! Who is calling and what it may reach: the admin, or one tenant's API key. The caller is
//! resolved once per request (see [`crate::auth::Gate`]); this module is the one place that
//! decides, from it, which routes and which tenants' records the request may touch.
//!
//! - Routes: each router declares a [`RouteAccess`] table (method, path, [`Access`]); a tenant
//!   key passes only where its scope is listed. A route missing from the tables is the admin's
//!   alone, so a new route is closed to keys until someone decides otherwise.
//! - Records: another tenant's record answers 404 exactly as a missing one does
//!   ([`Principal::owns`]), so ids of other tenants cannot be probed. Naming another tenant in a
//!   request (an event's `tenant`, a list filter) is 403 ([`Principal::claim`]): that reveals
//!   nothing, the answer is the same whether the tenant exists or not.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use hookd_types::{ApiKey, Scope};

use crate::error::{ApiError, ErrorCode};

/// The caller of one request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The admin key: every route, every tenant.
    Admin,
    /// A tenant's API key: its tenant, the routes of its scopes.
    Tenant(Arc<ApiKey>),
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The admin key only.
    Admin,
    /// The admin, or a key holding this scope.
    Scope(Scope),
    /// The admin or any valid key.
    AnyKey,
}

/// One route: its method, its path as the router declares it, and what it asks.
pub type RouteAccess = (&'static str, &'static str, Access);

impl Principal {
    /// The tenant the caller is confined to; `None` for the admin.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Admin => None,
            Self::Tenant(k) => Some(&k.tenant),
        }
    }

    /// Whether the caller passes `access` (403 `FORBIDDEN` if not).
    pub fn check(&self, access: Access) -> Result<(), ApiError> {
        match (self, access) {
            (Self::Admin, _) | (Self::Tenant(_), Access::AnyKey) => Ok(()),
            (Self::Tenant(k), Access::Scope(s)) if k.scopes.contains(s) => Ok(()),
            (Self::Tenant(_), Access::Scope(s)) => Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this API key lacks the scope {s}"),
            )),
            (Self::Tenant(_), Access::Admin) => Err(ApiError::new(
                ErrorCode::Forbidden,
                "only the admin key may do this",
            )),
        }
    }

    /// The caller may see a record of `tenant`; otherwise the record is "not found", exactly as
    /// one that does not exist.
    pub fn owns(&self, tenant: &str, what: &str) -> Result<(), ApiError> {
        match self.tenant() {
            Some(own) if own != tenant => Err(ApiError::not_found(what)),
            _ => Ok(()),
        }
    }

    /// The tenant a request acts for, given the one it names: a tenant key acts for its own
    /// (named or not) and may not name another (403); the admin acts for the one named, if any.
    pub fn claim<'a>(&'a self, named: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
        match (self.tenant(), named) {
            (None, named) => Ok(named),
            (Some(own), None) => Ok(Some(own)),
            (Some(own), Some(n)) if n == own => Ok(Some(own)),
            (Some(_), Some(n)) => Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this API key may not act for tenant {n:?}"),
            )),
        }
    }
}

/// Handlers take the caller as an argument. It is put there by the authentication layer; a
/// route outside that layer has no caller and is refused, never served as the admin.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "no authenticated caller"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookd_types::{KeyId, Scopes};

    fn tenant(scopes: &[Scope]) -> Principal {
        Principal::Tenant(Arc::new(ApiKey {
            id: KeyId::generate(),
            tenant: "acme".into(),
            name: "ci".into(),
            scopes: scopes.iter().copied().collect::<Scopes>(),
            key_sha256: [0; 32],
            created_at_ms: 0,
            expires_at_ms: None,
        }))
    }

    fn code(r: Result<impl Sized, ApiError>) -> Option<&'static str> {
        r.err().map(|e| e.code.as_str())
    }

    #[test]
    fn scopes_gate_routes_and_admin_passes_all() {
        let key = tenant(&[Scope::EventsWrite]);
        assert_eq!(code(key.check(Access::Scope(Scope::EventsWrite))), None);
        assert_eq!(code(key.check(Access::AnyKey)), None);
        for s in Scope::ALL.into_iter().filter(|s| *s != Scope::EventsWrite) {
            assert_eq!(code(key.check(Access::Scope(s))), Some("FORBIDDEN"), "{s}");
        }
        assert_eq!(code(key.check(Access::Admin)), Some("FORBIDDEN"));
        for a in [
            Access::Admin,
            Access::AnyKey,
            Access::Scope(Scope::EventsRead),
        ] {
            assert_eq!(code(Principal::Admin.check(a)), None);
        }
    }

    #[test]
    fn other_tenants_are_not_found_and_cannot_be_claimed() {
        let key = tenant(&[]);
        assert_eq!(code(key.owns("acme", "endpoint")), None);
        assert_eq!(code(key.owns("globex", "endpoint")), Some("NOT_FOUND"));
        assert_eq!(code(Principal::Admin.owns("globex", "endpoint")), None);
        assert_eq!(key.claim(None).unwrap(), Some("acme"));
        assert_eq!(key.claim(Some("acme")).unwrap(), Some("acme"));
        assert_eq!(code(key.claim(Some("globex"))), Some("FORBIDDEN"));
        assert_eq!(Principal::Admin.claim(None).unwrap(), None);
        assert_eq!(Principal::Admin.claim(Some("x")).unwrap(), Some("x"));
    }
}
