//! Durable appends on hookd-journal (in a tempdir): C concurrent async appenders of one 1 KiB
//! record each, with `Durability::Sync`, so every append waits for the `fdatasync` of its group.
//! Appends queued while a group is synced share the next one; records/flush is printed after
//! each case. Compare with `commit`'s `committer` group, run in the same session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::task::JoinSet;

use hookd_journal::{Config, Durability, Journal};

const RECORD: usize = 1024;

fn bench_journal(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("journal_sync_append");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for appenders in [1usize, 64, 512] {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            durability: Durability::Sync,
            ..Config::default()
        };
        let journal = Arc::new(Journal::open(dir.path(), config).unwrap().0);
        let record = vec![0xa5u8; RECORD];
        g.throughput(Throughput::Elements(appenders as u64));
        let name = format!("appenders_{appenders}");
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(async {
                        let start = Instant::now();
                        let mut set = JoinSet::new();
                        for _ in 0..appenders {
                            let (journal, record) = (journal.clone(), record.clone());
                            set.spawn(async move { journal.append_async(record).await });
                        }
                        while let Some(r) = set.join_next().await {
                            r.unwrap().unwrap();
                        }
                        start.elapsed()
                    });
                }
                total
            })
        });
        let stats = journal.stats();
        if stats.flushes > 0 {
            eprintln!(
                "journal_sync_append/{name}: {} records in {} flushes, {:.1} records/flush",
                stats.records,
                stats.flushes,
                stats.records as f64 / stats.flushes as f64
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_journal);
criterion_main!(benches);
