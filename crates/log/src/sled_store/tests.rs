use super::*;
use crate::testing::TempStore;
use hookd_types::{time::now_ms, ErrorKind};

#[test]
fn key_kinds_have_distinct_prefixes() {
    let prefixes: std::collections::HashSet<_> = Kind::ALL.iter().map(|k| k.prefix()).collect();
    assert_eq!(prefixes.len(), Kind::ALL.len());
    assert!(prefixes.iter().all(|p| p.len() == 1));
    // The cursor is metadata: a name `put_meta` could not also use for something else.
    assert_eq!(meta_key(CURSOR), b"mcursor");
}

fn entry(id: &str, key: Option<&str>) -> LogEntry {
    LogEntry {
        event: Event {
            id: id.into(),
            tenant: "t".into(),
            event_type: "job.completed".into(),
            created_at_ms: now_ms(),
            data: r#"{"a":1}"#.into(),
        },
        idempotency_key: key.map(Into::into),
        request_hash: 7,
    }
}

fn delivery(event: &str, ep: EndpointId, due: u64) -> Delivery {
    crate::testing::pending_delivery(event, ep, due)
}

fn attempted(
    delivery: DeliveryId,
    attempt: &Attempt,
    status: DeliveryStatus,
    next_attempt_ms: Option<u64>,
) -> Change {
    Change::Attempted {
        delivery,
        attempt: attempt.clone(),
        status,
        next_attempt_ms,
        at_ms: attempt.at_ms,
    }
}

#[test]
fn facts_about_unknown_deliveries_are_skipped_and_several_about_one_compose() {
    let dir = TempStore::new();
    let s = dir.open();
    let ep = EndpointId::generate();
    let d0 = delivery("e1", ep, 10);
    s.commit_fanout(0, &vec![entry("e1", None)], std::slice::from_ref(&d0))
        .unwrap();
    let fail = crate::testing::answered_attempt(1, 10, 503);
    let ok = Attempt {
        number: 2,
        at_ms: 30,
        status_code: Some(200),
        error: None,
        ..fail.clone()
    };
    // Two facts about one delivery in one batch, and one about a delivery never fanned out.
    s.apply(
        &[
            attempted(d0.id, &fail, DeliveryStatus::Retrying, Some(30)),
            attempted(
                DeliveryId::generate(),
                &fail,
                DeliveryStatus::Retrying,
                Some(99),
            ),
            attempted(d0.id, &ok, DeliveryStatus::Delivered, None),
        ],
        7,
    )
    .unwrap();
    assert!(s.scheduled().unwrap().is_empty());
    let st = s.endpoint_stats(ep).unwrap();
    assert_eq!((st.delivered, st.retrying, st.failed), (1, 0, 0));
    assert_eq!(s.attempts(d0.id).unwrap(), vec![fail, ok]);
    assert_eq!(s.outcomes_applied().unwrap(), 7);
}

#[test]
fn log_survives_reopen_and_fanout_moves_cursor() {
    let dir = TempStore::new();
    let ep = EndpointId::generate();
    {
        let s = dir.open();
        assert_eq!(s.append(&vec![entry("e1", Some("k1"))]).unwrap(), 0);
        assert_eq!(s.append(&vec![entry("e2", None)]).unwrap(), 1);
    }
    let s = dir.open();
    let log = s.read_log(s.fanout_cursor(), 10).unwrap();
    assert_eq!(log.len(), 2);
    let (seq, rec) = &log[0];
    let d = delivery("e1", ep, 5);
    s.commit_fanout(*seq, rec, std::slice::from_ref(&d))
        .unwrap();
    assert_eq!(s.fanout_cursor(), 1);
    assert_eq!(s.get_event("e1").unwrap().unwrap().id, "e1");
    assert_eq!(
        s.get_idempotency("t", "k1").unwrap().unwrap().event_id,
        "e1"
    );
    assert_eq!(s.event_deliveries("e1").unwrap(), vec![d.clone()]);
    let sched = s.scheduled().unwrap();
    assert_eq!(sched.len(), 1);
    assert_eq!((sched[0].due_ms, sched[0].delivery), (5, d.id));
    drop(s);
    let s = dir.open();
    assert_eq!(s.fanout_cursor(), 1);
    assert_eq!(s.read_log(1, 10).unwrap().len(), 1);
    // A new append after reopen never reuses a position.
    assert_eq!(s.append(&vec![entry("e3", None)]).unwrap(), 2);
}

#[test]
fn attempts_move_deadlines_and_stats() {
    let dir = TempStore::new();
    let s = dir.open();
    let ep = EndpointId::generate();
    let d0 = delivery("e1", ep, 10);
    s.commit_fanout(0, &vec![entry("e1", None)], std::slice::from_ref(&d0))
        .unwrap();
    let fail = Attempt {
        number: 1,
        at_ms: 10,
        status_code: Some(500),
        latency_ms: 3,
        error: Some(ErrorKind::HttpStatus),
        error_detail: String::new(),
        response_body: "boom".into(),
    };
    s.apply(
        &[attempted(d0.id, &fail, DeliveryStatus::Retrying, Some(40))],
        1,
    )
    .unwrap();
    assert_eq!(s.scheduled().unwrap()[0].due_ms, 40);
    assert_eq!(s.outcomes_applied().unwrap(), 1);
    assert_eq!(s.endpoint_stats(ep).unwrap().retrying, 1);
    let ok = Attempt {
        number: 2,
        at_ms: 40,
        status_code: Some(200),
        error: None,
        ..fail.clone()
    };
    s.apply(&[attempted(d0.id, &ok, DeliveryStatus::Delivered, None)], 2)
        .unwrap();
    assert!(s.scheduled().unwrap().is_empty());
    let d2 = s.get_delivery(d0.id).unwrap().unwrap();
    assert_eq!(
        (
            d2.status,
            d2.attempts,
            d2.last_attempt_ms,
            d2.last_status_code
        ),
        (DeliveryStatus::Delivered, 2, Some(40), Some(200))
    );
    let st = s.endpoint_stats(ep).unwrap();
    assert_eq!((st.delivered, st.retrying, st.failed), (1, 0, 0));
    assert_eq!(st.last_delivery_ms, Some(40));
    assert_eq!(s.attempts(d0.id).unwrap(), vec![fail, ok]);
}

