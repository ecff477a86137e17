//! The broker a component connects to: its `broker` table, and the
//! rumqttc client (MQTT 3.1.1 or 5) made from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eddy_driver::{Invalid, Spanned};
use rumqttc::{TlsConfiguration, Transport};
use serde::Deserialize;

/// `broker = { … }`: where and how to connect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `mqtt://host:port` (default port 1883) or `mqtts://host:port` (TLS,
    /// default port 8883).
    pub url: Spanned<String>,
    /// The client id; each connection to one broker needs its own (a
    /// `[brokers.NAME]` table is one connection, however many components
    /// name it).
    pub client_id: String,
    /// The user name, if the broker asks for one.
    pub username: Option<String>,
    /// A file holding the password (its first line), relative to the
    /// pipeline file.
    pub password_file: Option<Spanned<String>>,
    /// The protocol version: `5` (default) or `3.1.1` (written `"3.1.1"`
    /// or `4`).
    #[serde(default)]
    pub protocol: Protocol,
    /// Seconds between keep-alive pings (default 30).
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// How long connecting may take, in ms (default 5000).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// TLS settings for `mqtts://`.
    pub tls: Option<Spanned<TlsConfig>>,
    /// For a shared broker (`[brokers.NAME]`): keep the connection's
    /// session (subscriptions, QoS 1 messages queued while eddy is away)
    /// for this many seconds after it ends. A source with a broker of its
    /// own says it in its own table.
    pub session_expiry_s: Option<u32>,
}

/// A component's `broker`: a table of its own (a connection of its own),
/// or the name of one of the pipeline's `[brokers.NAME]` tables (a
/// connection shared with the other components that name it).
#[derive(Debug, Clone)]
pub enum BrokerRef {
    /// `broker = { url = …, client_id = … }`.
    Own(Box<BrokerConfig>),
    /// `broker = "NAME"`.
    Shared(String),
}

impl<'de> Deserialize<'de> for BrokerRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = BrokerRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a broker table `{ url = …, client_id = … }` or the name of a [brokers.NAME] table")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<BrokerRef, E> {
                Ok(BrokerRef::Shared(name.to_owned()))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<BrokerRef, M::Error> {
                let config =
                    BrokerConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(BrokerRef::Own(Box::new(config)))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A component's broker, ready to connect to.
#[derive(Debug, Clone)]
pub(crate) enum Reach {
    /// A connection of its own.
    Own(Broker),
    /// The shared connection of a `[brokers.NAME]` table.
    Shared(Arc<crate::shared::SharedBroker>),
}

impl Reach {
    /// The broker, as status and errors name it.
    pub(crate) fn peer(&self) -> String {
        match self {
            Reach::Own(broker) => broker.peer(),
            Reach::Shared(shared) => shared.peer(),
        }
    }
}

/// Reads a component's `broker` setting: its own table checked (files
/// relative to `cx.base_dir`), or the shared broker it names.
pub(crate) fn reach(
    setting: &Spanned<BrokerRef>,
    cx: &eddy_driver::Context<'_>,
) -> Result<Reach, Invalid> {
    match setting.get_ref() {
        BrokerRef::Own(config) => config.broker(cx.base_dir).map(Reach::Own),
        BrokerRef::Shared(name) => {
            let name = Spanned::new(setting.span(), name.clone());
            let brokers = cx.services.get::<crate::shared::SharedBrokers>();
            let brokers = brokers.unwrap_or_default();
            brokers.get(&name).map(Reach::Shared)
        }
    }
}

/// `tls = { … }`: the broker's CA and, for client authentication, a
/// certificate and its key, all PEM files relative to the pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The CA certificate(s) the broker's certificate must chain to.
    pub ca_file: String,
    /// The client's certificate chain.
    pub cert_file: Option<String>,
    /// The client's private key.
    pub key_file: Option<String>,
}

/// The MQTT protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.
    #[default]
    V5,
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(5) => Ok(Protocol::V5),
            Raw::Number(4) => Ok(Protocol::V311),
            Raw::Text(t) if t == "5" || t == "5.0" => Ok(Protocol::V5),
            Raw::Text(t) if t == "3.1.1" || t == "4" => Ok(Protocol::V311),
            _ => Err(serde::de::Error::custom("protocol is 5 or \"3.1.1\"")),
        }
    }
}

fn default_keep_alive_s() -> u64 {
    30
}

fn default_connect_timeout_ms() -> u64 {
    5000
}

/// Where a broker is, read from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

