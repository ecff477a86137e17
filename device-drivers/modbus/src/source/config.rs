//! What a pipeline writes in a `[sources.NAME.modbus]` table: one
//! connection (a TCP server or gateway, or a serial bus) and the devices
//! polled over it.

use std::num::{NonZeroU16, NonZeroU64};
use std::path::PathBuf;
use std::time::Duration;

use eddy_driver::{Context, DriverError, Invalid, Kind, Source, SourceConfig, Spanned};
use serde::Deserialize;

use super::task::{DevicePlan, ModbusSourceTask};
use crate::{Point, Profile, ProfileError, ReadWrite, plan};

/// Modbus devices on one connection, each polled at its own interval:
/// every device is a record key, every point a field, and the event time
/// is when the device's last response arrived.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusSourceConfig {
    /// A Modbus TCP server or gateway, `host:port` (give this or `rtu`).
    pub tcp: Option<Spanned<String>>,
    /// A serial bus, Modbus RTU (give this or `tcp`).
    pub rtu: Option<Spanned<RtuConfig>>,
    /// How long a device may take to answer one request, in ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: NonZeroU64,
    /// How many times a request that timed out or failed is sent again
    /// before the device's poll counts as a fault. A device already in
    /// fault is asked once a poll, so a dead device on a shared bus costs
    /// at most one timeout per poll.
    #[serde(default = "default_retries")]
    pub retries: u8,
    /// The pause between two requests, in ms (the inter-frame gap a slow
    /// serial device needs; default 0 over TCP, 5 over RTU).
    pub pause_ms: Option<u64>,
    /// How long a connection attempt may take, in ms (TCP).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: NonZeroU64,
    /// The most registers one request reads (the Modbus limit, 125, by
    /// default; lower for devices that cannot take it). Bits: 16 times as
    /// many. A device may set its own.
    #[serde(default = "default_max_registers")]
    pub max_registers: Spanned<NonZeroU16>,
    /// The devices on this connection.
    pub devices: Vec<Spanned<DeviceConfig>>,
}

/// A serial port, and how its line is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtuConfig {
    /// The port, e.g. `/dev/ttyUSB0`.
    pub port: PathBuf,
    /// Bits per second.
    #[serde(default = "default_baud_rate")]
    pub baud_rate: u32,
    /// `none`, `even` or `odd`.
    #[serde(default)]
    pub parity: Parity,
    /// 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// 7 or 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
}

/// A serial line's parity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// One device on the connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Its name: the key of its records.
    pub name: String,
    /// Its unit (slave) id: 1 to 247 on a serial bus; over TCP, what the
    /// server or gateway expects (often 1, or 255).
    #[serde(default = "default_unit")]
    pub unit: u8,
    /// How often it is polled, in ms.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: NonZeroU64,
    /// The most registers one request to it reads (default: the
    /// connection's `max_registers`).
    pub max_registers: Option<Spanned<NonZeroU16>>,
    /// How many unused registers (or bits) one request may read across to
    /// join two points; 0, the default, reads only what points take.
    #[serde(default)]
    pub max_gap: u16,
    /// A profile file: an EdgeX device profile (`deviceResources`), or a
    /// KubeEdge device (and model) with Modbus property visitors, in YAML;
    /// relative to the pipeline file.
    pub profile: Option<Spanned<PathBuf>>,
    /// Points written here, with EdgeX's attribute names (added to the
    /// profile file's, if there is one).
    #[serde(default)]
    pub points: Vec<Spanned<Point>>,
}

impl Kind for ModbusSourceConfig {
    const NAME: &'static str = "modbus";
    const ABOUT: &'static str = "Modbus TCP or RTU devices polled at intervals, with EdgeX or KubeEdge profiles; a device per key, a point per field";
}

impl ModbusSourceConfig {
    /// Each device's points, from its profile file and its own list,
    /// checked as a whole.
    fn profiles(&self, cx: &Context<'_>) -> Result<Vec<Profile>, Invalid> {
        let mut names = std::collections::HashSet::new();
        let mut profiles = Vec::with_capacity(self.devices.len());
        for device in &self.devices {
            let d = device.get_ref();
            if !names.insert(d.name.as_str()) {
                return Err(Invalid::at(
                    device,
                    format!("device `{}` is named twice; names are record keys", d.name),
                ));
            }
            if self.rtu.is_some() && !(1..=247).contains(&d.unit) {
                return Err(Invalid::at(
                    device,
                    format!(
                        "device `{}`: unit {} on a serial bus; units are 1 to 247",
                        d.name, d.unit
                    ),
                ));
            }
            let mut points = Vec::new();
            if let Some(file) = &d.profile {
                let path = cx.resolve(file.get_ref());
                points = crate::files::load(&path).map_err(|e| Invalid::at(file, e.to_string()))?;
            }
            points.extend(d.points.iter().map(|p| p.get_ref().clone()));
            if points.is_empty() {
                return Err(Invalid::at(
                    device,
                    format!(
                        "device `{}` has no points: give `profile` or `points`",
                        d.name
                    ),
                ));
            }
            if points.iter().all(|p| p.read_write == ReadWrite::W) {
                return Err(Invalid::at(
                    device,
                    format!(
                        "device `{}` has no point to read (all are write-only)",
                        d.name
                    ),
                ));
            }
            if d.poll_interval_ms.get() > MAX_INTERVAL_MS {
                return Err(Invalid::at(
                    device,
                    format!("device `{}`: poll_interval_ms is at most a day", d.name),
                ));
            }
            let profile = Profile { points };
            profile.check().map_err(|e| {
                let from = d.profile.as_ref().map_or(String::new(), |f| {
                    format!(" (with {})", f.get_ref().display())
                });
                let message = format!("device `{}`{from}: {e}", d.name);
                // A point written here is named at its own place.
                let named = match &e {
                    ProfileError::Point { point, .. } => Some(point),
                    ProfileError::Overlap { second, .. } => Some(second),
                };
                match d.points.iter().find(|p| Some(&p.get_ref().name) == named) {
                    Some(point) => Invalid::at(point, message),
                    None => Invalid::at(device, message),
                }
            })?;
            profiles.push(profile);
        }
        Ok(profiles)
    }

