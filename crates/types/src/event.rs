//! An ingested event. `data` is kept as the producer's raw JSON text so it is delivered byte for
//! byte as it arrived (no re-serialisation, no key reordering).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub tenant: String,
    pub event_type: String,
    pub created_at_ms: u64,
    /// Raw JSON text of the `data` member. Shared: an event is cloned at each stage it passes
    /// (group commit, idempotency view, fan-out), and its data is most of its bytes. Encoded
    /// exactly as a `String` was, so records are unchanged.
    pub data: Arc<str>,
}

/// Event type names: dot-separated segments of `[a-z0-9_-]`, 1..=128 chars (`instance.ready`).
pub fn is_valid_type_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert!(is_valid_type_name("instance.ready"));
        assert!(is_valid_type_name("gpu_available"));
        assert!(!is_valid_type_name("Instance.Ready"));
        assert!(!is_valid_type_name("job..done"));
        assert!(!is_valid_type_name("job.*"));
        assert!(!is_valid_type_name(""));
    }
}
