//! Crash test: a child process (this test binary, re-executed) appends with `Durability::Sync`
//! from several threads, checkpoints and removes old segments all the while, and prints every
//! seq as soon as the journal acknowledges it. The parent kills it with SIGKILL, either at a
//! random moment or just after the child says it begins a checkpoint or a removal, reopens the
//! journal, and checks that every acknowledged record is there intact, that the checkpoint is
//! the last acknowledged one or newer, and that the log still takes appends. The cycles run on
//! one directory until kills have landed inside checkpoints and removals.
//!
//! SIGKILL leaves the page cache alone, so this tests the journal's recovery and ordering
//! (torn groups, checkpoints and removals cut short), not the disk's: the `fdatasync` before
//! each acknowledgement is what covers power loss.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hookd_journal::{Config, Durability, Journal, Seq};
use rand::Rng;

const CHILD_DIR: &str = "HOOKD_JOURNAL_CRASH_CHILD_DIR";
/// Cycles at least, then more (up to `MAX_CYCLES`) until kills have landed inside a checkpoint
/// and inside a removal at least twice each.
const CYCLES: usize = 12;
const MAX_CYCLES: usize = 60;
const THREADS: u64 = 4;

fn config() -> Config {
    Config {
        segment_bytes: 32 << 10,
        index_interval_bytes: 4 << 10,
        durability: Durability::Sync,
        ..Config::default()
    }
}

/// The payload appender `thread` writes as its `i`-th record: its length varies so that groups
/// straddle segment ends.
fn payload(thread: u64, i: u64) -> Vec<u8> {
    let head = format!("{thread}:{i}:");
    let len = 64 + (thread * 7919 + i * 104_729) % 2000;
    let mut p = head.into_bytes();
    p.extend((0..len).map(|k| (k ^ thread ^ i) as u8));
    p
}

/// What the child does: appends, checkpoints and removes until it is killed (or a minute
/// passes, so a parent that died does not leave it running).
fn child(dir: &str) {
    let (journal, report) = Journal::open(dir, config()).unwrap();
    println!("open {}", report.next_seq);
    let journal = std::sync::Arc::new(journal);
    let start = Instant::now();
    let limit = Duration::from_secs(60);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while start.elapsed() < limit {
                    let seq = journal.append(payload(t, i)).unwrap();
                    println!("ack {seq} {t} {i}");
                    i += 1;
                }
            })
        })
        .collect();
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(5));
        let seq = journal.durable_seq() - 1;
        println!("begin checkpoint");
        journal
            .checkpoint(seq, format!("state {seq}").into_bytes())
            .unwrap();
        println!("checkpoint {seq}");
        // Keep a few segments behind the checkpoint, so removal has work most of the time.
        println!("begin removal");
        let removed = journal.remove_before(seq.saturating_sub(200)).unwrap();
        println!("removed {}", removed.segments);
    }
    for t in threads {
        t.join().unwrap();
    }
}

/// Not a test of its own: the child process's entry point (does nothing unless the parent set
/// the directory).
#[test]
fn crash_child_entry() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(&dir);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Checkpoint,
    Removal,
}

enum Line {
    Ack { seq: Seq, thread: u64, i: u64 },
    Begin(Phase),
    Checkpoint(Seq),
    Removed,
}

fn parse(line: &str) -> Option<Line> {
    let mut words = line.split_whitespace();
    match words.next()? {
        "ack" => Some(Line::Ack {
            seq: words.next()?.parse().ok()?,
            thread: words.next()?.parse().ok()?,
            i: words.next()?.parse().ok()?,
        }),
        "checkpoint" => Some(Line::Checkpoint(words.next()?.parse().ok()?)),
        "removed" => Some(Line::Removed),
        "begin" => match words.next()? {
            "checkpoint" => Some(Line::Begin(Phase::Checkpoint)),
            "removal" => Some(Line::Begin(Phase::Removal)),
            _ => None,
        },
        _ => None,
    }
}

/// Which phase the child was in when it was killed: the last one it began and did not finish.
fn killed_inside(lines: &[Line]) -> Option<Phase> {
    match lines
        .iter()
        .rev()
        .find(|l| !matches!(l, Line::Ack { .. }))?
    {
        Line::Begin(phase) => Some(*phase),
        _ => None,
    }
}

