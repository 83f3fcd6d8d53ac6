//! The shards on tokio's paused clock: every timer fires exactly when due and nothing depends on
//! how fast this machine runs.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One recorded attempt: the job, when it started, and how many earlier attempts were still
/// doing their post-release work at that moment.
#[derive(Debug, Clone)]
struct Call {
    job: Job,
    at: Instant,
    tails: usize,
}

/// Records attempts; the first `fail_first` attempts of each delivery ask for a retry
/// `retry_after` later.
struct Fake {
    clock: Clock,
    calls: Mutex<Vec<Call>>,
    in_flight: Mutex<HashMap<EndpointId, usize>>,
    max_seen: Mutex<HashMap<EndpointId, usize>>,
    /// Attempts between [`Slot::release`] and their end.
    tails: AtomicUsize,
    hold: Duration,
    /// Endpoints held longer than `hold`.
    holds: HashMap<EndpointId, Duration>,
    /// What attempts to an endpoint report of its health (none: nothing, the slot is released).
    signals: Mutex<HashMap<EndpointId, Signal>>,
    after_release: Duration,
    fail_first: usize,
    retry_after: u64,
    /// Attempts that report a signal report their hold as the answer time too.
    timed: bool,
}

impl Fake {
    fn new() -> Self {
        Self {
            clock: Clock::start(),
            calls: Mutex::default(),
            in_flight: Mutex::default(),
            max_seen: Mutex::default(),
            tails: AtomicUsize::new(0),
            hold: Duration::ZERO,
            holds: HashMap::new(),
            signals: Mutex::default(),
            after_release: Duration::ZERO,
            fail_first: 0,
            retry_after: 20,
            timed: false,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn max_seen(&self, ep: EndpointId) -> usize {
        self.max_seen.lock().unwrap().get(&ep).copied().unwrap_or(0)
    }

    fn calls_to(&self, ep: EndpointId) -> usize {
        let calls = self.calls.lock().unwrap();
        calls.iter().filter(|c| c.job.endpoint == ep).count()
    }

    fn in_flight(&self) -> usize {
        self.in_flight.lock().unwrap().values().sum()
    }
}

impl Dispatch for Fake {
    async fn attempt(&self, job: Job, slot: Slot) -> Option<u64> {
        let tries = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                job: job.clone(),
                at: Instant::now(),
                tails: self.tails.load(Ordering::SeqCst),
            });
            calls
                .iter()
                .filter(|c| c.job.delivery == job.delivery)
                .count()
        };
        {
            let mut f = self.in_flight.lock().unwrap();
            let n = f.entry(job.endpoint).or_default();
            *n += 1;
            let mut m = self.max_seen.lock().unwrap();
            let m = m.entry(job.endpoint).or_default();
            *m = (*m).max(*n);
        }
        let hold = *self.holds.get(&job.endpoint).unwrap_or(&self.hold);
        tokio::time::sleep(hold).await;
        *self
            .in_flight
            .lock()
            .unwrap()
            .get_mut(&job.endpoint)
            .unwrap() -= 1;
        self.tails.fetch_add(1, Ordering::SeqCst);
        let signal = self.signals.lock().unwrap().get(&job.endpoint).copied();
        match signal {
            Some(signal) => slot.report(signal, self.timed.then_some(hold)),
            None => slot.release(),
        }
        // Durability work after the endpoint is done does not hold the slot.
        tokio::time::sleep(self.after_release).await;
        self.tails.fetch_sub(1, Ordering::SeqCst);
        (tries <= self.fail_first).then(|| self.clock.now_ms() + self.retry_after)
    }
}

fn cfg(per_endpoint: usize) -> SchedulerConfig {
    SchedulerConfig {
        shards: 2,
        per_endpoint_concurrency: per_endpoint,
        // These tests share slots among endpoints at their full limit; the slow start has
        // its own tests (health.rs).
        start_concurrency: per_endpoint,
        max_in_flight: 64,
        breaker: BreakerConfig::default(),
    }
}

fn start(fake: &Arc<Fake>, per_endpoint: usize, initial: Vec<ScheduleEntry>) -> Scheduler {
    let mut loader = Scheduler::prepare_at(&cfg(per_endpoint), fake.clone(), fake.clock);
    for e in initial {
        loader.add(e);
    }
    loader.start()
}

