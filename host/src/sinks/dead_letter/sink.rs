//! Records routed to the dead-letter log.

use std::sync::Arc;

use eddy_sink::{Out, Sink, SinkError};

use super::{DeadLetter, DeadLetterEntry, DeadLetterInput};

/// Writes what it is given to the pipeline's dead-letter log, one entry per
/// run of records from the same output, with that output as the reason.
pub struct DeadLetterSink {
    log: DeadLetter,
    name: Arc<str>,
    /// The run being gathered: its output and records.
    run: Option<(String, Vec<eddy_abi::Record>)>,
}

impl DeadLetterSink {
    /// A sink named `name` writing to `log`.
    pub fn new(name: &str, log: DeadLetter) -> Self {
        DeadLetterSink {
            log,
            name: name.into(),
            run: None,
        }
    }
}

impl Sink for DeadLetterSink {
    fn write(&mut self, out: &Out<'_>) -> Result<(), SinkError> {
        match &mut self.run {
            Some((output, records)) if output == out.output => records.push(out.record.clone()),
            _ => {
                self.flush()?;
                self.run = Some((out.output.to_owned(), vec![out.record.clone()]));
            }
        }
        Ok(())
    }

    /// Writes the run gathered so far; after an error it still holds it.
    fn flush(&mut self) -> Result<(), SinkError> {
        let Some((output, records)) = &self.run else {
            return Ok(());
        };
        let entry = DeadLetterEntry {
            node: self.name.clone(),
            reason: format!("routed to the dead-letter sink from `{output}`"),
            input: DeadLetterInput::Records(records.clone()),
        };
        self.log
            .write(&entry)
            .map_err(|e| SinkError::unavailable(self.log.path().display().to_string(), e))?;
        self.run = None;
        Ok(())
    }
}