#[test]
fn endpoint_delivery_pages() {
    let dir = TempStore::new();
    let s = dir.open();
    let ep = EndpointId::generate();
    let ds: Vec<_> = (0..5)
        .map(|i| {
            let mut d = delivery("e", ep, 1);
            d.id = DeliveryId(((1000 + i as u128) << 80) | 1);
            if i % 2 == 0 {
                d.status = DeliveryStatus::Delivered;
            }
            d
        })
        .collect();
    s.commit_fanout(0, &vec![], &ds).unwrap();
    let q = |statuses: Vec<DeliveryStatus>, cursor, from_ms, limit| DeliveryQuery {
        statuses,
        from_ms,
        to_ms: None,
        cursor,
        limit,
    };
    let p1 = s
        .endpoint_deliveries(ep, &q(vec![], None, None, 2))
        .unwrap();
    assert_eq!(
        p1.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![ds[4].id, ds[3].id]
    );
    let p2 = s
        .endpoint_deliveries(ep, &q(vec![], p1.next_cursor, None, 2))
        .unwrap();
    assert_eq!(p2.items[0].id, ds[2].id);
    let p3 = s
        .endpoint_deliveries(ep, &q(vec![], p2.next_cursor, None, 2))
        .unwrap();
    assert_eq!((p3.items.len(), p3.next_cursor), (1, None));
    let delivered = s
        .endpoint_deliveries(ep, &q(vec![DeliveryStatus::Delivered], None, None, 10))
        .unwrap();
    assert_eq!(delivered.items.len(), 3);
    let recent = s
        .endpoint_deliveries(ep, &q(vec![], None, Some(1003), 10))
        .unwrap();
    assert_eq!(recent.items.len(), 2);
}

#[test]
fn stats_follow_dead_letter_and_manual_retry() {
    let dir = TempStore::new();
    let s = dir.open();
    let ep = EndpointId::generate();
    let d0 = delivery("e1", ep, 10);
    s.commit_fanout(0, &vec![entry("e1", None)], std::slice::from_ref(&d0))
        .unwrap();
    let failed = Attempt {
        number: 1,
        at_ms: 10,
        status_code: None,
        latency_ms: 1,
        error: Some(ErrorKind::Connect),
        error_detail: "refused".into(),
        response_body: String::new(),
    };
    s.apply(
        &[attempted(
            d0.id,
            &failed,
            DeliveryStatus::DeadLettered,
            None,
        )],
        1,
    )
    .unwrap();
    let st = s.endpoint_stats(ep).unwrap();
    assert_eq!((st.delivered, st.failed, st.retrying), (0, 1, 0));
    // A manual retry moves the deadline only; the status changes with the attempt.
    let retried = Change::Retried {
        delivery: d0.id,
        due_ms: 20,
        at_ms: 20,
    };
    s.apply(&[retried], 2).unwrap();
    assert_eq!(s.endpoint_stats(ep).unwrap().failed, 1);
    assert_eq!(s.scheduled().unwrap()[0].due_ms, 20);
    let ok = Attempt {
        number: 2,
        at_ms: 21,
        status_code: Some(200),
        error: None,
        error_detail: String::new(),
        ..failed
    };
    s.apply(&[attempted(d0.id, &ok, DeliveryStatus::Delivered, None)], 3)
        .unwrap();
    let st = s.endpoint_stats(ep).unwrap();
    assert_eq!((st.delivered, st.failed, st.retrying), (1, 0, 0));
    assert_eq!(st.last_delivery_ms, Some(21));
    assert!(s.scheduled().unwrap().is_empty());
}

#[test]
fn records_left_below_the_cursor_are_collected_on_open() {
    let dir = TempStore::new();
    {
        let s = dir.open();
        let rec = vec![entry("e1", None)];
        s.append(&rec).unwrap();
        s.append(&vec![entry("e2", None)]).unwrap();
        s.commit_fanout(0, &rec, &[]).unwrap();
        // A crash between the state batch and the removal leaves the record behind.
        s.log.insert(log_key(0), enc(&rec).unwrap()).unwrap();
        s.flush().unwrap();
    }
    let s = dir.open();
    assert_eq!(s.fanout_cursor(), 1);
    assert!(s.log.get(log_key(0)).unwrap().is_none());
    let pending: Vec<Seq> = s.read_log(0, 10).unwrap().iter().map(|(q, _)| *q).collect();
    assert_eq!(pending, vec![1]);
    assert_eq!(s.append(&vec![entry("e3", None)]).unwrap(), 2);
}
