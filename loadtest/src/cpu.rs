//! CPU time and memory from `/proc` (no libc): utime + stime of a process or of some of our own
//! threads, a process's resident set size.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// Clock ticks per second of `/proc/*/stat` (USER_HZ, 100 on every Linux we run on).
pub const TICKS_PER_SEC: f64 = 100.0;

/// Thread-name prefix of the embedded receiver's runtime; its threads are counted apart.
pub const RECEIVER_THREAD: &str = "lt-recv";

/// utime + stime, in ticks, from one `stat` file (process or task).
fn stat_ticks(path: &Path) -> Result<u64> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    let close = text
        .rfind(')')
        .ok_or_else(|| anyhow!("{}: no ')' in stat", path.display()))?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state), so utime (field 14) is fields[11], stime (15) fields[12].
    let get = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("{}: short stat", path.display()))?
            .parse::<u64>()
            .with_context(|| format!("{}: field {}", path.display(), i + 3))
    };
    Ok(get(11)? + get(12)?)
}

/// CPU seconds (user + system, all threads, living and exited) of process `pid`.
pub fn process_secs(pid: u32) -> Result<f64> {
    Ok(stat_ticks(Path::new(&format!("/proc/{pid}/stat")))? as f64 / TICKS_PER_SEC)
}

/// Waits until process `pid` uses less than `busy_secs` of CPU over one `window`, at most
/// until `until`; answers whether it did (not if its CPU cannot be read).
pub async fn wait_idle(
    pid: u32,
    window: std::time::Duration,
    busy_secs: f64,
    until: tokio::time::Instant,
) -> bool {
    let Ok(mut last) = process_secs(pid) else {
        return false;
    };
    while tokio::time::Instant::now() + window <= until {
        tokio::time::sleep(window).await;
        let Ok(now) = process_secs(pid) else {
            return false;
        };
        if now - last < busy_secs {
            return true;
        }
        last = now;
    }
    false
}

/// CPU seconds of this process.
pub fn self_secs() -> Result<f64> {
    Ok(stat_ticks(Path::new("/proc/self/stat"))? as f64 / TICKS_PER_SEC)
}

/// Calls `f` with the name and CPU ticks of every living thread under `task_dir` (a
/// `/proc/PID/task` directory); a thread that exits meanwhile is skipped.
fn each_thread(task_dir: &str, mut f: impl FnMut(&str, u64)) -> Result<()> {
    for entry in fs::read_dir(task_dir).with_context(|| format!("reading {task_dir}"))? {
        let dir = entry?.path();
        if let (Ok(comm), Ok(ticks)) = (
            fs::read_to_string(dir.join("comm")),
            stat_ticks(&dir.join("stat")),
        ) {
            f(comm.trim_end(), ticks);
        }
    }
    Ok(())
}

/// CPU seconds of this process's living threads whose name starts with `prefix`.
pub fn threads_secs(prefix: &str) -> Result<f64> {
    let mut ticks = 0;
    each_thread("/proc/self/task", |name, t| {
        if name.starts_with(prefix) {
            ticks += t;
        }
    })?;
    Ok(ticks as f64 / TICKS_PER_SEC)
}

/// CPU seconds of process `pid`'s living threads, summed by thread name with any trailing
/// digits and dashes dropped (`hookd-deliver-3` counts as `hookd-deliver`).
pub fn threads_of(pid: u32) -> Result<BTreeMap<String, f64>> {
    let mut by_name = BTreeMap::new();
    each_thread(&format!("/proc/{pid}/task"), |name, ticks| {
        let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        *by_name.entry(name.to_owned()).or_insert(0.0) += ticks as f64 / TICKS_PER_SEC;
    })?;
    Ok(by_name)
}

/// What each thread name of [`threads_of`] took between `before` and `after`, largest first.
pub fn threads_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> Vec<(String, f64)> {
    let mut d: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    d.sort_by(|a, b| b.1.total_cmp(&a.1));
    d
}

/// CPU seconds the hypervisor took from this machine's CPUs since boot (`steal` in the `cpu`
/// line of `/proc/stat`): a phase that lost much of it ran slower for reasons not its own.
pub fn steal_secs() -> Option<f64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let steal: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(steal as f64 / TICKS_PER_SEC)
}

/// Resident set size of process `pid` (`VmRSS` in `/proc/PID/status`), none if it is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Pids of the processes whose command name (`/proc/PID/comm`) is exactly `name`.
pub fn pids_named(name: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(comm) = fs::read_to_string(entry.path().join("comm")) {
            if comm.trim_end() == name && pid != std::process::id() {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Whether process `pid` still exists.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, Instant};

    /// Spins until `charged()` says CPU time was charged; fails after a generous deadline.
    fn burn_until(charged: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut x = 0u64;
        while !charged() {
            assert!(Instant::now() < deadline, "no CPU time charged in 30 s");
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
    }

    #[test]
    fn reads_own_cpu() {
        let start = self_secs().unwrap();
        burn_until(|| self_secs().unwrap() > start);
        let own = self_secs().unwrap();
        assert!(own > start, "{own} <= {start}");
        // The same counter read by pid, later, so never less.
        let by_pid = process_secs(std::process::id()).unwrap();
        assert!(by_pid >= own, "{by_pid} < {own}");
        assert!(alive(std::process::id()));
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert_eq!(rss_bytes(u32::MAX), None);
        assert!(!alive(u32::MAX));
    }

    #[test]
    fn counts_threads_by_name() {
        assert_eq!(threads_secs("no-such-thread-name").unwrap(), 0.0);
        let before = threads_of(std::process::id()).unwrap();
        let burner = std::thread::Builder::new()
            .name("cputest-burn-2".into())
            .spawn(|| {
                burn_until(|| threads_secs("cputest-burn").unwrap() > 0.0);
                // The same thread by pid, its trailing "-2" dropped from the name.
                let by_name = threads_of(std::process::id()).unwrap();
                (threads_secs("cputest-burn").unwrap(), by_name)
            })
            .unwrap();
        let (secs, by_name) = burner.join().unwrap();
        assert!(secs > 0.0);
        assert!(by_name["cputest-burn"] >= secs, "{by_name:?}");
        let delta = threads_delta(&before, &by_name);
        assert!(
            delta.iter().any(|(n, s)| n == "cputest-burn" && *s > 0.0),
            "{delta:?}"
        );
        assert!(
            delta.windows(2).all(|w| w[0].1 >= w[1].1),
            "largest first: {delta:?}"
        );
    }
}
