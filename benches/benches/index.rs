//! The read model's cost per delivery, as the indexer pays it in run A (BENCHMARKS.md): events
//! of 1 KiB fanned out to 100 endpoints, each event indexed by fan-out, its decision applied,
//! then every delivery's successful attempt applied, as one batch per event.
//!
//! Run under callgrind for a count that ignores the machine's noise:
//! `cargo bench -p hookd-benches --bench index --no-run`, then
//! `valgrind --tool=callgrind <bench binary> --bench --profile-time 1 index`
//! counts a fixed amount of work only with `HOOKD_INDEX_BENCH_ROUNDS` set (see `main`).

use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use hookd_log::outcome::FannedEvent;
use hookd_log::testing::{answered_attempt, TempStore};
use hookd_log::{Change, EventLog, LogEntry, SledStore};
use hookd_types::{DeliveryId, DeliveryStatus, EndpointId, Event};

const ENDPOINTS: usize = 100;
/// Events per measured round.
const EVENTS: usize = 10;

/// Makes, indexes and delivers `EVENTS` events to every endpoint, from event-log position
/// `*seq` and outcome-log position `*oseq` on; the deliveries delivered.
fn round(store: &SledStore, endpoints: &[EndpointId], seq: &mut u64, oseq: &mut u64) -> usize {
    let data = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000));
    let mut delivered = 0;
    for _ in 0..EVENTS {
        let id = format!("evt_{:020}", *seq);
        let record = vec![LogEntry {
            event: Event {
                id: id.clone(),
                tenant: "t".into(),
                event_type: "job.completed".into(),
                created_at_ms: 1_000,
                data: data.as_str().into(),
            },
            idempotency_key: None,
            request_hash: 0,
        }];
        let fanned = FannedEvent {
            event_id: id,
            tenant: "t".into(),
            event_type: "job.completed".into(),
            deliveries: endpoints
                .iter()
                .map(|ep| (DeliveryId::generate(), *ep))
                .collect(),
        };
        store
            .index_events(*seq, &record, std::slice::from_ref(&fanned))
            .unwrap();
        let made = Change::FannedOut {
            seq: *seq,
            events: vec![fanned.clone()],
        };
        *oseq += 1;
        store.apply(&[made], *oseq, *oseq).unwrap();
        let outcomes: Vec<Change> = fanned
            .deliveries
            .iter()
            .map(|(d, _)| Change::Attempted {
                delivery: *d,
                attempt: answered_attempt(1, 2_000, 200),
                status: DeliveryStatus::Delivered,
                next_attempt_ms: None,
                at_ms: 2_000,
            })
            .collect();
        *oseq += 1;
        store.apply(&outcomes, *oseq, *oseq).unwrap();
        *seq += 1;
        delivered += outcomes.len();
    }
    delivered
}

/// What is timed is right: after a round every delivery is delivered, with its one attempt.
fn check_what_is_timed() {
    let dir = TempStore::new();
    let store = dir.open_with_cache(64 << 20);
    let endpoints: Vec<EndpointId> = (0..ENDPOINTS).map(|_| EndpointId::generate()).collect();
    let (mut seq, mut oseq) = (0, 0);
    assert_eq!(
        round(&store, &endpoints, &mut seq, &mut oseq),
        EVENTS * ENDPOINTS
    );
    use hookd_log::HistoryReads;
    let deliveries = store.event_deliveries("evt_00000000000000000003").unwrap();
    assert_eq!(deliveries.len(), ENDPOINTS);
    for d in deliveries {
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(store.attempts(d.id).unwrap().len(), 1);
    }
}

fn bench_index(c: &mut Criterion) {
    check_what_is_timed();
    let dir = TempStore::new();
    let store = dir.open_with_cache(64 << 20);
    let endpoints: Vec<EndpointId> = (0..ENDPOINTS).map(|_| EndpointId::generate()).collect();
    let (mut seq, mut oseq) = (0, 0);
    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements((EVENTS * ENDPOINTS) as u64));
    g.sample_size(20);
    g.bench_function("fan_out_and_deliver_100_endpoints", |b| {
        b.iter(|| black_box(round(&store, &endpoints, &mut seq, &mut oseq)))
    });
    g.finish();
}

criterion_group!(benches, bench_index);

/// With `HOOKD_INDEX_BENCH_ROUNDS=N`, runs N rounds and nothing else: a fixed amount of work
/// for callgrind to count.
fn main() {
    if let Some(n) = std::env::var("HOOKD_INDEX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let dir = TempStore::new();
        let store = dir.open_with_cache(64 << 20);
        let endpoints: Vec<EndpointId> = (0..ENDPOINTS).map(|_| EndpointId::generate()).collect();
        let (mut seq, mut oseq) = (0, 0);
        let mut delivered = 0;
        for _ in 0..n {
            delivered += round(&store, &endpoints, &mut seq, &mut oseq);
        }
        println!("{delivered} deliveries indexed");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
