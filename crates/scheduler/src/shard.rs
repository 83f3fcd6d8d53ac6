//! Shard tasks. A shard owns, for the endpoints hashed to it: the timing wheel of their
//! deadlines, a FIFO of due jobs per endpoint, and in-flight counts. It starts at most
//! `max_in_flight / shards` attempts in all, taking endpoints round-robin, and shares that budget
//! fairly among the endpoints with work ([`share`]): each holds at most its share (and at most
//! `per_endpoint_concurrency`), and a reserve is kept for endpoints holding nothing, so
//! receivers that hold every request until the timeout cannot starve a healthy one.
//!
//! Per-endpoint delivery controls ([`SchedulerHandle::set_controls`]) are enforced here too: a
//! rate limit (a token bucket charged as each attempt starts, [`limit`]) and FIFO (strict
//! order, one delivery in flight, [`fifo`]).
//!
//! Each attempt reports what it learnt of its endpoint ([`Slot::report`]); the shard keeps a
//! circuit breaker and an adaptive concurrency limit per endpoint from that ([`health`]). While
//! an endpoint's breaker is open its due jobs are parked, making no attempt, until it probes.
//!
//! Everyone else talks to a shard through its command channel: new jobs (fan-out, manual retry),
//! released slots (an attempt is done with its endpoint) and finished attempts (outcome durable,
//! with the next deadline, if any). At start, [`Scheduler::prepare`] builds the shards and the
//! durable deadlines are streamed into them before they run.
//!
//! Time: the wheels count monotonic milliseconds ([`Clock`]), so a step of the wall clock moves
//! no deadline a shard holds. Durable deadlines stay unix milliseconds (they must survive a
//! restart); each is mapped onto the monotonic clock once, as it enters a shard, through the unix
//! time read when the clock started.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use hookd_log::ScheduleEntry;
use hookd_types::metrics::{dec, METRICS};
use hookd_types::time::now_ms;
use hookd_types::{DeliveryControls, DeliveryId, EndpointId, Event, Signal};

use crate::wheel::Wheel;
use health::Health;
pub use health::{Breaker, BreakerConfig};

/// Attempt `delivery` (bound for `endpoint`) at `due_ms` (unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub delivery: DeliveryId,
    pub endpoint: EndpointId,
    pub due_ms: u64,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The event, when the job comes straight from fan-out; jobs that waited in a wheel (retries,
    /// deadlines loaded on start) leave it to the attempt to read from the store.
    pub event: Option<Arc<Event>>,
}

impl From<ScheduleEntry> for Job {
    fn from(e: ScheduleEntry) -> Self {
        Self {
            delivery: e.delivery,
            endpoint: e.endpoint,
            due_ms: e.due_ms,
            attempts: e.attempts,
            event: None,
        }
    }
}

/// What the shard did with a manual retry's request to reserve a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved: nothing will attempt it until [`SchedulerHandle::schedule`] or
    /// [`SchedulerHandle::unreserve`].
    Reserved,
    /// It is being attempted, or another retry holds it.
    Busy,
    /// The shard has stopped.
    Stopped,
}

/// Makes one attempt and records its outcome; returns the next deadline, if any. The attempt
/// calls [`Slot::report`] (or [`Slot::release`]) as soon as it is done talking to the endpoint,
/// so the endpoint's concurrency slot is free while the outcome is still being made durable.
pub trait Dispatch: Send + Sync + 'static {
    fn attempt(&self, job: Job, slot: Slot) -> impl Future<Output = Option<u64>> + Send;
}

/// One of an endpoint's concurrency slots, held by an attempt. Released on [`Slot::report`],
/// [`Slot::release`] or on drop, whichever comes first.
pub struct Slot {
    tx: mpsc::UnboundedSender<Cmd>,
    endpoint: EndpointId,
    held: bool,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Slot {
    /// Gives the slot back with what the attempt learnt, and how long its exchange took when
    /// it got an answer (for the adaptive limit's latency rule, [`health`]).
    pub fn report(mut self, signal: Signal, latency: Option<Duration>) {
        self.give_back(signal, latency);
    }

    /// Gives the slot back, nothing learnt.
    pub fn release(mut self) {
        self.give_back(Signal::NotSent, None);
    }

    fn give_back(&mut self, signal: Signal, latency: Option<Duration>) {
        if std::mem::take(&mut self.held) {
            let _ = self.tx.send(Cmd::Released {
                endpoint: self.endpoint,
                signal,
                latency,
            });
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.give_back(Signal::NotSent, None);
    }
}

/// The shards' clock: monotonic time since `origin`, with the unix time read at `origin` to map
/// durable (unix ms) deadlines onto it. Runs on tokio's clock, so tests can pause it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    unix_ms: u64,
    origin: Instant,
}

impl Clock {
    /// Starts now: reads the wall clock once.
    pub fn start() -> Self {
        Self {
            unix_ms: now_ms(),
            origin: Instant::now(),
        }
    }

