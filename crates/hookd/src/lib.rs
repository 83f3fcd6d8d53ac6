//! The hookd daemon: wiring of the pipeline `ingest -> log -> scheduler -> sender -> log` behind
//! one HTTP listener, and its orderly shutdown.
//!
//! - [`config`]: defaults, file, environment, validation.
//! - [`cli`]: `hookd endpoints|events|deliveries ...`, a client of a running daemon's API.
//! - [`keys`]: the master key for secrets at rest, the admin key.
//! - [`tls`]: the listener over TLS and its certificate reload on SIGHUP.
//! - [`rekey`]: `hookd rekey`, re-sealing every secret under a new master key.
//! - [`listener`]: accepting and serving connections under the `[server]` limits.
//! - [`priority`]: the data plane's threads yield the CPU to those answering requests.
//! - [`run`]: opens the store, builds every stage, serves until `shutdown` resolves, then drains.
//!   The data plane (shards, attempts, pager, fan-out's tasks) runs on a runtime of its own
//!   (`hookd-deliver` threads); HTTP is served on the caller's.
//!
//! This crate owns process concerns (config, admin key, signals, lifetimes, the operator's
//! client) and no pipeline logic.

pub mod cli;
pub mod config;
pub mod keys;
pub mod listener;
pub mod priority;
pub mod rekey;
pub mod tls;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use hookd_api::ApiState;
use hookd_http::auth::{authenticate, refuse_when_draining};
use hookd_http::error::{envelope_errors, not_found_route};
use hookd_http::{Draining, Gate};
use hookd_ingest::validate::Candidate;
use hookd_ingest::{Committer, CommitterConfig, IngestConfig, IngestState};
use hookd_log::{
    AsyncStore, EndpointRegistry, KeyRegistry, LogError, OnBlockingPool, OutcomeLog, Retention,
    SledConfig, SledStore, Store,
};
use hookd_scheduler::{Dispatch, Fanout, Job, Scheduler, SchedulerConfig, Slot};
use hookd_sender::disable::{Announce, ENDPOINT_DISABLED};
use hookd_sender::policy::TargetPolicy;
use hookd_sender::{ClientConfig, Due, HttpClient, Sender};
use hookd_types::metrics;

pub use config::Config;

/// The scheduler asks, the sender attempts.
struct SendDispatch(Arc<Sender>);

impl Dispatch for SendDispatch {
    async fn attempt(&self, job: Job, slot: Slot) -> Option<u64> {
        let due = Due {
            delivery: job.delivery,
            endpoint: job.endpoint,
            attempts: job.attempts,
            event: job.event,
        };
        self.0
            .attempt(due, move |signal, latency| slot.report(signal, latency))
            .await
    }
}

/// Operational events go through the ingest path: durable, then fanned out like any event.
struct Announcer(Committer);

impl Announce for Announcer {
    fn announce(&self, event: hookd_types::Event) {
        let committer = self.0.clone();
        let candidate = Candidate {
            entry: hookd_log::LogEntry {
                event,
                idempotency_key: None,
                request_hash: 0,
            },
            client_id: false,
        };
        tokio::spawn(async move {
            if let Err(e) = committer.submit(vec![candidate]).await {
                tracing::error!(error = %e, "recording an operational event");
            }
        });
    }
}

/// Checkpoints the read model and the logs every `every` until `stop`.
async fn checkpoints(
    outcomes: Arc<OutcomeLog>,
    sled: Arc<SledStore>,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let (log, store) = (outcomes.clone(), sled.clone());
        match tokio::task::spawn_blocking(move || log.checkpoint(&store)).await {
            Ok(Ok(c)) => tracing::debug!(
                outcomes_through = c.outcomes_through,
                outcome_segments_removed = c.outcome_segments_removed,
                "checkpoint"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "checkpoint failed; retrying later"),
            Err(e) => tracing::error!(error = %e, "checkpoint task failed"),
        }
    }
}

