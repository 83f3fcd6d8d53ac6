//! Durable means on the disk: the daemon runs under `strace`, and every 202 it writes to a
//! socket must come after an `fdatasync` (or `fsync`) of the event log that returned since the
//! 202 before it. A 202 sent from the page cache would pass every kill -9 test and still lose
//! the event in a power cut; this is the test that tells the two apart.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

/// The event log's directory name, as it appears in `strace -y` paths.
const EVENT_LOG: &str = "db.events";

#[derive(Debug, PartialEq)]
enum Step {
    /// A sync of an event log file returned 0.
    Synced,
    /// A 202 started going out.
    Acked,
}

/// The steps of a `strace -f -y` trace, in order. A call interrupted by another thread's is
/// split into `<unfinished ...>` and `<... resumed>` lines; its path is on the first.
fn steps(trace: &str) -> Vec<Step> {
    let mut pending_sync = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in trace.lines() {
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        let is_sync = call.starts_with("fdatasync(") || call.starts_with("fsync(");
        if is_sync && call.contains(EVENT_LOG) {
            if call.ends_with("<unfinished ...>") {
                pending_sync.insert(pid.to_owned());
            } else if call.ends_with("= 0") {
                out.push(Step::Synced);
            }
        } else if call.starts_with("<... fdatasync resumed>")
            || call.starts_with("<... fsync resumed>")
        {
            if pending_sync.remove(pid) && call.ends_with("= 0") {
                out.push(Step::Synced);
            }
        } else if call.contains("HTTP/1.1 202") {
            out.push(Step::Acked);
        }
    }
    out
}

#[test]
fn steps_read_split_calls_and_ignore_other_files() {
    let trace = "\
11 fdatasync(7</d/db.events/00000000000000000001.seg> <unfinished ...>
12 write(9<socket:[1]>, \"HTTP/1.1 200 OK\\r\\n\"..., 100) = 100
11 <... fdatasync resumed>) = 0
12 fdatasync(8</d/outcomes/00000000000000000001.seg>) = 0
12 writev(9<socket:[1]>, [{iov_base=\"HTTP/1.1 202 Accepted\\r\\n\"..., iov_len=120}], 1) = 120
11 fdatasync(7</d/db.events/00000000000000000001.seg>) = 0
";
    assert_eq!(steps(trace), vec![Step::Synced, Step::Acked, Step::Synced]);
}

#[tokio::test]
async fn every_202_follows_a_sync_of_the_event_log() {
    let strace_ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        strace_ok,
        "strace is needed (apt-get install strace; .ci/run installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let wrapper: Vec<String> = [
        "strace",
        "-f",
        "-y",
        "-s",
        "32",
        "-e",
        "trace=fdatasync,fsync,write,writev,sendto,sendmsg",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([trace.display().to_string()])
    .collect();
    let config = Config::new(dir.path()).write(dir.path());
    let mut d = Daemon::start_wrapped(&wrapper, &config, &[]).await;
    const EVENTS: usize = 6;
    for i in 0..EVENTS {
        d.api
            .post(
                "/v1/events",
                &json!({"type": "job.started", "data": {"n": i}}),
            )
            .await
            .expect(202);
    }
    // Stop hookd itself (strace's child); strace exits with it and has written everything.
    let st = Command::new("pkill")
        .args(["-TERM", "-P", &d.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "pkill found no hookd under strace");
    assert!(d.proc.wait_exit(Duration::from_secs(30)).await.is_some());
    let steps = steps(&std::fs::read_to_string(&trace).unwrap());
    let acks = steps.iter().filter(|s| **s == Step::Acked).count();
    assert_eq!(acks, EVENTS, "{steps:?}");
    let mut synced = false;
    for s in &steps {
        match s {
            Step::Synced => synced = true,
            Step::Acked => {
                assert!(
                    synced,
                    "a 202 went out with no event-log sync since the last: {steps:?}"
                );
                synced = false;
            }
        }
    }
}
