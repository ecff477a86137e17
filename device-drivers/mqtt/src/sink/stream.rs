//! The byte stream to a broker: TCP, or TLS over TCP with the broker's
//! rustls settings.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::broker::Broker;

/// A connection's bytes.
pub(crate) enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Connects to `broker` (and makes the TLS handshake for mqtts://).
    pub(crate) async fn open(broker: &Broker) -> Result<Stream, String> {
        let address = &broker.address;
        let tcp = TcpStream::connect((address.host.as_str(), address.port))
            .await
            .map_err(|e| e.to_string())?;
        // Publishes are gathered into one write already.
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let Some(config) = &broker.tls else {
            return Ok(Stream::Tcp(tcp));
        };
        let name = rustls::pki_types::ServerName::try_from(address.host.clone())
            .map_err(|e| format!("`{}` is no server name: {e}", address.host))?;
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    /// Asks the kernel to acknowledge what arrives at once rather than
    /// delay it. A broker that writes with Nagle's algorithm (mosquitto's
    /// default) holds each small PUBACK until the previous one is
    /// acknowledged; while publishes wait for their acknowledgements no
    /// data of ours carries that acknowledgement, and the kernel would
    /// otherwise delay it by up to 40 ms each time. The kernel leaves
    /// quick-ack mode by itself, so this is repeated after each read.
    pub(crate) fn quick_ack(&self) {
        let tcp = match self {
            Stream::Tcp(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = tcp;
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