/// Runs the daemon on `listener` until `shutdown` resolves, then drains and returns.
pub async fn run(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data_dir {}", cfg.data_dir.display()))?;
    let master = keys::master_key(&cfg.master_key)?;
    let (sled, migrated) = SledStore::open_sealed(
        &SledConfig {
            path: cfg.data_dir.join("db"),
            cache_bytes: cfg.cache_bytes,
        },
        cfg.background_flush,
        master.key,
    )
    .map_err(|e| match (&e, &master.created) {
        (LogError::WrongMasterKey, Some(path)) => anyhow::anyhow!(
            "{e} ({} was created by this start: give the key they were sealed with)",
            path.display()
        ),
        _ => anyhow::Error::new(e),
    })
    .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
    if migrated > 0 {
        tracing::info!(
            endpoints = migrated,
            "sealed endpoint secrets that were stored in plain text"
        );
    }
    let sled = Arc::new(sled);
    let outcomes = Arc::new(
        OutcomeLog::open_with(
            &cfg.data_dir.join("outcomes"),
            sled.clone(),
            Some(Retention {
                history: cfg.history,
                idempotency: cfg.idempotency,
                every: (cfg.history.min(cfg.idempotency) / 4)
                    .clamp(Duration::from_millis(500), Duration::from_secs(60)),
            }),
        )
        .with_context(|| format!("opening the outcome log in {}", cfg.data_dir.display()))?,
    );
    let store: Arc<dyn Store> = sled.clone();
    // What async code (the API, the sender, the pager) reads the store through.
    let reads: Arc<dyn AsyncStore> = Arc::new(OnBlockingPool(store.clone()));
    let key = keys::admin_key(&cfg, &*store)?;
    let api_keys = Arc::new(KeyRegistry::load(sled.clone())?);
    let registry = Arc::new(EndpointRegistry::new(store.endpoints()?, reads.clone()));
    let policy = TargetPolicy {
        allow_private: cfg.allow_private_targets,
        require_https: cfg.require_https,
    };
    let client = HttpClient::new(ClientConfig {
        timeout: cfg.timeout,
        policy,
        // Many endpoints may share one host (one receiving service for many customers), and all
        // of the in-flight budget may go to it: every attempt that may run at once keeps its
        // connection, or each one beyond the cap opens and closes one.
        pool_idle_per_host: cfg.max_in_flight,
        extra_roots: cfg.extra_roots.clone(),
    });
    let sender = Arc::new(
        Sender::new(
            client,
            reads.clone(),
            registry.clone(),
            cfg.retry.clone(),
            outcomes.clone(),
        )
        .auto_disable_after(cfg.auto_disable_after),
    );

    let mut loader = Scheduler::prepare(
        &SchedulerConfig {
            shards: cfg.shards,
            per_endpoint_concurrency: cfg.per_endpoint_concurrency,
            start_concurrency: cfg.start_concurrency,
            max_in_flight: cfg.max_in_flight,
            breaker: cfg.breaker.clone(),
        },
        Arc::new(SendDispatch(sender.clone())),
    );
    // The shards hold what is due within the horizon; the pager reads the rest as it comes near.
    let clock = loader.clock();
    let horizon_end = clock.now_ms() + cfg.horizon.as_millis() as u64;
    loader.set_horizon(horizon_end);
    // Rate limits and FIFO, before the deadlines: a FIFO endpoint's are kept whatever their time.
    let (all, _) = registry.list(None, None, usize::MAX);
    let mut fifo = HashSet::new();
    for ep in all.iter().filter(|ep| !ep.controls.is_default()) {
        loader.set_controls(ep.id, ep.controls);
        if ep.controls.fifo {
            fifo.insert(ep.id);
        }
    }
    // Failing streaks and breaker counts, as the indexer derived them from the attempts: an
    // endpoint failing before the restart is still failing, and its breaker still open. A
    // streak resumes from its first failure, or from the endpoint's last change if later (a
    // re-enabled endpoint starts again).
    let now = hookd_types::time::now_ms();
    let mut retrying = 0;
    for ep in &all {
        let stats = store.endpoint_stats(ep.id)?;
        retrying += stats.retrying;
        if let Some(since) = stats.failing_since_ms.filter(|_| ep.enabled) {
            sender.resume_failing(ep.id, since.max(ep.updated_at_ms));
        }
        let failing_for = stats
            .failing_since_ms
            .map_or(0, |since| now.saturating_sub(since));
        loader.resume_breaker(ep.id, stats.consecutive_failures, failing_for);
    }
    let (mut scheduled, mut retried) = (0, 0);
    store.for_each_scheduled(horizon_end, &mut |entry| {
        scheduled += 1;
        retried += u64::from(entry.attempts > 0);
        loader.add(entry);
    })?;
    // A FIFO endpoint's head may wait for a retry beyond the horizon: its line needs it now.
    if !fifo.is_empty() {
        store.for_each_deadline_between(horizon_end, u64::MAX, &mut |entry| {
            if fifo.contains(&entry.endpoint) {
                loader.add(entry);
            }
        })?;
    }
    // Every delivery waiting for an attempt: those loaded now, and those beyond the horizon,
    // which are the endpoints' retrying deliveries not loaded. Counted from the stats the
    // indexer keeps, not by reading every deadline key: that read pulled each key's sled page
    // into memory (1,000,000 retries: +110 MiB of RSS after a restart, for a gauge). A manual
    // retry still waiting at the restart is counted as one of the retrying (it is loaded, and
    // its delivery keeps its status until attempted), so the gauge may be short by those.
    metrics::METRICS.deliveries_pending.store(
        scheduled + retrying.saturating_sub(retried),
        std::sync::atomic::Ordering::Relaxed,
    );
    metrics::METRICS
        .per_endpoint
        .enable(cfg.metrics_per_endpoint);
    let appended = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    // The data plane runs on a runtime of its own: the shards, every attempt and its pooled
    // connections, the pager and fan-out's tasks are spawned while it is entered. A saturated
    // data plane then queues its own tasks only, and the management API (served on the caller's
    // runtime) still answers at once.
    let data_plane = tokio::runtime::Builder::new_multi_thread()
        .thread_name("hookd-deliver")
        .on_thread_start(priority::lower_this_thread)
        .enable_all()
        .build()
        .context("starting the delivery runtime")?;
    let (scheduler, pager, fanout) = {
        let _data_plane = data_plane.enter();
        let scheduler = loader.start();
        let pager = hookd_scheduler::pager::spawn(
            reads.clone(),
            outcomes.clone(),
            scheduler.handle(),
            clock,
            cfg.horizon,
            horizon_end,
            stop_rx.clone(),
        );
        let fanout = Fanout::new(
            store.clone(),
            outcomes.clone(),
            registry.clone(),
            scheduler.handle(),
            appended.clone(),
        )
        .spawn(stop_rx.clone())
        .context("starting the fan-out thread")?;
        (scheduler, pager, fanout)
    };
    // Fan-out and the indexer are running by now; the delivery runtime's threads lower
    // themselves as they start.
    priority::lower_data_plane();
    let checkpointer = tokio::spawn(checkpoints(
        outcomes.clone(),
        sled.clone(),
        cfg.checkpoint_interval,
        stop_rx,
    ));
    let (committer, committer_thread) = Committer::start(
        store.clone(),
        CommitterConfig {
            max_batch: cfg.max_commit_batch,
        },
        appended,
    )?;

    sender.announce_with(Arc::new(Announcer(committer.clone())));

    let draining = Draining::default();
    // Endpoints may subscribe to the operational events too; producers may not post them.
    let mut event_types: HashSet<String> = cfg.event_types.iter().cloned().collect();
    event_types.insert(ENDPOINT_DISABLED.to_owned());
    let event_types = Arc::new(event_types);
    let ingest = hookd_ingest::router(IngestState::new(
        IngestConfig {
            max_batch: cfg.max_batch,
            rate_limit: cfg.rate_limit,
            event_types: cfg.event_types.clone(),
        },
        committer.clone(),
        reads.clone(),
    ))
    .layer(from_fn_with_state(draining.clone(), refuse_when_draining));
    let api = hookd_api::router(ApiState {
        reads: reads.clone(),
        registry,
        keys: api_keys.clone(),
        scheduler: scheduler.handle(),
        outcomes: outcomes.clone(),
        sender,
        policy,
        event_types,
    });
    let mut access = hookd_api::ACCESS.to_vec();
    access.push(hookd_ingest::ACCESS);
    let gate = Arc::new(Gate::new(key, api_keys, cfg.key_rate_limit, &access));
    let app = Router::new()
        .merge(
            ingest
                .merge(api)
                .layer(from_fn_with_state(gate, authenticate)),
        )
        .merge(hookd_api::ops::router(draining.clone()))
        .merge(hookd_api::openapi::router(&hookd_api::openapi::Site {
            event_types: cfg.event_types.clone(),
            pages: hookd_ui::pages(),
        }))
        .merge(hookd_ui::router())
        .fallback(not_found_route)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(axum::Extension(hookd_http::JsonLimits {
            max_depth: cfg.server.max_json_depth,
        }))
        .layer(axum::middleware::from_fn(envelope_errors));

    let addr = listener.local_addr()?;
    let (server_stop, server_stop_rx) = watch::channel(false);
    let hangup = tls::hangup_signal().context("listening for SIGHUP")?;
    let (scheme, acceptor) = match &cfg.tls {
        None => {
            tokio::spawn(tls::reload_on_hangup(hangup, None));
            ("http", None)
        }
        Some(files) => {
            let slot = Arc::new(tls::CertSlot::new(files.certified.clone()));
            tokio::spawn(tls::reload_on_hangup(
                hangup,
                Some((files.clone(), slot.clone())),
            ));
            ("https", Some(tls::acceptor(slot)?))
        }
    };
    let server = tokio::spawn(listener::serve(
        listener,
        app,
        cfg.server,
        acceptor,
        server_stop_rx,
    ));
    tracing::info!(%addr, scheme, "hookd ready");
    println!("listening on {scheme}://{addr}");

    shutdown.await;
    tracing::info!(grace = ?cfg.grace, "shutting down: refusing new events, finishing deliveries");
    draining.start();
    let _ = stop_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || fanout.join()).await;
    let _ = checkpointer.await;
    let _ = pager.await;
    let finished = scheduler.shutdown(cfg.grace).await;
    if !finished {
        tracing::warn!(
            "grace period over; unfinished deliveries stay scheduled for the next start"
        );
    }
    let _ = server_stop.send(true);
    if tokio::time::timeout(std::time::Duration::from_secs(2), server)
        .await
        .is_err()
    {
        tracing::warn!("open connections did not close in time");
    }
    committer.close();
    let _ = tokio::task::spawn_blocking(move || committer_thread.join()).await;
    // Attempts are over (or left for the next start): what is left on the data plane is idle
    // connections. Dropping a runtime blocks, which only a blocking thread may do.
    let _ =
        tokio::task::spawn_blocking(move || data_plane.shutdown_timeout(Duration::from_secs(1)))
            .await;
    // Every holder of the outcome log (sender, API) is gone with the tasks above; closing it
    // applies what is left to the read model.
    match Arc::try_unwrap(outcomes) {
        Ok(log) => {
            let done = tokio::task::spawn_blocking(move || {
                log.checkpoint(&sled)?;
                log.close()
            });
            done.await??;
        }
        Err(_) => tracing::warn!("outcome log still in use at shutdown; a restart replays it"),
    }
    store.flush()?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests;
