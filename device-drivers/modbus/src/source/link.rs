//! Opening the connection a source's devices share: a TCP connection to a
//! server or gateway, or a serial port speaking RTU.

use std::time::Duration;

use tokio_modbus::client::Context;
use tokio_modbus::slave::Slave;
use tokio_serial::SerialPort;

use super::config::{Parity, RtuConfig};

/// Where the devices are.
#[derive(Debug, Clone)]
pub(crate) enum LinkConfig {
    /// A Modbus TCP server or gateway.
    Tcp {
        /// `host:port`.
        address: String,
        /// How long connecting may take.
        connect_timeout: Duration,
    },
    /// A serial bus.
    Rtu(RtuConfig),
}

impl LinkConfig {
    /// The peer, as `eddy status` names it.
    pub(crate) fn peer(&self) -> String {
        match self {
            LinkConfig::Tcp { address, .. } => address.clone(),
            LinkConfig::Rtu(rtu) => rtu.port.display().to_string(),
        }
    }

    /// Opens the connection; any error is one waiting may cure (a server
    /// that is down, a USB adapter unplugged).
    pub(crate) async fn open(&self) -> std::io::Result<Context> {
        match self {
            LinkConfig::Tcp {
                address,
                connect_timeout,
            } => {
                let stream =
                    tokio::time::timeout(*connect_timeout, tokio::net::TcpStream::connect(address))
                        .await
                        .map_err(|_| {
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!("no connection within {} ms", connect_timeout.as_millis()),
                            )
                        })??;
                stream.set_nodelay(true)?;
                Ok(tokio_modbus::client::tcp::attach_slave(stream, Slave(1)))
            }
            LinkConfig::Rtu(rtu) => {
                let builder = tokio_serial::new(rtu.port.to_string_lossy(), rtu.baud_rate)
                    .parity(match rtu.parity {
                        Parity::None => tokio_serial::Parity::None,
                        Parity::Even => tokio_serial::Parity::Even,
                        Parity::Odd => tokio_serial::Parity::Odd,
                    })
                    .stop_bits(if rtu.stop_bits == 2 {
                        tokio_serial::StopBits::Two
                    } else {
                        tokio_serial::StopBits::One
                    })
                    .data_bits(if rtu.data_bits == 7 {
                        tokio_serial::DataBits::Seven
                    } else {
                        tokio_serial::DataBits::Eight
                    });
                let port = tokio_serial::SerialStream::open(&builder)?;
                port.clear(tokio_serial::ClearBuffer::All)?;
                Ok(tokio_modbus::client::rtu::attach_slave(
                    Drained {
                        port,
                        writing: false,
                    },
                    Slave(1),
                ))
            }
        }
    }
}

/// A serial port whose unread input is dropped before each request is
/// written: what a device said after an earlier request timed out (a late
/// answer) is never taken for the answer to the next one.
struct Drained {
    port: tokio_serial::SerialStream,
    /// A request is being written (its input was dropped already).
    writing: bool,
}

impl tokio::io::AsyncRead for Drained {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.port).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Drained {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if !self.writing {
            // Best effort: a port that cannot be cleared still works.
            let _ = self.port.clear(tokio_serial::ClearBuffer::Input);
            self.writing = true;
        }
        std::pin::Pin::new(&mut self.port).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let flushed = std::pin::Pin::new(&mut self.port).poll_flush(cx);
        if flushed.is_ready() {
            self.writing = false;
        }
        flushed
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.port).poll_shutdown(cx)
    }
}
