//! Fan-out against a real store and outcome log, with the scheduler dispatching to a recorder.

use super::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hookd_log::outcome::OutcomeLog;
use hookd_log::store::{BoxFuture, EventLog, HistoryReads};
use hookd_log::testing::{self, TempStore};
use hookd_log::{LogEntry, LogError, OnBlockingPool};
use hookd_types::Event;

use crate::shard::{BreakerConfig, Dispatch, Scheduler, SchedulerConfig, Slot};

/// The outcome log, refusing any record of more than `max` deliveries as the journal refuses a
/// record over its byte limit; it keeps the size of every record it was asked to append.
struct Capped {
    inner: Arc<OutcomeLog>,
    max: AtomicUsize,
    sizes: Mutex<Vec<usize>>,
}

fn deliveries_in(changes: &[Change]) -> usize {
    changes
        .iter()
        .map(|c| match c {
            Change::FannedOut { events, .. } | Change::FannedOutPart { events, .. } => {
                events.iter().map(|e| e.deliveries.len()).sum()
            }
            _ => 0,
        })
        .sum()
}

impl Capped {
    fn check(&self, changes: &[Change]) -> Result<(), LogError> {
        let n = deliveries_in(changes);
        self.sizes.lock().unwrap().push(n);
        let max = self.max.load(Ordering::SeqCst);
        if n > max {
            return Err(LogError::Io(std::io::Error::other(format!(
                "a record of {n} deliveries is over the limit of {max}"
            ))));
        }
        Ok(())
    }
}

impl Outcomes for Capped {
    fn record<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, hookd_log::error::Result<Seq>> {
        match self.check(changes) {
            Ok(()) => self.inner.record(changes),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn record_durable<'a>(
        &'a self,
        changes: &'a [Change],
    ) -> BoxFuture<'a, hookd_log::error::Result<Seq>> {
        match self.check(changes) {
            Ok(()) => self.inner.record_durable(changes),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn watch_applied(&self) -> watch::Receiver<Seq> {
        self.inner.watch_applied()
    }

    fn last_appended(&self) -> Seq {
        self.inner.last_appended()
    }
}

/// Takes every attempt as delivered, remembering which.
#[derive(Default)]
struct Recorder {
    delivered: Mutex<HashSet<DeliveryId>>,
    changed: Notify,
}

impl Dispatch for Recorder {
    async fn attempt(&self, job: Job, slot: Slot) -> Option<u64> {
        slot.release();
        self.delivered.lock().unwrap().insert(job.delivery);
        self.changed.notify_waiters();
        None
    }
}

fn record(tenant: &str, events: usize, first: usize) -> LogRecord {
    (first..first + events)
        .map(|i| LogEntry {
            event: Event {
                id: format!("evt_{i}"),
                tenant: tenant.into(),
                event_type: "instance.ready".into(),
                created_at_ms: 1_700_000_000_000,
                data: Arc::from("{}"),
            },
            idempotency_key: None,
            request_hash: 0,
        })
        .collect()
}

struct Setup {
    _dir: TempStore,
    store: Arc<hookd_log::SledStore>,
    outcomes: Arc<Capped>,
    recorder: Arc<Recorder>,
    scheduler: Scheduler,
    fanout: Fanout,
}

/// A store holding `records` event-log records of `per_record` events each, for a tenant of
/// `endpoints` endpoints taking every type, and fan-out over an outcome log capped at `cap`
/// deliveries a record.
async fn setup(records: usize, per_record: usize, endpoints: usize, cap: usize) -> Setup {
    let dir = TempStore::new();
    let store = Arc::new(dir.open());
    let log = Arc::new(OutcomeLog::open(&dir.path().join("outcomes"), store.clone()).unwrap());
    let outcomes = Arc::new(Capped {
        inner: log,
        max: AtomicUsize::new(cap),
        sizes: Mutex::default(),
    });
    let eps: Vec<_> = (0..endpoints)
        .map(|i| testing::endpoint(&format!("ep{i}")))
        .collect();
    let registry = Arc::new(EndpointRegistry::new(
        eps,
        Arc::new(OnBlockingPool(store.clone() as Arc<dyn Store>)),
    ));
    for r in 0..records {
        store
            .append(&record("acme", per_record, r * per_record))
            .unwrap();
    }
    let recorder = Arc::new(Recorder::default());
    let scheduler = Scheduler::start(
        &SchedulerConfig {
            shards: 1,
            per_endpoint_concurrency: 16,
            start_concurrency: 16,
            max_in_flight: 64,
            breaker: BreakerConfig::default(),
        },
        recorder.clone(),
        Vec::new(),
    );
    let fanout = Fanout::new(
        store.clone(),
        outcomes.clone(),
        registry,
        scheduler.handle(),
        Arc::new(Notify::new()),
    );
    Setup {
        _dir: dir,
        store,
        outcomes,
        recorder,
        scheduler,
        fanout,
    }
}

impl Setup {
    /// Once the read model has caught up: the store's cursor is `cursor`, each of the first
    /// `events` events lists `per_event` deliveries, and every one of them is attempted.
    async fn assert_all_made(&self, cursor: Seq, events: usize, per_event: usize) {
        self.outcomes.caught_up().await.unwrap();
        assert_eq!(self.store.fanout_cursor(), cursor, "the store's cursor");
        for i in 0..events {
            let made = self.store.event_deliveries(&format!("evt_{i}")).unwrap();
            assert_eq!(made.len(), per_event, "deliveries of evt_{i}");
        }
        self.wait_delivered(events * per_event).await;
    }

    async fn wait_delivered(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let changed = self.recorder.changed.notified();
            if self.recorder.delivered.lock().unwrap().len() >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} deliveries were attempted",
                self.recorder.delivered.lock().unwrap().len()
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
        }
    }
}

