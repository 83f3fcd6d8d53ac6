//! The data plane yields the CPU to the threads that answer requests. While deliveries keep
//! every core busy, a GET of an endpoint's deliveries waited for the CPU behind them (p99 141
//! ms during a full-rate fan-out, against a p50 under 1 ms). The threads doing the data plane's
//! work (the delivery runtime `hookd-deliver`, `hookd-fanout`, `hookd-indexer`) run
//! [`DATA_PLANE_NICE`] steps nicer than the process, so the HTTP threads and the ingest
//! committer get the CPU first when both want it; with nothing else to run, the data plane
//! still has every core. Raising a thread's nice value needs no privilege. Linux only: elsewhere
//! these do nothing.

/// How much nicer the data plane's threads are than the rest of the process.
pub const DATA_PLANE_NICE: i32 = 5;

/// Thread names (prefixes) of the data plane.
const DATA_PLANE: [&str; 3] = ["hookd-deliver", "hookd-fanout", "hookd-indexer"];

/// Makes the calling thread nicer (a data-plane runtime's `on_thread_start`).
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    lower(None);
}

/// Makes this process's data-plane threads started so far nicer, found by their names; answers
/// how many. Threads a runtime starts later take [`lower_this_thread`] as they start.
pub fn lower_data_plane() -> usize {
    #[cfg(target_os = "linux")]
    {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        let mut lowered = 0;
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !DATA_PLANE
                .iter()
                .any(|name| comm.trim_end().starts_with(name))
            {
                continue;
            }
            let tid = task.file_name().to_str().and_then(|t| t.parse().ok());
            if let Some(tid) = tid.and_then(rustix::process::Pid::from_raw) {
                lowered += usize::from(lower(Some(tid)));
            }
        }
        lowered
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// `setpriority(PRIO_PROCESS, tid)`: on Linux the nice value is a thread's own (`None`: the
/// calling thread's). The target is [`DATA_PLANE_NICE`] above the main thread's, so a thread
/// lowered twice (at its start, then found by name) is not lowered further.
#[cfg(target_os = "linux")]
fn lower(tid: Option<rustix::process::Pid>) -> bool {
    use rustix::process::{getpid, getpriority_process, setpriority_process};
    let (Ok(main), Ok(now)) = (
        getpriority_process(Some(getpid())),
        getpriority_process(tid),
    ) else {
        return false;
    };
    let target = (main + DATA_PLANE_NICE).min(19);
    now >= target || setpriority_process(tid, target).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn data_plane_threads_are_found_by_name_and_made_nicer() {
        use rustix::process::getpriority_process;
        use std::sync::{Arc, Barrier};
        let base = getpriority_process(None).unwrap();
        // Both threads wait: once started (to be found), then until lowered.
        let barrier = Arc::new(Barrier::new(3));
        let spawn = |name: &str| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    barrier.wait();
                    barrier.wait();
                    getpriority_process(None).unwrap()
                })
                .unwrap()
        };
        let indexer = spawn("hookd-indexer");
        let other = spawn("hookd-http");
        barrier.wait();
        assert!(lower_data_plane() >= 1);
        barrier.wait();
        assert_eq!(indexer.join().unwrap(), (base + DATA_PLANE_NICE).min(19));
        assert_eq!(
            other.join().unwrap(),
            base,
            "other threads keep their priority"
        );
    }
}
