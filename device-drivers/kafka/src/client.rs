//! What a Kafka client is told: the brokers, a client id, TLS and SASL,
//! and librdkafka properties passed through.

use std::collections::BTreeMap;
use std::path::Path;

use eddy_driver::{Invalid, Spanned};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use serde::Deserialize;

/// `tls = { … }`: the connection to the brokers is TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// The CA certificates (PEM) the brokers' certificates are checked
    /// against, relative to the pipeline file (default: the system's).
    pub ca_file: Option<String>,
    /// This client's certificate (PEM), for brokers that ask for one.
    pub cert_file: Option<String>,
    /// Its private key (PEM).
    pub key_file: Option<String>,
    /// Whether the broker's host name must match its certificate (default
    /// true; false only for brokers reached by an address their
    /// certificate does not name).
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

/// `sasl = { … }`: the client logs in to the brokers (over TLS when `tls`
/// is given too, as cloud services ask).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// A file holding the password (its first line), relative to the
    /// pipeline file: the password itself is never in the pipeline.
    pub password_file: Spanned<String>,
}

/// SASL mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// User and password as they are (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// The cluster and how to reach it, as the source's and the sink's tables
/// give it (`brokers`, `client_id`, `properties`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cluster<'a> {
    /// Bootstrap brokers, `host:port` each.
    pub(crate) brokers: &'a Spanned<Vec<String>>,
    /// The client id the brokers see (default `eddy-PIPELINE-NAME`).
    pub(crate) client_id: Option<&'a str>,
    /// More librdkafka properties, passed as they are.
    pub(crate) properties: &'a Spanned<BTreeMap<String, String>>,
    /// TLS to the brokers.
    pub(crate) tls: Option<&'a Spanned<KafkaTls>>,
    /// SASL login.
    pub(crate) sasl: Option<&'a Spanned<KafkaSasl>>,
    /// What relative paths are relative to: the pipeline file's folder.
    pub(crate) base_dir: &'a Path,
}

impl Cluster<'_> {
    /// Checks the settings; `reserved` names the properties eddy sets
    /// itself for this kind.
    pub(crate) fn check(&self, reserved: &[&str]) -> Result<(), Invalid> {
        let brokers = self.brokers.get_ref();
        if brokers.is_empty() {
            return Err(Invalid::at(
                self.brokers,
                "brokers names at least one `host:port`",
            ));
        }
        for broker in brokers {
            let port = broker
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
                return Err(Invalid::at(
                    self.brokers,
                    format!("`{broker}` is not `host:port`"),
                ));
            }
        }
        for name in self.properties.get_ref().keys() {
            if name.is_empty() {
                return Err(Invalid::at(self.properties, "a property has a name"));
            }
            if reserved.contains(&name.as_str()) || MANAGED.contains(&name.as_str()) {
                return Err(Invalid::at(
                    self.properties,
                    format!("`{name}` is set by eddy (its delivery guarantees rest on it)"),
                ));
            }
            let secured = self.tls.is_some() || self.sasl.is_some();
            if secured && SECURITY.iter().any(|p| name.starts_with(p)) {
                return Err(Invalid::at(
                    self.properties,
                    format!("`{name}` is set by the `tls` and `sasl` tables: give it there"),
                ));
            }
        }
        if let Some(tls) = self.tls {
            let t = tls.get_ref();
            for file in [&t.ca_file, &t.cert_file, &t.key_file]
                .into_iter()
                .flatten()
            {
                let path = self.base_dir.join(file);
                std::fs::metadata(&path)
                    .map_err(|e| Invalid::at(tls, format!("{}: {e}", path.display())))?;
            }
            if t.cert_file.is_some() != t.key_file.is_some() {
                return Err(Invalid::at(tls, "cert_file and key_file go together"));
            }
        }
        // librdkafka checks names and values as they are set on its
        // configuration object, without making a client (which would
        // connect).
        let config = self.client_config("check", "check")?;
        config
            .create_native_config()
            .map(drop)
            .map_err(|e| Invalid::at(self.properties, e.to_string()))
    }

    /// The client's settings, before the kind's own.
    pub(crate) fn client_config(
        &self,
        pipeline: &str,
        name: &str,
    ) -> Result<ClientConfig, Invalid> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.brokers.get_ref().join(","));
        config.set(
            "client.id",
            self.client_id
                .map_or_else(|| format!("eddy-{pipeline}-{name}"), str::to_owned),
        );
        config.set_log_level(rdkafka::config::RDKafkaLogLevel::Error);
        for (key, value) in self.properties.get_ref() {
            config.set(key, value);
        }
        let protocol = match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => None,
            (true, false) => Some("ssl"),
            (false, true) => Some("sasl_plaintext"),
            (true, true) => Some("sasl_ssl"),
        };
        if let Some(protocol) = protocol {
            config.set("security.protocol", protocol);
        }
        if let Some(tls) = self.tls {
            let tls = tls.get_ref();
            let path = |file: &str| self.base_dir.join(file).display().to_string();
            if let Some(ca) = &tls.ca_file {
                config.set("ssl.ca.location", path(ca));
            }
            if let Some(cert) = &tls.cert_file {
                config.set("ssl.certificate.location", path(cert));
            }
            if let Some(key) = &tls.key_file {
                config.set("ssl.key.location", path(key));
            }
            let check = if tls.verify_hostname { "https" } else { "none" };
            config.set("ssl.endpoint.identification.algorithm", check);
        }
        if let Some(sasl) = self.sasl {
            let sasl = sasl.get_ref();
            let file = &sasl.password_file;
            let path = self.base_dir.join(file.get_ref());
            let password = std::fs::read_to_string(&path)
                .map_err(|e| Invalid::at(file, format!("password_file {}: {e}", path.display())))?;
            config
                .set("sasl.mechanisms", sasl.mechanism.name())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", password.lines().next().unwrap_or_default());
        }
        Ok(config)
    }

    /// The brokers, for messages.
    pub(crate) fn peer(&self) -> String {
        self.brokers.get_ref().join(",")
    }
}