    /// Unix ms by this clock: the wall clock at the start plus monotonic time since.
    pub fn now_ms(&self) -> u64 {
        self.unix_ms + self.elapsed_ms()
    }

    /// The instant at which this clock reads `unix_ms` (at the start, if that is earlier).
    pub fn instant_of(&self, unix_ms: u64) -> Instant {
        self.instant_at(self.wheel_time(unix_ms))
    }

    /// Monotonic ms since the start: wheel time.
    fn elapsed_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Wheel time of a unix-ms deadline.
    fn wheel_time(&self, unix_ms: u64) -> u64 {
        unix_ms.saturating_sub(self.unix_ms)
    }

    fn instant_at(&self, wheel_ms: u64) -> Instant {
        self.origin + Duration::from_millis(wheel_ms)
    }
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub shards: usize,
    pub per_endpoint_concurrency: usize,
    /// Attempts an endpoint the shard knows nothing of may have in flight (a slow start, at
    /// most `per_endpoint_concurrency`); each success adds one (`shard/health.rs`).
    pub start_concurrency: usize,
    pub max_in_flight: usize,
    pub breaker: BreakerConfig,
}

enum Cmd {
    Schedule(Job),
    Reserve {
        delivery: DeliveryId,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    Unreserve {
        delivery: DeliveryId,
        endpoint: EndpointId,
    },
    /// The endpoint is deleted: drop its due jobs (see [`SchedulerHandle::forget`]).
    Forget(EndpointId),
    /// The endpoint's delivery controls (rate limit, FIFO) from now on.
    Controls {
        endpoint: EndpointId,
        controls: DeliveryControls,
    },
    /// An attempt is done with the endpoint (its slot is free), and what it learnt.
    Released {
        endpoint: EndpointId,
        signal: Signal,
        latency: Option<Duration>,
    },
    /// What the shard knows of an endpoint's health.
    Health {
        endpoint: EndpointId,
        reply: tokio::sync::oneshot::Sender<EndpointHealth>,
    },
    /// An attempt has finished, outcome recorded, with the next deadline if any.
    Finished {
        delivery: DeliveryId,
        endpoint: EndpointId,
        next: Option<Job>,
    },
    /// Keep jobs due up to `end` (unix ms) from now on; later ones are left to the store.
    Horizon {
        end: u64,
        reply: tokio::sync::oneshot::Sender<()>,
    },
    /// A deadline read back from the store as the horizon moved: taken unless the shard knows
    /// the delivery already (waiting, in flight or reserved: newer than what the store said).
    Page(Job),
}

/// Routes jobs to the shard that owns their endpoint. Cheap to clone.
#[derive(Clone)]
pub struct SchedulerHandle {
    shards: Arc<[mpsc::UnboundedSender<Cmd>]>,
}

impl std::fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerHandle")
            .field("shards", &self.shards.len())
            .finish()
    }
}

/// An endpoint's health as its shard sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointHealth {
    pub breaker: Breaker,
    /// Attempts it may have in flight now: its adaptive limit (0 while the breaker is open, 1
    /// while it probes), before its share of the shard's budget.
    pub concurrency: usize,
    pub consecutive_failures: u32,
    /// Its usual answer time (ms), against which rising latency is judged; none before an
    /// answer.
    pub usual_latency_ms: Option<u64>,
    /// The share of its recent attempts that failed (each attempt moves it an eighth of the
    /// way to 0 or 1).
    pub failure_share: f64,
    /// Failing (a failure share of a quarter or more, or a breaker not closed): it yields to
    /// healthy endpoints that are delivering.
    pub failing: bool,
    /// Failing, and its due jobs held back now by the yield ([`share`]).
    pub yielding: bool,
    /// Due deliveries waiting behind an open breaker.
    pub parked: usize,
    /// Due deliveries waiting in the shard for a slot, a token (rate limit) or their turn
    /// (FIFO); stale jobs a manual retry replaced may be counted until they are dropped.
    pub queued: usize,
}

pub fn shard_of(endpoint: EndpointId, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    endpoint.hash(&mut h);
    (h.finish() % shards as u64) as usize
}

