use super::*;
use std::sync::Mutex;

/// Records attempts; the first `fail_first` attempts of each delivery ask for a retry.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<(Job, u64)>>,
    in_flight: Mutex<HashMap<EndpointId, usize>>,
    max_seen: Mutex<usize>,
    hold: Duration,
    after_release: Duration,
    fail_first: usize,
}

impl Dispatch for Fake {
    async fn attempt(&self, job: Job, slot: Slot) -> Option<u64> {
        let tries = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((job, now_ms()));
            calls
                .iter()
                .filter(|(j, _)| j.delivery == job.delivery)
                .count()
        };
        {
            let mut f = self.in_flight.lock().unwrap();
            let n = f.entry(job.endpoint).or_default();
            *n += 1;
            let mut m = self.max_seen.lock().unwrap();
            *m = (*m).max(*n);
        }
        tokio::time::sleep(self.hold).await;
        *self
            .in_flight
            .lock()
            .unwrap()
            .get_mut(&job.endpoint)
            .unwrap() -= 1;
        slot.release();
        // Durability work after the endpoint is done does not hold the slot.
        tokio::time::sleep(self.after_release).await;
        (tries <= self.fail_first).then(|| now_ms() + 20)
    }
}

fn cfg(per_endpoint: usize) -> SchedulerConfig {
    SchedulerConfig {
        shards: 2,
        per_endpoint_concurrency: per_endpoint,
        max_in_flight: 64,
    }
}

fn job(ep: EndpointId, due_ms: u64) -> Job {
    Job {
        delivery: DeliveryId::generate(),
        endpoint: ep,
        due_ms,
    }
}

async fn wait_calls(fake: &Fake, n: usize) {
    for _ in 0..300 {
        if fake.calls.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("only {} calls", fake.calls.lock().unwrap().len());
}

#[tokio::test]
async fn fires_at_deadline_not_before() {
    let fake = Arc::new(Fake::default());
    let s = Scheduler::start(&cfg(4), fake.clone(), vec![]);
    let ep = EndpointId::generate();
    let t0 = now_ms();
    let later = job(ep, t0 + 80);
    s.handle().schedule(job(ep, 0)); // long overdue: at once
    s.handle().schedule(later);
    wait_calls(&fake, 2).await;
    let calls = fake.calls.lock().unwrap().clone();
    let (j, at) = calls[1];
    assert_eq!(j, later);
    assert!(at >= t0 + 80, "fired {} ms early", t0 + 80 - at);
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn per_endpoint_limit_holds_and_others_proceed() {
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(30),
        ..Fake::default()
    });
    let s = Scheduler::start(&cfg(2), fake.clone(), vec![]);
    let (slow, other) = (EndpointId::generate(), EndpointId::generate());
    for _ in 0..8 {
        s.handle().schedule(job(slow, 0));
    }
    s.handle().schedule(job(other, 0));
    wait_calls(&fake, 9).await;
    assert!(*fake.max_seen.lock().unwrap() <= 2);
    // The other endpoint did not wait behind the slow one's queue.
    let calls = fake.calls.lock().unwrap().clone();
    let pos = calls.iter().position(|(j, _)| j.endpoint == other).unwrap();
    assert!(pos < 4, "other endpoint started {pos}th");
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn retries_come_back_and_startup_deadlines_load() {
    let fake = Arc::new(Fake {
        fail_first: 2,
        ..Fake::default()
    });
    let ep = EndpointId::generate();
    let initial = vec![ScheduleEntry {
        due_ms: now_ms(),
        delivery: DeliveryId::generate(),
        endpoint: ep,
    }];
    let s = Scheduler::start(&cfg(1), fake.clone(), initial);
    wait_calls(&fake, 3).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(fake.calls.lock().unwrap().len(), 3);
    assert!(s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn slot_is_free_while_the_outcome_is_made_durable() {
    let fake = Arc::new(Fake {
        after_release: Duration::from_millis(300),
        ..Fake::default()
    });
    let s = Scheduler::start(&cfg(1), fake.clone(), vec![]);
    let ep = EndpointId::generate();
    for _ in 0..3 {
        s.handle().schedule(job(ep, 0));
    }
    // With one slot and 300 ms of post-release work each, holding the slot would take 900 ms.
    let t0 = std::time::Instant::now();
    wait_calls(&fake, 3).await;
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    // Shutdown still waits for the unfinished tails.
    assert!(s.shutdown(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_within_grace() {
    let fake = Arc::new(Fake {
        hold: Duration::from_millis(200),
        ..Fake::default()
    });
    let s = Scheduler::start(&cfg(1), fake.clone(), vec![]);
    s.handle().schedule(job(EndpointId::generate(), 0));
    wait_calls(&fake, 1).await;
    assert!(!s.shutdown(Duration::from_millis(20)).await || fake.calls.lock().unwrap().len() == 1);
    let fake2 = Arc::new(Fake {
        hold: Duration::from_millis(100),
        ..Fake::default()
    });
    let s = Scheduler::start(&cfg(1), fake2.clone(), vec![]);
    s.handle().schedule(job(EndpointId::generate(), 0));
    wait_calls(&fake2, 1).await;
    assert!(s.shutdown(Duration::from_secs(2)).await);
    assert!(fake2.in_flight.lock().unwrap().values().all(|n| *n == 0));
}

#[test]
fn parked_jobs_are_compact_and_round_trip() {
    assert_eq!(std::mem::size_of::<Parked>(), 40);
    let j = Job {
        delivery: DeliveryId(u128::MAX - 7),
        endpoint: EndpointId(1 << 100),
        due_ms: 1_746_723_690_123,
    };
    assert_eq!(Job::from(Parked::from(j)), j);
}
