//! Model-based test: random sequences of appends, syncs, reopens, torn or corrupted tails,
//! checkpoints, removals and reads, run against the journal and against a plain in-memory model
//! of what it should hold. After every step the two must agree.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hookd_journal::{Config, Durability, Journal, JournalError, Seq};
use proptest::prelude::*;

const SEGMENT_BYTES: u64 = 600;
const HEADER: u64 = 24;

#[derive(Debug, Clone)]
enum Op {
    Append {
        len: usize,
        sync: bool,
    },
    Sync,
    Reopen,
    /// Cut `fraction` (in thousandths) of the records after the checkpoint in the newest
    /// segment, at a point that may fall inside a record.
    TearTail {
        fraction: u16,
    },
    /// Flip one byte of the `back`-th last record of the newest segment (if after the
    /// checkpoint).
    CorruptTail {
        back: usize,
        at: u16,
    },
    Checkpoint {
        fraction: u16,
    },
    RemoveBefore {
        fraction: u16,
    },
    RemoveAged,
    Read {
        fraction: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..200, any::<bool>()).prop_map(|(len, sync)| Op::Append { len, sync }),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => (1u16..1000).prop_map(|fraction| Op::TearTail { fraction }),
        1 => (0usize..4, any::<u16>()).prop_map(|(back, at)| Op::CorruptTail { back, at }),
        2 => (0u16..=1000).prop_map(|fraction| Op::Checkpoint { fraction }),
        1 => (0u16..=1000).prop_map(|fraction| Op::RemoveBefore { fraction }),
        1 => Just(Op::RemoveAged),
        2 => (0u16..=1000).prop_map(|fraction| Op::Read { fraction }),
    ]
}

/// A segment as the model sees it: its first seq and its records.
#[derive(Debug, Clone)]
struct Seg {
    first: Seq,
    records: Vec<(Seq, Vec<u8>)>,
}

impl Seg {
    fn bytes(&self) -> u64 {
        self.records
            .iter()
            .map(|(_, p)| HEADER + p.len() as u64)
            .sum()
    }
}

#[derive(Debug)]
struct Model {
    segments: Vec<Seg>,
    checkpoint: Option<(Seq, Vec<u8>)>,
    next: Seq,
}

impl Model {
    fn new() -> Self {
        Self {
            segments: vec![Seg {
                first: 1,
                records: Vec::new(),
            }],
            checkpoint: None,
            next: 1,
        }
    }

    fn first(&self) -> Seq {
        self.segments[0].first
    }

    fn append(&mut self, payload: Vec<u8>) -> Seq {
        let len = HEADER + payload.len() as u64;
        let active = self.segments.last().unwrap();
        if active.bytes() > 0 && active.bytes() + len > SEGMENT_BYTES {
            self.segments.push(Seg {
                first: self.next,
                records: Vec::new(),
            });
        }
        let seq = self.next;
        self.segments
            .last_mut()
            .unwrap()
            .records
            .push((seq, payload));
        self.next += 1;
        seq
    }

    /// Removes the oldest segments (never the newest) the predicate and the checkpoint allow.
    fn remove_prefix(&mut self, below: Seq) -> usize {
        let Some((covered, _)) = self.checkpoint else {
            return 0;
        };
        let limit = below.min(covered + 1);
        let mut n = 0;
        while self.segments.len() > 1 {
            let next = self.segments[1].first;
            if next > limit {
                break;
            }
            self.segments.remove(0);
            n += 1;
        }
        n
    }

    fn records_from(&self, from: Seq) -> Vec<(Seq, Vec<u8>)> {
        self.segments
            .iter()
            .flat_map(|s| s.records.iter())
            .filter(|(seq, _)| *seq >= from)
            .cloned()
            .collect()
    }

    /// The newest segment's records that a tear may touch: those after the checkpoint.
    fn tearable(&self) -> usize {
        let floor = self.checkpoint.as_ref().map_or(0, |c| c.0);
        let active = self.segments.last().unwrap();
        active.records.iter().filter(|(s, _)| *s > floor).count()
    }
}

fn config() -> Config {
    Config {
        segment_bytes: SEGMENT_BYTES,
        index_interval_bytes: 100,
        durability: Durability::Buffered,
        ..Config::default()
    }
}

fn scale(fraction: u16, lo: u64, hi: u64) -> u64 {
    lo + (hi - lo) * fraction.min(1000) as u64 / 1000
}

fn check(journal: &Journal, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(journal.next_seq(), model.next);
    prop_assert_eq!(journal.first_seq(), model.first());
    let firsts: Vec<Seq> = journal.segments().iter().map(|s| s.first_seq).collect();
    let expected: Vec<Seq> = model.segments.iter().map(|s| s.first).collect();
    prop_assert_eq!(firsts, expected);
    prop_assert_eq!(
        journal.last_checkpoint(),
        model.checkpoint.as_ref().map(|c| c.0)
    );
    Ok(())
}

