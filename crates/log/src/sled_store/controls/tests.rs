//! Delivery controls beside endpoint records: old records load without them, the controls
//! survive a restart, sealing and a rekey, and go with their endpoint.

use std::collections::BTreeMap;

use hookd_types::format::{DeliveryFormat, PreviousSecret};
use hookd_types::RateLimit;

use super::super::*;
use super::key_of;

/// The endpoint record exactly as builds before delivery controls wrote it: field for field,
/// in the same order.
#[derive(Serialize)]
struct WriteBeforeControls<'a> {
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
    format: DeliveryFormat,
    previous_secrets: Vec<PreviousSecret>,
}

fn cfg(dir: &tempfile::TempDir) -> SledConfig {
    SledConfig {
        path: dir.path().join("db"),
        cache_bytes: 1 << 20,
    }
}

fn limited(mut ep: Endpoint) -> Endpoint {
    ep.controls = hookd_types::DeliveryControls {
        rate_limit: Some(RateLimit {
            per_second: 20,
            burst: 3,
        }),
        fifo: true,
    };
    ep
}

use crate::testing::endpoint;

#[test]
fn an_old_data_dir_loads_with_no_controls_and_new_controls_survive_sealing_and_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let old_id = EndpointId::generate();
    {
        // An older build's store: a plain record, no controls anywhere.
        let store = SledStore::open(&cfg(&dir)).unwrap();
        let old = WriteBeforeControls {
            id: old_id,
            tenant: "acme",
            name: "old",
            url: "https://example.com/old",
            description: "",
            event_types: vec!["*".into()],
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            enabled: true,
            metadata: BTreeMap::new(),
            created_at_ms: 5,
            updated_at_ms: 6,
            format: DeliveryFormat::default(),
            previous_secrets: vec![PreviousSecret {
                secret: "whsec_b2xkc2VjcmV0b2xkc2VjcmV0".into(),
                expires_at_ms: 9,
            }],
        };
        store
            .db
            .insert(endpoint_key(old_id), enc(&old).unwrap())
            .unwrap();
        store.db.flush().unwrap();
    }
    let key = MasterKey::generate().unwrap();
    let new = limited(endpoint("new"));
    {
        let (store, migrated) = SledStore::open_sealed(&cfg(&dir), None, key.clone()).unwrap();
        assert_eq!(migrated, 1);
        let eps = store.endpoints().unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].name, "old");
        assert_eq!(eps[0].previous_secrets.len(), 1);
        assert!(eps[0].controls.is_default(), "no limit, not FIFO");
        store.put_endpoint(&new).unwrap();
    }
    let (store, _) = SledStore::open_sealed(&cfg(&dir), None, key.clone()).unwrap();
    let eps = store.endpoints().unwrap();
    let got = eps.iter().find(|e| e.id == new.id).unwrap();
    assert_eq!(got, &new);
    assert_eq!(got.controls, new.controls);
    assert!(eps
        .iter()
        .find(|e| e.id == old_id)
        .unwrap()
        .controls
        .is_default());
    drop(store);

    let other = MasterKey::generate().unwrap();
    assert_eq!(rekey(&cfg(&dir), Some(&key), &other).unwrap(), 2);
    let (store, _) = SledStore::open_sealed(&cfg(&dir), None, other).unwrap();
    let eps = store.endpoints().unwrap();
    assert_eq!(eps.iter().find(|e| e.id == new.id).unwrap(), &new);
}

#[test]
fn controls_go_with_their_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&cfg(&dir)).unwrap();
    let ep = limited(endpoint("a"));
    store.put_endpoint(&ep).unwrap();
    assert!(store.db.get(key_of(ep.id)).unwrap().is_some());
    // Back to the default: no record left.
    let mut plain = ep.clone();
    plain.controls = Default::default();
    store.put_endpoint(&plain).unwrap();
    assert!(store.db.get(key_of(ep.id)).unwrap().is_none());
    assert_eq!(store.endpoints().unwrap(), vec![plain]);
    store.put_endpoint(&ep).unwrap();
    store.delete_endpoint(ep.id).unwrap();
    assert!(store.db.get(key_of(ep.id)).unwrap().is_none());
    assert!(store.endpoints().unwrap().is_empty());
}

#[test]
fn a_controls_record_of_an_unknown_layout_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&cfg(&dir)).unwrap();
    let ep = endpoint("a");
    store.put_endpoint(&ep).unwrap();
    store.db.insert(key_of(ep.id), &[9u8, 1][..]).unwrap();
    assert!(matches!(store.endpoints(), Err(LogError::Corrupt { .. })));
}
