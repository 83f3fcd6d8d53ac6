use std::sync::Arc;

use hookd_types::{DeliveryStatus, EndpointId};

use super::*;
use crate::outcome::FannedEvent;
use crate::store::{DeliveryQuery, EventLog, LogEntry};
use crate::testing::{answered_attempt, TempStore};
use crate::{Change, SledStore};

/// A store holding event `e1`, fanned out to `ep` and delivered at its first attempt.
fn delivered_one(dir: &TempStore) -> (Arc<SledStore>, EndpointId, DeliveryId) {
    let s = Arc::new(dir.open());
    let ep = EndpointId::generate();
    let d = DeliveryId::generate();
    let record = vec![LogEntry {
        event: Event {
            id: "e1".into(),
            tenant: "t".into(),
            event_type: "job.completed".into(),
            created_at_ms: 1_000,
            data: r#"{"n":1}"#.into(),
        },
        idempotency_key: None,
        request_hash: 0,
    }];
    let fanned = FannedEvent {
        event_id: "e1".into(),
        tenant: "t".into(),
        event_type: "job.completed".into(),
        deliveries: vec![(d, ep)],
    };
    s.index_events(0, &record, std::slice::from_ref(&fanned))
        .unwrap();
    let made = Change::FannedOut {
        seq: 0,
        events: vec![fanned],
    };
    let attempted = Change::Attempted {
        delivery: d,
        attempt: answered_attempt(1, 2_000, 200),
        status: DeliveryStatus::Delivered,
        next_attempt_ms: None,
        at_ms: 2_000,
    };
    s.apply(&[made, attempted], 1, 1).unwrap();
    (s, ep, d)
}

#[tokio::test(flavor = "current_thread")]
async fn async_reads_answer_what_the_store_holds() {
    let dir = TempStore::new();
    let (s, ep, d) = delivered_one(&dir);
    let reads: Arc<dyn AsyncStore> = Arc::new(OnBlockingPool(s.clone()));

    let got = reads.get_delivery(d).await.unwrap().unwrap();
    assert_eq!(got.status, DeliveryStatus::Delivered);
    assert_eq!(
        reads.get_event("e1".into()).await.unwrap().unwrap().id,
        "e1"
    );
    assert_eq!(reads.delivery_event(d).await.unwrap().unwrap().id, "e1");
    assert!(reads.get_event("nope".into()).await.unwrap().is_none());
    assert_eq!(reads.event_deliveries("e1".into()).await.unwrap().len(), 1);
    assert_eq!(reads.attempts(d).await.unwrap().len(), 1);
    let q = DeliveryQuery {
        limit: 10,
        ..DeliveryQuery::default()
    };
    let page = reads.endpoint_deliveries(ep, q).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(reads.endpoint_stats(ep).await.unwrap().delivered, 1);
    assert!(reads
        .deadlines_between(0, u64::MAX, None)
        .await
        .unwrap()
        .is_empty());

    reads
        .put_replay_answer(ep, "k".into(), b"answer".to_vec())
        .await
        .unwrap();
    assert_eq!(
        reads
            .replay_answer(ep, "k".into())
            .await
            .unwrap()
            .as_deref(),
        Some(&b"answer"[..])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn calls_run_off_the_runtime_thread() {
    let dir = TempStore::new();
    let reads = OnBlockingPool(Arc::new(dir.open()));
    let caller = std::thread::current().id();
    let ran_on = reads
        .run(|_| Ok(std::thread::current().id()))
        .await
        .unwrap();
    assert_ne!(ran_on, caller);
}

fn entry(id: &str, tenant: &str, event_type: &str, at: u64) -> LogEntry {
    LogEntry {
        event: Event {
            id: id.into(),
            tenant: tenant.into(),
            event_type: event_type.into(),
            created_at_ms: at,
            data: "{}".into(),
        },
        idempotency_key: None,
        request_hash: 0,
    }
}

/// A replay's scan: the tenant's events in `[from, until)` whose type the patterns take, up
/// to the cap, and whether more were there.
#[tokio::test]
async fn events_between_takes_the_tenant_its_types_and_the_range_up_to_the_cap() {
    let dir = TempStore::new();
    let store = Arc::new(dir.open());
    let record = vec![
        entry("early", "acme", "job.done", 5),
        entry("a", "acme", "job.done", 10),
        entry("other-type", "acme", "instance.ready", 11),
        entry("other-tenant", "globex", "job.done", 12),
        entry("b", "acme", "job.failed", 13),
        entry("late", "acme", "job.done", 20),
    ];
    let seq = store.append(&record).unwrap();
    store.seed_fanout(seq, &record, &[]).unwrap();
    let reads = OnBlockingPool(store);
    let find = |from, until, max| {
        reads.events_between("acme".into(), (from, until), vec!["job.*".into()], max)
    };
    let ids = |f: EventsFound| f.events.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    let found = find(10, 20, 10).await.unwrap();
    assert!(!found.more);
    assert_eq!(found.events[1], ("b".to_owned(), "job.failed".to_owned()));
    assert_eq!(ids(found), ["a", "b"]);
    let all = find(0, 21, 10).await.unwrap();
    assert_eq!(ids(all), ["early", "a", "b", "late"]);
    let cap = find(10, 20, 2).await.unwrap();
    assert!(!cap.more, "the cap itself is allowed");
    let over = find(0, 21, 3).await.unwrap();
    assert!(over.more);
    assert_eq!(ids(over), ["early", "a", "b"]);
    assert_eq!(
        find(20, 10, 10).await.unwrap(),
        EventsFound::default(),
        "reversed: nothing"
    );
}
