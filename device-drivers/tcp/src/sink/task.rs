//! Connecting and writing, on the async runtime.

use std::time::Duration;

use eddy_driver::BoxFuture;
use eddy_sink::{OwnedOut, Refused, SinkError, SinkTask};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes batches of JSON lines to a TCP server; with acknowledgements,
/// waits for one line back per line written.
pub struct TcpSinkTask {
    address: String,
    connect_timeout: Duration,
    write_timeout: Duration,
    acknowledgements: bool,
    stream: Option<TcpStream>,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// Line ends read back and not yet counted against a batch (a server
    /// may acknowledge ahead, in pieces).
    acked: usize,
}

impl TcpSinkTask {
    /// A sink for `address`, not connected yet.
    pub fn new(
        address: &str,
        connect_timeout: Duration,
        write_timeout: Duration,
        acknowledgements: bool,
    ) -> Self {
        TcpSinkTask {
            address: address.to_owned(),
            connect_timeout,
            write_timeout,
            acknowledgements,
            stream: None,
            buf: Vec::new(),
            acked: 0,
        }
    }

    fn unavailable(&mut self, message: impl ToString) -> SinkError {
        self.stream = None;
        SinkError::unavailable(self.address.clone(), message)
    }

    async fn send(&mut self, batch: &[OwnedOut]) -> Result<Refused, SinkError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(self.unavailable("not connected"));
        };
        // A server that went away has usually said so: do not write into a
        // connection it closed.
        let mut probe = [0u8; 256];
        match stream.try_read(&mut probe) {
            Ok(0) => return Err(self.unavailable("the server closed the connection")),
            Ok(n) => self.acked += probe[..n].iter().filter(|b| **b == b'\n').count(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(self.unavailable(e)),
        }
        self.buf.clear();
        for out in batch {
            eddy_codec::write_json_line(
                &mut self.buf,
                Some(&out.output),
                Some(&out.id),
                &out.record,
            )
            .map_err(|e| SinkError::Rejected(e.to_string()))?;
        }
        let timeout = self.write_timeout;
        let Some(stream) = self.stream.as_mut() else {
            return Err(self.unavailable("not connected"));
        };
        match tokio::time::timeout(timeout, stream.write_all(&self.buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.unavailable(e)),
            Err(_) => {
                return Err(
                    self.unavailable(format!("writing took over {} ms", timeout.as_millis()))
                );
            }
        }
        if self.acknowledgements {
            self.wait_for_acks(batch.len()).await?;
        }
        Ok(Vec::new())
    }

    /// Reads until the server has acknowledged `lines` lines.
    async fn wait_for_acks(&mut self, lines: usize) -> Result<(), SinkError> {
        let timeout = self.write_timeout;
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + timeout;
        while self.acked < lines {
            let Some(stream) = self.stream.as_mut() else {
                return Err(self.unavailable("not connected"));
            };
            let read = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) => {
                    return Err(
                        self.unavailable("the server closed the connection before acknowledging")
                    );
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(self.unavailable(e)),
                Err(_) => {
                    return Err(self.unavailable(format!(
                        "no acknowledgement within {} ms",
                        timeout.as_millis()
                    )));
                }
            };
            self.acked += buf[..read].iter().filter(|b| **b == b'\n').count();
        }
        self.acked -= lines;
        Ok(())
    }
}

impl SinkTask for TcpSinkTask {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let stream = crate::address::connect(&self.address, self.connect_timeout)
                .await
                .map_err(|e| self.unavailable(e))?;
            self.stream = Some(stream);
            // Acknowledgements count per connection.
            self.acked = 0;
            Ok(())
        })
    }

    fn deliver<'a>(
        &'a mut self,
        batch: &'a [OwnedOut],
    ) -> BoxFuture<'a, Result<Refused, SinkError>> {
        Box::pin(self.send(batch))
    }
}
