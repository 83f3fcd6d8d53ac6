//! Reading the journal: [`Reader`] iterates over what is visible now, [`Tail`] waits for more.
//! Both read the segment files directly and never block the writer for longer than an index
//! lookup.

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::{JournalError, Result};
use crate::frame::Record;
use crate::journal::Shared;
use crate::segment::{ChunkReader, Step};
use crate::Seq;

/// Iterates over records from a seq on. Each call to `next` reads up to what is visible at
/// that moment, and returns `None` when it has caught up (a later call may return more).
pub struct Reader {
    shared: Arc<Shared>,
    next: Seq,
    current: Option<ChunkReader>,
    /// Where the record `next` returned last starts in its segment file.
    last_offset: u64,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>, from: Seq) -> Result<Self> {
        let mut reader = Self {
            shared,
            next: from.max(1),
            current: None,
            last_offset: 0,
        };
        // Fail now, not at the first record, when the seq was removed.
        if reader.next < *reader.shared.visible.borrow() {
            reader.current = Some(reader.shared.open_at(reader.next)?);
        }
        Ok(reader)
    }

    /// The seq the next record will have.
    pub fn position(&self) -> Seq {
        self.next
    }

    /// The offset in its segment file of the frame of the record returned last: with its seq,
    /// what [`crate::Journal::read_part`] needs to read part of it back without a scan.
    pub fn last_offset(&self) -> u64 {
        self.last_offset
    }

    fn read_next(&mut self) -> Result<Record> {
        loop {
            let current = match &mut self.current {
                Some(current) => current,
                None => self.current.insert(self.shared.open_at(self.next)?),
            };
            match current.next_step()? {
                Step::Record { record, offset } => {
                    if record.seq < self.next {
                        continue;
                    }
                    if record.seq != self.next {
                        return Err(JournalError::Corrupt {
                            path: current.path().to_owned(),
                            offset,
                            detail: format!("seq {} where {} was expected", record.seq, self.next),
                        });
                    }
                    self.next += 1;
                    self.last_offset = offset;
                    return Ok(record);
                }
                Step::End { offset } => {
                    // The record is in a later segment.
                    let later = self.shared.open_at(self.next)?;
                    if later.path() == current.path() {
                        return Err(JournalError::Corrupt {
                            path: later.path().to_owned(),
                            offset,
                            detail: format!("seq {} is missing", self.next),
                        });
                    }
                    self.current = Some(later);
                }
                Step::Torn { offset } => {
                    return Err(JournalError::Corrupt {
                        path: current.path().to_owned(),
                        offset,
                        detail: "the file ends inside a record".into(),
                    })
                }
                Step::Corrupt { offset, detail } => {
                    return Err(JournalError::Corrupt {
                        path: current.path().to_owned(),
                        offset,
                        detail: detail.into(),
                    })
                }
            }
        }
    }
}

impl Iterator for Reader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= *self.shared.visible.borrow() {
            return None;
        }
        Some(self.read_next())
    }
}

/// Follows the live log: [`Tail::next`] returns the next record, waiting for it to be written.
#[derive(Debug)]
pub struct Tail {
    reader: Reader,
    visible: watch::Receiver<Seq>,
}

impl Tail {
    pub(crate) fn new(shared: Arc<Shared>, from: Seq) -> Result<Self> {
        let visible = shared.visible.clone();
        Ok(Self {
            reader: Reader::new(shared, from)?,
            visible,
        })
    }

    /// The next record if one is visible now, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Record>> {
        self.reader.next()
    }

    /// The seq the next record will have.
    pub fn position(&self) -> Seq {
        self.reader.position()
    }

    /// The next record; [`JournalError::Closed`] once the journal is closed and every record
    /// has been read.
    pub async fn next(&mut self) -> Result<Record> {
        loop {
            if let Some(record) = self.reader.next() {
                return record;
            }
            let want = self.reader.next;
            self.visible
                .wait_for(|&visible| visible > want)
                .await
                .map_err(|_| JournalError::Closed)?;
        }
    }
}
