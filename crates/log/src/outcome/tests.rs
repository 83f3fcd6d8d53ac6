use super::*;
use crate::store::{DeadlineReads, EndpointStore, EventLog, HistoryReads};
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

/// A delivery id made now (its time is now), told apart by `low`.
fn delivery_at_now(low: u128) -> DeliveryId {
    DeliveryId(((hookd_types::time::now_ms() as u128) << 80) | low)
}

fn open(dir: &TempStore) -> (Arc<SledStore>, OutcomeLog) {
    let store = Arc::new(dir.open());
    let log = OutcomeLog::open(&dir.path().join("outcomes"), store.clone()).unwrap();
    (store, log)
}

/// The outcome log alone, as a crash right after an append leaves it: no indexer.
fn bare_journal(dir: &TempStore) -> Journal {
    let cfg = JournalConfig {
        durability: Durability::Buffered,
        ..JournalConfig::default()
    };
    Journal::open(dir.path().join("outcomes"), cfg).unwrap().0
}

/// Fans out one delivery and records `n` failed attempts of it, one record each; returns the
/// delivery and the last record's seq.
async fn failing(store: &SledStore, log: &OutcomeLog, n: u32) -> (Delivery, Seq) {
    let d = pending(EndpointId::generate(), 10);
    store.seed_deliveries(std::slice::from_ref(&d)).unwrap();
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
        store.seed_deliveries(std::slice::from_ref(&d)).unwrap();
        store.flush().unwrap();
        let journal = bare_journal(&dir);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_indexes_again_a_fan_out_the_read_model_lost() {
    let dir = TempStore::new();
    let ep = EndpointId::generate();
    let id = delivery_at_now(1);
    {
        let store = dir.open();
        let event = hookd_types::Event {
            id: "lost".into(),
            tenant: "t".into(),
            event_type: "job.completed".into(),
            created_at_ms: 1,
            data: "{}".into(),
        };
        let record = vec![crate::store::LogEntry {
            event,
            idempotency_key: Some("k".into()),
            request_hash: 3,
        }];
        let seq = store.append(&record).unwrap();
        // The fan-out's record reached the outcome log; nothing of it reached sled.
        let journal = bare_journal(&dir);
        let fanned = FannedEvent {
            event_id: "lost".into(),
            tenant: "t".into(),
            event_type: "job.completed".into(),
            deliveries: vec![(id, ep)],
        };
        let change = Change::FannedOut {
            seq,
            events: vec![fanned],
        };
        journal.append(encode(&[change]).unwrap()).unwrap();
    }
    let (store, _log) = open(&dir);
    assert_eq!(store.get_event("lost").unwrap().unwrap().id, "lost");
    let idem = store.get_idempotency("t", "k").unwrap().unwrap();
    assert_eq!(idem.event_id, "lost");
    let d = store.get_delivery(id).unwrap().unwrap();
    assert_eq!((d.status, d.endpoint_id), (DeliveryStatus::Pending, ep));
    assert_eq!(store.event_deliveries("lost").unwrap(), vec![d]);
    let waiting: Vec<_> = store.scheduled().unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].delivery, waiting[0].attempts), (id, 0));
    let left = store.read_log(store.fanout_cursor(), 10).unwrap();
    assert!(left.is_empty(), "fanned out once only: {left:?}");
}

fn event_at(id: &str, tenant: &str, created_at_ms: u64) -> crate::store::LogEntry {
    crate::store::LogEntry {
        event: hookd_types::Event {
            id: id.into(),
            tenant: tenant.into(),
            event_type: "job.completed".into(),
            created_at_ms,
            data: "{}".into(),
        },
        idempotency_key: None,
        request_hash: 0,
    }
}

fn fanned(event_id: &str, deliveries: Vec<(DeliveryId, EndpointId)>) -> FannedEvent {
    FannedEvent {
        event_id: event_id.into(),
        tenant: "t".into(),
        event_type: "job.completed".into(),
        deliveries,
    }
}

/// A record fanned out in parts (`FannedOutPart`, then the last part as `FannedOut`) that
/// reached the outcome log but not sled: a restart indexes each part's events with that part's
/// deliveries (not the whole record with the last part's), and moves the cursor past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_indexes_again_a_record_fanned_out_in_parts() {
    let dir = TempStore::new();
    let ep = EndpointId::generate();
    let ids: Vec<DeliveryId> = (1..=3).map(delivery_at_now).collect();
    {
        let store = dir.open();
        let record = vec![
            event_at("a", "t", 1),
            event_at("b", "t", 2),
            event_at("c", "t", 3),
        ];
        let seq = store.append(&record).unwrap();
        let journal = bare_journal(&dir);
        let part = Change::FannedOutPart {
            seq,
            events: vec![
                fanned("a", vec![(ids[0], ep)]),
                fanned("b", vec![(ids[1], ep)]),
            ],
        };
        let last = Change::FannedOut {
            seq,
            events: vec![fanned("c", vec![(ids[2], ep)])],
        };
        journal.append(encode(&[part]).unwrap()).unwrap();
        journal.append(encode(&[last]).unwrap()).unwrap();
    }
    let (store, _log) = open(&dir);
    for (event, id) in ["a", "b", "c"].iter().zip(&ids) {
        let listed: Vec<DeliveryId> = store
            .event_deliveries(event)
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(listed, vec![*id], "deliveries of {event}");
        assert_eq!(store.get_event(event).unwrap().unwrap().id, *event);
    }
    let mut waiting: Vec<DeliveryId> = store
        .scheduled()
        .unwrap()
        .iter()
        .map(|e| e.delivery)
        .collect();
    waiting.sort();
    assert_eq!(waiting, ids);
    let left = store.read_log(store.fanout_cursor(), 10).unwrap();
    assert!(left.is_empty(), "past the record: {left:?}");
}