/// One shard with a budget of `budget` slots, `per_endpoint` per endpoint.
fn start_one_shard(fake: &Arc<Fake>, per_endpoint: usize, budget: usize) -> Scheduler {
    let config = SchedulerConfig {
        shards: 1,
        per_endpoint_concurrency: per_endpoint,
        // These tests share slots among endpoints at their full limit; the slow start has
        // its own tests (health.rs).
        start_concurrency: per_endpoint,
        max_in_flight: budget,
        breaker: BreakerConfig::default(),
    };
    Scheduler::prepare_at(&config, fake.clone(), fake.clock).start()
}

fn job(ep: EndpointId, due_ms: u64) -> Job {
    Job {
        delivery: DeliveryId::generate(),
        endpoint: ep,
        due_ms,
        attempts: 0,
        event: None,
    }
}

/// An endpoint on the same shard as `of` (`same`), or on another one.
fn endpoint_near(of: EndpointId, same: bool) -> EndpointId {
    loop {
        let ep = EndpointId::generate();
        if ep != of && (shard_of(ep, 2) == shard_of(of, 2)) == same {
            return ep;
        }
    }
}

/// Waits (on the paused clock: up to 30 s of it) until `n` attempts have started.
async fn wait_calls(fake: &Fake, n: usize) {
    for _ in 0..3000 {
        if fake.calls.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("only {} calls", fake.calls.lock().unwrap().len());
}

#[tokio::test(start_paused = true)]
async fn fires_at_its_deadline_exactly() {
    let fake = Arc::new(Fake::new());
    let s = start(&fake, 4, vec![]);
    let ep = EndpointId::generate();
    let t0 = Instant::now();
    let later = job(ep, fake.clock.now_ms() + 80);
    s.handle().schedule(job(ep, 0)); // long overdue: at once
    s.handle().schedule(later.clone());
    wait_calls(&fake, 2).await;
    let calls = fake.calls();
    assert_eq!(calls[0].at, t0);
    assert_eq!(calls[1].job, later);
    assert_eq!(calls[1].at - t0, Duration::from_millis(80));
    assert_eq!(calls[1].at, fake.clock.instant_of(later.due_ms));
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn per_endpoint_limit_is_reached_and_others_proceed() {
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(30),
        ..Fake::new()
    });
    let s = start(&fake, 2, vec![]);
    let slow = EndpointId::generate();
    let same_shard = endpoint_near(slow, true);
    let other_shard = endpoint_near(slow, false);
    let t0 = Instant::now();
    for _ in 0..8 {
        s.handle().schedule(job(slow, 0));
    }
    s.handle().schedule(job(same_shard, 0));
    s.handle().schedule(job(other_shard, 0));
    wait_calls(&fake, 10).await;
    // The slow endpoint ran exactly two at a time: in four waves of 30 ms.
    assert_eq!(fake.max_seen(slow), 2);
    let mut slow_starts: Vec<Duration> = fake
        .calls()
        .iter()
        .filter(|c| c.job.endpoint == slow)
        .map(|c| c.at - t0)
        .collect();
    slow_starts.sort();
    let ms = Duration::from_millis;
    assert_eq!(
        slow_starts,
        [0, 0, 30, 30, 60, 60, 90, 90].map(ms).to_vec(),
        "slow endpoint's starts"
    );
    // The other endpoints did not wait behind the slow one's queue, on its shard or another.
    for ep in [same_shard, other_shard] {
        let c = fake.calls().into_iter().find(|c| c.job.endpoint == ep);
        assert_eq!(c.unwrap().at, t0, "{ep:?} waited");
    }
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn retries_come_back_and_startup_deadlines_load() {
    let fake = Arc::new(Fake {
        fail_first: 2,
        retry_after: 20,
        ..Fake::new()
    });
    let t0 = Instant::now();
    let initial = vec![ScheduleEntry {
        due_ms: fake.clock.now_ms() + 50,
        delivery: DeliveryId::generate(),
        endpoint: EndpointId::generate(),
        attempts: 4,
    }];
    let s = start(&fake, 1, initial);
    wait_calls(&fake, 3).await;
    // Each attempt knows how many came before it, the loaded one included.
    let attempts: Vec<u32> = fake.calls().iter().map(|c| c.job.attempts).collect();
    assert_eq!(attempts, [4, 5, 6]);
    // The loaded deadline fired when due; each retry 20 ms after the attempt before it.
    let at: Vec<Duration> = fake.calls().iter().map(|c| c.at - t0).collect();
    assert_eq!(at, [50, 70, 90].map(Duration::from_millis).to_vec());
    // The third attempt asked for no retry: an hour of (paused) time brings no fourth.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(fake.calls().len(), 3);
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn slot_is_free_while_the_outcome_is_made_durable() {
    let fake = Arc::new(Fake {
        after_release: Duration::from_millis(300),
        ..Fake::new()
    });
    let s = start(&fake, 1, vec![]);
    let ep = EndpointId::generate();
    let t0 = Instant::now();
    for _ in 0..3 {
        s.handle().schedule(job(ep, 0));
    }
    wait_calls(&fake, 3).await;
    let calls = fake.calls();
    // One slot, honoured: never two attempts talking to the endpoint at once...
    assert_eq!(fake.max_seen(ep), 1);
    // ...yet each attempt started while those before it were still making their outcome
    // durable: had the tails held the slot, the 2nd and 3rd would have started 300 and 600 ms in.
    assert_eq!(calls.iter().map(|c| c.tails).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(calls.iter().all(|c| c.at == t0), "{calls:?}");
    // Shutdown still waits for the unfinished tails.
    assert!(s.shutdown(Duration::from_secs(2)).await);
    assert_eq!(fake.tails.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_in_flight_within_grace() {
    // Too short a grace: shutdown gives up while the attempt still holds its slot.
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(200),
        ..Fake::new()
    });
    let s = start(&fake, 1, vec![]);
    s.handle().schedule(job(EndpointId::generate(), 0));
    wait_calls(&fake, 1).await;
    assert!(!s.shutdown(Duration::from_millis(20)).await);
    assert_eq!(fake.in_flight(), 1, "the attempt was still running");

    // A long enough one: shutdown returns once the attempt is done, and no later.
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(100),
        ..Fake::new()
    });
    let s = start(&fake, 1, vec![]);
    s.handle().schedule(job(EndpointId::generate(), 0));
    wait_calls(&fake, 1).await;
    let started = fake.calls()[0].at;
    assert!(s.shutdown(Duration::from_secs(2)).await);
    assert_eq!(fake.in_flight(), 0);
    assert_eq!(Instant::now() - started, Duration::from_millis(100));
}

#[test]
fn parked_jobs_are_compact_and_round_trip() {
    assert_eq!(std::mem::size_of::<Parked>(), 48);
    let j = Job {
        delivery: DeliveryId(u128::MAX - 7),
        endpoint: EndpointId(1 << 100),
        due_ms: 1_746_723_690_123,
        attempts: 7,
        event: None,
    };
    assert_eq!(Job::from(Parked::from(&j)), j);
}

#[tokio::test(start_paused = true)]
async fn a_manual_retry_replaces_a_waiting_deadline_and_is_refused_while_in_flight() {
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(100),
        ..Fake::new()
    });
    let s = start(&fake, 4, vec![]);
    let ep = EndpointId::generate();
    let t0 = Instant::now();
    // Waiting an hour for its deadline: a retry takes it over and runs now, and the old
    // deadline, when it comes, finds its job stale.
    let waiting = job(ep, fake.clock.now_ms() + 3_600_000);
    s.handle().schedule(waiting.clone());
    assert_eq!(
        s.handle().reserve(waiting.delivery, ep).await,
        Reservation::Reserved
    );
    // Held by the retry being recorded: a second retry is refused.
    assert_eq!(
        s.handle().reserve(waiting.delivery, ep).await,
        Reservation::Busy
    );
    s.handle().schedule(Job {
        due_ms: fake.clock.now_ms(),
        ..waiting.clone()
    });
    wait_calls(&fake, 1).await;
    assert_eq!(fake.calls()[0].at, t0);
    // In flight (the fake holds it 100 ms): refused.
    assert_eq!(
        s.handle().reserve(waiting.delivery, ep).await,
        Reservation::Busy
    );
    // Finished with no retry: free again, and the hour passes with no second attempt.
    tokio::time::sleep(Duration::from_secs(3601)).await;
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(
        s.handle().reserve(waiting.delivery, ep).await,
        Reservation::Reserved
    );
    s.handle().unreserve(waiting.delivery, ep);
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_job_with_its_event_due_now_skips_the_wheel_and_keeps_the_event() {
    let fake = Arc::new(Fake::new());
    let s = start(&fake, 4, vec![]);
    let ev = Arc::new(Event {
        id: "evt_1".into(),
        tenant: "t".into(),
        event_type: "job.completed".into(),
        created_at_ms: 1,
        data: "{}".into(),
    });
    let mut j = job(EndpointId::generate(), fake.clock.now_ms());
    j.event = Some(ev.clone());
    s.handle().schedule(j);
    wait_calls(&fake, 1).await;
    assert_eq!(fake.calls()[0].job.event.as_deref(), Some(&*ev));
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_retry_given_up_hands_the_deadline_it_took_back() {
    let fake = Arc::new(Fake::new());
    let s = start(&fake, 4, vec![]);
    let ep = EndpointId::generate();
    let t0 = Instant::now();
    let waiting = job(ep, fake.clock.now_ms() + 500);
    s.handle().schedule(waiting.clone());
    assert_eq!(
        s.handle().reserve(waiting.delivery, ep).await,
        Reservation::Reserved
    );
    // Recording the retry failed: the reservation is given up, and the old deadline fires.
    s.handle().unreserve(waiting.delivery, ep);
    wait_calls(&fake, 1).await;
    assert_eq!(fake.calls()[0].at - t0, Duration::from_millis(500));
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

/// Endpoints that hold every request for an hour gain work one after another, each taking all
/// it may before the next comes; then a healthy endpoint gets work. On one shard of 16 slots,
/// 4 per endpoint, the five slow ones could hold all 16: they do not, and the healthy one's
/// jobs all run while the slow ones still hold theirs.
#[tokio::test(start_paused = true)]
async fn endpoints_that_hang_leave_a_share_for_a_healthy_one() {
    let slow: Vec<EndpointId> = (0..5).map(|_| EndpointId::generate()).collect();
    let hour = Duration::from_secs(3600);
    let fake = Arc::new(Fake {
        holds: slow.iter().map(|ep| (*ep, hour)).collect(),
        ..Fake::new()
    });
    let s = start_one_shard(&fake, 4, 16);
    let mut started = 0;
    for ep in &slow {
        for _ in 0..10 {
            s.handle().schedule(job(*ep, 0));
        }
        // Let it take all it may before the next one has work.
        let before = fake.calls().len();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(fake.calls().len() > before, "a slow endpoint got nothing");
        started = fake.calls().len();
    }
    assert!(
        started < 16,
        "the slow endpoints took every slot: {started}"
    );
    let healthy = EndpointId::generate();
    for _ in 0..20 {
        s.handle().schedule(job(healthy, 0));
    }
    for _ in 0..3000 {
        if fake.calls_to(healthy) == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.calls_to(healthy), 20, "the healthy endpoint starved");
    // All within the first minute: no slow request had ended to free a slot.
    assert!(Instant::now() - fake.calls()[0].at < Duration::from_secs(60));
    assert_eq!(
        fake.calls().len(),
        started + 20,
        "a slow endpoint started more"
    );
    assert!(!s.shutdown(Duration::from_millis(10)).await);
}

/// Once the slow requests of the endpoints that took more than their share (before the others had
/// work) end, each endpoint holds its share.
#[tokio::test(start_paused = true)]
async fn shares_even_out_as_slow_attempts_end() {
    let slow: Vec<EndpointId> = (0..5).map(|_| EndpointId::generate()).collect();
    let fake = Arc::new(Fake {
        hold: Duration::from_secs(10),
        ..Fake::new()
    });
    let s = start_one_shard(&fake, 8, 24);
    for ep in &slow {
        for _ in 0..40 {
            s.handle().schedule(job(*ep, 0));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Alone, the first one took its limit, 8; once its attempts ended at 10 s, every endpoint
    // starts within its share of the 18 slots left beside the reserve of 6: 18 / 5 = 3.
    assert_eq!(fake.max_seen(slow[0]), 8);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let counts: Vec<usize> = {
        let f = fake.in_flight.lock().unwrap();
        slow.iter()
            .map(|ep| f.get(ep).copied().unwrap_or(0))
            .collect()
    };
    assert_eq!(counts, [3; 5]);
    assert!(!s.shutdown(Duration::from_millis(10)).await);
}

/// An endpoint that times out opens its breaker after three failures: its other due jobs wait,
/// making no attempt, while single probes fail at 1, 2 and 4 s intervals; once it answers, a
/// probe closes the breaker and the waiting jobs run, concurrency growing back from one.
#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_is_probed_and_its_queue_waits() {
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(10),
        ..Fake::new()
    });
    let config = SchedulerConfig {
        shards: 1,
        per_endpoint_concurrency: 4,
        start_concurrency: 4,
        max_in_flight: 64,
        breaker: BreakerConfig {
            failures: 3,
            interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(4),
        },
    };
    let s = Scheduler::prepare_at(&config, fake.clone(), fake.clock).start();
    let ep = EndpointId::generate();
    fake.signals.lock().unwrap().insert(ep, Signal::Unreachable);
    let t0 = Instant::now();
    for _ in 0..10 {
        s.handle().schedule(job(ep, 0));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let h = s.handle().health(ep).await.unwrap();
    assert_eq!(h.breaker.name(), "open");
    assert_eq!((h.concurrency, h.parked, h.consecutive_failures), (0, 6, 4));
    // It answers again from 5 s on.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    fake.signals.lock().unwrap().insert(ep, Signal::Delivered);
    wait_calls(&fake, 10).await;
    let starts: Vec<u64> = fake
        .calls()
        .iter()
        .map(|c| (c.at - t0).as_millis() as u64)
        .collect();
    assert_eq!(
        starts,
        [0, 0, 0, 0, 1010, 3020, 7030, 7040, 7050, 7050],
        "four at once; probes after 1, 2 and 4 s; then one, then two at a time"
    );
    // Every job was attempted once: none was spent while the breaker was open.
    let mut ids: Vec<_> = fake.calls().iter().map(|c| c.job.delivery).collect();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let h = s.handle().health(ep).await.unwrap();
    assert_eq!(
        (h.breaker.name(), h.concurrency, h.parked),
        ("closed", 4, 0)
    );
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

/// Four endpoints that hang hold four slots each; a healthy endpoint answering in 1 ms has 300
/// deliveries. Its share beside them is 9 of the 48 shared slots, but it answers fast and the
/// budget has room: it borrows up to its own limit, 16, while the hanging ones keep theirs.
#[tokio::test(start_paused = true)]
async fn a_fast_endpoint_borrows_free_slots_beside_hanging_ones() {
    let hanging: Vec<EndpointId> = (0..4).map(|_| EndpointId::generate()).collect();
    let healthy = EndpointId::generate();
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(1),
        holds: hanging
            .iter()
            .map(|ep| (*ep, Duration::from_secs(3600)))
            .collect(),
        signals: Mutex::new([(healthy, Signal::Delivered)].into()),
        timed: true,
        ..Fake::new()
    });
    let s = start_one_shard(&fake, 16, 64);
    for ep in &hanging {
        for _ in 0..4 {
            s.handle().schedule(job(*ep, 0));
        }
    }
    for _ in 0..300 {
        s.handle().schedule(job(healthy, 0));
    }
    wait_calls(&fake, 316).await;
    assert_eq!(super::share::share(64, 5, 16), 9);
    assert_eq!(
        fake.max_seen(healthy),
        16,
        "it did not borrow past its share"
    );
    for ep in &hanging {
        assert_eq!(fake.max_seen(*ep), 4);
    }
    let h = s.handle().health(healthy).await.unwrap();
    assert_eq!((h.usual_latency_ms, h.failing), (Some(1), false));
    assert!(!s.shutdown(Duration::from_millis(10)).await);
}

/// A deleted endpoint's due jobs go without an attempt: those waiting for a slot behind its
/// hour-long attempts, and those parked behind an open breaker (no probe comes either). The
/// attempts in flight end as they do.
#[tokio::test(start_paused = true)]
async fn a_forgotten_endpoint_s_due_jobs_go_without_an_attempt() {
    let (busy, broken) = (EndpointId::generate(), EndpointId::generate());
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(10),
        holds: [(busy, Duration::from_secs(3600))].into(),
        signals: Mutex::new([(broken, Signal::Unreachable)].into()),
        ..Fake::new()
    });
    let s = start_one_shard(&fake, 4, 64);
    for _ in 0..20 {
        s.handle().schedule(job(busy, 0));
        s.handle().schedule(job(broken, 0));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (b, k) = (
        s.handle().health(busy).await.unwrap(),
        s.handle().health(broken).await.unwrap(),
    );
    assert_eq!((b.queued, fake.calls_to(busy)), (16, 4));
    assert_eq!((k.breaker.name(), k.parked), ("open", 15), "{k:?}");
    s.handle().forget(busy);
    s.handle().forget(broken);
    let (b, k) = (
        s.handle().health(busy).await.unwrap(),
        s.handle().health(broken).await.unwrap(),
    );
    assert_eq!((b.queued, k.parked, k.breaker.name()), (0, 0, "closed"));
    // Past the breaker's interval and well past nothing: no attempt to either.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!((fake.calls_to(busy), fake.calls_to(broken)), (4, 5));
    assert!(!s.shutdown(Duration::from_millis(10)).await);
}