fn reopen(dir: &Path, model: &Model, expect_cut: Option<u64>) -> Result<Journal, TestCaseError> {
    let (journal, report) =
        Journal::open(dir, config()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(report.truncated.map(|t| t.offset), expect_cut);
    prop_assert_eq!(report.next_seq, model.next);
    prop_assert_eq!(report.first_seq, model.first());
    prop_assert_eq!(
        report.checkpoint.map(|c| (c.seq, c.state)),
        model.checkpoint.clone()
    );
    Ok(journal)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let mut journal = Some(Journal::open(dir.path(), config()).unwrap().0);
    for (step, op) in ops.into_iter().enumerate() {
        let j = journal.as_ref().unwrap();
        match op {
            Op::Append { len, sync } => {
                let payload: Vec<u8> = (0..len).map(|i| (i + step) as u8).collect();
                let durability = if sync {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                let seq = j.append_with(payload.clone(), durability).unwrap();
                prop_assert_eq!(seq, model.append(payload));
                if sync {
                    prop_assert_eq!(j.durable_seq(), model.next);
                }
            }
            Op::Sync => {
                j.sync().unwrap();
                prop_assert_eq!(j.durable_seq(), model.next);
            }
            Op::Reopen => {
                drop(journal.take());
                journal = Some(reopen(dir.path(), &model, None)?);
            }
            Op::TearTail { fraction } => {
                let n = model.tearable();
                if n == 0 {
                    continue;
                }
                let path = j.segments().last().unwrap().path.clone();
                drop(journal.take());
                let active = model.segments.last_mut().unwrap();
                let keep_from = active.records.len() - n;
                let floor: u64 = active.records[..keep_from]
                    .iter()
                    .map(|(_, p)| HEADER + p.len() as u64)
                    .sum();
                let total = active.bytes();
                let new_len = scale(fraction, floor, total - 1);
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(new_len)
                    .unwrap();
                // Whole records below the cut stay.
                let mut end = 0;
                let mut kept = 0;
                for (_, p) in &active.records {
                    if end + HEADER + p.len() as u64 > new_len {
                        break;
                    }
                    end += HEADER + p.len() as u64;
                    kept += 1;
                }
                active.records.truncate(kept);
                model.next = active.first + kept as u64;
                let cut = (end != new_len).then_some(end);
                journal = Some(reopen(dir.path(), &model, cut)?);
            }
            Op::CorruptTail { back, at } => {
                let n = model.tearable();
                if back >= n {
                    continue;
                }
                let path = j.segments().last().unwrap().path.clone();
                drop(journal.take());
                let active = model.segments.last_mut().unwrap();
                let victim = active.records.len() - 1 - back;
                let offset: u64 = active.records[..victim]
                    .iter()
                    .map(|(_, p)| HEADER + p.len() as u64)
                    .sum();
                let len = HEADER + active.records[victim].1.len() as u64;
                let mut bytes = fs::read(&path).unwrap();
                bytes[(offset + at as u64 % len) as usize] ^= 0x5a;
                fs::write(&path, bytes).unwrap();
                active.records.truncate(victim);
                model.next = active.first + victim as u64;
                journal = Some(reopen(dir.path(), &model, Some(offset))?);
            }
            Op::Checkpoint { fraction } => {
                let last = model.checkpoint.as_ref().map_or(0, |c| c.0);
                let seq = scale(fraction, last, model.next - 1);
                let state = format!("state {step} at {seq}").into_bytes();
                j.checkpoint(seq, state.clone()).unwrap();
                model.checkpoint = Some((seq, state));
                prop_assert!(
                    j.durable_seq() > seq,
                    "a checkpoint covers only durable records"
                );
            }
            Op::RemoveBefore { fraction } => {
                let seq = scale(fraction, 1, model.next + 1);
                let removed = j.remove_before(seq).unwrap();
                prop_assert_eq!(removed.segments, model.remove_prefix(seq));
                prop_assert_eq!(removed.first_seq, model.first());
            }
            Op::RemoveAged => {
                let epoch = j.remove_older_than(SystemTime::UNIX_EPOCH).unwrap();
                prop_assert_eq!(epoch.segments, 0);
                let later = SystemTime::now() + Duration::from_secs(3600);
                let removed = j.remove_older_than(later).unwrap();
                prop_assert_eq!(removed.segments, model.remove_prefix(Seq::MAX));
            }
            Op::Read { fraction } => {
                let from = scale(fraction, 1, model.next + 1);
                let expected = model.records_from(from);
                match j.read_from(from) {
                    Ok(reader) => {
                        prop_assert!(
                            from >= model.first(),
                            "read from {} below {}",
                            from,
                            model.first()
                        );
                        let got: Vec<(Seq, Vec<u8>)> = reader
                            .map(|r| r.map(|r| (r.seq, r.payload)))
                            .collect::<Result<_, _>>()
                            .unwrap();
                        prop_assert_eq!(got, expected);
                    }
                    Err(JournalError::Compacted { requested, first }) => {
                        prop_assert_eq!((requested, first), (from, model.first()));
                        prop_assert!(from < model.first());
                    }
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
        }
        check(journal.as_ref().unwrap(), &model)?;
    }
    // Whatever happened, a reopen finds exactly the model, and everything after the
    // checkpoint reads back.
    drop(journal.take());
    let j = reopen(dir.path(), &model, None)?;
    check(&j, &model)?;
    let from = model.checkpoint.as_ref().map_or(1, |c| c.0 + 1);
    let got: Vec<(Seq, Vec<u8>)> = j
        .read_from(from)
        .unwrap()
        .map(|r| r.map(|r| (r.seq, r.payload)).unwrap())
        .collect();
    prop_assert_eq!(got, model.records_from(from));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn journal_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
