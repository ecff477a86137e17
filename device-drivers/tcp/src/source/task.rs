//! Connecting and reading, on the async runtime.

use std::time::Duration;

use eddy_codec::{Decoding, Meta, Step, StreamDecoder};
use eddy_driver::{Batch, BoxFuture, DriverError, Rejected, SourceOutput, SourceTask};
use tokio::io::AsyncReadExt;

/// Bytes read from the socket at a time.
const READ_BYTES: usize = 64 << 10;

/// Reads records from a TCP server until the connection fails; the host
/// runs it again after a backoff.
pub struct TcpSourceTask {
    pub(crate) address: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) decoding: Decoding,
    /// The source and address, for the dead-letter log.
    pub(crate) origin: String,
}

impl TcpSourceTask {
    fn unavailable(&self, message: impl ToString) -> DriverError {
        DriverError::unavailable(self.address.clone(), message)
    }

    async fn read(&mut self, out: &mut SourceOutput) -> Result<(), DriverError> {
        let mut stream = crate::address::connect(&self.address, self.connect_timeout)
            .await
            .map_err(|e| self.unavailable(e))?;
        out.connected();
        // Each connection starts afresh: a CSV header comes first again.
        let mut decoder = StreamDecoder::new(self.decoding.clone()).map_err(DriverError::Config)?;
        let mut buf = vec![0; READ_BYTES];
        loop {
            let read = match self.read_timeout {
                Some(limit) => tokio::time::timeout(limit, stream.read(&mut buf))
                    .await
                    .map_err(|_| {
                        self.unavailable(format!(
                            "nothing read for {} ms; connecting again",
                            limit.as_millis()
                        ))
                    })?,
                None => stream.read(&mut buf).await,
            }
            .map_err(|e| self.unavailable(e))?;
            // An empty read is the end of this connection's input, and a
            // last line without a line break is a line too.
            let eof = read == 0;
            let meta = Meta {
                key: None,
                arrival_ms: eddy_codec::now_ms(),
            };
            let mut batch = Batch {
                records: Vec::new(),
                rejected: Vec::new(),
                position: None,
                ack: None,
                watermark: None,
            };
            let mut rest = &buf[..read];
            let mut fatal = None;
            loop {
                let (step, taken) = decoder.next(rest, eof, &meta, &mut batch.records);
                rest = &rest[taken..];
                match step {
                    Step::NeedInput | Step::End => break,
                    Step::Records(_) => {}
                    Step::Rejected(e) => batch.rejected.push(Rejected {
                        origin: format!("{}:{}", self.origin, e.line.unwrap_or(0)),
                        input: e.input,
                        reason: e.reason,
                    }),
                    Step::Fatal(e) => {
                        fatal = Some(e);
                        break;
                    }
                }
            }
            out.send(batch).await?;
            if let Some(e) = fatal {
                return Err(DriverError::Config(format!(
                    "{}: {}",
                    self.origin, e.reason
                )));
            }
            if eof {
                return Err(self.unavailable("the server closed the connection"));
            }
        }
    }
}

impl SourceTask for TcpSourceTask {
    fn run<'a>(
        &'a mut self,
        out: &'a mut SourceOutput,
        _resume: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.read(out))
    }
}