/// One shard of 64 slots, 4 per endpoint, whose breakers never open.
fn start_never_open(fake: &Arc<Fake>) -> Scheduler {
    let config = SchedulerConfig {
        shards: 1,
        per_endpoint_concurrency: 4,
        start_concurrency: 4,
        max_in_flight: 64,
        breaker: BreakerConfig {
            failures: u32::MAX,
            ..BreakerConfig::default()
        },
    };
    Scheduler::prepare_at(&config, fake.clone(), fake.clock).start()
}

/// An endpoint answering 500 to everything (its breaker set never to open) is failing. While a
/// healthy endpoint of its shard is delivering, it starts one attempt for every
/// [`share::YIELD`] of the healthy one's, and one every [`share::FLOOR_MS`] (plus the few turns
/// kept); once the healthy one is done, it goes at its own pace again.
#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_yields_while_a_healthy_one_is_delivering() {
    let (failing, healthy) = (EndpointId::generate(), EndpointId::generate());
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(2),
        signals: Mutex::new([(failing, Signal::ServerError), (healthy, Signal::Delivered)].into()),
        timed: true,
        ..Fake::new()
    });
    let s = start_never_open(&fake);
    for _ in 0..8 {
        s.handle().schedule(job(failing, 0));
    }
    wait_calls(&fake, 8).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let h = s.handle().health(failing).await.unwrap();
    assert!(h.failing && h.failure_share >= 0.25, "{h:?}");
    for _ in 0..800 {
        s.handle().schedule(job(healthy, 0));
    }
    for _ in 0..400 {
        s.handle().schedule(job(failing, 0));
    }
    // The healthy one: 4 at a time, 2 ms each, 400 ms for its 800. Alone, the failing one
    // would take 200 ms for its 400.
    let t = Instant::now();
    let mut seen_yielding = false;
    for _ in 0..3000 {
        if fake.calls_to(healthy) == 800 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        seen_yielding |= s.handle().health(failing).await.unwrap().yielding;
    }
    assert_eq!(fake.calls_to(healthy), 800);
    assert!(seen_yielding, "held back, and never said so");
    assert!(!s.handle().health(healthy).await.unwrap().yielding);
    let took = (Instant::now() - t).as_millis() as usize;
    let meanwhile = fake.calls_to(failing) - 8;
    let (least, most) = (
        800 / share::YIELD as usize,
        800 / share::YIELD as usize + took / share::FLOOR_MS as usize + 8,
    );
    assert!(
        (least..=most).contains(&meanwhile),
        "the failing endpoint started {meanwhile} in {took} ms while the healthy one delivered, not {least}..={most}"
    );
    // Then its own pace: 4 at a time, 2 ms each.
    let left = 400 - meanwhile;
    let t = Instant::now();
    wait_calls(&fake, 1208).await;
    assert!(!s.handle().health(failing).await.unwrap().yielding);
    let took = Instant::now() - t;
    assert!(
        took <= Duration::from_millis(2 * (left as u64 / 4 + 1) + share::PRESSURE_MS + 20),
        "{left} took {took:?}"
    );
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

