//! Group commit under real concurrency: many appenders waiting for `Durability::Sync` share
//! far fewer `fdatasync`s than there are records, and every one of them gets its own seq.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use hookd_journal::{Config, Journal, Seq};

const APPENDERS: u64 = 64;
const EACH: u64 = 32;

fn check(journal: &Journal, seqs: Vec<Seq>) {
    let total = APPENDERS * EACH;
    let unique: HashSet<Seq> = seqs.iter().copied().collect();
    assert_eq!(unique.len() as u64, total, "every append has its own seq");
    assert_eq!(unique, (1..=total).collect(), "seqs are 1..=N without gaps");
    let stats = journal.stats();
    assert_eq!(stats.records, total);
    eprintln!(
        "{total} records in {} groups and {} flushes ({:.1} records per flush)",
        stats.groups,
        stats.flushes,
        total as f64 / stats.flushes as f64
    );
    assert!(
        stats.flushes * 4 <= total,
        "{} flushes for {total} records: appends are not grouped",
        stats.flushes
    );
    // All of them read back.
    assert_eq!(journal.read_from(1).unwrap().count() as u64, total);
}

#[test]
fn threads_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path(), Config::default()).unwrap().0);
    let start = Arc::new(Barrier::new(APPENDERS as usize));
    let threads: Vec<_> = (0..APPENDERS)
        .map(|t| {
            let (journal, start) = (journal.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..EACH)
                    .map(|i| journal.append(vec![t as u8; 100 + i as usize]).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let seqs = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    check(&journal, seqs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path(), Config::default()).unwrap().0);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..APPENDERS {
        let journal = journal.clone();
        tasks.spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let payload = vec![t as u8; 100 + i as usize];
                seqs.push(journal.append_async(payload).await.unwrap());
            }
            seqs
        });
    }
    let mut seqs = Vec::new();
    while let Some(done) = tasks.join_next().await {
        seqs.extend(done.unwrap());
    }
    check(&journal, seqs);
}
