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

/// Fan-out's decision for event `id` as [`entry`] makes it: these deliveries.
fn fanned_event(
    id: &str,
    deliveries: Vec<(DeliveryId, EndpointId)>,
) -> crate::outcome::FannedEvent {
    crate::outcome::FannedEvent {
        event_id: id.into(),
        tenant: "t".into(),
        event_type: "job.completed".into(),
        deliveries,
    }
}

fn delivery(event: &str, ep: EndpointId, due: u64) -> Delivery {
    crate::testing::pending_delivery(event, ep, due)
}

fn fan_out(s: &SledStore, seq: Seq, rec: &LogRecord, ds: &[Delivery]) {
    s.seed_fanout(seq, rec, ds).unwrap();
}

/// Fans out event `e1` to one new endpoint, due at 10: the endpoint and its delivery.
fn fanned_out_one(s: &SledStore) -> (EndpointId, Delivery) {
    let ep = EndpointId::generate();
    let d0 = delivery("e1", ep, 10);
    fan_out(s, 0, &vec![entry("e1", None)], std::slice::from_ref(&d0));
    (ep, d0)
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
    let (ep, d0) = fanned_out_one(&s);
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
        assert_eq!(s.fanout_cursor(), 1);
        assert_eq!(s.append(&vec![entry("e1", Some("k1"))]).unwrap(), 1);
        assert_eq!(s.append(&vec![entry("e2", None)]).unwrap(), 2);
    }
    let s = dir.open();
    let log = s.read_log(s.fanout_cursor(), 10).unwrap();
    assert_eq!(log.len(), 2);
    let (seq, rec) = &log[0];
    let d = delivery("e1", ep, 5);
    fan_out(&s, *seq, rec, std::slice::from_ref(&d));
    assert_eq!(s.fanout_cursor(), 2);
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
    assert_eq!(s.fanout_cursor(), 2);
    assert_eq!(s.read_log(2, 10).unwrap().len(), 1);
    // A new append after reopen never reuses a position.
    assert_eq!(s.append(&vec![entry("e3", None)]).unwrap(), 3);
}

#[test]
fn attempts_move_deadlines_and_stats() {
    let dir = TempStore::new();
    let s = dir.open();
    let (ep, d0) = fanned_out_one(&s);
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
    s.apply(
        &[attempted(d0.id, &ok, DeliveryStatus::Delivered, None)],
        2,
        2,
    )
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
    s.seed_deliveries(&ds).unwrap();
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
    let (ep, d0) = fanned_out_one(&s);
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
    s.apply(&[retried], 2, 2).unwrap();
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
    s.apply(
        &[attempted(d0.id, &ok, DeliveryStatus::Delivered, None)],
        3,
        3,
    )
    .unwrap();
    let st = s.endpoint_stats(ep).unwrap();
    assert_eq!((st.delivered, st.failed, st.retrying), (1, 0, 0));
    assert_eq!(st.last_delivery_ms, Some(21));
    assert!(s.scheduled().unwrap().is_empty());
}

