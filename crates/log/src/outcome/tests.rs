use super::*;
use crate::store::Store;
use crate::testing::TempStore;
use hookd_types::{Delivery, EndpointId};

fn pending(ep: EndpointId, due: u64) -> Delivery {
    crate::testing::pending_delivery("e1", ep, due)
}

fn attempt(number: u32, at_ms: u64) -> Attempt {
    crate::testing::answered_attempt(number, at_ms, 500)
}

fn failed_attempt(delivery: DeliveryId, number: u32, next: u64) -> Change {
    Change::Attempted {
        delivery,
        attempt: attempt(number, next - 1),
        status: DeliveryStatus::Retrying,
        next_attempt_ms: Some(next),
        at_ms: next - 1,
    }
}

fn open(dir: &TempStore) -> (Arc<SledStore>, OutcomeLog) {
    let store = Arc::new(dir.open());
    let log = OutcomeLog::open(&dir.path().join("outcomes"), store.clone()).unwrap();
    (store, log)
}

/// Fans out one delivery and records `n` failed attempts of it, one record each; returns the
/// delivery and the last record's seq.
async fn failing(store: &SledStore, log: &OutcomeLog, n: u32) -> (Delivery, Seq) {
    let d = pending(EndpointId::generate(), 10);
    store
        .commit_fanout(0, &vec![], std::slice::from_ref(&d))
        .unwrap();
    let mut last = 0;
    for n in 1..=n {
        last = log
            .record(&[failed_attempt(d.id, n, 100 + n as u64)])
            .await
            .unwrap();
    }
    (d, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_facts_reach_the_read_model_in_order() {
    let dir = TempStore::new();
    let (store, log) = open(&dir);
    let (d, last) = failing(&store, &log, 5).await;
    log.applied(last).await.unwrap();
    let now = store.get_delivery(d.id).unwrap().unwrap();
    assert_eq!((now.attempts, now.next_attempt_ms), (5, Some(105)));
    assert_eq!(store.attempts(d.id).unwrap().len(), 5);
    assert_eq!(store.scheduled().unwrap().len(), 1);
    assert_eq!(store.outcomes_applied().unwrap(), last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_applies_what_the_read_model_missed() {
    let dir = TempStore::new();
    let d = pending(EndpointId::generate(), 10);
    let seq = {
        let store = Arc::new(dir.open());
        store
            .commit_fanout(0, &vec![], std::slice::from_ref(&d))
            .unwrap();
        store.flush().unwrap();
        // Write the log alone, as a crash right after the append would leave it: no indexer.
        let (journal, _) = Journal::open(
            dir.path().join("outcomes"),
            JournalConfig {
                durability: Durability::Buffered,
                ..JournalConfig::default()
            },
        )
        .unwrap();
        let a = journal
            .append(encode(&[failed_attempt(d.id, 1, 50)]).unwrap())
            .unwrap();
        let b = journal
            .append(encode(&[failed_attempt(d.id, 2, 70)]).unwrap())
            .unwrap();
        assert_eq!(b, a + 1);
        b
    };
    let (store, log) = open(&dir);
    assert_eq!(log.applied_seq(), seq);
    let now = store.get_delivery(d.id).unwrap().unwrap();
    assert_eq!((now.attempts, now.next_attempt_ms), (2, Some(70)));
    assert_eq!(store.attempts(d.id).unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_applies_everything_recorded_before() {
    let dir = TempStore::new();
    let (store, log) = open(&dir);
    let (d, last) = failing(&store, &log, 50).await;
    log.close().unwrap();
    assert_eq!(store.outcomes_applied().unwrap(), last);
    assert_eq!(store.attempts(d.id).unwrap().len(), 50);
}
