//! Tests of the journal as a whole, in one process.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::recover::recover;
use crate::*;

fn small() -> Config {
    Config {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..Config::default()
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} ")
        .repeat(1 + (i % 7) as usize)
        .into_bytes()
}

fn all(journal: &Journal, from: Seq) -> Vec<Record> {
    journal
        .read_from(from)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn appends_get_consecutive_seqs_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (j, report) = Journal::open(dir.path(), small()).unwrap();
    assert_eq!((report.first_seq, report.next_seq), (1, 1));
    for i in 1..=100 {
        assert_eq!(j.append(payload(i)).unwrap(), i);
    }
    assert!(j.segments().len() > 3, "1 KiB segments must roll");
    let records = all(&j, 1);
    assert_eq!(records.len(), 100);
    for (i, r) in records.iter().enumerate() {
        assert_eq!((r.seq, &r.payload), (i as u64 + 1, &payload(i as u64 + 1)));
    }
    // From any seq, through the sampled index.
    for from in [2, 17, 50, 99, 100] {
        assert_eq!(all(&j, from).first().map(|r| r.seq), Some(from));
    }
    assert!(all(&j, 101).is_empty());
    assert_eq!(j.durable_seq(), 101);
}

#[test]
fn reopen_rebuilds_the_same_index() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    for i in 1..=60 {
        j.append(payload(i)).unwrap();
    }
    let before = j.segments();
    drop(j);
    let (j, report) = Journal::open(dir.path(), small()).unwrap();
    assert_eq!(report.next_seq, 61);
    assert_eq!(report.truncated, None);
    assert_eq!(j.segments(), before);
    assert_eq!(j.append(b"after".to_vec()).unwrap(), 61);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_j, _) = Journal::open(dir.path(), small()).unwrap();
    let err = Journal::open(dir.path(), small()).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
}

#[test]
fn records_over_the_limit_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        max_record_bytes: 10,
        ..small()
    };
    let (j, _) = Journal::open(dir.path(), cfg).unwrap();
    let err = j.append(vec![0; 11]).unwrap_err();
    assert!(
        matches!(err, JournalError::TooLarge { len: 11, max: 10 }),
        "{err}"
    );
    assert_eq!(j.append(vec![0; 10]).unwrap(), 1);
}

#[test]
fn a_record_larger_than_a_segment_gets_one_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    j.append(b"a".to_vec()).unwrap();
    j.append(vec![5; 3000]).unwrap();
    j.append(b"b".to_vec()).unwrap();
    let firsts: Vec<Seq> = j.segments().iter().map(|s| s.first_seq).collect();
    assert_eq!(firsts, vec![1, 2, 3]);
    assert_eq!(all(&j, 2)[0].payload.len(), 3000);
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn a_torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), Config::default()).unwrap();
    for i in 1..=5 {
        j.append(payload(i)).unwrap();
    }
    drop(j);
    let path = last_segment(dir.path());
    let good = fs::metadata(&path).unwrap().len();
    // Half of a sixth record.
    let mut frame = Vec::new();
    frame::encode(&mut frame, 6, 0, b"never acknowledged");
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&frame[..frame.len() / 2]).unwrap();
    drop(f);

    let (j, report) = Journal::open(dir.path(), Config::default()).unwrap();
    let t = report.truncated.expect("a truncation");
    assert_eq!((t.path, t.offset), (path.clone(), good));
    assert_eq!(t.dropped_bytes, frame.len() as u64 / 2);
    assert_eq!(fs::metadata(&path).unwrap().len(), good);
    assert_eq!(report.next_seq, 6);
    assert_eq!(j.append(b"six".to_vec()).unwrap(), 6);
    assert_eq!(all(&j, 6)[0].payload, b"six");
}

#[test]
fn corruption_in_a_sealed_segment_names_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    for i in 1..=60 {
        j.append(payload(i)).unwrap();
    }
    let first = j.segments()[0].clone();
    drop(j);
    // Flip a byte inside the second record of the oldest segment.
    let mut bytes = fs::read(&first.path).unwrap();
    let second = frame::framed_len(payload(1).len()) as usize;
    bytes[second + frame::HEADER + 2] ^= 0xff;
    fs::write(&first.path, &bytes).unwrap();

    match Journal::open(dir.path(), small()).unwrap_err() {
        JournalError::Corrupt { path, offset, .. } => {
            assert_eq!((path, offset), (first.path, second as u64));
        }
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn a_missing_segment_in_the_middle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    for i in 1..=60 {
        j.append(payload(i)).unwrap();
    }
    let second = j.segments()[1].path.clone();
    drop(j);
    fs::remove_file(second).unwrap();
    let err = Journal::open(dir.path(), small()).unwrap_err();
    assert!(matches!(err, JournalError::Layout { .. }), "{err}");
}