/// A healthy endpoint that answers in a second has deliveries waiting too, but what holds it
/// back is its own answer time, not the CPU: a failing endpoint does not yield to it.
#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_does_not_yield_to_a_slow_one() {
    let (failing, slow) = (EndpointId::generate(), EndpointId::generate());
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(10),
        holds: [(slow, Duration::from_secs(1))].into(),
        signals: Mutex::new([(failing, Signal::ServerError), (slow, Signal::Delivered)].into()),
        timed: true,
        ..Fake::new()
    });
    let s = start_never_open(&fake);
    for _ in 0..8 {
        s.handle().schedule(job(failing, 0));
    }
    for _ in 0..100 {
        s.handle().schedule(job(slow, 0));
    }
    wait_calls(&fake, 12).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(s.handle().health(failing).await.unwrap().failing);
    let t = Instant::now();
    let before = fake.calls_to(failing);
    for _ in 0..40 {
        s.handle().schedule(job(failing, 0));
    }
    while fake.calls_to(failing) < before + 40 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        Instant::now() - t <= Duration::from_millis(120),
        "{:?}",
        Instant::now() - t
    );
    assert!(!s.shutdown(Duration::from_millis(10)).await);
}

fn controls(rate: Option<(u32, u32)>, fifo: bool) -> DeliveryControls {
    DeliveryControls {
        rate_limit: rate.map(|(per_second, burst)| hookd_types::RateLimit { per_second, burst }),
        fifo,
    }
}

