//! Endpoint secrets at rest: sealed on disk, opened only by their key, plain stores migrated,
//! re-sealed under a new key, interrupted rewrites finished.

use hookd_types::format::PreviousSecret;

use super::*;

const CURRENT: &str = "whsec_Q3VycmVudFNlY3JldEJ5dGVzMDEyMzQ1Njc4OQ==";
const PREVIOUS: &str = "previous-customer-secret-0123456789";

fn cfg(dir: &tempfile::TempDir) -> SledConfig {
    SledConfig {
        path: dir.path().join("db"),
        cache_bytes: 1 << 20,
    }
}

fn endpoint() -> Endpoint {
    let mut ep = Endpoint::new(
        EndpointId::generate(),
        "acme",
        "ep",
        "https://example.com/hook",
        vec!["*".into()],
        CURRENT,
        1,
    );
    ep.previous_secrets.push(PreviousSecret {
        secret: PREVIOUS.into(),
        expires_at_ms: 99,
    });
    ep
}

/// Whether any file below `dir` holds `needle`.
fn found_on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            found_on_disk(&p, needle)
        } else {
            std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        }
    })
}

fn assert_no_secret_on_disk(dir: &tempfile::TempDir) {
    for s in [CURRENT, PREVIOUS, "Q3VycmVudFNlY3JldEJ5dGVz"] {
        assert!(!found_on_disk(dir.path(), s.as_bytes()), "{s} is on disk");
    }
}

#[test]
fn sealed_secrets_are_not_on_disk_and_reopen_with_their_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let ep = endpoint();
    {
        let (store, migrated) = SledStore::open_sealed(&cfg(&dir), None, key.clone()).unwrap();
        assert_eq!(migrated, 0);
        store.put_endpoint(&ep).unwrap();
    }
    // The plain text is where a plain store would have put it: the test can see it there.
    assert!(found_on_disk(dir.path(), b"https://example.com/hook"));
    assert_no_secret_on_disk(&dir);
    let (store, _) = SledStore::open_sealed(&cfg(&dir), None, key).unwrap();
    assert_eq!(store.endpoints().unwrap(), vec![ep.clone()]);
    store.delete_endpoint(ep.id).unwrap();
    assert!(store.endpoints().unwrap().is_empty());
    drop(store);

    let other = MasterKey::generate().unwrap();
    assert!(matches!(
        SledStore::open_sealed(&cfg(&dir), None, other),
        Err(LogError::WrongMasterKey)
    ));
    let plain = SledStore::open(&cfg(&dir)).unwrap();
    assert!(plain.endpoints().unwrap().is_empty());
}

#[test]
fn without_the_key_sealed_endpoints_do_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    SledStore::open_sealed(&cfg(&dir), None, key)
        .unwrap()
        .0
        .put_endpoint(&endpoint())
        .unwrap();
    let plain = SledStore::open(&cfg(&dir)).unwrap();
    assert!(matches!(plain.endpoints(), Err(LogError::NoMasterKey)));
}

#[test]
fn a_plain_store_is_migrated_without_a_plain_copy_left() {
    let dir = tempfile::tempdir().unwrap();
    let ep = endpoint();
    {
        let store = SledStore::open(&cfg(&dir)).unwrap();
        store.put_endpoint(&ep).unwrap();
        store.put_meta("admin_key_sha256", b"kept").unwrap();
        store.append(&Vec::new()).unwrap();
    }
    assert!(found_on_disk(dir.path(), CURRENT.as_bytes()));
    let key = MasterKey::generate().unwrap();
    let (store, migrated) = SledStore::open_sealed(&cfg(&dir), None, key.clone()).unwrap();
    assert_eq!(migrated, 1);
    assert_eq!(store.endpoints().unwrap(), vec![ep.clone()]);
    assert_eq!(
        store.get_meta("admin_key_sha256").unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        store.read_log(0, 10).unwrap().len(),
        1,
        "other trees copied"
    );
    drop(store);
    assert_no_secret_on_disk(&dir);
    let (store, migrated) = SledStore::open_sealed(&cfg(&dir), None, key).unwrap();
    assert_eq!(migrated, 0);
    assert_eq!(store.endpoints().unwrap(), vec![ep]);
}

#[test]
fn rekey_moves_every_secret_to_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (
        MasterKey::generate().unwrap(),
        MasterKey::generate().unwrap(),
    );
    let ep = endpoint();
    SledStore::open_sealed(&cfg(&dir), None, old.clone())
        .unwrap()
        .0
        .put_endpoint(&ep)
        .unwrap();
    assert!(matches!(
        rekey(&cfg(&dir), Some(&new), &new),
        Err(LogError::WrongMasterKey)
    ));
    assert_eq!(rekey(&cfg(&dir), Some(&old), &new).unwrap(), 1);
    assert!(matches!(
        SledStore::open_sealed(&cfg(&dir), None, old),
        Err(LogError::WrongMasterKey)
    ));
    let (store, _) = SledStore::open_sealed(&cfg(&dir), None, new).unwrap();
    assert_eq!(store.endpoints().unwrap(), vec![ep]);
    drop(store);
    assert_no_secret_on_disk(&dir);
}

#[test]
fn an_interrupted_rewrite_is_finished_or_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(&dir);
    let (rewrite, old) = (dir.path().join("db.rewrite"), dir.path().join("db.old"));
    let key = MasterKey::generate().unwrap();
    let ep = endpoint();
    SledStore::open_sealed(&c, None, key.clone())
        .unwrap()
        .0
        .put_endpoint(&ep)
        .unwrap();
    // Crash during the copy: the half-made copy goes, the store stays.
    std::fs::create_dir(&rewrite).unwrap();
    std::fs::write(rewrite.join("junk"), b"x").unwrap();
    let (store, _) = SledStore::open_sealed(&c, None, key.clone()).unwrap();
    assert_eq!(store.endpoints().unwrap(), vec![ep.clone()]);
    drop(store);
    assert!(!rewrite.exists());
    // Crash between the renames: the finished copy is moved into place.
    std::fs::rename(&c.path, &rewrite).unwrap();
    std::fs::create_dir(&old).unwrap();
    let (store, _) = SledStore::open_sealed(&c, None, key).unwrap();
    assert_eq!(store.endpoints().unwrap(), vec![ep]);
    assert!(!rewrite.exists() && !old.exists());
}