impl SchedulerHandle {
    /// Hands `job` to its shard. It becomes the one job of its delivery: an older one still
    /// waiting in a wheel is dropped when it comes due.
    pub fn schedule(&self, job: Job) {
        // A closed shard means shutdown: the deadline is durable, a restart picks it up.
        let _ = self.shard(job.endpoint).send(Cmd::Schedule(job));
    }

    /// Asks the shard that owns `endpoint` to reserve `delivery` for a manual retry: refused
    /// while the delivery is being attempted or another retry holds it; a deadline it was
    /// waiting for is dropped. The shard is the one
    /// owner of that knowledge, so a retry and an attempt can never both run.
    pub async fn reserve(&self, delivery: DeliveryId, endpoint: EndpointId) -> Reservation {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let cmd = Cmd::Reserve { delivery, reply };
        if self.shard(endpoint).send(cmd).is_err() {
            return Reservation::Stopped;
        }
        match rx.await {
            Ok(true) => Reservation::Reserved,
            Ok(false) => Reservation::Busy,
            Err(_) => Reservation::Stopped,
        }
    }

    /// Moves every shard's horizon to `end` (unix ms): from the return on, a shard keeps every
    /// job due up to it.
    pub async fn set_horizon(&self, end: u64) {
        for shard in self.shards.iter() {
            let (reply, rx) = tokio::sync::oneshot::channel();
            if shard.send(Cmd::Horizon { end, reply }).is_ok() {
                let _ = rx.await;
            }
        }
    }

    /// Hands a deadline read from the store to its shard (see [`crate::pager`]).
    pub fn page(&self, job: Job) {
        let _ = self.shard(job.endpoint).send(Cmd::Page(job));
    }

    /// The endpoint's breaker and concurrency limit as its shard sees them; `None` once the
    /// shard has stopped.
    pub async fn health(&self, endpoint: EndpointId) -> Option<EndpointHealth> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let cmd = Cmd::Health { endpoint, reply };
        self.shard(endpoint).send(cmd).ok()?;
        rx.await.ok()
    }

    /// Gives up a reservation that will not be scheduled.
    pub fn unreserve(&self, delivery: DeliveryId, endpoint: EndpointId) {
        let _ = self
            .shard(endpoint)
            .send(Cmd::Unreserve { delivery, endpoint });
    }

    /// Tells the shard that owns `endpoint` its delivery controls (rate limit, FIFO); the
    /// default lifts both. Call it whenever they may have changed: on create, update and delete.
    pub fn set_controls(&self, endpoint: EndpointId, controls: DeliveryControls) {
        let _ = self
            .shard(endpoint)
            .send(Cmd::Controls { endpoint, controls });
    }

    /// The endpoint is deleted: its shard drops the jobs it holds for it, due or waiting behind
    /// its breaker, without an attempt (its deliveries are deleted with it, see the store's
    /// purge), and forgets its health and controls. Attempts in flight end as they do; a job
    /// still waiting for its deadline is refused by the sender when it comes due. Before this,
    /// each of a deleted endpoint's jobs went through the sender's refusal and recorded an
    /// outcome that the purge then deleted: 80,000 of them kept two cores busy for seconds.
    pub fn forget(&self, endpoint: EndpointId) {
        let _ = self.shard(endpoint).send(Cmd::Forget(endpoint));
    }

    fn shard(&self, endpoint: EndpointId) -> &mpsc::UnboundedSender<Cmd> {
        &self.shards[shard_of(endpoint, self.shards.len())]
    }
}

pub struct Scheduler {
    handle: SchedulerHandle,
    clock: Clock,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("shards", &self.tasks.len())
            .finish()
    }
}

impl Scheduler {
    /// Starts the shards with `initial` deadlines.
    pub fn start<D: Dispatch>(
        cfg: &SchedulerConfig,
        dispatcher: Arc<D>,
        initial: impl IntoIterator<Item = ScheduleEntry>,
    ) -> Self {
        let mut loader = Self::prepare(cfg, dispatcher);
        for entry in initial {
            loader.add(entry);
        }
        loader.start()
    }

    /// Builds the shards without starting them, so deadlines can be streamed in from the store
    /// ([`Loader::add`]) with no copy of them all in between.
    pub fn prepare<D: Dispatch>(cfg: &SchedulerConfig, dispatcher: Arc<D>) -> Loader<D> {
        Self::prepare_at(cfg, dispatcher, Clock::start())
    }