/// Properties eddy sets for every client.
const MANAGED: &[&str] = &["bootstrap.servers", "metadata.broker.list"];

/// Prefixes of the properties the `tls` and `sasl` tables set.
const SECURITY: &[&str] = &["security.protocol", "ssl.", "sasl."];

/// No properties, for a table without them.
pub(crate) fn no_properties() -> Spanned<BTreeMap<String, String>> {
    Spanned::new(0..0, BTreeMap::new())
}

/// What eddy's Kafka clients do with librdkafka's logs and errors: log them
/// at debug level. A broker that cannot be reached shows in the component's
/// health (`retrying`, with the reason) through the call that failed, not
/// as a stream of errors each time librdkafka tries again.
pub(crate) struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!(target: "librdkafka", ?level, facility, "{message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for Quiet {}

#[cfg(test)]
mod tests {
    //! The `tls` and `sasl` tables, checked by librdkafka itself (built
    //! with OpenSSL: without it, it refuses TLS and SCRAM).

    use super::*;

    fn spanned<T>(value: T) -> Spanned<T> {
        Spanned::new(0..0, value)
    }

    fn tls(ca: &str) -> Spanned<KafkaTls> {
        spanned(KafkaTls {
            ca_file: Some(ca.into()),
            cert_file: None,
            key_file: None,
            verify_hostname: true,
        })
    }

    fn sasl(password_file: &str) -> Spanned<KafkaSasl> {
        spanned(KafkaSasl {
            mechanism: SaslMechanism::ScramSha512,
            username: "site-7".into(),
            password_file: spanned(password_file.into()),
        })
    }

    #[test]
    fn tls_and_sasl_tables_become_settings_librdkafka_accepts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not read until connecting").unwrap();
        std::fs::write(dir.path().join("kafka.pass"), "s3cret\n").unwrap();
        let brokers = spanned(vec!["broker.example:9093".to_owned()]);
        let properties = no_properties();
        let (tls, sasl) = (tls("ca.pem"), sasl("kafka.pass"));
        let cluster = Cluster {
            brokers: &brokers,
            client_id: None,
            properties: &properties,
            tls: Some(&tls),
            sasl: Some(&sasl),
            base_dir: dir.path(),
        };
        cluster.check(&[]).unwrap();
        let config = cluster.client_config("p", "up").unwrap();
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("site-7"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        let ca = dir.path().join("ca.pem").display().to_string();
        assert_eq!(config.get("ssl.ca.location"), Some(ca.as_str()));
        assert_eq!(
            config.get("ssl.endpoint.identification.algorithm"),
            Some("https")
        );
        // TLS alone.
        let only_tls = Cluster {
            sasl: None,
            ..cluster
        };
        only_tls.check(&[]).unwrap();
        let config = only_tls.client_config("p", "up").unwrap();
        assert_eq!(config.get("security.protocol"), Some("ssl"));
        assert_eq!(config.get("sasl.username"), None);
    }

    #[test]
    fn security_given_twice_or_a_missing_file_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "").unwrap();
        let brokers = spanned(vec!["broker.example:9093".to_owned()]);
        let twice = spanned(BTreeMap::from([(
            "security.protocol".to_owned(),
            "ssl".to_owned(),
        )]));
        let none = no_properties();
        let tls_ok = tls("ca.pem");
        let (no_ca, no_password) = (tls("missing.pem"), sasl("missing.pass"));
        let cluster = |properties, tls, sasl| Cluster {
            brokers: &brokers,
            client_id: None,
            properties,
            tls,
            sasl,
            base_dir: dir.path(),
        };
        let error = |c: Cluster<'_>| c.check(&[]).unwrap_err().message;
        assert!(error(cluster(&twice, Some(&tls_ok), None)).contains("`tls` and `sasl`"));
        assert!(error(cluster(&none, Some(&no_ca), None)).contains("missing.pem"));
        assert!(error(cluster(&none, None, Some(&no_password))).contains("password_file"));
        let half = spanned(KafkaTls {
            cert_file: Some("ca.pem".into()),
            ..tls_ok.get_ref().clone()
        });
        assert!(error(cluster(&none, Some(&half), None)).contains("go together"));
    }
}