#[test]
fn checkpoint_then_removal_keeps_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    for i in 1..=80 {
        j.append(payload(i)).unwrap();
    }
    // Nothing goes without a checkpoint.
    assert_eq!(j.remove_before(80).unwrap().segments, 0);
    j.checkpoint(40, b"state at 40".to_vec()).unwrap();
    let removed = j.remove_before(80).unwrap();
    assert!(removed.segments > 0);
    assert!(removed.first_seq <= 41 && removed.first_seq == j.first_seq());
    assert!(matches!(
        j.read_from(1).unwrap_err(),
        JournalError::Compacted { requested: 1, .. }
    ));
    assert_eq!(all(&j, 41).len(), 40);
    assert!(matches!(
        j.checkpoint(30, Vec::new()).unwrap_err(),
        JournalError::CheckpointBehind { seq: 30, last: 40 }
    ));
    assert!(matches!(
        j.checkpoint(81, Vec::new()).unwrap_err(),
        JournalError::CheckpointAhead { seq: 81, next: 81 }
    ));
    drop(j);

    let (j, report) = Journal::open(dir.path(), small()).unwrap();
    let c = report.checkpoint.unwrap();
    assert_eq!((c.seq, c.state), (40, b"state at 40".to_vec()));
    assert_eq!(report.first_seq, removed.first_seq);
    let replay = all(&j, c.seq + 1);
    assert_eq!(replay.first().map(|r| r.seq), Some(41));
    assert_eq!(replay.len(), 40);
}

#[test]
fn retention_removes_only_old_segments_the_checkpoint_covers() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    for i in 1..=80 {
        j.append(payload(i)).unwrap();
    }
    j.checkpoint(80, Vec::new()).unwrap();
    // Every record is newer than an hour ago.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(j.remove_older_than(hour_ago).unwrap().segments, 0);
    let segments = j.segments().len();
    // In an hour they are all old: every sealed segment goes, the active one stays.
    let later = SystemTime::now() + Duration::from_secs(3600);
    let removed = j.remove_older_than(later).unwrap();
    assert_eq!(removed.segments, segments - 1);
    assert_eq!(j.segments().len(), 1);
    assert_eq!(j.append(b"next".to_vec()).unwrap(), 81);
}

#[test]
fn an_interrupted_removal_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    for i in 1..=80 {
        j.append(payload(i)).unwrap();
    }
    j.checkpoint(60, Vec::new()).unwrap();
    let segs = j.segments();
    drop(j);
    // A crash after deleting the second segment, before the first: the first is stranded.
    // (Removal syncs the directory after each file, oldest first, so this takes a disk that
    // reorders; an open still copes.)
    fs::remove_file(&segs[1].path).unwrap();
    let (j, report) = Journal::open(dir.path(), small()).unwrap();
    // Segments the checkpoint covers are listed, not read, so the gap between two of them is
    // not seen; the stranded one is covered, and the next removal takes it.
    assert!(report.removed.is_empty());
    assert_eq!(j.first_seq(), segs[0].first_seq);
    assert_eq!(j.remove_before(segs[2].first_seq).unwrap().segments, 1);
    assert_eq!(j.first_seq(), segs[2].first_seq);
}

#[test]
fn buffered_appends_flush_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        durability: Durability::Buffered,
        ..Config::default()
    };
    let (j, _) = Journal::open(dir.path(), cfg).unwrap();
    for i in 1..=10 {
        j.append(payload(i)).unwrap();
    }
    assert_eq!(j.stats().flushes, 0);
    assert_eq!(j.durable_seq(), 1);
    assert_eq!(j.next_seq(), 11, "buffered records are readable");
    j.sync().unwrap();
    assert_eq!(j.stats().flushes, 1);
    assert_eq!(j.durable_seq(), 11);
    j.sync().unwrap();
    assert_eq!(j.stats().flushes, 1, "nothing new to flush");
    j.append_with(b"sync".to_vec(), Durability::Sync).unwrap();
    assert_eq!((j.stats().flushes, j.durable_seq()), (2, 12));
}

