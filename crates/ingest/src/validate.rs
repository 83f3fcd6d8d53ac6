//! Turning request bodies into log entries. Every rule lives here so single and batch ingest
//! agree, and a failure names the offending field (and, in a batch, the index).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::value::RawValue;

use hookd_log::LogEntry;
use hookd_types::check::{check_event_type, check_token, tenant_or_default, FieldError};
use hookd_types::id::new_event_id;
use hookd_types::time::now_ms;
use hookd_types::Event;

/// An event as a producer posts it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EventInput, example = json!({
    "type": "instance.ready", "data": {"instance_id": "i-42"}, "tenant": "acme"
}))]
pub struct EventIn<'a> {
    /// One of the daemon's `[events] types`.
    #[serde(rename = "type")]
    #[schema(required = true, value_type = String, pattern = r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$", max_length = 128)]
    pub event_type: Option<String>,
    /// A JSON object, delivered as it came; `{}` when absent.
    #[serde(borrow)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<&'a RawValue>,
    /// Defaults to `default`; with an API key, the key's tenant (naming another is 403).
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub tenant: Option<String>,
    /// Defaults to `evt_<ULID>`. A repeated id (same tenant) replays the original event.
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
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
pub use hookd_http::idempotency::check as check_idempotency_key;

pub fn candidate(
    input: EventIn<'_>,
    known_types: &HashSet<String>,
    idempotency_key: Option<&str>,
) -> Result<Candidate, FieldError> {
    let event_type = input
        .event_type
        .ok_or_else(|| FieldError::required("type"))?;
    check_event_type("type", &event_type, known_types)?;
    // Copied once, straight into its shared form.
    let data: std::sync::Arc<str> = match input.data {
        Some(raw) if raw.get().trim_start().starts_with('{') => raw.get().into(),
        Some(_) => return Err(FieldError::new("data", "must be a JSON object")),
        None => "{}".into(),
    };
    let tenant = tenant_or_default(input.tenant)?;
    let client_id = input.id.is_some();
    let id = match input.id {
        Some(id) => {
            check_token("id", &id)?;
            id
        }
        None => new_event_id(),
    };
    // Only a repeated Idempotency-Key compares request hashes (a repeated id compares tenants):
    // without a key there is nothing to hash.
    let request_hash = match idempotency_key {
        Some(_) => request_hash(&tenant, &event_type, &data, client_id.then_some(&*id)),
        None => 0,
    };
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
    use hookd_http::ApiError;
    use hookd_types::check::testing::known_types;

    fn parse(body: &str) -> Result<Candidate, FieldError> {
        let input: EventIn = serde_json::from_str(body).unwrap();
        candidate(input, &known_types(), None)
    }

    #[test]
    fn accepts_and_keeps_data_verbatim() {
        let c = parse(r#"{"type":"job.completed","data":{"z":1,"a":[2, 3]}}"#).unwrap();
        assert_eq!(&*c.entry.event.data, r#"{"z":1,"a":[2, 3]}"#);
        assert_eq!(c.entry.event.tenant, "default");
        assert!(c.entry.event.id.starts_with("evt_") && !c.client_id);
    }

    #[test]
    fn rejections_name_their_field() {
        for (body, field) in [
            (r#"{"data":{}}"#, "type"),
            (r#"{"type":"job.unknown","data":{}}"#, "type"),
            (r#"{"type":"Job","data":{}}"#, "type"),
            (r#"{"type":"job.completed","data":[1]}"#, "data"),
            (r#"{"type":"job.completed","data":"{}"}"#, "data"),
            (r#"{"type":"job.completed","tenant":"a b"}"#, "tenant"),
            (r#"{"type":"job.completed","tenant":""}"#, "tenant"),
            (r#"{"type":"job.completed","id":""}"#, "id"),
        ] {
            let e = parse(body)
                .err()
                .unwrap_or_else(|| panic!("{body} accepted"));
            assert_eq!(e.field, field, "{body}: {e}");
            // What the producer reads names the field too.
            let api = ApiError::from(e);
            assert!(
                api.message.starts_with(&format!("`{field}` ")),
                "{body}: {api}"
            );
        }
        assert!(serde_json::from_str::<EventIn>(r#"{"type":"x","tenat":"a"}"#).is_err());
    }

    #[test]
    fn same_request_same_hash() {
        let keyed = |body: &str| {
            let input: EventIn = serde_json::from_str(body).unwrap();
            candidate(input, &known_types(), Some("k-1")).unwrap()
        };
        let a = keyed(r#"{"type":"job.completed","id":"x","data":{"a":1}}"#);
        let b = keyed(r#"{"type":"job.completed","id":"x","data":{"a":1}}"#);
        let c = keyed(r#"{"type":"job.completed","id":"x","data":{"a":2}}"#);
        let d = keyed(r#"{"type":"job.completed","id":"y","data":{"a":1}}"#);
        assert_eq!(a.entry.request_hash, b.entry.request_hash);
        assert_ne!(a.entry.request_hash, c.entry.request_hash);
        assert_ne!(a.entry.request_hash, d.entry.request_hash);
        assert!(check_idempotency_key("abc-123").is_ok());
        assert!(check_idempotency_key("a b").is_err());
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use hookd_types::check::testing::{known_types, KNOWN_TYPES};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    /// A JSON string.
    fn json(s: &str) -> String {
        serde_json::Value::from(s).to_string()
    }

    /// Values that are not strings.
    fn non_string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            Just("null".to_owned()),
            Just("[1,2]".to_owned()),
            Just("{\"a\":{\"b\":[true]}}".to_owned()),
        ]
    }

    /// A field that is absent (`None`), valid or invalid, as the weights say.
    fn field(
        absent: u32,
        valid: impl Strategy<Value = String> + 'static,
        weight: u32,
    ) -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            absent => Just(None),
            weight => valid.prop_map(Some),
            1 => any::<String>().prop_map(|s| Some(json(&s))),
            1 => non_string().prop_map(Some),
        ]
    }

    /// Event objects whose every field is absent, valid or invalid, so that a good share is
    /// accepted and each rule is also broken: known and unknown types, objects and other data,
    /// tokens and other tenants and ids, now and then a field that does not exist.
    fn event_json() -> impl Strategy<Value = String> {
        let token = || "[A-Za-z0-9_.:-]{1,12}".prop_map(|s| json(&s));
        let event_type = prop_oneof![
            6 => proptest::sample::select(KNOWN_TYPES).prop_map(json),
            1 => "[a-z]{1,8}(\\.[a-z]{1,8})?".prop_map(|s| json(&s)),
        ];
        let data = prop_oneof![
            Just("{}".to_owned()),
            Just("{\"a\":{\"b\":[true]}}".to_owned()),
            "[a-z]{1,5}".prop_map(|k| format!("{{\"{k}\":1}}")),
        ];
        (
            field(1, event_type, 8),
            field(2, data, 8),
            field(4, token(), 4),
            field(4, token(), 4),
            prop_oneof![9 => Just(None), 1 => non_string().prop_map(Some)],
        )
            .prop_map(|(event_type, data, tenant, id, other)| {
                let body: Vec<String> = [
                    ("type", event_type),
                    ("data", data),
                    ("tenant", tenant),
                    ("id", id),
                    ("other", other),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("\"{k}\":{v}")))
                .collect();
                format!("{{{}}}", body.join(","))
            })
    }

    /// What `candidate` makes of `body`: `None` if it is not even an `EventIn`. Checks that what
    /// it accepts follows the rules and that what it rejects names one of the event's fields.
    fn judge(body: &str, key: &str) -> Result<Option<bool>, TestCaseError> {
        let Ok(input) = serde_json::from_str::<EventIn>(body) else {
            return Ok(None);
        };
        match candidate(input, &known_types(), Some(key)) {
            Ok(c) => {
                let ev = &c.entry.event;
                prop_assert!(known_types().contains(&ev.event_type));
                prop_assert!(
                    ev.data.trim_start().starts_with('{'),
                    "data must be an object"
                );
                prop_assert!(hookd_types::id::is_valid_token(&ev.tenant));
                prop_assert!(hookd_types::id::is_valid_token(&ev.id));
                prop_assert_eq!(c.entry.idempotency_key.as_deref(), Some(key));
                Ok(Some(true))
            }
            Err(e) => {
                prop_assert!(["type", "data", "tenant", "id"].contains(&e.field), "{}", e);
                let named = format!("`{}` ", e.field);
                prop_assert!(e.to_string().starts_with(&named), "{}", e);
                Ok(Some(false))
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_rejected_not_panicked(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            // Whatever the bytes, the answer is a value: a parse error, or a judged event.
            if let Ok(body) = std::str::from_utf8(&bytes) {
                judge(body, "k")?;
            } else {
                prop_assert!(serde_json::from_slice::<EventIn>(&bytes).is_err());
            }
        }

        #[test]
        fn arbitrary_events_validate_or_fail_cleanly(body in event_json(), key in any::<String>()) {
            let _ = check_idempotency_key(&key);
            judge(&body, &key)?;
        }
    }

    /// The property above is only worth something if the generator reaches both sides of every
    /// rule: count what it makes, over a fixed seed.
    #[test]
    fn generated_events_are_often_accepted_and_often_rejected() {
        let mut runner = TestRunner::deterministic();
        let strategy = event_json();
        let (mut accepted, mut rejected, mut unparsed) = (0, 0, 0);
        let mut fields = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let body = strategy.new_tree(&mut runner).unwrap().current();
            let input = serde_json::from_str::<EventIn>(&body);
            match input.map(|i| candidate(i, &known_types(), None)) {
                Err(_) => unparsed += 1,
                Ok(Ok(_)) => accepted += 1,
                Ok(Err(e)) => {
                    rejected += 1;
                    fields.insert(e.field);
                }
            }
            judge(&body, "k").unwrap();
        }
        let counts = format!("accepted {accepted}, rejected {rejected}, unparsed {unparsed}");
        assert!(accepted >= 400, "{counts}");
        assert!(rejected >= 400, "{counts}");
        assert!(unparsed >= 20, "{counts}");
        assert_eq!(
            fields.into_iter().collect::<Vec<_>>(),
            ["data", "id", "tenant", "type"],
            "every field's rule was broken at least once"
        );
    }
}
