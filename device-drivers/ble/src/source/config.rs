//! What a pipeline writes in a `[sources.NAME.ble]` table.

use std::collections::HashMap;
use std::time::Duration;

use eddy_driver::{Context, DriverError, Invalid, Kind, Source, SourceConfig, Spanned};
use serde::Deserialize;

use super::advert::{Advertisements, Known, mac};
use super::gatt::GattDevice;
use super::scan::BleSourceTask;

/// Bluetooth LE sensors heard by a passive scan (BlueZ, through
/// btleplug): BTHome v2 service data (encrypted too, with the device's
/// key) and Ruuvi RAWv2 manufacturer data. Each device is a record key
/// (its address, or the name given it here); its readings, its signal
/// strength (`rssi_dbm`) and its packet counter (`packet`) are fields. An
/// advertisement repeated with the same counter is one record.
///
/// Devices marked `gatt = true` are also connected to: their
/// Environmental Sensing characteristics (temperature 0x2A6E, humidity
/// 0x2A6F, pressure 0x2A6D) are subscribed to, each value notified is a
/// record, and those that cannot notify are read every
/// `read_interval_ms`. A dropped connection is made again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BleSourceConfig {
    /// The adapter, e.g. `hci0` (default: the first one).
    pub adapter: Option<String>,
    /// Only devices with these addresses (default: any that sends a format
    /// read here).
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
    /// Only devices whose advertised name starts with one of these.
    #[serde(default)]
    pub name_prefixes: Vec<String>,
    /// Devices given a name (their record key) or a BTHome key.
    #[serde(default)]
    pub devices: Vec<Spanned<DeviceConfig>>,
}

/// A device the pipeline knows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Its address, `AA:BB:CC:DD:EE:FF`.
    pub address: String,
    /// Its record key (default: its address).
    pub name: Option<String>,
    /// Its BTHome bind key, 32 hex digits, for encrypted advertisements.
    pub bindkey: Option<String>,
    /// Connect to it and subscribe to its Environmental Sensing
    /// characteristics (default: only listen to its advertisements).
    #[serde(default)]
    pub gatt: bool,
    /// With `gatt`: how often characteristics that cannot notify are
    /// read, in milliseconds (default 60000, at least 1000).
    pub read_interval_ms: Option<u64>,
}

/// How often a GATT characteristic that cannot notify is read, unless
/// the device says otherwise.
const DEFAULT_READ_INTERVAL_MS: u64 = 60_000;

impl Kind for BleSourceConfig {
    const NAME: &'static str = "ble";
    const ABOUT: &'static str = "Bluetooth LE sensors: BTHome v2 (encrypted too) and Ruuvi advertisements by passive scan, repeats dropped; Environmental Sensing over GATT";
}

impl BleSourceConfig {
    fn advertisements(&self) -> Result<Advertisements, Invalid> {
        let mut addresses = Vec::new();
        for a in &self.addresses {
            if mac(a.get_ref()).is_none() {
                return Err(Invalid::at(
                    a,
                    format!("`{}` is not an address like AA:BB:CC:DD:EE:FF", a.get_ref()),
                ));
            }
            addresses.push(a.get_ref().to_ascii_uppercase());
        }
        let mut known = HashMap::new();
        for d in &self.devices {
            let device = d.get_ref();
            if mac(&device.address).is_none() {
                return Err(Invalid::at(
                    d,
                    format!(
                        "`{}` is not an address like AA:BB:CC:DD:EE:FF",
                        device.address
                    ),
                ));
            }
            let bindkey = match &device.bindkey {
                None => None,
                Some(hex) => Some(key(hex).ok_or_else(|| {
                    Invalid::at(d, "bindkey is 32 hex digits (a 16-byte AES key)")
                })?),
            };
            let entry = Known {
                key: device.name.clone(),
                bindkey,
            };
            if known
                .insert(device.address.to_ascii_uppercase(), entry)
                .is_some()
            {
                return Err(Invalid::at(
                    d,
                    format!("device {} is given twice", device.address),
                ));
            }
        }
        Ok(Advertisements {
            addresses,
            name_prefixes: self.name_prefixes.clone(),
            known,
            ..Default::default()
        })
    }

    /// The devices to connect to.
    fn gatt_devices(&self) -> Result<Vec<GattDevice>, Invalid> {
        let mut out = Vec::new();
        for d in &self.devices {
            let device = d.get_ref();
            let interval = device.read_interval_ms;
            if !device.gatt {
                if interval.is_some() {
                    return Err(Invalid::at(
                        d,
                        "read_interval_ms is for a device read over GATT: add `gatt = true`",
                    ));
                }
                continue;
            }
            let interval = interval.unwrap_or(DEFAULT_READ_INTERVAL_MS);
            if !(1000..=86_400_000).contains(&interval) {
                return Err(Invalid::at(
                    d,
                    "read_interval_ms is from 1000 (a second) to 86400000 (a day)",
                ));
            }
            let address = device.address.to_ascii_uppercase();
            out.push(GattDevice {
                key: device.name.clone().unwrap_or_else(|| address.clone()),
                address,
                read_interval: Duration::from_millis(interval),
            });
        }
        Ok(out)
    }
}

/// A 16-byte key from 32 hex digits.
fn key(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl SourceConfig for BleSourceConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        self.advertisements()?;
        self.gatt_devices().map(drop)
    }

    fn open(&self, cx: &Context<'_>) -> Result<Source, DriverError> {
        let advertisements = self
            .advertisements()
            .map_err(|e| DriverError::Config(e.message))?;
        let gatt = self
            .gatt_devices()
            .map_err(|e| DriverError::Config(e.message))?;
        Ok(Source::Task(Box::new(BleSourceTask::new(
            self.adapter.clone(),
            advertisements,
            gatt,
            cx.name.to_owned(),
        ))))
    }
}
