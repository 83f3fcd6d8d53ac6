//! The vendored sled lets reads run beside a batch (`vendor/README.md`): an API read must not
//! wait for the indexer's batch of thousands of keys. Unpatched, sled makes every `get` and
//! scan wait on one process-wide lock while any batch is applied, and no read would complete
//! between the batch's start and its end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

#[test]
fn reads_complete_while_a_batch_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()
        .unwrap();
    db.insert(b"probe", &b"v"[..]).unwrap();
    // One batch first: sled switches its reads to the lock once any batch has run.
    let mut warm = sled::Batch::default();
    warm.insert(&b"warm"[..], &b"v"[..]);
    db.apply_batch(warm).unwrap();

    let (started, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let during = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(Barrier::new(2));
    let reader = {
        let (db, started, done, during, ready) = (
            db.clone(),
            started.clone(),
            done.clone(),
            during.clone(),
            ready.clone(),
        );
        std::thread::spawn(move || {
            ready.wait();
            while !done.load(Ordering::SeqCst) {
                let was_started = started.load(Ordering::SeqCst);
                assert!(db.get(b"probe").unwrap().is_some());
                let mut scan = db.scan_prefix(b"probe");
                assert!(scan.next().is_some());
                // Begun after the batch started and ended before it was done.
                if was_started && !done.load(Ordering::SeqCst) {
                    during.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let mut batch = sled::Batch::default();
    for i in 0u32..60_000 {
        batch.insert(&[&b"k"[..], &i.to_be_bytes()].concat()[..], &[0u8; 64][..]);
    }
    ready.wait();
    started.store(true, Ordering::SeqCst);
    db.apply_batch(batch).unwrap();
    done.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    // Without the patch, at most the reads that slipped in before the batch took its lock.
    let n = during.load(Ordering::SeqCst);
    assert!(
        n >= 200,
        "only {n} reads completed while the batch was applied"
    );
}
