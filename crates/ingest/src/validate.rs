//! Turning request bodies into log entries. Every rule lives here so single and batch ingest
//! agree, and a failure names the offending field (and, in a batch, the index).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::value::RawValue;

use hookd_http::ApiError;
use hookd_log::LogEntry;
use hookd_types::event::is_valid_type_name;
use hookd_types::id::{is_valid_token, new_event_id};
use hookd_types::time::now_ms;
use hookd_types::Event;

pub const DEFAULT_TENANT: &str = "default";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventIn<'a> {
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    #[serde(borrow)]
    pub data: Option<&'a RawValue>,
    pub tenant: Option<String>,
    pub id: Option<String>,
}

/// An event ready to be committed, plus what idempotency needs to know about it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub entry: LogEntry,
    /// The producer chose the id: a repeat of it is a replay.
    pub client_id: bool,
}

/// Idempotency keys: printable ASCII, 1..=255 bytes.
pub fn check_idempotency_key(k: &str) -> Result<(), ApiError> {
    if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(ApiError::validation(
            "Idempotency-Key must be 1..=255 printable ASCII characters",
        ));
    }
    Ok(())
}

pub fn candidate(
    input: EventIn<'_>,
    known_types: &HashSet<String>,
    idempotency_key: Option<&str>,
) -> Result<Candidate, ApiError> {
    let event_type = input
        .event_type
        .ok_or_else(|| ApiError::validation("`type` is required"))?;
    if !is_valid_type_name(&event_type) {
        return Err(ApiError::validation(format!(
            "`type` {event_type:?} is not a valid event type name"
        )));
    }
    if !known_types.contains(&event_type) {
        return Err(ApiError::validation(format!(
            "`type` {event_type:?} is not a known event type (see GET /v1/event-types)"
        )));
    }
    let data = match input.data {
        Some(raw) if raw.get().trim_start().starts_with('{') => raw.get().to_owned(),
        Some(_) => return Err(ApiError::validation("`data` must be a JSON object")),
        None => "{}".to_owned(),
    };
    let tenant = input.tenant.unwrap_or_else(|| DEFAULT_TENANT.to_owned());
    if !is_valid_token(&tenant) {
        return Err(ApiError::validation(
            "`tenant` must be 1..=128 characters of [A-Za-z0-9_.:-]",
        ));
    }
    let client_id = input.id.is_some();
    let id = match input.id {
        Some(id) if is_valid_token(&id) => id,
        Some(_) => {
            return Err(ApiError::validation(
                "`id` must be 1..=128 characters of [A-Za-z0-9_.:-]",
            ))
        }
        None => new_event_id(),
    };
    let request_hash = request_hash(&tenant, &event_type, &data, client_id.then_some(&*id));
    Ok(Candidate {
        entry: LogEntry {
            event: Event {
                id,
                tenant,
                event_type,
                created_at_ms: now_ms(),
                data,
            },
            idempotency_key: idempotency_key.map(str::to_owned),
            request_hash,
        },
        client_id,
    })
}

/// A digest of what the producer asked for (not of what hookd added, like generated ids).
fn request_hash(tenant: &str, event_type: &str, data: &str, id: Option<&str>) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [tenant, event_type, data, id.unwrap_or("")] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let d = ctx.finish();
    u64::from_le_bytes(d.as_ref()[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> HashSet<String> {
        ["job.completed".to_owned()].into_iter().collect()
    }

    fn parse(body: &str) -> Result<Candidate, ApiError> {
        let input: EventIn = serde_json::from_str(body).unwrap();
        candidate(input, &types(), None)
    }

    #[test]
    fn accepts_and_keeps_data_verbatim() {
        let c = parse(r#"{"type":"job.completed","data":{"z":1,"a":[2, 3]}}"#).unwrap();
        assert_eq!(c.entry.event.data, r#"{"z":1,"a":[2, 3]}"#);
        assert_eq!(c.entry.event.tenant, "default");
        assert!(c.entry.event.id.starts_with("evt_") && !c.client_id);
    }

    #[test]
    fn rejects_bad_fields() {
        for body in [
            r#"{"data":{}}"#,
            r#"{"type":"job.unknown","data":{}}"#,
            r#"{"type":"Job","data":{}}"#,
            r#"{"type":"job.completed","data":[1]}"#,
            r#"{"type":"job.completed","tenant":"a b"}"#,
            r#"{"type":"job.completed","id":""}"#,
        ] {
            assert!(parse(body).is_err(), "{body}");
        }
        assert!(serde_json::from_str::<EventIn>(r#"{"type":"x","tenat":"a"}"#).is_err());
    }

    #[test]
    fn same_request_same_hash() {
        let a = parse(r#"{"type":"job.completed","id":"x","data":{"a":1}}"#).unwrap();
        let b = parse(r#"{"type":"job.completed","id":"x","data":{"a":1}}"#).unwrap();
        let c = parse(r#"{"type":"job.completed","id":"x","data":{"a":2}}"#).unwrap();
        assert_eq!(a.entry.request_hash, b.entry.request_hash);
        assert_ne!(a.entry.request_hash, c.entry.request_hash);
        assert!(check_idempotency_key("abc-123").is_ok());
        assert!(check_idempotency_key("a b").is_err());
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn types() -> HashSet<String> {
        ["job.completed".to_owned()].into_iter().collect()
    }

    /// JSON-ish objects with the event's field names and arbitrary values.
    fn event_json() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("null".to_owned()),
            Just("{}".to_owned()),
            Just("[1,2]".to_owned()),
            Just("{\"a\":{\"b\":[true]}}".to_owned()),
        ];
        let field = prop_oneof![
            Just("type"),
            Just("data"),
            Just("tenant"),
            Just("id"),
            Just("other")
        ];
        proptest::collection::vec((field, value), 0..6).prop_map(|fields| {
            let body: Vec<String> = fields
                .into_iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_rejected_not_panicked(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(input) = serde_json::from_slice::<EventIn>(&bytes) {
                let _ = candidate(input, &types(), None);
            }
        }

        #[test]
        fn arbitrary_events_validate_or_fail_cleanly(body in event_json(), key in any::<String>()) {
            let _ = check_idempotency_key(&key);
            if let Ok(input) = serde_json::from_str::<EventIn>(&body) {
                if let Ok(c) = candidate(input, &types(), Some(&key)) {
                    // What is accepted is what the rules say.
                    prop_assert!(types().contains(&c.entry.event.event_type));
                    prop_assert!(c.entry.event.data.trim_start().starts_with('{'), "data must be an object");
                    prop_assert!(hookd_types::id::is_valid_token(&c.entry.event.tenant));
                    prop_assert!(hookd_types::id::is_valid_token(&c.entry.event.id));
                }
            }
        }
    }
}