#[test]
fn a_store_from_before_the_event_log_hands_its_unfanned_events_over() {
    let dir = TempStore::new();
    {
        // The old layout: events in a sled tree `log` numbered from 0, the cursor at 1 (record
        // 0 fanned out, left behind by a crash before its removal).
        let db = sled::open(dir.path().join("db")).unwrap();
        let log = db.open_tree("log").unwrap();
        for (seq, id) in [(0u64, "e0"), (1, "e1"), (2, "e2")] {
            let rec = vec![entry(id, None)];
            log.insert(seq.to_be_bytes(), enc(&rec).unwrap()).unwrap();
        }
        db.insert(meta_key(CURSOR), &1u64.to_be_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    let s = dir.open();
    let cursor = s.fanout_cursor();
    let pending: Vec<String> = s
        .read_log(cursor, 10)
        .unwrap()
        .into_iter()
        .flat_map(|(_, rec)| rec.into_iter().map(|e| e.event.id))
        .collect();
    assert_eq!(pending, ["e1", "e2"]);
    assert!(s.db.open_tree("log").unwrap().is_empty());
    drop(s);
    // Adopted once: a second open finds the same two, not four.
    let s = dir.open();
    assert_eq!(s.read_log(s.fanout_cursor(), 10).unwrap().len(), 2);
}

#[test]
fn event_bodies_stay_in_the_event_log_until_retention_is_done_with_them() {
    let dir = TempStore::new();
    let s = dir.open();
    // Large records roll segments (64 MiB each): five of 15 MiB, four in the first segment.
    let big = |id: &str| {
        let mut e = entry(id, None);
        e.event.data = format!("\"{}\"", "x".repeat(15 << 20)).into();
        vec![e]
    };
    let a = big("a");
    let seqs: Vec<Seq> =
        ["b", "c", "d", "e"]
            .iter()
            .fold(vec![s.append(&a).unwrap()], |mut seqs, id| {
                seqs.push(s.append(&big(id)).unwrap());
                seqs
            });
    // (Never printed: 15 MiB each.)
    let same_a = |e: Option<Event>| e.as_ref() == Some(&a[0].event);
    s.checkpoint_events().unwrap();
    assert_eq!(s.events.last_checkpoint(), None, "nothing fanned out yet");
    // a's delivery still waits for a retry; b's was delivered; c and d made none.
    let ep = EndpointId::generate();
    let waiting = delivery("a", ep, now_ms() + 86_400_000);
    let mut done = delivery("b", ep, 0);
    done.status = DeliveryStatus::Delivered;
    done.next_attempt_ms = None;
    for (i, &seq) in seqs[..4].iter().enumerate() {
        let rec = s.read_log(seq, 1).unwrap().remove(0).1;
        let ds = match i {
            0 => vec![waiting.clone()],
            1 => vec![done.clone()],
            _ => vec![],
        };
        fan_out(&s, seq, &rec, &ds);
    }
    s.checkpoint_events().unwrap();
    assert_eq!(s.events.last_checkpoint(), Some(seqs[3]));
    // The records hold where the bodies are, not the bodies; reads find them in the log.
    let raw = s.db.get(event_key("a")).unwrap().unwrap();
    assert!(raw.len() < 100, "{} bytes", raw.len());
    assert!(same_a(s.get_event("a").unwrap()));
    assert_eq!(s.event_deliveries("a").unwrap().len(), 1);
    assert_eq!(s.events.segments().len(), 2);

    // Within history: nothing moves.
    let r = s.retain(now_ms() - 60_000, 0, 100).unwrap();
    assert_eq!(r, Retained::default());
    // Past it: a outlives its segment and keeps its body in its record; b (with its
    // delivery), c and d go; then the first segment does, the checkpoint covering it.
    let later = now_ms() + 3_600_000;
    let r = s.retain(later, 0, 100).unwrap();
    assert_eq!(
        (r.deliveries, r.events, r.events_inlined, r.log_segments),
        (1, 3, 1, 1)
    );
    assert!(s.read_log(seqs[0], 1).is_err(), "the first segment is gone");
    assert!(s.db.get(event_key("a")).unwrap().unwrap().len() > 15 << 20);
    assert!(same_a(s.get_event("a").unwrap()));
    assert!(s.get_event("b").unwrap().is_none());
    // What is not fanned out is still there, after a restart too.
    assert_eq!(s.read_log(seqs[4], 10).unwrap().len(), 1);
    drop(s);
    let s = dir.open();
    assert!(same_a(s.get_event("a").unwrap()));
    assert_eq!(s.read_log(s.fanout_cursor(), 10).unwrap()[0].0, seqs[4]);
    // A pass with nothing left to do changes nothing.
    assert_eq!(s.retain(later, 0, 100).unwrap(), Retained::default());
}

#[test]
fn retention_deletes_finished_history_and_keeps_what_still_waits() {
    let dir = TempStore::new();
    let s = dir.open();
    let ep = EndpointId::generate();
    // Two events at 1,000 ms: one delivered, one still retrying; one event at 9,000 ms.
    let at = |ms: u64, n: u128| DeliveryId(((ms as u128) << 80) | n);
    let mut e1 = entry("old-done", Some("k-old"));
    e1.event.created_at_ms = 1_000;
    let mut e2 = entry("old-waiting", None);
    e2.event.created_at_ms = 1_000;
    let mut e3 = entry("new", Some("k-new"));
    e3.event.created_at_ms = 9_000;
    let mut done = delivery("old-done", ep, 1_000);
    done.id = at(1_000, 1);
    let mut waiting = delivery("old-waiting", ep, 1_000);
    waiting.id = at(1_000, 2);
    let mut new = delivery("new", ep, 9_000);
    new.id = at(9_000, 1);
    fan_out(&s, 1, &vec![e1, e2], &[done.clone(), waiting.clone()]);
    fan_out(&s, 2, &vec![e3], std::slice::from_ref(&new));
    let ok = crate::testing::answered_attempt(1, 1_500, 200);
    let fail = crate::testing::answered_attempt(1, 1_500, 503);
    s.apply(
        &[
            attempted(done.id, &ok, DeliveryStatus::Delivered, None),
            attempted(waiting.id, &fail, DeliveryStatus::Retrying, Some(99_000)),
            attempted(new.id, &ok, DeliveryStatus::Delivered, None),
        ],
        1,
        1,
    )
    .unwrap();

    // History before 5,000 ms, idempotency keys before 5,000 ms.
    let r = s.retain(5_000, 5_000, 100).unwrap();
    assert_eq!((r.deliveries, r.events, r.idempotency_keys), (1, 1, 1));
    assert_eq!(s.get_delivery(done.id).unwrap(), None);
    assert!(s.attempts(done.id).unwrap().is_empty());
    assert_eq!(s.get_event("old-done").unwrap(), None);
    assert_eq!(s.get_idempotency("t", "k-old").unwrap(), None);
    // A retry still waits: the delivery, its event and its deadline stay.
    assert!(s.get_delivery(waiting.id).unwrap().is_some());
    assert!(s.get_event("old-waiting").unwrap().is_some());
    assert_eq!(s.scheduled().unwrap().len(), 1);
    // Newer than the window: untouched.
    assert!(s.get_delivery(new.id).unwrap().is_some());
    assert!(s.get_idempotency("t", "k-new").unwrap().is_some());
    let page = s
        .endpoint_deliveries(
            ep,
            &DeliveryQuery {
                limit: 10,
                ..DeliveryQuery::default()
            },
        )
        .unwrap();
    let ids: Vec<_> = page.items.iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![new.id, waiting.id]);

    // Once the retry is done and old enough, it goes too, and then its event.
    let ok2 = crate::testing::answered_attempt(2, 99_000, 200);
    s.apply(
        &[attempted(waiting.id, &ok2, DeliveryStatus::Delivered, None)],
        2,
        2,
    )
    .unwrap();
    let r = s.retain(5_000, 5_000, 100).unwrap();
    assert_eq!((r.deliveries, r.events), (1, 1));
    assert_eq!(s.get_event("old-waiting").unwrap(), None);
    assert!(s.attempts(waiting.id).unwrap().is_empty());
    assert_eq!(s.retain(5_000, 5_000, 100).unwrap(), Retained::default());
}

#[test]
fn lingering_fresh_deliveries_are_written_out_in_bounded_batches() {
    use crate::outcome::Change;
    let dir = TempStore::new();
    let s = dir.open();
    // No linger: every fresh delivery is due out as soon as its millisecond has passed.
    s.set_fresh_limits(0, usize::MAX);
    let ep = EndpointId::generate();
    let ids: Vec<DeliveryId> = (0..5_000).map(|_| DeliveryId::generate()).collect();
    let events = vec![fanned_event("e1", ids.iter().map(|id| (*id, ep)).collect())];
    s.apply(&[Change::FannedOut { seq: 1, events }], 1, 1)
        .unwrap();
    let readable = |s: &SledStore| {
        ids.iter().all(|id| {
            s.get_delivery(*id)
                .unwrap()
                .is_some_and(|d| d.status == DeliveryStatus::Pending)
        })
    };
    assert!(readable(&s));
    std::thread::sleep(Duration::from_millis(5));
    let mut written = Vec::new();
    loop {
        let n = s.write_out_fresh().unwrap();
        assert!(readable(&s), "a delivery went missing while written out");
        if n == 0 {
            break;
        }
        written.push(n);
    }
    assert_eq!(
        written,
        [OUT_PER_BATCH, OUT_PER_BATCH, 5_000 - 2 * OUT_PER_BATCH]
    );
    // All in sled now, with their deadlines: a restart's scan finds every one.
    assert_eq!(s.fresh_read().len(), 0);
    assert_eq!(s.scheduled().unwrap().len(), 5_000);
    // A restart need not read the fan-out record again: the marker moves past it once the
    // fresh set is empty (the write-out alone leaves it where the set began).
    assert_eq!(s.outcomes_replay_from().unwrap(), 1);
    assert!(s.advance_replay_from().unwrap());
    assert_eq!(s.outcomes_replay_from().unwrap(), 2);
    assert!(!s.advance_replay_from().unwrap(), "moves only forward");
}

#[test]
fn a_deleted_endpoints_deliveries_are_purged_and_others_kept() {
    let dir = TempStore::new();
    let s = dir.open();
    let (gone, kept) = (EndpointId::generate(), EndpointId::generate());
    let done = delivery("e1", gone, 10);
    let waiting = delivery("e1", gone, 10);
    let other = delivery("e1", kept, 10);
    fan_out(
        &s,
        0,
        &vec![entry("e1", None)],
        &[done.clone(), waiting.clone(), other.clone()],
    );
    let ok = crate::testing::answered_attempt(1, 20, 200);
    let fail = crate::testing::answered_attempt(1, 20, 503);
    s.apply(
        &[
            attempted(done.id, &ok, DeliveryStatus::Delivered, None),
            attempted(waiting.id, &fail, DeliveryStatus::Retrying, Some(99_000)),
            attempted(other.id, &fail, DeliveryStatus::Retrying, Some(99_000)),
        ],
        1,
        1,
    )
    .unwrap();
    // One more of each endpoint, fresh (memory only).
    let fanned = |ids: &[(DeliveryId, EndpointId)]| Change::FannedOut {
        seq: 1,
        events: vec![fanned_event("e1", ids.to_vec())],
    };
    let (fresh_gone, fresh_kept) = (DeliveryId::generate(), DeliveryId::generate());
    s.apply(&[fanned(&[(fresh_gone, gone), (fresh_kept, kept)])], 2, 2)
        .unwrap();
    assert!(s.get_delivery(fresh_gone).unwrap().is_some());

    s.delete_endpoint(gone).unwrap();
    // Read after the deletion, whose tombstone takes the clock too: read before, it could be
    // a millisecond early and the grace period below one short.
    let now = now_ms();
    let p = s.purge_deleted(now).unwrap();
    assert_eq!((p.endpoints, p.deliveries, p.fresh, p.done), (1, 2, 1, 0));
    for id in [done.id, waiting.id, fresh_gone] {
        assert_eq!(s.get_delivery(id).unwrap(), None);
        assert!(s.attempts(id).unwrap().is_empty());
    }
    assert_eq!(s.endpoint_stats(gone).unwrap(), EndpointStats::default());
    let q = DeliveryQuery {
        limit: 10,
        ..DeliveryQuery::default()
    };
    assert!(s.endpoint_deliveries(gone, &q).unwrap().items.is_empty());
    // The other endpoint keeps everything, its deadline included.
    assert!(s.get_delivery(other.id).unwrap().is_some());
    assert!(s.get_delivery(fresh_kept).unwrap().is_some());
    assert_eq!(s.attempts(other.id).unwrap().len(), 1);
    let mut due: Vec<_> = s.scheduled().unwrap().iter().map(|e| e.delivery).collect();
    due.sort();
    let mut want = vec![other.id, fresh_kept];
    want.sort();
    assert_eq!(due, want);

    // A restart does not bring the deleted endpoint's fresh deliveries back, and a fan-out
    // that matched it just before its deletion is dropped by the next pass.
    s.restorer()
        .unwrap()
        .restore(&[fanned(&[(fresh_gone, gone)])], 2)
        .unwrap();
    assert_eq!(s.get_delivery(fresh_gone).unwrap(), None);
    let late = DeliveryId::generate();
    s.apply(&[fanned(&[(late, gone)])], 3, 3).unwrap();
    let p = s.purge_deleted(now).unwrap();
    assert_eq!((p.deliveries, p.fresh, p.done), (0, 1, 0));
    assert_eq!(s.get_delivery(late).unwrap(), None);
    // Past the grace period, with nothing left, the tombstone goes.
    let p = s.purge_deleted(now + PURGE_GRACE_MS).unwrap();
    assert_eq!((p.endpoints, p.done), (1, 1));
    assert_eq!(
        s.purge_deleted(now + PURGE_GRACE_MS).unwrap(),
        Purged::default()
    );
}

#[test]
fn the_failing_streak_and_breaker_count_follow_the_attempts() {
    let dir = TempStore::new();
    let s = dir.open();
    let (ep, d0) = fanned_out_one(&s);
    let at = |n: u32, ms: u64, code: Option<u16>, error: Option<ErrorKind>| Attempt {
        status_code: code,
        error,
        ..crate::testing::answered_attempt(n, ms, 0)
    };
    let steps = [
        // A 5xx starts the streak; no answer goes on with it.
        (at(1, 100, Some(503), None), Some(100), 1),
        (at(2, 200, None, Some(ErrorKind::Timeout)), Some(100), 2),
        // A 4xx is no 2xx (the streak goes on) but shows the endpoint up (the count ends).
        (at(3, 300, Some(404), None), Some(100), 0),
        (at(4, 350, Some(500), None), Some(100), 1),
        // Nothing sent: nothing learnt.
        (
            at(5, 360, None, Some(ErrorKind::EndpointDisabled)),
            Some(100),
            1,
        ),
        // A 2xx ends both.
        (at(6, 400, Some(200), None), None, 0),
        (at(7, 500, Some(502), None), Some(500), 1),
    ];
    for (i, (a, since, failures)) in steps.iter().enumerate() {
        let seq = i as u64 + 1;
        s.apply(
            &[attempted(d0.id, a, DeliveryStatus::Retrying, Some(9_000))],
            seq,
            seq,
        )
        .unwrap();
        let st = s.endpoint_stats(ep).unwrap();
        assert_eq!(
            (st.failing_since_ms, st.consecutive_failures),
            (*since, *failures),
            "after attempt {}",
            a.number
        );
    }
    // A stats record from before the streak fields reads as not failing.
    s.db.insert(
        stat_key(ep),
        write_stats(&[1, 2, 3, 4, 0, 0])[..32].to_vec(),
    )
    .unwrap();
    let st = s.endpoint_stats(ep).unwrap();
    assert_eq!(
        (st.delivered, st.last_delivery_ms, st.failing_since_ms),
        (1, Some(4), None)
    );
}

#[test]
fn keyed_replay_answers_expire_and_go_with_their_endpoint() {
    let dir = TempStore::new();
    let s = dir.open();
    let (a, b) = (EndpointId::generate(), EndpointId::generate());
    s.write_replay_answer(a, "old", 1_000, b"{\"scheduled\":1}")
        .unwrap();
    s.write_replay_answer(a, "new", 9_000, b"{\"scheduled\":2}")
        .unwrap();
    s.write_replay_answer(b, "new", 9_000, b"{\"scheduled\":3}")
        .unwrap();
    assert_eq!(
        s.replay_answer(a, "old").unwrap().as_deref(),
        Some(&b"{\"scheduled\":1}"[..])
    );
    // Keys are per endpoint.
    assert_eq!(
        s.replay_answer(b, "new").unwrap().as_deref(),
        Some(&b"{\"scheduled\":3}"[..])
    );
    assert_eq!(s.replay_answer(b, "old").unwrap(), None);

    // Retention takes those stored before its window, with their time keys.
    let r = s.retain(0, 5_000, 100).unwrap();
    assert_eq!(r.idempotency_keys, 1);
    assert_eq!(s.replay_answer(a, "old").unwrap(), None);
    assert!(s.replay_answer(a, "new").unwrap().is_some());
    assert_eq!(s.retain(0, 5_000, 100).unwrap(), Retained::default());

    // Deleting an endpoint takes its answers, and only its own.
    s.delete_endpoint(a).unwrap();
    s.purge_deleted(now_ms()).unwrap();
    assert_eq!(s.replay_answer(a, "new").unwrap(), None);
    assert!(s.replay_answer(b, "new").unwrap().is_some());
    let times = s.db.scan_prefix(Kind::ReplayKeyTime.prefix()).count();
    assert_eq!(times, 1, "only b's time key is left");
}

#[test]
fn a_fan_out_redone_after_a_crash_keeps_a_replay_made_in_between() {
    use crate::outcome::Change;
    let dir = TempStore::new();
    let (ep, replay_ep) = (EndpointId::generate(), EndpointId::generate());
    let rec = vec![entry("e1", None)];
    let fanned = |d: DeliveryId, endpoint: EndpointId| fanned_event("e1", vec![(d, endpoint)]);
    let (lost, replayed) = (DeliveryId::generate(), DeliveryId::generate());
    let seq = {
        let s = dir.open();
        let seq = s.append(&rec).unwrap();
        // Fan-out indexed the event, then its outcome record was lost in a crash; a replay's
        // record, made in between, was kept.
        s.index_events(seq, &rec, &[fanned(lost, ep)]).unwrap();
        let replay = Change::Replayed {
            events: vec![fanned(replayed, replay_ep)],
        };
        s.apply(std::slice::from_ref(&replay), 1, 1).unwrap();
        s.sync_to_disk().unwrap();
        seq
    };
    let s = dir.open();
    let replay = Change::Replayed {
        events: vec![fanned(replayed, replay_ep)],
    };
    s.restorer().unwrap().restore(&[replay], 1).unwrap();
    // Fan-out redoes the record: new delivery ids; the lost one's are gone, the replay's stay.
    let redone = DeliveryId::generate();
    s.index_events(seq, &rec, &[fanned(redone, ep)]).unwrap();
    let mut listed: Vec<DeliveryId> = s.stored_event("e1").unwrap().unwrap().deliveries;
    listed.sort();
    let mut want = vec![replayed, redone];
    want.sort();
    assert_eq!(listed, want);

    // A record appended after the open is new: nothing is read back for it.
    let rec2 = vec![entry("e2", None)];
    let seq2 = s.append(&rec2).unwrap();
    assert!(seq2 >= s.redo_below);
    let d2 = DeliveryId::generate();
    let mut f2 = fanned(d2, ep);
    f2.event_id = "e2".into();
    s.index_events(seq2, &rec2, &[f2]).unwrap();
    assert_eq!(s.stored_event("e2").unwrap().unwrap().deliveries, [d2]);
}

#[test]
fn a_replay_scan_reads_old_time_keys_through_the_event() {
    let dir = TempStore::new();
    let s = dir.open();
    let mut other = entry("other", None);
    other.event.tenant = "u".into();
    let rec = vec![entry("mine", None), other];
    let seq = s.append(&rec).unwrap();
    s.seed_fanout(seq, &rec, &[]).unwrap();
    // Time keys as stores from before they named tenant and type wrote them: empty.
    for e in &rec {
        let at = e.event.created_at_ms.to_be_bytes();
        let k = key(&[Kind::EventTime.prefix(), &at, e.event.id.as_bytes()]);
        assert!(!s.db.get(&k).unwrap().unwrap().is_empty());
        s.db.insert(k, &[][..]).unwrap();
    }
    let mut seen = Vec::new();
    s.for_each_event_between("t", 0, u64::MAX, &mut |e| {
        seen.push((e.id.to_owned(), e.event_type.to_owned()));
        true
    })
    .unwrap();
    assert_eq!(seen, [("mine".to_owned(), "job.completed".to_owned())]);
}

#[test]
fn a_first_attempt_lives_in_its_record_and_older_records_keep_their_attempt_keys() {
    let dir = TempStore::new();
    let s = dir.open();
    let (ep, d0) = fanned_out_one(&s);
    let keyed = |s: &SledStore| s.db.scan_prefix(Kind::Attempt.prefix()).count();
    let ok = crate::testing::answered_attempt(1, 20, 200);
    s.apply(
        &[attempted(d0.id, &ok, DeliveryStatus::Delivered, None)],
        1,
        1,
    )
    .unwrap();
    assert_eq!(s.attempts(d0.id).unwrap(), vec![ok.clone()]);
    assert_eq!(keyed(&s), 0, "delivered at once: record and index key only");

    // A record of the older layout: the delivery alone, attempt 1 under its own key.
    let mut old = delivery("e2", ep, 10);
    old.attempts = 1;
    old.status = DeliveryStatus::Retrying;
    let fail = crate::testing::answered_attempt(1, 10, 503);
    let mut batch = sled::Batch::default();
    batch.insert(delivery_key(old.id), enc(&old).unwrap());
    batch.insert(attempt_key(old.id, 1), enc(&fail).unwrap());
    s.db.apply_batch(batch).unwrap();
    let second = crate::testing::answered_attempt(2, 30, 200);
    s.apply(
        &[attempted(old.id, &second, DeliveryStatus::Delivered, None)],
        2,
        2,
    )
    .unwrap();
    assert_eq!(s.attempts(old.id).unwrap(), vec![fail, second]);
    assert_eq!(keyed(&s), 2, "an older record's attempts stay keyed");
    assert_eq!(s.get_delivery(old.id).unwrap().unwrap().attempts, 2);

    // Retention deletes both kinds whole.
    assert_eq!(s.retain(u64::MAX >> 16, 0, 100).unwrap().deliveries, 2);
    assert_eq!(keyed(&s), 0);
    assert!(s.attempts(d0.id).unwrap().is_empty());
}

/// A delivery id made at `ms` (ids carry their creation time on top).
fn made_at(ms: u64) -> DeliveryId {
    DeliveryId(((ms as u128) << 80) | 1)
}

#[test]
fn retention_passes_go_on_where_the_last_stopped_and_come_back_for_what_waited() {
    let dir = TempStore::new();
    let s = dir.open();
    let ep = EndpointId::generate();
    let mut made = Vec::new();
    for (i, ms) in [1_000u64, 2_000, 3_000, 4_000, 5_000]
        .into_iter()
        .enumerate()
    {
        let mut e = entry(&format!("e{i}"), Some(&format!("k{i}")));
        e.event.created_at_ms = ms;
        let mut d = delivery(&format!("e{i}"), ep, ms);
        d.id = made_at(ms);
        fan_out(&s, i as u64 + 1, &vec![e], std::slice::from_ref(&d));
        made.push(d);
    }
    let ok = crate::testing::answered_attempt(1, 6_000, 200);
    let fail = crate::testing::answered_attempt(1, 6_000, 503);
    let facts: Vec<_> = made
        .iter()
        .map(|d| match d.id == made_at(2_000) {
            true => attempted(d.id, &fail, DeliveryStatus::Retrying, Some(99_000)),
            false => attempted(d.id, &ok, DeliveryStatus::Delivered, None),
        })
        .collect();
    s.apply(&facts, 1, 1).unwrap();

    // One of each kind per pass: four passes delete the four finished deliveries and four
    // of the five idempotency keys, passing over the one still waiting.
    for _ in 0..4 {
        let r = s.retain(10_000, 10_000, 1).unwrap();
        assert_eq!((r.deliveries, r.idempotency_keys), (1, 1));
    }
    let r = s.retain(10_000, 10_000, 1).unwrap();
    assert_eq!((r.deliveries, r.idempotency_keys), (0, 1));
    assert_eq!(s.retain(10_000, 10_000, 1).unwrap().deliveries, 0);
    assert!(made
        .iter()
        .all(|d| (d.id == made_at(2_000)) == s.get_delivery(d.id).unwrap().is_some()));

    // The one that waited finishes: the next sweep starts where it was, and finds it.
    let ok2 = crate::testing::answered_attempt(2, 99_000, 200);
    s.apply(
        &[attempted(
            made_at(2_000),
            &ok2,
            DeliveryStatus::Delivered,
            None,
        )],
        2,
        2,
    )
    .unwrap();
    assert_eq!(s.retain(10_000, 10_000, 1).unwrap().deliveries, 1);
    assert_eq!(s.get_delivery(made_at(2_000)).unwrap(), None);
    // Newer ones are found as the cutoff moves on.
    let mut d = delivery("late", ep, 20_000);
    d.id = made_at(20_000);
    fan_out(&s, 9, &vec![entry("late", None)], std::slice::from_ref(&d));
    s.apply(
        &[attempted(d.id, &ok, DeliveryStatus::Delivered, None)],
        3,
        3,
    )
    .unwrap();
    assert_eq!(s.retain(30_000, 30_000, 1).unwrap().deliveries, 1);
}

#[test]
fn events_passes_go_on_where_the_last_stopped_and_look_again_once_caught_up() {
    let dir = TempStore::new();
    let s = dir.open();
    let ep = EndpointId::generate();
    let ok = crate::testing::answered_attempt(1, 9_000, 200);
    let fail = crate::testing::answered_attempt(1, 9_000, 503);
    // An event made at `ms`, fanned out at `fanned_ms` (its delivery's id time).
    let make_at = |seq: u64, name: &str, ms: u64, fanned_ms: u64, done: bool| {
        let mut e = entry(name, None);
        e.event.created_at_ms = ms;
        let mut d = delivery(name, ep, fanned_ms);
        d.id = made_at(fanned_ms);
        fan_out(&s, seq, &vec![e], std::slice::from_ref(&d));
        let fact = match done {
            true => attempted(d.id, &ok, DeliveryStatus::Delivered, None),
            false => attempted(d.id, &fail, DeliveryStatus::Retrying, Some(99_000)),
        };
        s.apply(&[fact], seq, seq).unwrap();
        d
    };
    let make = |seq, name, ms, done| make_at(seq, name, ms, ms, done);
    let event = |name: &str| s.stored_event(name).unwrap().is_some();
    make(1, "e1", 1_000, true);
    let waiting = make(2, "e2", 2_000, false);
    make(3, "e3", 3_000, true);
    make(4, "e4", 4_000, true);

    // Budget 1: each pass deletes one delivery, then one event once its delivery is gone.
    // Each is behind (at its budget), so none starts the next over.
    let mut events = 0;
    for _ in 0..3 {
        events += s.retain(10_000, 0, 1).unwrap().events;
    }
    assert_eq!(events, 3);
    assert!(event("e2") && !event("e1") && !event("e3") && !event("e4"));
    // The pass went on past e2 (kept): the cursor is at the end of what was due.
    let from = s.sweep.lock().unwrap().events_from.clone();
    assert_eq!(
        from,
        key(&[Kind::EventTime.prefix(), &10_000u64.to_be_bytes()])
    );

    // An event indexed late, with an older time than where the passes go on from, is seen.
    make_at(5, "late", 500, 5_000, true);
    assert_eq!(s.retain(10_000, 0, 1).unwrap().events, 1);
    assert!(!event("late"), "indexed late, swept all the same");

    // e2's delivery finishes: a caught-up pass starts the next over from the first key.
    let ok2 = crate::testing::answered_attempt(2, 99_000, 200);
    s.apply(
        &[attempted(waiting.id, &ok2, DeliveryStatus::Delivered, None)],
        6,
        6,
    )
    .unwrap();
    let r = s.retain(10_000, 0, 10).unwrap();
    assert_eq!(r.deliveries, 1);
    s.retain(10_000, 0, 10).unwrap();
    assert!(!event("e2"), "looked at again once caught up");
    assert_eq!(s.db.scan_prefix(Kind::EventTime.prefix()).count(), 0);
}

#[test]
fn an_event_fanned_out_late_outlives_retention_until_its_deliveries_are_applied() {
    use crate::outcome::Change;
    let dir = TempStore::new();
    let s = dir.open();
    let ep = EndpointId::generate();
    // An event made long ago (fan-out lagged, or redid it after a restart) is indexed now;
    // the indexer has not applied fan-out's record yet when retention runs.
    let mut e = entry("late", None);
    e.event.created_at_ms = 1_000;
    let rec = vec![e];
    let seq = s.append(&rec).unwrap();
    let d = DeliveryId::generate();
    let fanned = fanned_event("late", vec![(d, ep)]);
    s.index_events(seq, &rec, std::slice::from_ref(&fanned))
        .unwrap();
    for _ in 0..3 {
        s.retain(now_ms(), 0, 100).unwrap();
    }
    assert!(
        s.stored_event("late").unwrap().is_some(),
        "deleted while its delivery was on its way to the indexer"
    );
    // Applied: the delivery is fresh, and the event stays while it is.
    let made = Change::FannedOut {
        seq,
        events: vec![fanned],
    };
    s.apply(&[made], 1, 1).unwrap();
    s.retain(now_ms(), 0, 100).unwrap();
    assert!(s.stored_event("late").unwrap().is_some());
    assert!(s.get_delivery(d).unwrap().is_some());
}

#[test]
fn records_indexed_together_are_each_indexed_and_on_their_way_until_applied() {
    use crate::outcome::Change;
    let dir = TempStore::new();
    let s = dir.open();
    let ep = EndpointId::generate();
    let mut decided = Vec::new();
    for name in ["a", "b"] {
        let mut e = entry(name, None);
        e.event.created_at_ms = 1_000;
        let rec = vec![e];
        let seq = s.append(&rec).unwrap();
        let fanned = vec![fanned_event(name, vec![(DeliveryId::generate(), ep)])];
        decided.push((seq, rec, fanned));
    }
    let index: Vec<(Seq, &LogRecord, &[FannedEvent])> = decided
        .iter()
        .map(|(seq, rec, fanned)| (*seq, rec, fanned.as_slice()))
        .collect();
    s.index_records(&index).unwrap();
    assert_eq!(s.fanout_cursor(), decided[1].0 + 1);
    s.retain(now_ms(), 0, 100).unwrap();
    for name in ["a", "b"] {
        assert!(s.stored_event(name).unwrap().is_some(), "{name} deleted");
    }
    // Both decisions in one outcome record, as fan-out appends them.
    let changes: Vec<Change> = decided
        .iter()
        .map(|(seq, _, fanned)| Change::FannedOut {
            seq: *seq,
            events: fanned.clone(),
        })
        .collect();
    s.apply(&changes, 1, 1).unwrap();
    assert!(s.fanning_lock().is_empty());
    for (_, _, fanned) in &decided {
        let d = fanned[0].deliveries[0].0;
        assert!(s.get_delivery(d).unwrap().is_some());
    }
    assert_eq!(s.meta_u64(EVENTS_CURSOR).unwrap(), decided[1].0 + 1);
}
