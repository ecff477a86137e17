//! `host:port` addresses, checked without looking anything up.

use std::time::Duration;

use tokio::net::TcpStream;

/// Checks that `address` is `host:port` (`[v6]:port` for IPv6), without
/// resolving the host: validation touches nothing outside the process.
pub(crate) fn check(address: &str) -> Result<(), String> {
    let expected =
        || format!("`{address}` is not an address such as 192.0.2.10:9000 or collector.local:9000");
    let (host, port) = address.rsplit_once(':').ok_or_else(expected)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(expected());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{}: the port must be 1 to 65535", expected())),
        Ok(_) => Ok(()),
    }
}

/// Connects, giving up after `timeout`.
pub(crate) async fn connect(address: &str, timeout: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => {
            // Records are small and latency matters more than packets.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(format!("cannot connect: {e}")),
        Err(_) => Err(format!("cannot connect within {} ms", timeout.as_millis())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_host_and_a_port() {
        for good in ["127.0.0.1:9000", "collector.local:1", "[::1]:65535"] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "127.0.0.1",
            ":9000",
            "host:0",
            "host:70000",
            "host:http",
            "a b:1",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