    /// [`Scheduler::prepare`] on a given clock (shared with whoever computes deadlines).
    pub fn prepare_at<D: Dispatch>(
        cfg: &SchedulerConfig,
        dispatcher: Arc<D>,
        clock: Clock,
    ) -> Loader<D> {
        let n = cfg.shards.max(1);
        let yields = Arc::new(share::Shared::default());
        let mut senders = Vec::with_capacity(n);
        let mut shards = Vec::with_capacity(n);
        for index in 0..n {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx.clone());
            shards.push(Shard {
                index,
                clock,
                wheel: Wheel::new(),
                live: HashMap::new(),
                reserved: HashMap::new(),
                endpoints: HashMap::new(),
                runnable: VecDeque::new(),
                yielding: VecDeque::new(),
                share_seen: 0,
                health: HashMap::new(),
                parked: HashMap::new(),
                reopen: BTreeSet::new(),
                limits: HashMap::new(),
                refill: BTreeSet::new(),
                fifo: HashMap::new(),
                held_back: 0,
                yields: share::Yield::new(yields.clone()),
                breaker: cfg.breaker.clone(),
                in_flight: 0,
                tasks: 0,
                max_in_flight: (cfg.max_in_flight / n).max(1),
                per_endpoint: cfg.per_endpoint_concurrency.max(1),
                start_limit: cfg
                    .start_concurrency
                    .clamp(1, cfg.per_endpoint_concurrency.max(1)),
                tx,
                rx,
                dispatcher: dispatcher.clone(),
                horizon_end: u64::MAX,
            });
        }
        Loader {
            shards,
            senders,
            clock,
            loaded: 0,
        }
    }

    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Stops starting attempts and waits up to `grace` for those in flight. Returns whether
    /// they all finished; unfinished ones keep their durable deadline and run after a restart.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let all = futures_join(self.tasks);
        tokio::time::timeout(grace, all).await.is_ok()
    }
}

/// Shards built but not running yet; see [`Scheduler::prepare`].
pub struct Loader<D> {
    shards: Vec<Shard<D>>,
    senders: Vec<mpsc::UnboundedSender<Cmd>>,
    clock: Clock,
    loaded: usize,
}

impl<D> std::fmt::Debug for Loader<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("loaded", &self.loaded)
            .finish()
    }
}

impl<D: Dispatch> Loader<D> {
    /// The clock the shards will run on.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Shards keep jobs due up to `end` (unix ms) only; see [`crate::pager`]. Without a call
    /// they keep every job.
    pub fn set_horizon(&mut self, end: u64) {
        for s in &mut self.shards {
            s.horizon_end = end;
        }
    }

    /// An endpoint's delivery controls, before its deadlines are added: a FIFO endpoint's are
    /// then kept whatever the horizon.
    pub fn set_controls(&mut self, endpoint: EndpointId, controls: DeliveryControls) {
        let n = self.shards.len();
        self.shards[shard_of(endpoint, n)].set_controls(endpoint, controls);
    }

    /// An endpoint's consecutive failures before the restart, before its deadlines are added:
    /// at the breaker's threshold, its breaker starts open (see [`health`]).
    pub fn resume_breaker(&mut self, endpoint: EndpointId, failures: u32, failing_for_ms: u64) {
        let n = self.shards.len();
        self.shards[shard_of(endpoint, n)].resume(endpoint, failures, failing_for_ms);
    }

    pub fn add(&mut self, entry: ScheduleEntry) {
        let job = Job::from(entry);
        let n = self.shards.len();
        self.shards[shard_of(job.endpoint, n)].insert(job);
        self.loaded += 1;
    }