/// Queues `n` Sync appends before the writer starts, runs it to the end, and returns the
/// counters and the answers.
fn run_queued(cfg: Config, n: u64) -> (Stats, Vec<Result<Seq>>) {
    let dir = tempfile::tempdir().unwrap();
    let recovered = recover(dir.path(), cfg).unwrap();
    let shared = recovered.shared.clone();
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut answers = Vec::new();
    for i in 0..n {
        let (reply, answer) = crossbeam_channel::bounded(1);
        tx.send(writer::Request::Append {
            payload: payload(i),
            durability: Durability::Sync,
            reply: writer::Reply::Blocking(reply),
        })
        .unwrap();
        answers.push(answer);
    }
    drop(tx);
    recovered.writer.run(rx);
    use std::sync::atomic::Ordering::Relaxed;
    let c = &shared.stats;
    let stats = Stats {
        flushes: c.flushes.load(Relaxed),
        groups: c.groups.load(Relaxed),
        records: c.records.load(Relaxed),
        bytes: c.bytes.load(Relaxed),
    };
    (stats, answers.iter().map(|a| a.recv().unwrap()).collect())
}

#[test]
fn queued_appends_share_one_write_and_one_flush() {
    // Everything is queued before the writer starts: one group.
    let (stats, answers) = run_queued(Config::default(), 100);
    let seqs: Vec<Seq> = answers.into_iter().map(|a| a.unwrap()).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    assert_eq!((stats.groups, stats.flushes, stats.records), (1, 1, 100));
}

#[test]
fn groups_stop_at_the_record_limit() {
    let cfg = Config {
        max_group_records: 16,
        ..Config::default()
    };
    let (stats, _) = run_queued(cfg, 100);
    assert_eq!((stats.groups, stats.flushes, stats.records), (7, 7, 100));
}

#[tokio::test]
async fn a_tail_follows_appends_and_ends_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    j.append_async(b"before".to_vec()).await.unwrap();
    let mut tail = j.tail(1).unwrap();
    assert_eq!(tail.next().await.unwrap().payload, b"before");
    let j = std::sync::Arc::new(j);
    let writer = {
        let j = j.clone();
        tokio::spawn(async move {
            for i in 2..=50 {
                assert_eq!(j.append_async(payload(i)).await.unwrap(), i);
            }
        })
    };
    for i in 2..=50 {
        let r = tail.next().await.unwrap();
        assert_eq!((r.seq, r.payload), (i, payload(i)));
    }
    writer.await.unwrap();
    std::sync::Arc::into_inner(j).unwrap().close();
    assert!(matches!(
        tail.next().await.unwrap_err(),
        JournalError::Closed
    ));
}

#[test]
fn a_part_of_a_record_reads_back_from_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    for i in 1..=30 {
        j.append(payload(i)).unwrap();
    }
    let mut reader = j.read_from(1).unwrap();
    let mut places = Vec::new();
    while let Some(r) = reader.next() {
        let r = r.unwrap();
        places.push((r.seq, reader.last_offset(), r.payload));
    }
    assert_eq!(places.len(), 30);
    for (seq, offset, whole) in &places {
        let part = j.read_part(*seq, *offset, 2, 5).unwrap();
        assert_eq!(part, whole[2..7], "record {seq}");
    }
    // Past the end of what is visible: refused, not read.
    assert!(j.read_part(31, 0, 0, 1).is_err());
    // Once its segment is removed, a part cannot be read.
    j.checkpoint(30, Vec::new()).unwrap();
    j.remove_before(20).unwrap();
    assert!(matches!(
        j.read_part(1, places[0].1, 0, 1),
        Err(JournalError::Compacted { .. })
    ));
}

#[test]
fn segments_the_checkpoint_covers_are_listed_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    for i in 1..=80 {
        j.append(payload(i)).unwrap();
    }
    j.checkpoint(60, Vec::new()).unwrap();
    let before = j.segments();
    drop(j);
    // Damage in the middle of the first segment: the checkpoint covers it, so the open does
    // not read it; a read of it still finds the damage.
    let first = &before[0];
    let mut bytes = fs::read(&first.path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&first.path, bytes).unwrap();
    let (j, report) = Journal::open(dir.path(), small()).unwrap();
    assert_eq!((report.first_seq, report.next_seq), (1, 81));
    let after = j.segments();
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(
            (a.first_seq, a.next_seq, a.bytes),
            (b.first_seq, b.next_seq, b.bytes)
        );
        assert_eq!(a.min_ts, b.min_ts);
        assert!(a.max_ts >= b.max_ts);
    }
    assert!(j
        .read_from(1)
        .unwrap()
        .any(|r| matches!(r, Err(JournalError::Corrupt { .. }))));
    // Records after the checkpoint are all there and in order.
    let tail: Vec<Seq> = all(&j, 61).iter().map(|r| r.seq).collect();
    assert_eq!(tail, (61..=80).collect::<Vec<_>>());
    assert_eq!(j.append(b"next".to_vec()).unwrap(), 81);
}
