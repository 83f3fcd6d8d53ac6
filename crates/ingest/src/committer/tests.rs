use super::*;
use crate::validate::{candidate, EventIn};
use hookd_log::testing::{temp_store, GatedStore, TempStore};
use hookd_log::EventLog;
use hookd_types::check::testing::known_types;
use std::time::{Duration, Instant};

fn setup(dir: &TempStore) -> (Committer, Arc<dyn Store>) {
    let (c, store, _) = setup_joinable(dir);
    (c, store)
}

fn setup_joinable(dir: &TempStore) -> (Committer, Arc<dyn Store>, thread::JoinHandle<()>) {
    let store: Arc<dyn Store> = Arc::new(dir.open());
    let (c, h) = start(store.clone(), 64);
    (c, store, h)
}

fn start(store: Arc<dyn Store>, max_batch: usize) -> (Committer, thread::JoinHandle<()>) {
    Committer::start(
        store,
        CommitterConfig { max_batch },
        Arc::new(Notify::new()),
    )
    .unwrap()
}

fn cand(body: &str, key: Option<&str>) -> Candidate {
    let input: EventIn = serde_json::from_str(body).unwrap();
    candidate(input, &known_types(), key).unwrap()
}

/// Holds the committer's first append at the gate, queues `queued` one-event submissions behind
/// it, then lets it go. Returns the log records written (one per flush), by size.
async fn group_commit(max_batch: usize, queued: usize) -> (Committer, Vec<usize>) {
    let (_dir, store) = temp_store();
    let store = Arc::new(GatedStore::closed(store));
    let (c, _thread) = start(store.clone(), max_batch);
    let submit = || {
        let c = c.clone();
        tokio::spawn(async move {
            c.submit(vec![cand(r#"{"type":"job.completed"}"#, None)])
                .await
        })
    };
    let first = submit();
    tokio::task::spawn_blocking({
        let store = store.clone();
        move || store.wait_arrived(1)
    })
    .await
    .unwrap();
    let rest: Vec<_> = (0..queued).map(|_| submit()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.queued() < queued {
        assert!(Instant::now() < deadline, "only {} queued", c.queued());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(c.flushes(), 0, "the first append is still held");
    store.open();
    for s in std::iter::once(first).chain(rest) {
        let out = s.await.unwrap().unwrap();
        assert!(matches!(out[..], [Outcome::Accepted(_)]), "{out:?}");
    }
    let sizes = store
        .read_log(0, 1000)
        .unwrap()
        .iter()
        .map(|(_, r)| r.len())
        .collect();
    (c, sizes)
}

#[tokio::test]
async fn submissions_queued_behind_a_flush_share_the_next() {
    let (c, records) = group_commit(64, 40).await;
    // One flush for the first submission, one for all 40 that queued behind it.
    assert_eq!(c.flushes(), 2);
    assert_eq!(records, [1, 40]);
}

#[tokio::test]
async fn a_group_holds_at_most_max_batch_events() {
    let (c, records) = group_commit(16, 40).await;
    assert_eq!(records, [1, 16, 16, 8]);
    assert_eq!(c.flushes(), 4);
}

#[tokio::test]
async fn key_replays_and_conflicts() {
    let dir = TempStore::new();
    let (c, store) = setup(&dir);
    let body = r#"{"type":"job.completed","data":{"a":1}}"#;
    let first = c.submit(vec![cand(body, Some("k"))]).await.unwrap();
    let Outcome::Accepted(ev) = &first[0] else {
        panic!("{first:?}")
    };
    let again = c.submit(vec![cand(body, Some("k"))]).await.unwrap();
    assert_eq!(again, vec![Outcome::Replayed(ev.clone())]);
    let other = r#"{"type":"job.completed","data":{"a":2}}"#;
    assert!(matches!(
        c.submit(vec![cand(other, Some("k"))]).await,
        Err(CommitError::Conflict(_))
    ));
    // Exactly one record went to the log.
    assert_eq!(store.read_log(0, 10).unwrap().len(), 1);
    assert_eq!(c.event(&ev.id).unwrap().unwrap(), *ev);
}

#[tokio::test]
async fn client_ids_and_concurrent_duplicates() {
    let dir = TempStore::new();
    let (c, store) = setup(&dir);
    let body = r#"{"type":"job.completed","id":"job-1","data":{}}"#;
    let subs: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.submit(vec![cand(body, None)]).await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for s in subs {
        if let Outcome::Accepted(_) = s.await.unwrap()[0] {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
    let events: usize = store
        .read_log(0, 100)
        .unwrap()
        .iter()
        .map(|(_, r)| r.len())
        .sum();
    assert_eq!(events, 1);
    // Same id, other tenant: a conflict, not a replay.
    let other = r#"{"type":"job.completed","id":"job-1","tenant":"b","data":{}}"#;
    assert!(matches!(
        c.submit(vec![cand(other, None)]).await,
        Err(CommitError::Conflict(_))
    ));
    // A duplicate inside one batch is a replay of the first.
    let batch = vec![
        cand(r#"{"type":"job.completed","id":"j2","data":{}}"#, None),
        cand(r#"{"type":"job.completed","id":"j2","data":{}}"#, None),
    ];
    let out = c.submit(batch).await.unwrap();
    assert!(matches!(out[0], Outcome::Accepted(_)));
    assert!(matches!(out[1], Outcome::Replayed(_)));
}

#[tokio::test]
async fn pending_view_survives_restart() {
    let dir = TempStore::new();
    {
        let (c, store, h) = setup_joinable(&dir);
        c.submit(vec![cand(
            r#"{"type":"job.completed","data":{}}"#,
            Some("key-1"),
        )])
        .await
        .unwrap();
        c.close();
        drop(store);
        h.join().unwrap();
    }
    let (c, _) = setup(&dir);
    let out = c
        .submit(vec![cand(
            r#"{"type":"job.completed","data":{}}"#,
            Some("key-1"),
        )])
        .await
        .unwrap();
    assert!(matches!(out[0], Outcome::Replayed(_)));
}

#[test]
fn prune_pops_only_what_fan_out_indexed() {
    let mut p = Pending::default();
    let c = |id: &str, key: Option<&str>| {
        cand(
            &format!(r#"{{"type":"job.completed","id":"{id}","data":{{}}}}"#),
            key,
        )
    };
    p.add(0, &c("a", Some("ka")).entry);
    p.add(1, &c("b", None).entry);
    p.add(NOT_DURABLE, &c("c", None).entry);
    p.prune(1);
    assert!(!p.by_id.contains_key("a") && p.by_key.is_empty());
    assert!(p.by_id.contains_key("b"));
    // Not-yet-durable entries are never pruned by position.
    p.prune(u64::MAX - 1);
    assert_eq!(p.by_id.keys().collect::<Vec<_>>(), vec!["c"]);
    assert!(p.order.is_empty());
}