    pub fn start(self) -> Scheduler {
        let (stop, stop_rx) = watch::channel(false);
        tracing::info!(
            shards = self.shards.len(),
            deadlines = self.loaded,
            "scheduler started"
        );
        let tasks = self
            .shards
            .into_iter()
            .map(|s| {
                let span = tracing::info_span!("shard", index = s.index);
                tokio::spawn(s.run(stop_rx.clone()).instrument(span))
            })
            .collect();
        Scheduler {
            handle: SchedulerHandle {
                shards: self.senders.into(),
            },
            clock: self.clock,
            tasks,
            stop,
        }
    }
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// A job as a wheel holds it: 48 bytes, 8-aligned, no event. (A [`Job`] is 64, because `u128`
/// ids are 16-aligned.)
#[derive(Clone, Copy)]
struct Parked {
    delivery: [u8; 16],
    endpoint: [u8; 16],
    due_ms: u64,
    attempts: u32,
}

impl From<&Job> for Parked {
    fn from(j: &Job) -> Self {
        Self {
            delivery: j.delivery.to_bytes(),
            endpoint: j.endpoint.to_bytes(),
            due_ms: j.due_ms,
            attempts: j.attempts,
        }
    }
}

impl From<Parked> for Job {
    fn from(p: Parked) -> Self {
        Self {
            delivery: DeliveryId(u128::from_be_bytes(p.delivery)),
            endpoint: EndpointId(u128::from_be_bytes(p.endpoint)),
            due_ms: p.due_ms,
            attempts: p.attempts,
            event: None,
        }
    }
}

/// Commands a shard takes in one turn before it starts what is due.
const CMDS_PER_TURN: usize = 1024;

/// A job to hold a while (behind an open breaker): its event is let go, so memory does not
/// hold every event body of a broken endpoint's backlog; the attempt reads it back.
fn without_event(job: Job) -> Job {
    Job { event: None, ..job }
}

/// What `Shard::live` says of a delivery that is not waiting for a deadline.
const IN_FLIGHT: u64 = u64::MAX;
const RESERVED: u64 = u64::MAX - 1;

#[derive(Default)]
struct EndpointState {
    in_flight: usize,
    queue: VecDeque<Job>,
    runnable: bool,
    /// Holds no slot and waits for a token or its FIFO turn: it does not compete for the
    /// budget, so it does not count among those sharing it (until `pump` looks at it again).
    held_back: bool,
    /// Failing and held back by the yield: in [`Shard::yielding`], not in the round-robin.
    yielding: bool,
    /// Let out of [`Shard::yielding`] for one start, which the yield has counted already.
    granted: bool,
}

struct Shard<D> {
    index: usize,
    /// Wheel time is this clock's monotonic ms.
    clock: Clock,
    wheel: Wheel<Parked>,
    /// Every delivery of this shard that will be attempted: the deadline of its one current
    /// job, or [`IN_FLIGHT`] / [`RESERVED`]. A job whose deadline is not the one here is stale
    /// (a manual retry replaced it) and is dropped; a delivery that is here cannot be reserved.
    live: HashMap<DeliveryId, u64>,
    /// The deadline a reservation took over, given back if the retry is not scheduled.
    reserved: HashMap<DeliveryId, u64>,
    /// Endpoints with work: due jobs or attempts holding a slot. No other endpoint is here.
    endpoints: HashMap<EndpointId, EndpointState>,
    /// Endpoints with due jobs and below their share, in round-robin order.
    runnable: VecDeque<EndpointId>,
    /// Failing endpoints with due jobs, held back while healthy ones deliver ([`share`]), in
    /// the order they were held. Kept out of the round-robin: eighty of them there were gone
    /// over on every turn of every `pump`, which cost more than their attempts.
    yielding: VecDeque<EndpointId>,
    /// The share of the last [`Shard::pump`]: when it grows, endpoints held at the old one are
    /// made runnable again.
    share_seen: usize,
    /// Endpoints whose attempts taught something: failures counted, a lowered limit, a breaker
    /// not closed. Any other endpoint is healthy at full concurrency.
    health: HashMap<EndpointId, Health>,
    /// Due jobs of endpoints whose breaker is open, in order; they make no attempt meanwhile.
    parked: HashMap<EndpointId, VecDeque<Job>>,
    /// When open breakers start probing: (wheel time, endpoint).
    reopen: BTreeSet<(u64, EndpointId)>,
    /// The token buckets of rate-limited endpoints ([`limit`]).
    limits: HashMap<EndpointId, limit::Bucket>,
    /// When endpoints waiting for a token get one: (wheel time, endpoint).
    refill: BTreeSet<(u64, EndpointId)>,
    /// FIFO endpoints and their lines: every delivery the shard will attempt, by id ([`fifo`]).
    fifo: HashMap<EndpointId, BTreeSet<DeliveryId>>,
    /// Endpoints in `endpoints` that are [`EndpointState::held_back`].
    held_back: usize,
    /// When failing endpoints yield ([`share`]): shared by all shards, with this shard's floor.
    yields: share::Yield,
    breaker: BreakerConfig,
    /// Attempts holding a slot.
    in_flight: usize,
    /// Attempts not yet finished (some may have released their slot).
    tasks: usize,
    max_in_flight: usize,
    per_endpoint: usize,
    /// An unknown endpoint's concurrency limit (slow start).
    start_limit: usize,
    tx: mpsc::UnboundedSender<Cmd>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    dispatcher: Arc<D>,
    /// Jobs due later than this (unix ms) are not kept: their deadline is durable in the store
    /// and the pager hands it back as the horizon moves ([`crate::pager`]).
    horizon_end: u64,
}

impl<D: Dispatch> Shard<D> {
    /// Makes `job` the current job of its delivery: due now with its event at hand, straight
    /// into its endpoint's queue; otherwise into the wheel.
    fn insert(&mut self, job: Job) {
        self.reserved.remove(&job.delivery);
        // A FIFO endpoint's jobs are kept whatever their deadline: a head left to the store
        // would let the next one go.
        if job.due_ms > self.horizon_end && !self.fifo.contains_key(&job.endpoint) {
            self.live.remove(&job.delivery);
            return;
        }
        self.live.insert(job.delivery, job.due_ms);
        self.fifo_join(&job);
        if job.event.is_some() && job.due_ms <= self.clock.now_ms() {
            self.enqueue(job);
        } else {
            self.wheel
                .insert(self.clock.wheel_time(job.due_ms), Parked::from(&job));
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut fired = Vec::new();
        let mut stopping = false;
        loop {
            if !stopping {
                self.probe_due();
                self.refill_due();
                self.wheel.advance(self.clock.elapsed_ms(), &mut fired);
                for parked in fired.drain(..) {
                    let job = Job::from(parked);
                    if self.live.get(&job.delivery) == Some(&job.due_ms) {
                        self.enqueue(job);
                    }
                }
                self.pump();
            } else if self.tasks == 0 {
                break;
            }
            // The wheel was just advanced, so its next deadline is ahead of its time.
            let wheel = self
                .wheel
                .next_deadline()
                .map(|at| at.max(self.wheel.elapsed() + 1));
            let probe = self.reopen.first().map(|(at, _)| *at);
            let refill = self.refill.first().map(|(at, _)| *at);
            let unyield = self.yields.held.then(|| self.yields.wake_at());
            let next = wheel
                .into_iter()
                .chain(probe)
                .chain(refill)
                .chain(unyield)
                .min();
            let wake = match (stopping, next) {
                (false, Some(at)) => Some(self.clock.instant_at(at)),
                _ => None,
            };
            tokio::select! {
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.handle(cmd);
                    // Take more of what is queued before looking at the clock again, but not
                    // all of it: a fan-out to thousands of endpoints queues thousands of jobs,
                    // and due attempts should not wait behind every one of them.
                    for _ in 0..CMDS_PER_TURN {
                        let Ok(cmd) = self.rx.try_recv() else { break };
                        self.handle(cmd);
                    }
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    tracing::debug!(tasks = self.tasks, "shard draining");
                }
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Schedule(job) => self.insert(job),
            Cmd::Horizon { end, reply } => {
                self.horizon_end = end;
                let _ = reply.send(());
            }
            Cmd::Page(job) => {
                if !self.live.contains_key(&job.delivery) {
                    self.insert(job);
                }
            }
            Cmd::Reserve { delivery, reply } => {
                // A deadline still waiting is replaced (its job turns stale); an attempt running
                // or another retry being recorded is not.
                let free = !matches!(self.live.get(&delivery), Some(&IN_FLIGHT | &RESERVED));
                if free {
                    if let Some(due) = self.live.insert(delivery, RESERVED) {
                        self.reserved.insert(delivery, due);
                    }
                }
                let _ = reply.send(free);
            }
            Cmd::Unreserve { delivery, endpoint } => {
                if self.live.get(&delivery) == Some(&RESERVED) {
                    // The deadline it replaced (still in the wheel or a queue) is current again.
                    match self.reserved.remove(&delivery) {
                        Some(due) => {
                            self.live.insert(delivery, due);
                        }
                        None => {
                            self.live.remove(&delivery);
                            self.fifo_leave(endpoint, delivery);
                        }
                    };
                }
            }
            Cmd::Controls { endpoint, controls } => self.set_controls(endpoint, controls),
            Cmd::Forget(endpoint) => self.forget(endpoint),
            Cmd::Finished {
                delivery,
                endpoint,
                next,
            } => {
                self.tasks -= 1;
                match next {
                    Some(job) => self.insert(job),
                    None => {
                        self.live.remove(&delivery);
                        self.fifo_leave(endpoint, delivery);
                    }
                }
            }
            Cmd::Health { endpoint, reply } => {
                let h = self.health.get(&endpoint).cloned();
                let h = h.unwrap_or_else(|| Health::new(self.start_limit));
                let _ = reply.send(EndpointHealth {
                    breaker: h.breaker,
                    concurrency: h.cap(),
                    consecutive_failures: h.failures,
                    usual_latency_ms: h.usual_ms,
                    failure_share: f64::from(h.failure_score) / f64::from(health::SCORE_ONE),
                    failing: h.failing(),
                    yielding: self.endpoints.get(&endpoint).is_some_and(|st| st.yielding),
                    parked: self.parked.get(&endpoint).map_or(0, VecDeque::len),
                    queued: self.endpoints.get(&endpoint).map_or(0, |st| st.queue.len()),
                });
            }
            Cmd::Released {
                endpoint,
                signal,
                latency,
            } => {
                self.in_flight -= 1;
                self.observe(endpoint, signal, latency);
                let cap = self.cap(endpoint);
                let now = self.clock.elapsed_ms();
                let waiting = self
                    .endpoints
                    .get(&endpoint)
                    .is_some_and(|st| !st.queue.is_empty());
                if waiting && self.presses(endpoint) {
                    self.yields.pressure(now);
                }
                if let Some(st) = self.endpoints.get_mut(&endpoint) {
                    st.in_flight -= 1;
                    if !st.queue.is_empty() && !st.runnable && st.in_flight < cap {
                        st.runnable = true;
                        self.runnable.push_back(endpoint);
                    }
                    self.forget_if_idle(endpoint);
                }
            }
        }
    }

    fn enqueue(&mut self, job: Job) {
        let endpoint = job.endpoint;
        self.fifo_join(&job);
        if let Some(parked) = self.parked.get_mut(&endpoint) {
            parked.push_back(without_event(job));
            return;
        }
        let at = self.queue_position(endpoint, &job);
        let st = self.endpoints.entry(endpoint).or_default();
        match at {
            Some(i) => st.queue.insert(i, job),
            None => st.queue.push_back(job),
        }
        // Whether it is below its share is for `pump` to say: it may be a newcomer.
        if !st.runnable {
            st.runnable = true;
            self.runnable.push_back(endpoint);
        }
    }

    /// The endpoint's delivery controls from now on.
    fn set_controls(&mut self, endpoint: EndpointId, controls: DeliveryControls) {
        self.set_rate_limit(endpoint, controls.rate_limit);
        self.set_fifo(endpoint, controls.fifo);
    }

    /// A deleted endpoint: its due and parked jobs go, uncounted from the pending deliveries.
    fn forget(&mut self, endpoint: EndpointId) {
        let queued = self
            .endpoints
            .get_mut(&endpoint)
            .map(|st| std::mem::take(&mut st.queue))
            .unwrap_or_default();
        let parked = self.parked.remove(&endpoint).unwrap_or_default();
        let mut dropped = 0;
        for job in queued.into_iter().chain(parked) {
            if self.live.get(&job.delivery) == Some(&job.due_ms) {
                self.live.remove(&job.delivery);
                dropped += 1;
            }
        }
        self.set_controls(endpoint, DeliveryControls::default());
        self.health.remove(&endpoint);
        self.forget_if_idle(endpoint);
        dec(&METRICS.deliveries_pending, dropped);
        tracing::debug!(endpoint = %endpoint, dropped, "deleted endpoint's due jobs dropped");
    }

    /// Lets failing endpoints held back by the yield back into the round-robin, oldest first,
    /// one start each, as far as the yield allows at wheel time `now` (all of them once healthy
    /// endpoints are quiet).
    fn unyield(&mut self, now: u64) {
        while let Some(&ep) = self.yielding.front() {
            // Deleted, or emptied and dropped since: nothing to let out.
            let held = self.endpoints.get(&ep).is_some_and(|st| st.yielding);
            if held && !self.yields.may_start(now) {
                return;
            }
            self.yielding.pop_front();
            if let Some(st) = self.endpoints.get_mut(&ep).filter(|_| held) {
                st.yielding = false;
                st.granted = true;
                if !st.runnable {
                    st.runnable = true;
                    self.runnable.push_front(ep);
                }
            }
        }
    }

    /// Puts an endpoint with due jobs back in the round-robin (`pump` says whether it may
    /// start anything).
    fn wake(&mut self, endpoint: EndpointId) {
        if let Some(st) = self.endpoints.get_mut(&endpoint) {
            if !st.queue.is_empty() && !st.runnable {
                st.runnable = true;
                self.runnable.push_back(endpoint);
            }
        }
    }

    /// Drops an endpoint with no due job and no slot: it no longer counts among those sharing.
    fn forget_if_idle(&mut self, endpoint: EndpointId) {
        if let Some(st) = self.endpoints.get(&endpoint) {
            if st.queue.is_empty() && st.in_flight == 0 && !st.runnable {
                if st.held_back {
                    self.held_back -= 1;
                }
                self.endpoints.remove(&endpoint);
            }
        }
    }

    /// Starts attempts while there is room, one per endpoint per turn, each endpoint within its
    /// share. An endpoint held back only by the reserve stays in the queue; the loop ends once
    /// it has gone round every runnable endpoint without starting anything.
    fn pump(&mut self) {
        self.rejoin_after_growth();
        self.yields.held = false;
        self.unyield(self.clock.elapsed_ms());
        let mut idle_turns = 0;
        while self.in_flight < self.max_in_flight && idle_turns <= self.runnable.len() {
            let Some(ep) = self.runnable.pop_front() else {
                return;
            };
            let cap = self.cap(ep);
            let (failing, presses) = (self.failing(ep), self.presses(ep));
            let now = self.clock.elapsed_ms();
            let (in_flight, budget) = (self.in_flight, self.max_in_flight);
            let Some(st) = self.endpoints.get_mut(&ep) else {
                continue;
            };
            if st.in_flight >= cap {
                st.runnable = false;
                if presses && !st.queue.is_empty() {
                    self.yields.pressure(now);
                }
                self.forget_if_idle(ep);
                continue;
            }
            // Out of tokens, or a FIFO endpoint whose head is not due: it leaves the
            // round-robin until its next token comes, or its line moves.
            let wait = self.token_wait(ep, now);
            if let Some(at) = wait {
                self.refill.insert((at, ep));
            }
            if wait.is_some() || self.fifo_blocked(ep) {
                if let Some(st) = self.endpoints.get_mut(&ep) {
                    st.runnable = false;
                    if st.in_flight == 0 && !st.held_back {
                        st.held_back = true;
                        self.held_back += 1;
                    }
                }
                self.forget_if_idle(ep);
                continue;
            }
            let Some(st) = self.endpoints.get_mut(&ep) else {
                continue;
            };
            if std::mem::take(&mut st.held_back) {
                self.held_back -= 1;
            }
            if !share::may_start(st.in_flight, cap, in_flight, budget) {
                self.runnable.push_back(ep);
                idle_turns += 1;
                continue;
            }
            // A failing endpoint yields to healthy ones that are delivering: it leaves the
            // round-robin until the yield lets it start one (`unyield`).
            if failing && !st.granted && self.yields.active(now) {
                st.runnable = false;
                if !st.yielding {
                    st.yielding = true;
                    self.yielding.push_back(ep);
                }
                self.yields.held = true;
                continue;
            }
            let Some(job) = st.queue.pop_front() else {
                st.runnable = false;
                self.forget_if_idle(ep);
                continue;
            };
            // Replaced while it queued (a manual retry of a dead-lettered delivery cannot race
            // it, but a restart's reload and a fresh schedule can meet here).
            if self.live.get(&job.delivery) != Some(&job.due_ms) {
                if st.queue.is_empty() {
                    st.runnable = false;
                    self.forget_if_idle(ep);
                } else {
                    self.runnable.push_back(ep);
                }
                continue;
            }
            idle_turns = 0;
            st.granted = false;
            if !failing {
                self.yields.healthy_started();
                if presses {
                    self.yields.pressure(now);
                }
            }
            if let Some(bucket) = self.limits.get_mut(&ep) {
                bucket.take(now);
            }
            self.live.insert(job.delivery, IN_FLIGHT);
            st.in_flight += 1;
            if !st.queue.is_empty() && st.in_flight < cap {
                self.runnable.push_back(ep);
            } else {
                st.runnable = false;
            }
            self.in_flight += 1;
            self.tasks += 1;
            let (tx, d) = (self.tx.clone(), self.dispatcher.clone());
            let slot = Slot {
                tx: tx.clone(),
                endpoint: ep,
                held: true,
            };
            let span = tracing::debug_span!("attempt", delivery = %job.delivery);
            tokio::spawn(
                async move {
                    let (delivery, endpoint, attempts) = (job.delivery, job.endpoint, job.attempts);
                    let next = d.attempt(job, slot).await.map(|due_ms| Job {
                        delivery,
                        endpoint,
                        due_ms,
                        attempts: attempts + 1,
                        event: None,
                    });
                    let _ = tx.send(Cmd::Finished {
                        delivery,
                        endpoint,
                        next,
                    });
                }
                .instrument(span),
            );
        }
    }
}

mod fifo;
mod health;
/// The daemon's [`SchedulerConfig::start_concurrency`].
pub use health::START_LIMIT as START_CONCURRENCY;
mod limit;
mod share;
#[cfg(test)]
mod tests;
