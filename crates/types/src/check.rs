//! Checks of input fields that more than one door takes (event ingest, the management API), so
//! they agree on the rules and on the words. Every failure names its field.

use std::collections::HashSet;

use crate::event::is_valid_type_name;
use crate::id::is_valid_token;

/// The tenant of events and endpoints that name none.
pub const DEFAULT_TENANT: &str = "default";

/// A rejected input field: which one, and what is wrong with it. Shown as "`field` problem".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }

    pub fn required(field: &'static str) -> Self {
        Self::new(field, "is required")
    }
}

/// `name`, given as `field`, is a valid event type name and one of the configured types.
pub fn check_event_type(
    field: &'static str,
    name: &str,
    known: &HashSet<String>,
) -> Result<(), FieldError> {
    if !is_valid_type_name(name) {
        return Err(FieldError::new(
            field,
            format!("{name:?} is not a valid event type name"),
        ));
    }
    if !known.contains(name) {
        return Err(FieldError::new(
            field,
            format!("{name:?} is an unknown event type (see GET /v1/event-types)"),
        ));
    }
    Ok(())
}

/// `field` holds a token: 1..=128 characters of `[A-Za-z0-9_.:-]` (event ids, tenants).
pub fn check_token(field: &'static str, value: &str) -> Result<(), FieldError> {
    if !is_valid_token(value) {
        return Err(FieldError::new(
            field,
            "must be 1..=128 characters of [A-Za-z0-9_.:-]",
        ));
    }
    Ok(())
}

/// The `tenant` given, or [`DEFAULT_TENANT`]; checked either way.
pub fn tenant_or_default(tenant: Option<String>) -> Result<String, FieldError> {
    let tenant = tenant.unwrap_or_else(|| DEFAULT_TENANT.to_owned());
    check_token("tenant", &tenant)?;
    Ok(tenant)
}

/// Fixtures for tests of the crates that check events.
#[cfg(any(test, feature = "test-util"))]
pub mod testing {
    use std::collections::HashSet;

    /// The event types tests configure.
    pub const KNOWN_TYPES: &[&str] = &["job.completed", "instance.ready"];

    pub fn known_types() -> HashSet<String> {
        KNOWN_TYPES.iter().map(|t| (*t).to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::known_types;
    use super::*;

    #[test]
    fn event_types_must_be_valid_and_known() {
        let known = known_types();
        assert_eq!(check_event_type("type", "job.completed", &known), Ok(()));
        let bad = check_event_type("type", "Job", &known).unwrap_err();
        assert_eq!(bad.field, "type");
        assert!(
            bad.to_string().starts_with("`type` \"Job\" is not a valid"),
            "{bad}"
        );
        let unknown = check_event_type("event_types", "job.nope", &known).unwrap_err();
        assert_eq!(unknown.field, "event_types");
        assert!(
            unknown.to_string().contains("unknown event type"),
            "{unknown}"
        );
    }

    #[test]
    fn tenants_default_and_are_tokens() {
        assert_eq!(tenant_or_default(None).unwrap(), DEFAULT_TENANT);
        assert_eq!(
            tenant_or_default(Some("acme:eu".into())).unwrap(),
            "acme:eu"
        );
        let e = tenant_or_default(Some("a b".into())).unwrap_err();
        assert_eq!(e.field, "tenant");
        assert!(e.to_string().starts_with("`tenant` must be"), "{e}");
        assert_eq!(check_token("id", "").unwrap_err().field, "id");
    }
}
