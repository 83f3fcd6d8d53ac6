//! Endpoint records written before endpoints had a wire format still load.

use std::collections::BTreeMap;

use hookd_types::format::{Preset, PreviousSecret};

use super::*;

/// The old layout, field for field, to write a record the way older builds did.
#[derive(Serialize)]
struct WriteV0<'a> {
    id: EndpointId,
    tenant: &'a str,
    name: &'a str,
    url: &'a str,
    description: &'a str,
    event_types: Vec<String>,
    secret: &'a str,
    enabled: bool,
    metadata: BTreeMap<String, String>,
    created_at_ms: u64,
    updated_at_ms: u64,
}

fn open(dir: &tempfile::TempDir) -> SledStore {
    SledStore::open(&SledConfig {
        path: dir.path().join("db"),
        cache_bytes: 1 << 20,
    })
    .unwrap()
}

#[test]
fn old_records_read_as_standard_webhooks_and_new_ones_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let old_id = EndpointId::generate();
    let new_id = EndpointId::generate();
    {
        let store = open(&dir);
        let v0 = WriteV0 {
            id: old_id,
            tenant: "t",
            name: "old",
            url: "https://example.com/a",
            description: "",
            event_types: vec!["*".into()],
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            enabled: true,
            metadata: BTreeMap::from([("k".into(), "v".into())]),
            created_at_ms: 5,
            updated_at_ms: 6,
        };
        store
            .db
            .insert(endpoint_key(old_id), enc(&v0).unwrap())
            .unwrap();
        let mut format = Preset::Cortex.format();
        format.headers.insert("X-Tenant".into(), "acme".into());
        let new = Endpoint {
            id: new_id,
            tenant: "t".into(),
            name: "new".into(),
            url: "https://example.com/b".into(),
            description: "d".into(),
            event_types: vec!["job.*".into()],
            secret: "a-customer-chosen-secret".into(),
            enabled: false,
            metadata: BTreeMap::new(),
            created_at_ms: 7,
            updated_at_ms: 8,
            format,
            previous_secrets: vec![PreviousSecret {
                secret: "the-old-customer-secret".into(),
                expires_at_ms: 9,
            }],
            controls: Default::default(),
        };
        store.put_endpoint(&new).unwrap();
        store.db.flush().unwrap();
    }
    let store = open(&dir);
    let eps = store.endpoints().unwrap();
    assert_eq!(eps.len(), 2);
    // Two ids made in the same millisecond sort by their random part: find, do not index.
    let by_id = |id| eps.iter().find(|e| e.id == id).unwrap();
    let old = by_id(old_id);
    assert_eq!(old.name, "old");
    assert_eq!(old.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(old.metadata.get("k").map(String::as_str), Some("v"));
    assert_eq!(old.updated_at_ms, 6);
    assert_eq!(old.format, Preset::Standard.format());
    assert!(old.previous_secrets.is_empty());
    let new = by_id(new_id);
    assert_eq!(new.format.preset, Preset::Cortex);
    assert_eq!(
        new.format.headers.get("X-Tenant").map(String::as_str),
        Some("acme")
    );
    assert_eq!(new.previous_secrets.len(), 1);
    assert!(!new.enabled);
}

#[test]
fn a_record_of_neither_layout_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .db
        .insert(endpoint_key(EndpointId::generate()), &[1u8, 2, 3][..])
        .unwrap();
    assert!(matches!(store.endpoints(), Err(LogError::Corrupt { .. })));
}