/// A crash between the parts of a record's fan-out: the parts recorded keep their deliveries
/// (at-least-once), and the cursor is not past the record, so it is fanned out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_last_part_is_missing_is_read_again() {
    let dir = TempStore::new();
    let ep = EndpointId::generate();
    let id = delivery_at_now(9);
    let seq = {
        let (store, log) = open(&dir);
        let record = vec![event_at("a", "t", 1), event_at("b", "t", 2)];
        let seq = store.append(&record).unwrap();
        let part = Change::FannedOutPart {
            seq,
            events: vec![fanned("a", vec![(id, ep)])],
        };
        store
            .index_records(&[(
                seq,
                &record,
                &[fanned("a", vec![(id, ep)]), fanned("b", vec![])],
            )])
            .unwrap();
        let at = log.record(&[part]).await.unwrap();
        log.applied(at).await.unwrap();
        assert_eq!(
            store.get_delivery(id).unwrap().unwrap().status,
            DeliveryStatus::Pending
        );
        seq
    };
    let (store, _log) = open(&dir);
    let d = store.get_delivery(id).unwrap().unwrap();
    assert_eq!(
        (d.status, d.event_id.as_str()),
        (DeliveryStatus::Pending, "a")
    );
    assert_eq!(store.scheduled().unwrap().len(), 1);
    let left = store.read_log(store.fanout_cursor(), 10).unwrap();
    assert_eq!(left.len(), 1, "the record is read again");
    assert_eq!(left[0].0, seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_makes_deliveries_of_indexed_events_that_survive_a_restart() {
    let dir = TempStore::new();
    let ep = EndpointId::generate();
    let id = delivery_at_now(7);
    let cursor = {
        let (store, log) = open(&dir);
        let record = vec![
            event_at("a", "t", 100),
            event_at("other", "u", 150),
            event_at("b", "t", 200),
        ];
        let seq = store.append(&record).unwrap();
        store.seed_fanout(seq, &record, &[]).unwrap();
        let between = |tenant: &str, from, until| {
            let mut seen = Vec::new();
            store
                .for_each_event_between(tenant, from, until, &mut |e| {
                    seen.push(e.id.to_owned());
                    true
                })
                .unwrap();
            seen
        };
        assert_eq!(between("t", 100, 200), ["a"], "until is exclusive");
        assert_eq!(between("t", 0, u64::MAX), ["a", "b"]);
        assert_eq!(between("t", 101, 200), Vec::<String>::new());
        assert_eq!(between("u", 0, u64::MAX), ["other"]);
        assert!(between("t", 200, 100).is_empty(), "reversed: nothing");
        let mut first = Vec::new();
        store
            .for_each_event_between("t", 0, u64::MAX, &mut |e| {
                first.push(e.id.to_owned());
                false
            })
            .unwrap();
        assert_eq!(first, ["a"], "stops when told");

        let cursor = store.get_meta(EVENTS_CURSOR_NAME).unwrap();
        let replay = Change::Replayed {
            events: vec![FannedEvent {
                event_id: "a".into(),
                tenant: "t".into(),
                event_type: "job.completed".into(),
                deliveries: vec![(id, ep)],
            }],
        };
        let seq = log.record_durable(&[replay]).await.unwrap();
        log.applied(seq).await.unwrap();
        let d = store.get_delivery(id).unwrap().unwrap();
        assert_eq!(
            (d.status, d.endpoint_id, d.event_id.as_str()),
            (DeliveryStatus::Pending, ep, "a")
        );
        assert_eq!(store.event_deliveries("a").unwrap(), vec![d]);
        assert_eq!(
            store.get_meta(EVENTS_CURSOR_NAME).unwrap(),
            cursor,
            "a replay moves no fan-out cursor"
        );
        cursor
    };
    // Still fresh (never attempted) when the process ends: restored from the outcome log.
    let (store, _log) = open(&dir);
    let d = store.get_delivery(id).unwrap().unwrap();
    assert_eq!(
        (d.status, d.event_id.as_str()),
        (DeliveryStatus::Pending, "a")
    );
    let waiting = store.scheduled().unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].delivery, waiting[0].endpoint), (id, ep));
    assert_eq!(store.event_deliveries("a").unwrap(), vec![d]);
    assert_eq!(store.get_meta(EVENTS_CURSOR_NAME).unwrap(), cursor);
}

/// The durable fan-out cursor's metadata name (see `sled_store`).
const EVENTS_CURSOR_NAME: &str = "events_cursor";
