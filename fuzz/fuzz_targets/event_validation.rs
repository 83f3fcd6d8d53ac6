//! Event validation: any bytes as a single event and as a batch, through the same depth check,
//! parser and rules as `POST /v1/events` and `/v1/events/batch`. Must never panic or overflow
//! the stack; what is accepted must obey the rules.
#![no_main]

use std::collections::HashSet;

use hookd_http::json::{parse_json, JsonLimits};
use hookd_ingest::validate::{candidate, check_idempotency_key, EventIn};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fn check(input: EventIn<'_>, types: &HashSet<String>) {
    if let Ok(c) = candidate(input, types, Some("key")) {
        let e = &c.entry.event;
        assert!(types.contains(&e.event_type));
        assert!(
            e.data.trim_start().starts_with('{'),
            "data must be an object"
        );
        assert!(hookd_types::id::is_valid_token(&e.tenant));
        assert!(hookd_types::id::is_valid_token(&e.id));
        // Stored data must print as JavaScript would, for the verifiers that re-print it.
        let wrapped = format!("{{\"data\":{}}}", e.data);
        assert!(hookd_sender::jsjson::normalize(wrapped.as_bytes()).is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    let types: HashSet<String> = ["job.completed".to_owned(), "instance.ready".to_owned()]
        .into_iter()
        .collect();
    let limits = JsonLimits::default();
    if let Ok(input) = parse_json::<EventIn>(data, limits) {
        check(input, &types);
    }
    if let Ok(batch) = parse_json::<Vec<&RawValue>>(data, limits) {
        for raw in batch {
            if let Ok(input) = parse_json::<EventIn>(raw.get().as_bytes(), limits) {
                check(input, &types);
            }
        }
    }
    if let Ok(key) = std::str::from_utf8(data) {
        let _ = check_idempotency_key(key);
    }
});
