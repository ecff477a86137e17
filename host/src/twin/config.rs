//! The `[twin]` table: this host's device twin.

use eddy_driver::{Invalid, Spanned};
use serde::Deserialize;

use super::document::{MAX_SHADOW_NAME_BYTES, MAX_THING_NAME_BYTES, valid_name};

/// `[twin]`: sync this host's twin with a Device Shadow service (AWS IoT
/// Core, or any MQTT broker with a shadow service on the same topics).
///
/// Reported: eddy's version, the pipeline, each operator's plugin and
/// version and whether it is quarantined, each outbox's backlog, and the
/// params the twin set. Desired: `params.OPERATOR` objects, merged over
/// the pipeline file's params of operators whose plugins are granted
/// `twin`, without a restart; a value a plugin refuses is reported under
/// `rejected.params.OPERATOR` with the reason, and its old params stay.
///
/// ```toml
/// [twin]
/// thing = "site-7-gateway"
/// broker = { url = "mqtts://example-ats.iot.eu-west-1.amazonaws.com:8883", client_id = "site-7-gateway", tls = { ca_file = "AmazonRootCA1.pem", cert_file = "gw.crt", key_file = "gw.key" } }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinConfig {
    /// The thing name (`[a-zA-Z0-9:_-]`, at most 128 bytes).
    pub thing: Spanned<String>,
    /// A named shadow to use instead of the thing's classic one.
    pub shadow: Option<Spanned<String>>,
    /// The broker the shadow service answers on: a table of its own, or
    /// the name of a `[brokers.NAME]` table whose connection it shares
    /// (with the uplink sink, say, for a service that allows one
    /// connection per device).
    #[cfg(feature = "mqtt")]
    pub broker: Spanned<eddy_driver_mqtt::BrokerRef>,
    /// Device twins are things named this prefix and the device's record
    /// key (characters a thing name cannot hold become `_`); default the
    /// host's thing name and `-`.
    pub device_prefix: Option<Spanned<String>>,
    /// How often the host's status is reported at most, in ms (default
    /// 10000); a change of desired state is answered at once.
    #[serde(default = "default_report_interval_ms")]
    pub report_interval_ms: u64,
}

fn default_report_interval_ms() -> u64 {
    10_000
}

impl TwinConfig {
    /// Checks names and settings without connecting anywhere.
    pub fn validate(
        &self,
        base_dir: &std::path::Path,
        services: &eddy_driver::Services,
    ) -> Result<(), Invalid> {
        if !valid_name(self.thing.get_ref(), MAX_THING_NAME_BYTES) {
            return Err(Invalid::at(
                &self.thing,
                format!(
                    "a thing name is 1 to {MAX_THING_NAME_BYTES} of the characters a-z A-Z 0-9 : _ -"
                ),
            ));
        }
        if let Some(shadow) = &self.shadow
            && !valid_name(shadow.get_ref(), MAX_SHADOW_NAME_BYTES)
        {
            return Err(Invalid::at(
                shadow,
                format!(
                    "a shadow name is 1 to {MAX_SHADOW_NAME_BYTES} of the characters a-z A-Z 0-9 : _ -"
                ),
            ));
        }
        if let Some(prefix) = &self.device_prefix
            && !prefix.get_ref().is_empty()
            && !valid_name(prefix.get_ref(), MAX_THING_NAME_BYTES)
        {
            return Err(Invalid::at(
                prefix,
                "a device prefix is made of the characters a-z A-Z 0-9 : _ -",
            ));
        }
        #[cfg(feature = "mqtt")]
        eddy_driver_mqtt::Link::check(
            &self.broker,
            base_dir,
            &services
                .get::<eddy_driver_mqtt::SharedBrokers>()
                .unwrap_or_default(),
        )?;
        #[cfg(not(feature = "mqtt"))]
        let _ = (base_dir, services);
        Ok(())
    }

    /// What device things' names start with.
    pub fn device_prefix(&self) -> String {
        match &self.device_prefix {
            Some(prefix) => prefix.get_ref().clone(),
            None => format!("{}-", self.thing.get_ref()),
        }
    }

    /// The shadow this host syncs.
    pub fn shadow_id(&self) -> super::topics::ShadowId {
        super::topics::ShadowId {
            thing: self.thing.get_ref().clone(),
            name: self.shadow.as_ref().map(|s| s.get_ref().clone()),
        }
    }
}
