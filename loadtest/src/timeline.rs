//! The once-a-second sampler: what a run did in each second (rate, delivery latency p50/p99,
//! in flight, errors), hookd's CPU and RSS from `/proc/PID` when its pid is known, the disk use
//! of its data directory when that is known, and the latency of the reads made meanwhile. It
//! also redraws the progress line. The samples become the JSON report and the SVG chart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cpu;
use crate::meter::Meter;
use crate::progress::{Progress, Show};

/// A pid that may change (a daemon restarted by the run); 0 when unknown.
pub type PidCell = Arc<AtomicU32>;

pub fn pid_cell(pid: Option<u32>) -> PidCell {
    Arc::new(AtomicU32::new(pid.unwrap_or(0)))
}

/// One second of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the run started, at the end of this sample.
    pub t: f64,
    /// Work done per second in this sample (deliveries, events, requests).
    pub rate: f64,
    pub done: u64,
    pub in_flight: u64,
    pub errors: u64,
    /// Latency of what was done in this sample, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// hookd's CPU in this sample, in % of one core.
    pub cpu_pct: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// Disk blocks used by hookd's data directory.
    pub disk_bytes: Option<u64>,
    /// Latency of the API reads made in this sample, in milliseconds.
    pub read_p50_ms: Option<f64>,
    pub read_p99_ms: Option<f64>,
}

/// What a run's samples are of.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// The rate's unit: `deliveries/s`, `events/s`, `requests/s`.
    pub unit: &'static str,
    pub samples: Vec<Sample>,
}

/// What to sample besides the meter, and how to show progress.
#[derive(Debug, Clone)]
pub struct Watch {
    pub label: &'static str,
    pub unit: &'static str,
    pub pid: PidCell,
    pub data_dir: Option<PathBuf>,
    pub show: Show,
    /// The end of a time-bounded run, for its ETA.
    pub ends_at: Option<Instant>,
}

/// A running sampler; [`Sampler::stop`] ends it and returns the timeline.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Sample>>,
    unit: &'static str,
}

impl Sampler {
    pub fn start(meter: Arc<Meter>, reads: Option<Arc<Meter>>, w: Watch) -> Sampler {
        let (stop, stopped) = watch::channel(false);
        let unit = w.unit;
        let task = tokio::spawn(sample_loop(meter, reads, w, stopped));
        Sampler { stop, task, unit }
    }

    pub async fn stop(self) -> Timeline {
        let _ = self.stop.send(true);
        Timeline {
            unit: self.unit,
            samples: self.task.await.unwrap_or_default(),
        }
    }
}

async fn sample_loop(
    meter: Arc<Meter>,
    reads: Option<Arc<Meter>>,
    w: Watch,
    mut stopped: watch::Receiver<bool>,
) -> Vec<Sample> {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples: Vec<Sample> = Vec::new();
    let (mut last_t, mut last_done) = (start, meter.done_count());
    let mut last_cpu = read_cpu(&w.pid);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stopped.changed() => true,
        };
        let now = Instant::now();
        let dt = (now - last_t).as_secs_f64();
        // A last sample only if it covers a fair part of a second (or is the only one).
        if !(last && dt < 0.2 && !samples.is_empty()) {
            let done = meter.done_count();
            let cpu = read_cpu(&w.pid);
            let pid = w.pid.load(Ordering::Relaxed);
            let (p50_ms, p99_ms) = quantiles(&meter.take_second());
            let (read_p50_ms, read_p99_ms) = reads
                .as_ref()
                .map(|r| quantiles(&r.take_second()))
                .unwrap_or_default();
            samples.push(Sample {
                t: (now - start).as_secs_f64(),
                rate: (done - last_done) as f64 / dt.max(1e-3),
                done,
                in_flight: meter.in_flight(),
                errors: meter.errors(),
                p50_ms,
                p99_ms,
                cpu_pct: match (last_cpu, cpu) {
                    (Some(a), Some(b)) if b >= a => Some((b - a) / dt.max(1e-3) * 100.0),
                    _ => None,
                },
                rss_bytes: (pid != 0).then(|| cpu::rss_bytes(pid)).flatten(),
                disk_bytes: w.data_dir.as_deref().map(dir_bytes),
                read_p50_ms,
                read_p99_ms,
            });
            (last_t, last_done, last_cpu) = (now, done, cpu);
            w.show
                .draw(&progress(&w, &meter, &samples, now - start).line());
        }
        if last {
            w.show.finish();
            return samples;
        }
    }
}

fn read_cpu(pid: &PidCell) -> Option<f64> {
    match pid.load(Ordering::Relaxed) {
        0 => None,
        p => cpu::process_secs(p).ok(),
    }
}

/// p50 and p99 in milliseconds; none when nothing was recorded.
fn quantiles(h: &Histogram<u64>) -> (Option<f64>, Option<f64>) {
    if h.is_empty() {
        return (None, None);
    }
    let ms = |q| h.value_at_quantile(q) as f64 / 1000.0;
    (Some(ms(0.50)), Some(ms(0.99)))
}

fn progress<'a>(w: &'a Watch, m: &Meter, samples: &[Sample], elapsed: Duration) -> Progress<'a> {
    // The rate over the last five samples: steadier than one second's.
    let recent = &samples[samples.len().saturating_sub(5)..];
    let rate = match (recent.first(), recent.last()) {
        (Some(a), Some(b)) if b.t > a.t => (b.done - a.done) as f64 / (b.t - a.t),
        (_, Some(b)) => b.rate,
        _ => 0.0,
    };
    Progress {
        label: w.label,
        rate,
        unit: w.unit,
        done: m.done_count(),
        total: m.total(),
        in_flight: m.in_flight(),
        errors: m.errors(),
        elapsed,
        ends_in: w
            .ends_at
            .map(|e| e.saturating_duration_since(Instant::now())),
    }
}

/// Disk blocks used by every file under `dir` (what `du` counts); 0 when it cannot be read.
pub fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_bytes_counts_nested_files() {
        let dir = std::env::temp_dir().join(format!("lt-du-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("x"), vec![1u8; 10_000]).unwrap();
        std::fs::write(dir.join("a/b/y"), vec![1u8; 20_000]).unwrap();
        let n = dir_bytes(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(n >= 30_000, "{n}");
        assert_eq!(dir_bytes(&dir), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn samples_each_second_until_stopped() {
        let meter = Arc::new(Meter::new(100));
        let sampler = Sampler::start(
            meter.clone(),
            None,
            Watch {
                label: "test",
                unit: "deliveries/s",
                pid: pid_cell(Some(std::process::id())),
                data_dir: None,
                show: Show::Off,
                ends_at: None,
            },
        );
        // Work half-way through each second, never at a tick.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for second in 1..=3u64 {
            meter.issue(20);
            meter.done(10 * second);
            meter.record_us(2_000 * second);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let t = sampler.stop().await;
        assert_eq!(t.unit, "deliveries/s");
        let done: Vec<u64> = t.samples.iter().map(|s| s.done).collect();
        assert_eq!(done, [10, 30, 60, 60], "{:?}", t.samples);
        // The second second's one latency, 4 ms (within the histogram's 3 significant digits).
        let p99 = t.samples[1].p99_ms.unwrap();
        assert!((p99 - 4.0).abs() < 0.01, "{p99}");
        assert_eq!(t.samples[3].p50_ms, None);
        assert!(t.samples[0].rss_bytes.unwrap() > 0);
        assert_eq!(t.samples[3].in_flight, 0);
    }
}