/// `n` jobs of `ep`, due now, with ids in creation order (as fan-out makes them).
fn ordered_jobs(ep: EndpointId, n: usize) -> Vec<Job> {
    let mut ids = ulid::Generator::new();
    (0..n)
        .map(|_| Job {
            delivery: DeliveryId(ids.generate().unwrap().0),
            ..job(ep, 0)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_spaces_starts_and_spends_no_attempt() {
    let fake = Arc::new(Fake::new());
    let s = start_one_shard(&fake, 16, 64);
    let (limited, free) = (EndpointId::generate(), EndpointId::generate());
    s.handle()
        .set_controls(limited, controls(Some((10, 2)), false));
    let t0 = Instant::now();
    for _ in 0..12 {
        s.handle().schedule(job(limited, 0));
    }
    for _ in 0..3 {
        s.handle().schedule(job(free, 0));
    }
    wait_calls(&fake, 15).await;
    let starts: Vec<u64> = fake
        .calls()
        .iter()
        .filter(|c| c.job.endpoint == limited)
        .map(|c| (c.at - t0).as_millis() as u64)
        .collect();
    // Two at once (the burst), then one every 100 ms.
    let want: Vec<u64> = [0, 0]
        .into_iter()
        .chain((1..=10).map(|i| i * 100))
        .collect();
    assert_eq!(starts, want);
    // Each job was attempted once: waiting for a token spends no attempt.
    assert!(fake.calls().iter().all(|c| c.job.attempts == 0));
    // The endpoint without a limit did not wait.
    for c in fake.calls().iter().filter(|c| c.job.endpoint == free) {
        assert_eq!(c.at, t0);
    }
    // Lifting the limit lets the rest go at once.
    for _ in 0..5 {
        s.handle().schedule(job(limited, 0));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    s.handle()
        .set_controls(limited, DeliveryControls::default());
    let t1 = Instant::now();
    wait_calls(&fake, 20).await;
    assert!(fake.calls()[15..].iter().filter(|c| c.at > t1).count() <= 1);
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn fifo_goes_in_creation_order_one_at_a_time_and_a_failing_head_blocks() {
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(5),
        fail_first: 2,
        retry_after: 20,
        ..Fake::new()
    });
    let s = start_one_shard(&fake, 16, 64);
    let ep = EndpointId::generate();
    s.handle().set_controls(ep, controls(None, true));
    let jobs = ordered_jobs(ep, 4);
    // They become due in the reverse order: the line goes by id all the same.
    for j in jobs.iter().rev() {
        s.handle().schedule(j.clone());
    }
    wait_calls(&fake, 12).await;
    let order: Vec<DeliveryId> = fake.calls().iter().map(|c| c.job.delivery).collect();
    let want: Vec<DeliveryId> = jobs.iter().flat_map(|j| [j.delivery; 3]).collect();
    assert_eq!(order, want, "each head fails twice, then the next goes");
    assert_eq!(fake.max_seen(ep), 1);
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_fifo_head_beyond_the_horizon_still_holds_the_line() {
    let fake = Arc::new(Fake::new());
    let config = SchedulerConfig {
        shards: 1,
        ..cfg(4)
    };
    let mut loader = Scheduler::prepare_at(&config, fake.clone(), fake.clock);
    let now = fake.clock.now_ms();
    loader.set_horizon(now + 100);
    let ep = EndpointId::generate();
    loader.set_controls(ep, controls(None, true));
    let jobs = ordered_jobs(ep, 2);
    // The head waits 10 s for its retry, past the horizon; the next one is due now.
    for (j, due) in jobs.iter().zip([now + 10_000, now]) {
        loader.add(ScheduleEntry {
            due_ms: due,
            delivery: j.delivery,
            endpoint: ep,
            attempts: 0,
        });
    }
    let s = loader.start();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(fake.calls().is_empty(), "nothing goes before the head");
    wait_calls(&fake, 2).await;
    let calls = fake.calls();
    assert_eq!(calls[0].job.delivery, jobs[0].delivery);
    assert_eq!(calls[0].at - t0, Duration::from_secs(10));
    assert_eq!(calls[1].job.delivery, jobs[1].delivery);
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_reserved_fifo_head_holds_its_place_and_turning_fifo_on_orders_what_waits() {
    let fake = Arc::new(Fake::new());
    let s = start_one_shard(&fake, 4, 64);
    let ep = EndpointId::generate();
    let now = fake.clock.now_ms();
    let jobs = ordered_jobs(ep, 3);
    // Waiting in the wheel when FIFO is turned on: the newest is due first.
    for (j, due) in jobs.iter().zip([now + 300, now + 200, now + 100]) {
        s.handle().schedule(Job {
            due_ms: due,
            ..j.clone()
        });
    }
    s.handle().set_controls(ep, controls(None, true));
    // A manual retry reserves the head: it holds its place until it is scheduled.
    let r = s.handle().reserve(jobs[0].delivery, ep).await;
    assert_eq!(r, Reservation::Reserved);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(fake.calls().is_empty());
    s.handle().schedule(Job {
        due_ms: fake.clock.now_ms(),
        ..jobs[0].clone()
    });
    wait_calls(&fake, 3).await;
    let order: Vec<DeliveryId> = fake.calls().iter().map(|c| c.job.delivery).collect();
    let want: Vec<DeliveryId> = jobs.iter().map(|j| j.delivery).collect();
    assert_eq!(order, want);
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_delivery_reserved_as_fifo_is_turned_on_joins_the_line_when_due() {
    let fake = Arc::new(Fake::new());
    let s = start_one_shard(&fake, 4, 64);
    let ep = EndpointId::generate();
    let now = fake.clock.now_ms();
    let jobs = ordered_jobs(ep, 2);
    for (j, due) in jobs.iter().zip([now + 100, now + 200]) {
        s.handle().schedule(Job {
            due_ms: due,
            ..j.clone()
        });
    }
    // Reserved (by a manual retry) while FIFO is turned on, then given back: its deadline is
    // current again, though the line was built without it.
    let r = s.handle().reserve(jobs[0].delivery, ep).await;
    assert_eq!(r, Reservation::Reserved);
    s.handle().set_controls(ep, controls(None, true));
    s.handle().unreserve(jobs[0].delivery, ep);
    let t0 = Instant::now();
    wait_calls(&fake, 2).await;
    let calls = fake.calls();
    assert_eq!(calls[0].job.delivery, jobs[0].delivery);
    assert_eq!(calls[0].at - t0, Duration::from_millis(100));
    assert_eq!(calls[1].job.delivery, jobs[1].delivery);
    assert_eq!(calls[1].at - t0, Duration::from_millis(200));
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn endpoints_waiting_for_tokens_do_not_shrink_the_others_share() {
    let free = EndpointId::generate();
    let fake = Arc::new(Fake {
        holds: HashMap::from([(free, Duration::from_millis(100))]),
        ..Fake::new()
    });
    // A budget of 8: 6 to share, 2 kept in reserve.
    let s = start_one_shard(&fake, 4, 8);
    let limited: Vec<EndpointId> = (0..20).map(|_| EndpointId::generate()).collect();
    for ep in &limited {
        s.handle().set_controls(*ep, controls(Some((1, 1)), false));
        for _ in 0..5 {
            s.handle().schedule(job(*ep, 0));
        }
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    for _ in 0..12 {
        s.handle().schedule(job(free, 0));
    }
    wait_calls(&fake, 20 + 12).await;
    // Twenty endpoints with work but no token hold no slot: the free one gets its full
    // concurrency, not a twenty-first of the budget.
    assert_eq!(fake.max_seen(free), 4);
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

/// Slow start: a new endpoint may have 2 attempts in flight, one more with each success. An
/// endpoint that closes every connection never gets past 2 (halved on each error) and its
/// breaker opens after 5 attempts; a healthy one beside it grows to its full limit of 16.
#[tokio::test(start_paused = true)]
async fn new_endpoints_start_slow_and_only_healthy_ones_grow() {
    let (broken, healthy) = (EndpointId::generate(), EndpointId::generate());
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(5),
        signals: Mutex::new([(broken, Signal::Unreachable), (healthy, Signal::Delivered)].into()),
        timed: true,
        ..Fake::new()
    });
    let config = SchedulerConfig {
        shards: 1,
        per_endpoint_concurrency: 16,
        start_concurrency: START_CONCURRENCY,
        max_in_flight: 64,
        breaker: BreakerConfig::default(),
    };
    let s = Scheduler::prepare_at(&config, fake.clone(), fake.clock).start();
    for _ in 0..30 {
        s.handle().schedule(job(broken, 0));
    }
    for _ in 0..200 {
        s.handle().schedule(job(healthy, 0));
    }
    wait_calls(&fake, 205).await;
    assert_eq!(fake.max_seen(broken), 2, "a new endpoint starts at 2");
    assert_eq!(
        fake.calls_to(broken),
        5,
        "its breaker opened after 5 failures"
    );
    assert_eq!(fake.max_seen(healthy), 16, "grown to its full limit");
    let h = s.handle().health(broken).await.unwrap();
    assert_eq!((h.breaker.name(), h.concurrency), ("open", 0));
    assert!(s.shutdown(Duration::from_secs(1)).await, "all finished");
}