/// The stall of a batch too large for one outcome record: records read together that make
/// more deliveries than an outcome record may hold are committed in several groups, and every
/// delivery is made, recorded and attempted. Without the groups the capped log refuses the one
/// record fan-out asks for, and fan-out fails (it retried that for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_read_together_are_committed_in_groups_under_the_limit() {
    // 6 records of 5 events to 4 endpoints: 20 deliveries a record, 120 in all, read in one
    // pass; at most 50 a group.
    let mut s = setup(6, 5, 4, 50).await;
    s.fanout = s.fanout.group_limit(50);
    s.fanout.drain().await.expect("fan-out under the limit");

    let sizes = s.outcomes.sizes.lock().unwrap().clone();
    assert!(sizes.len() >= 3, "groups {sizes:?}");
    assert!(sizes.iter().all(|&n| n <= 50), "groups {sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 120, "groups {sizes:?}");

    // Seqs start at 1: the cursor is past the sixth record.
    s.assert_all_made(7, 30, 4).await;
    assert!(s.scheduler.shutdown(Duration::from_secs(1)).await);
}

/// A record that alone makes more deliveries than the limit is recorded in parts of whole
/// events, each under the limit; the cursor passes it once its last part is written, and every
/// delivery is made, listed on its event and attempted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_the_group_limit_is_recorded_in_parts() {
    // 3 records of 10 events to 2 endpoints: 20 deliveries a record, at most 15 a part.
    let mut s = setup(3, 10, 2, 15).await;
    s.fanout = s.fanout.group_limit(15);
    s.fanout.drain().await.expect("fan-out in parts");
    assert_eq!(*s.outcomes.sizes.lock().unwrap(), vec![14, 6, 14, 6, 14, 6]);
    s.assert_all_made(4, 30, 2).await;
    assert!(s.scheduler.shutdown(Duration::from_secs(1)).await);
}

/// The groups test can fail: with one group for everything read, the capped log refuses it and
/// fan-out reports the error. The records are not skipped: indexing moved the store's cursor
/// past them, but the next pass reads them again, and once the log takes the record every
/// event has its deliveries (made anew) and every one is attempted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_the_log_refuses_is_fanned_out_again() {
    let mut s = setup(6, 5, 4, 50).await;
    s.fanout = s.fanout.group_limit(usize::MAX);
    let err = s.fanout.drain().await.expect_err("one record of 120");
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert_eq!(*s.outcomes.sizes.lock().unwrap(), vec![120]);

    s.outcomes.max.store(1_000, Ordering::SeqCst);
    s.fanout.drain().await.expect("the same records again");
    assert_eq!(*s.outcomes.sizes.lock().unwrap(), vec![120, 120]);
    s.assert_all_made(7, 30, 4).await;
    assert_eq!(s.recorder.delivered.lock().unwrap().len(), 120);
    assert!(s.scheduler.shutdown(Duration::from_secs(1)).await);
}