/// Reads `mqtt://host[:port]` or `mqtts://host[:port]`.
pub(crate) fn address(url: &str) -> Result<Address, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(format!(
            "`{url}` is not a broker URL: mqtt://host:port or mqtts://host:port"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("`{url}`: the port is a number up to 65535"))?;
            (host, port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "`{url}`: no host, or a path the broker does not take"
        ));
    }
    Ok(Address {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// The settings, checked and read from their files, ready to connect.
#[derive(Clone)]
pub(crate) struct Broker {
    pub(crate) address: Address,
    pub(crate) client_id: String,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) protocol: Protocol,
    pub(crate) keep_alive: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("address", &self.address)
            .field("client_id", &self.client_id)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl BrokerConfig {
    /// Checks the settings and reads the files they name, relative to
    /// `base_dir`.
    pub(crate) fn broker(&self, base_dir: &Path) -> Result<Broker, Invalid> {
        let address = address(self.url.get_ref()).map_err(|e| Invalid::at(&self.url, e))?;
        if self.client_id.is_empty() || self.client_id.len() > 65535 {
            return Err(Invalid::at(
                &self.url,
                "client_id is 1 to 65535 bytes".to_owned(),
            ));
        }
        let password = match &self.password_file {
            None => None,
            Some(file) => {
                let path = base_dir.join(file.get_ref());
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    Invalid::at(file, format!("password_file {}: {e}", path.display()))
                })?;
                Some(text.lines().next().unwrap_or_default().to_owned())
            }
        };
        let credentials = match (&self.username, password) {
            (Some(user), password) => Some((user.clone(), password.unwrap_or_default())),
            (None, Some(_)) => {
                return Err(Invalid::at(
                    &self.url,
                    "password_file is given without a username".to_owned(),
                ));
            }
            (None, None) => None,
        };
        let tls = match (&self.tls, address.tls) {
            (Some(tls), true) => Some(Arc::new(
                client_config(tls.get_ref(), base_dir).map_err(|e| Invalid::at(tls, e))?,
            )),
            (Some(tls), false) => {
                return Err(Invalid::at(
                    tls,
                    "tls settings are for an mqtts:// broker".to_owned(),
                ));
            }
            (None, true) => {
                return Err(Invalid::at(
                    &self.url,
                    "an mqtts:// broker needs tls = { ca_file = \"…\" }: the CA its certificate chains to".to_owned(),
                ));
            }
            (None, false) => None,
        };
        if self.keep_alive_s == 0 || self.keep_alive_s > 65535 {
            return Err(Invalid::at(
                &self.url,
                "keep_alive_s is 1 to 65535".to_owned(),
            ));
        }
        Ok(Broker {
            address,
            client_id: self.client_id.clone(),
            credentials,
            protocol: self.protocol,
            keep_alive: Duration::from_secs(self.keep_alive_s),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms.max(1)),
            tls,
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(base_dir: &Path, file: &str) -> Result<(PathBuf, Vec<u8>), String> {
    let path = base_dir.join(file);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((path, bytes))
}

/// A rustls client trusting `ca_file`, with the client certificate and key
/// when given.
fn client_config(tls: &TlsConfig, base_dir: &Path) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (path, ca) = read_pem(base_dir, &tls.ca_file)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (&tls.cert_file, &tls.key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let (cert_path, cert_pem) = read_pem(base_dir, cert)?;
            let chain = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", cert_path.display()))?;
            let (key_path, key_pem) = read_pem(base_dir, key)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| format!("{}: {e}", key_path.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())
        }
        _ => Err("cert_file and key_file go together".into()),
    }
}

impl Broker {
    /// rumqttc's transport for this broker.
    pub(crate) fn transport(&self) -> Transport {
        match &self.tls {
            Some(config) => Transport::Tls(TlsConfiguration::Rustls(config.clone())),
            None => Transport::Tcp,
        }
    }

    /// Names the broker, for errors.
    pub(crate) fn peer(&self) -> String {
        format!(
            "mqtt{}://{}:{}",
            if self.address.tls { "s" } else { "" },
            self.address.host,
            self.address.port
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_tls() {
        assert_eq!(
            address("mqtt://127.0.0.1:1884").unwrap(),
            Address {
                host: "127.0.0.1".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(address("mqtts://broker.example").unwrap().port, 8883);
        assert_eq!(address("mqtt://broker.example/").unwrap().port, 1883);
        assert_eq!(address("mqtt://[::1]:1883").unwrap().host, "::1");
        assert!(address("tcp://broker:1883").is_err());
        assert!(address("mqtt://broker:99999").is_err());
        assert!(address("mqtt://").is_err());
    }
}
