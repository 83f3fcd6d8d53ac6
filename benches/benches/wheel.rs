//! Timing wheel benchmarks: insert 100k entries with random deadlines, then advance
//! through all of them.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hookd_scheduler::wheel::Wheel;

const N: usize = 100_000;
/// Deadlines are spread over ~70 minutes (2^22 ms), touching levels 0..=3.
const SPAN_MS: u64 = 1 << 22;

/// Payload roughly the size of a scheduler entry.
type Item = [u64; 4];

/// splitmix64, deterministic so runs are comparable.
fn deadlines(n: usize, span: u64) -> Vec<u64> {
    let mut state = 0x1234_5678_9abc_def0u64;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % span
        })
        .collect()
}

fn filled(ds: &[u64]) -> Wheel<Item> {
    let mut w = Wheel::new();
    for (i, &d) in ds.iter().enumerate() {
        w.insert(d, [i as u64; 4]);
    }
    w
}

/// What is timed is right: driven by its next deadline, the wheel hands out every entry once,
/// exactly at its deadline (items carry their index into `ds`).
fn check_what_is_timed(ds: &[u64]) {
    let mut w = filled(ds);
    let mut out = Vec::new();
    let mut seen = vec![false; ds.len()];
    while let Some(t) = w.next_deadline() {
        w.advance(t, &mut out);
        assert!(!out.is_empty(), "nothing due at the next deadline {t}");
        for item in out.drain(..) {
            let i = item[0] as usize;
            assert_eq!(ds[i], t, "entry {i} fired at {t}");
            assert!(
                !std::mem::replace(&mut seen[i], true),
                "entry {i} fired twice"
            );
        }
    }
    assert!(seen.iter().all(|s| *s));
}

fn bench_wheel(c: &mut Criterion) {
    let ds = deadlines(N, SPAN_MS);
    check_what_is_timed(&ds);
    let mut g = c.benchmark_group("wheel");
    g.throughput(Throughput::Elements(N as u64));

    g.bench_function("insert_100k", |b| {
        b.iter_batched(
            Wheel::<Item>::new,
            |mut w| {
                for (i, &d) in ds.iter().enumerate() {
                    w.insert(black_box(d), [i as u64; 4]);
                }
                w
            },
            BatchSize::LargeInput,
        )
    });

    // Advance in fixed 10 ms ticks, as a timer driver would.
    g.bench_function("advance_100k_tick_10ms", |b| {
        b.iter_batched(
            || filled(&ds),
            |mut w| {
                let mut out = Vec::with_capacity(1024);
                let mut fired = 0usize;
                let mut now = 0u64;
                while !w.is_empty() {
                    now += 10;
                    w.advance(black_box(now), &mut out);
                    fired += out.len();
                    out.clear();
                }
                assert_eq!(fired, N);
                w
            },
            BatchSize::LargeInput,
        )
    });

    // Jump straight to each next deadline, as an event-driven shard would.
    g.bench_function("advance_100k_next_deadline", |b| {
        b.iter_batched(
            || filled(&ds),
            |mut w| {
                let mut out = Vec::with_capacity(1024);
                let mut fired = 0usize;
                while let Some(t) = w.next_deadline() {
                    w.advance(black_box(t), &mut out);
                    fired += out.len();
                    out.clear();
                }
                assert_eq!(fired, N);
                w
            },
            BatchSize::LargeInput,
        )
    });

    // Insert and fully drain in one go.
    g.bench_function("insert_then_drain_100k", |b| {
        b.iter(|| {
            let mut w = filled(black_box(&ds));
            let mut out = Vec::with_capacity(N);
            w.advance(SPAN_MS, &mut out);
            assert_eq!(out.len(), N);
            out.len()
        })
    });

    g.finish();
}

criterion_group!(benches, bench_wheel);
criterion_main!(benches);
