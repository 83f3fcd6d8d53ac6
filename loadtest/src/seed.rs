//! `seed-retries`: fills a stopped daemon's data directory with N deliveries waiting for a retry
//! (written through the same store and in the same shape as fan-out and a failed attempt would),
//! so the memory of a daemon holding them can be measured: start hookd on the directory, wait
//! for `scheduler started ... deadlines=N` on its log, read `VmRSS` from `/proc/PID/status`.
//! Endpoint secrets are sealed under `<data_dir>/master.key` (created if missing), the key a
//! daemon started on the directory with the default `[secrets]` uses.

use hookd_log::{EndpointStore, EventLog};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use hookd::config::MasterKeySource;
use hookd_log::{LogEntry, SledConfig, SledStore};
use hookd_types::time::now_ms;
use hookd_types::{Delivery, DeliveryId, DeliveryStatus, Endpoint, EndpointId, Event};

/// Deliveries per store batch: the size fan-out works at. (Before sled collected its garbage
/// within a batch, `vendor/README.md`, batches of 1,000 drove it to 6 GB of RSS after a
/// million deliveries.)
const BATCH: u64 = 1_000;

/// Seeds the store; returns the JSON result line (also printed).
pub fn seed_retries(data_dir: &Path, count: u64, endpoints: u32) -> Result<String> {
    if count == 0 || count > 10_000_000 || endpoints == 0 || endpoints > 10_000 {
        bail!("--count must be in 1..=10000000 and --endpoints in 1..=10000");
    }
    // Sealed under the key hookd will find (`<data_dir>/master.key`, created if missing), so
    // its start does not first have to seal plain secrets by copying the whole store.
    let master = hookd::keys::master_key(&MasterKeySource::File(data_dir.join("master.key")))?;
    let (store, _) = SledStore::open_sealed(
        &SledConfig {
            path: data_dir.join("db"),
            cache_bytes: 64 << 20,
        },
        Some(hookd_log::sled_store::DEFAULT_BACKGROUND_FLUSH),
        master.key,
    )
    .with_context(|| {
        format!(
            "opening {} (is hookd still running on it?)",
            data_dir.display()
        )
    })?;
    let now = now_ms();
    let eps: Vec<EndpointId> = (0..endpoints)
        .map(|i| {
            let ep = Endpoint {
                id: EndpointId::generate(),
                tenant: "seed".into(),
                name: format!("seed-{i}"),
                // The discard port: nothing is sent before the first deadline anyway.
                url: "http://127.0.0.1:9/".into(),
                description: "seeded by hookd-loadtest seed-retries".into(),
                event_types: vec!["*".into()],
                secret: format!("whsec_{}", "A".repeat(43) + "="),
                enabled: true,
                metadata: Default::default(),
                created_at_ms: now,
                updated_at_ms: now,
                format: Default::default(),
                previous_secrets: Vec::new(),
                controls: Default::default(),
            };
            store.put_endpoint(&ep).map(|_| ep.id)
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut made = 0u64;
    while made < count {
        let n = BATCH.min(count - made);
        let mut record = Vec::with_capacity(n as usize);
        let mut deliveries = Vec::with_capacity(n as usize);
        for i in made..made + n {
            let event = Event {
                id: format!("seed-{i}"),
                tenant: "seed".into(),
                event_type: "job.failed".into(),
                created_at_ms: now,
                data: r#"{"seeded":true}"#.into(),
            };
            deliveries.push(Delivery {
                id: DeliveryId::generate(),
                event_id: event.id.clone(),
                endpoint_id: eps[(i % endpoints as u64) as usize],
                tenant: "seed".into(),
                event_type: event.event_type.clone(),
                status: DeliveryStatus::Retrying,
                attempts: 1,
                created_at_ms: now,
                updated_at_ms: now,
                // Spread evenly over the next 1..2 hours, in the order written: all pending
                // while measuring. (Cycling through the hour put each batch's deadlines all over
                // a tree of millions of keys, and sled paged through its cache for every one:
                // under 5 MB/s at 10 million.)
                next_attempt_ms: Some(now + 3_600_000 + i * 3_600_000 / count),
                last_attempt_ms: Some(now),
                last_status_code: Some(503),
            });
            record.push(LogEntry {
                event,
                idempotency_key: None,
                request_hash: 0,
            });
        }
        let seq = store.append(&record)?;
        store.seed_fanout(seq, &record, &deliveries)?;
        made += n;
    }
    store.flush()?;
    println!(
        "seeded {made} retrying deliveries over {endpoints} endpoints in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let line = jline! {
        "mode": "seed-retries",
        "deliveries": made,
        "endpoints": endpoints,
        "seconds": crate::report::r3(started.elapsed().as_secs_f64()),
    };
    println!("{line}");
    Ok(line)
}