/// Runs the child until it has acknowledged `at_least` records, then kills it: after a random
/// while, or, with `aim`, within 3 ms of it saying it begins that phase. Returns every whole
/// line it printed.
fn run_child_and_kill(dir: &std::path::Path, at_least: usize, aim: Option<Phase>) -> Vec<Line> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut out = BufReader::new(stdout);
        let mut line = Vec::new();
        // A line cut by the kill has no newline: it is not an acknowledgement.
        while out.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            if line.ends_with(b"\n") {
                if let Some(parsed) = parse(&String::from_utf8_lossy(&line)) {
                    drop(tx.send(parsed));
                }
            }
            line.clear();
        }
    });

    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines
        .iter()
        .filter(|l| matches!(l, Line::Ack { .. }))
        .count()
        < at_least
    {
        assert!(
            Instant::now() < deadline,
            "the child acknowledged too little in time"
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            lines.push(line);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child stopped by itself: {status}");
        }
    }
    match aim {
        None => std::thread::sleep(Duration::from_millis(rand::rng().random_range(0..250))),
        Some(phase) => loop {
            assert!(Instant::now() < deadline, "the child never began {phase:?}");
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                let begins = matches!(line, Line::Begin(p) if p == phase);
                lines.push(line);
                if begins {
                    let delay = rand::rng().random_range(0..3000);
                    std::thread::sleep(Duration::from_micros(delay));
                    break;
                }
            }
        },
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

#[test]
fn every_acknowledged_record_survives_sigkill() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // seq -> what was acknowledged under it, over every cycle.
    let mut acked: HashMap<Seq, Vec<u8>> = HashMap::new();
    let mut last_checkpoint = None;
    let (mut truncations, mut leftovers) = (0, 0);
    let (mut in_checkpoint, mut in_removal) = (0, 0);
    let mut cycle = 0;
    while cycle < CYCLES || (cycle < MAX_CYCLES && (in_checkpoint < 2 || in_removal < 2)) {
        let aim = [None, Some(Phase::Checkpoint), Some(Phase::Removal)][cycle % 3];
        let lines = run_child_and_kill(dir.path(), 50, aim);
        match killed_inside(&lines) {
            Some(Phase::Checkpoint) => in_checkpoint += 1,
            Some(Phase::Removal) => in_removal += 1,
            None => {}
        }
        for line in lines {
            match line {
                Line::Ack { seq, thread, i } => {
                    let before = acked.insert(seq, payload(thread, i));
                    assert!(before.is_none(), "seq {seq} acknowledged twice");
                }
                Line::Checkpoint(seq) => last_checkpoint = last_checkpoint.max(Some(seq)),
                Line::Begin(_) | Line::Removed => {}
            }
        }

        let (journal, report) = Journal::open(dir.path(), config()).unwrap();
        truncations += usize::from(report.truncated.is_some());
        leftovers += report.removed.len();
        let checkpoint = report.checkpoint.clone();
        if let Some(acked_seq) = last_checkpoint {
            let c = checkpoint
                .as_ref()
                .expect("an acknowledged checkpoint is kept");
            assert!(
                c.seq >= acked_seq,
                "checkpoint {} went back behind {acked_seq}",
                c.seq
            );
            assert_eq!(c.state, format!("state {}", c.seq).into_bytes());
        }
        // Every record from the first still kept on must read back as it was acknowledged, and
        // none acknowledged after the checkpoint may be missing.
        let first = journal.first_seq();
        let covered = checkpoint.as_ref().map_or(0, |c| c.seq);
        assert!(
            first <= covered + 1,
            "records after the checkpoint were removed"
        );
        let records: HashMap<Seq, Vec<u8>> = journal
            .read_from(first)
            .unwrap()
            .map(|r| r.map(|r| (r.seq, r.payload)).unwrap())
            .collect();
        let mut checked = 0;
        for (seq, expected) in &acked {
            if *seq < first {
                continue;
            }
            assert_eq!(records.get(seq), Some(expected), "cycle {cycle}: seq {seq}");
            checked += 1;
        }
        assert!(
            checked > 0,
            "cycle {cycle}: nothing acknowledged was left to check"
        );

        // The log still takes appends, right after what survived.
        let seq = journal.append(b"after the crash".to_vec()).unwrap();
        assert_eq!(seq, report.next_seq);
        acked.insert(seq, b"after the crash".to_vec());
        journal.close();
        cycle += 1;
    }
    assert!(
        in_checkpoint > 0 && in_removal > 0,
        "in {cycle} kills, {in_checkpoint} landed in a checkpoint and {in_removal} in a removal"
    );
    eprintln!(
        "{cycle} kills ({in_checkpoint} inside a checkpoint, {in_removal} inside a removal), \
         {} acknowledged records, {truncations} torn tails truncated, {leftovers} segments left \
         by a cut-short removal",
        acked.len()
    );
}
