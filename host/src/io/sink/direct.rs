//! A sink the pipeline thread writes to (standard output, a file): written
//! at once while it works, its records held in order while it does not.

use std::collections::VecDeque;
use std::time::Instant;

use eddy_sink::{Out, OwnedOut, Sink, SinkError};

use super::buffer::admit;
use super::{Closed, Inbox, Tally, refused};
use crate::io::{Backoff, ComponentState, Health};
use crate::sinks::DeadLetterEntry;

/// A direct sink and what it holds.
pub(super) struct Direct {
    sink: Box<dyn Sink>,
    /// Records kept while the sink cannot take them, in order.
    pub(super) held: VecDeque<OwnedOut>,
    /// While down: when to try again.
    pub(super) retry_at: Option<Instant>,
    /// It took records it could not flush yet.
    unflushed: bool,
    backoff: Backoff,
}

impl Direct {
    pub(super) fn new(sink: Box<dyn Sink>, backoff: Backoff) -> Self {
        Direct {
            sink,
            held: VecDeque::new(),
            retry_at: None,
            unflushed: false,
            backoff,
        }
    }

    /// Takes the records of one step: written at once while the sink works,
    /// held (and the sink retried when due) while it does not.
    pub(super) fn send(
        &mut self,
        pipeline: &str,
        inbox: &mut Inbox,
        tally: &mut Tally,
        dead: &mut Vec<DeadLetterEntry>,
    ) -> Result<(), Closed> {
        let mut records = inbox.drain(..);
        if self.retry_at.is_none() {
            let mut failure = None;
            for (label, rid, record) in records.by_ref() {
                rid.write(pipeline, &label, &mut tally.id);
                let out = Out {
                    output: &label,
                    id: &tally.id,
                    record: &record,
                };
                match self.sink.write(&out) {
                    Ok(()) => tally.written += 1,
                    Err(SinkError::Rejected(reason)) => {
                        dead.push(refused(&tally.name, &reason, record))
                    }
                    Err(SinkError::Closed) => return Err(Closed),
                    Err(e) => {
                        let out = OwnedOut {
                            output: label,
                            id: tally.id.clone(),
                            record,
                        };
                        tally.dropped += admit(&mut self.held, 0, out, tally.buffer);
                        failure = Some(e);
                        break;
                    }
                }
            }
            match failure {
                Some(e) => self.down(&tally.health, &e),
                None => {
                    drop(records);
                    return self.flush(tally);
                }
            }
        }
        for (label, rid, record) in records {
            rid.write(pipeline, &label, &mut tally.id);
            let out = OwnedOut {
                output: label,
                id: tally.id.clone(),
                record,
            };
            tally.dropped += admit(&mut self.held, 0, out, tally.buffer);
        }
        self.retry_if_due(tally, dead)
    }

    /// Flushes what the sink took; on a failure it keeps it, and the sink is down.
    fn flush(&mut self, tally: &Tally) -> Result<(), Closed> {
        match self.sink.flush() {
            Ok(()) => {
                self.unflushed = false;
                if tally.health.state() != ComponentState::Up {
                    tally.health.up();
                }
                Ok(())
            }
            Err(SinkError::Closed) => Err(Closed),
            Err(e) => {
                self.unflushed = true;
                self.down(&tally.health, &e);
                Ok(())
            }
        }
    }

    /// Marks the sink down until its backoff has passed.
    fn down(&mut self, health: &Health, e: &SinkError) {
        let transient = e.is_transient() || matches!(e, SinkError::Rejected(_));
        let wait = self.backoff.after(transient, e.retry_after());
        self.retry_at = Some(Instant::now() + wait);
        health.down(&e.to_string(), transient, wait);
    }

    /// Tries the sink again once its backoff has passed: what it could not
    /// flush, then what it holds, in order.
    pub(super) fn retry_if_due(
        &mut self,
        tally: &mut Tally,
        dead: &mut Vec<DeadLetterEntry>,
    ) -> Result<(), Closed> {
        if self.retry_at.is_none_or(|at| Instant::now() < at) {
            return Ok(());
        }
        tally.health.retrying();
        let written_before = tally.written;
        let result = self.drain(tally, dead);
        crate::internal_events::ComponentRecords {
            component: &tally.name,
            role: crate::io::Role::Sink,
            records: tally.written - written_before,
        }
        .emit();
        result
    }

    fn drain(&mut self, tally: &mut Tally, dead: &mut Vec<DeadLetterEntry>) -> Result<(), Closed> {
        let failed = |direct: &mut Direct, e: SinkError| match e {
            SinkError::Closed => Err(Closed),
            e => {
                direct.down(&tally.health, &e);
                Ok(())
            }
        };
        if self.unflushed {
            match self.sink.flush() {
                Ok(()) => self.unflushed = false,
                Err(e) => return failed(self, e),
            }
        }
        while let Some(front) = self.held.front() {
            match self.sink.write(&front.as_out()) {
                Ok(()) => {
                    tally.written += 1;
                    self.held.pop_front();
                }
                Err(SinkError::Rejected(reason)) => {
                    if let Some(out) = self.held.pop_front() {
                        dead.push(refused(&tally.name, &reason, out.record));
                    }
                }
                Err(e) => return failed(self, e),
            }
        }
        match self.sink.flush() {
            Ok(()) => {
                self.retry_at = None;
                self.backoff.reset();
                tally.health.up();
                Ok(())
            }
            Err(e) => {
                self.unflushed = true;
                failed(self, e)
            }
        }
    }

    /// At the end of a run: flushes, and gives what is held until
    /// `deadline` to reach the sink. Returns how many records are still held.
    pub(super) fn finish(
        &mut self,
        deadline: Instant,
        tally: &mut Tally,
        dead: &mut Vec<DeadLetterEntry>,
    ) -> Result<usize, Closed> {
        if self.retry_at.is_none() {
            self.flush(tally)?;
        }
        while let Some(at) = self.retry_at {
            if at > deadline {
                break;
            }
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            self.retry_if_due(tally, dead)?;
        }
        Ok(self.held.len())
    }

    /// Puts records held before a restart back in front, and tries them at
    /// the next step.
    pub(super) fn restore(&mut self, records: Vec<OwnedOut>) {
        for out in records.into_iter().rev() {
            self.held.push_front(out);
        }
        if !self.held.is_empty() {
            self.retry_at.get_or_insert_with(Instant::now);
        }
    }

    pub(super) fn commit(&mut self) -> Result<Option<u64>, SinkError> {
        self.sink.commit()
    }

    pub(super) fn rewind(&mut self, position: u64) -> Result<(), SinkError> {
        self.sink.rewind(position)
    }
}