    fn pause(&self) -> Duration {
        Duration::from_millis(
            self.pause_ms
                .unwrap_or(if self.rtu.is_some() { 5 } else { 0 }),
        )
    }
}

impl SourceConfig for ModbusSourceConfig {
    fn validate(&self, cx: &Context<'_>) -> Result<(), Invalid> {
        match (&self.tcp, &self.rtu) {
            (Some(_), Some(rtu)) => {
                return Err(Invalid::at(rtu, "give `tcp` or `rtu`, not both"));
            }
            (None, None) => {
                return Err(Invalid::new(
                    "no connection: give `tcp = \"host:port\"` or `rtu = { port = \"/dev/ttyUSB0\" }`",
                ));
            }
            (Some(address), None) => {
                if address
                    .get_ref()
                    .rsplit_once(':')
                    .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                {
                    return Err(Invalid::at(
                        address,
                        format!("`{}` is not host:port", address.get_ref()),
                    ));
                }
            }
            (None, Some(rtu)) => {
                let r = rtu.get_ref();
                if !(r.stop_bits == 1 || r.stop_bits == 2) {
                    return Err(Invalid::at(rtu, "stop_bits is 1 or 2"));
                }
                if !(r.data_bits == 7 || r.data_bits == 8) {
                    return Err(Invalid::at(rtu, "data_bits is 7 or 8"));
                }
                if r.baud_rate == 0 {
                    return Err(Invalid::at(rtu, "baud_rate must be above 0"));
                }
            }
        }
        if self.devices.is_empty() {
            return Err(Invalid::new(
                "no devices: add `[[sources.NAME.modbus.devices]]`",
            ));
        }
        for max in std::iter::once(&self.max_registers).chain(
            self.devices
                .iter()
                .filter_map(|d| d.get_ref().max_registers.as_ref()),
        ) {
            if max.get_ref().get() > 125 {
                return Err(Invalid::at(
                    max,
                    format!(
                        "{} registers: a Modbus read takes at most 125",
                        max.get_ref()
                    ),
                ));
            }
        }
        self.profiles(cx).map(|_| ())
    }

    fn open(&self, cx: &Context<'_>) -> Result<Source, DriverError> {
        let profiles = self
            .profiles(cx)
            .map_err(|e| DriverError::Config(e.message))?;
        let devices = self
            .devices
            .iter()
            .zip(profiles)
            .map(|(device, profile)| {
                let d = device.get_ref();
                let max = d.max_registers.as_ref().unwrap_or(&self.max_registers);
                // Points a device twin may set.
                let writable: Vec<Point> = profile
                    .points
                    .iter()
                    .filter(|p| p.read_write != ReadWrite::R)
                    .cloned()
                    .collect();
                // Write-only points are not read: many devices refuse it.
                let points: Vec<Point> = profile
                    .points
                    .into_iter()
                    .filter(|p| p.read_write != ReadWrite::W)
                    .collect();
                let requests = plan(&points, max.get_ref().get(), d.max_gap);
                DevicePlan {
                    name: d.name.clone(),
                    unit: d.unit,
                    every: Duration::from_millis(d.poll_interval_ms.get()),
                    points,
                    requests,
                    writable,
                }
            })
            .collect::<Vec<DevicePlan>>();
        // Writes from the device twin come to this source's devices.
        let writes = cx
            .services
            .get::<eddy_driver::DeviceWriters>()
            .map(|writers| writers.register(devices.iter().map(|d| d.name.as_str())));
        let link = match (&self.tcp, &self.rtu) {
            (Some(address), _) => super::link::LinkConfig::Tcp {
                address: address.get_ref().clone(),
                connect_timeout: Duration::from_millis(self.connect_timeout_ms.get()),
            },
            (None, Some(rtu)) => super::link::LinkConfig::Rtu(rtu.get_ref().clone()),
            (None, None) => return Err(DriverError::Config("no connection".into())),
        };
        Ok(Source::Task(Box::new(
            ModbusSourceTask::new(
                link,
                devices,
                Duration::from_millis(self.timeout_ms.get()),
                self.retries,
                self.pause(),
            )
            .with_writes(writes),
        )))
    }
}

/// The longest poll interval: a day.
const MAX_INTERVAL_MS: u64 = 86_400_000;

fn default_timeout_ms() -> NonZeroU64 {
    NonZeroU64::new(1000).unwrap_or(NonZeroU64::MIN)
}

fn default_connect_timeout_ms() -> NonZeroU64 {
    NonZeroU64::new(5000).unwrap_or(NonZeroU64::MIN)
}

fn default_poll_interval_ms() -> NonZeroU64 {
    NonZeroU64::new(1000).unwrap_or(NonZeroU64::MIN)
}

fn default_retries() -> u8 {
    1
}

fn default_max_registers() -> Spanned<NonZeroU16> {
    Spanned::new(0..0, NonZeroU16::new(125).unwrap_or(NonZeroU16::MIN))
}

fn default_baud_rate() -> u32 {
    9600
}

fn default_stop_bits() -> u8 {
    1
}

fn default_data_bits() -> u8 {
    8
}

fn default_unit() -> u8 {
    1
}
