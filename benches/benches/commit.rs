//! Durability cost on sled (64 MiB cache, in a tempdir):
//! - `append`: one log record holding N events, one flush. The flush dominates a small record, so
//!   events/s grows with N: this is why a group commit writes one record.
//! - `committer`: C concurrent submitters of one event each through the group committer. Events
//!   queued while a flush runs share the next one; events/flush is printed after each case.
//!
//! After each case the bytes written to disk per event are printed too (`/proc/self/io`, Linux).

use hookd_log::EventLog;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use hookd_benches::ingest_body;
use hookd_ingest::committer::Outcome;
use hookd_ingest::validate::{candidate, Candidate, EventIn};
use hookd_ingest::{Committer, CommitterConfig};
use hookd_log::testing::TempStore;
use hookd_log::{LogRecord, SledStore, Store};
use hookd_types::check::testing::known_types;

/// The shipped `ingest.max_commit_batch`.
const MAX_COMMIT_BATCH: usize = 4096;

/// A store in a temporary directory with the daemon's default cache.
fn open_store(dir: &TempStore) -> SledStore {
    dir.open_with_cache(64 << 20)
}

/// `n` validated events (generated ids, no idempotency key), as the ingest route makes them.
fn candidates(n: usize, body: &str, types: &HashSet<String>) -> Vec<Candidate> {
    (0..n)
        .map(|_| {
            let input: EventIn = serde_json::from_str(body).unwrap();
            candidate(input, types, None).unwrap()
        })
        .collect()
}

/// Bytes this process has caused to be written to storage so far (`/proc/self/io`, Linux).
fn disk_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// Runs `case` and prints the bytes written to disk per event (`events` counts what it wrote).
fn with_disk_report(name: &str, events: &AtomicU64, case: impl FnOnce()) {
    let before = (disk_written(), events.load(Ordering::Relaxed));
    case();
    let after = (disk_written(), events.load(Ordering::Relaxed));
    if let ((Some(b0), n0), (Some(b1), n1)) = (before, after) {
        if n1 > n0 {
            eprintln!(
                "{name}: {:.0} bytes written to disk per event ({} events)",
                (b1 - b0) as f64 / (n1 - n0) as f64,
                n1 - n0
            );
        }
    }
}

/// Stands in for fan-out: drops the log records written so far and moves the cursor past them,
/// as the daemon does soon after each append. Without it the committer's view of events still
/// in the log (pruned by the cursor on every group) would grow for the whole run.
fn drain_log(store: &dyn Store) {
    let empty = LogRecord::new();
    loop {
        let records = store.read_log(store.fanout_cursor(), 64).unwrap();
        if records.is_empty() {
            return;
        }
        for (seq, _) in records {
            store.index_events(seq, &empty, &[]).unwrap();
        }
    }
}

fn bench_append(c: &mut Criterion, body: &str, types: &HashSet<String>) {
    let dir = TempStore::new();
    let store = open_store(&dir);
    let written = AtomicU64::new(0);
    let mut g = c.benchmark_group("append");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in [1usize, 64, 1024, 4096] {
        let record: LogRecord = candidates(n, body, types)
            .into_iter()
            .map(|c| c.entry)
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        with_disk_report(&format!("append/events_{n}"), &written, || {
            g.bench_function(format!("events_{n}"), |b| {
                b.iter(|| {
                    written.fetch_add(n as u64, Ordering::Relaxed);
                    store.append(&record).unwrap()
                })
            });
        });
    }
    g.finish();
}

fn bench_committer(c: &mut Criterion, body: &str, types: &HashSet<String>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let written = AtomicU64::new(0);
    let mut g = c.benchmark_group("committer");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for submitters in [1usize, 64, 512] {
        let dir = TempStore::new();
        let store: Arc<dyn Store> = Arc::new(open_store(&dir));
        let (committer, thread) = Committer::start(
            store.clone(),
            CommitterConfig {
                max_batch: MAX_COMMIT_BATCH,
            },
            Arc::new(Notify::new()),
        )
        .unwrap();
        let events = AtomicU64::new(0);

        g.throughput(Throughput::Elements(submitters as u64));
        let name = format!("submitters_{submitters}");
        with_disk_report(&format!("committer/{name}"), &written, || {
            g.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // Validation is the route's work and draining is fan-out's: untimed.
                        drain_log(&*store);
                        let batch = candidates(submitters, body, types);
                        total += rt.block_on(async {
                            let start = Instant::now();
                            let mut set = JoinSet::new();
                            for cand in batch {
                                let committer = committer.clone();
                                set.spawn(async move { committer.submit(vec![cand]).await });
                            }
                            while let Some(r) = set.join_next().await {
                                let outcomes = r.unwrap().unwrap();
                                assert!(matches!(outcomes[..], [Outcome::Accepted(_)]));
                            }
                            start.elapsed()
                        });
                    }
                    written.fetch_add(iters * submitters as u64, Ordering::Relaxed);
                    events.fetch_add(iters * submitters as u64, Ordering::Relaxed);
                    total
                })
            });
        });

        // This committer's own counts: every event accepted went out in some flush, and no
        // flush went out empty.
        let (events, flushes) = (events.into_inner(), committer.flushes());
        assert!(events > 0, "committer/{name} ran no submission");
        assert!(
            (1..=events).contains(&flushes),
            "committer/{name}: {events} events in {flushes} flushes"
        );
        eprintln!(
            "committer/{name}: {events} events in {flushes} flushes, {:.1} events/flush",
            events as f64 / flushes as f64
        );
        committer.close();
        thread.join().unwrap();
    }
    g.finish();
}

fn bench_commit(c: &mut Criterion) {
    let body = ingest_body();
    let types = known_types();
    bench_append(c, &body, &types);
    bench_committer(c, &body, &types);
}

criterion_group!(benches, bench_commit);
criterion_main!(benches);
