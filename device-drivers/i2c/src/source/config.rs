//! What a pipeline writes in a `[sources.NAME.i2c]` table: a Linux I2C bus
//! and the sensors on it.

use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

use eddy_driver::{Context, DriverError, Invalid, Kind, Source, SourceConfig, Spanned};
use serde::Deserialize;

use super::task::{I2cSourceTask, SensorPlan};

/// Sensors on one Linux I2C bus (`/dev/i2c-N`), each measured at its own
/// interval on a blocking thread: every sensor is a record key, every
/// reading a field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct I2cSourceConfig {
    /// The bus's device file, e.g. `/dev/i2c-1`.
    pub bus: Spanned<PathBuf>,
    /// The sensors on it.
    pub sensors: Vec<Spanned<SensorConfig>>,
}

/// One sensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Its name: the key of its records.
    pub name: String,
    /// What it is.
    pub model: SensorModel,
    /// Its 7-bit address (default: the model's usual one, 0x44 for an
    /// SHT3x, 0x76 for a BME280).
    pub address: Option<u8>,
    /// How often it is measured, in ms.
    #[serde(default = "default_interval")]
    pub poll_interval_ms: NonZeroU64,
}

/// The sensors eddy has drivers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorModel {
    /// Sensirion SHT30/31/35: `temperature_c`, `humidity_pct`.
    Sht3x,
    /// Bosch BME280: `temperature_c`, `humidity_pct`, `pressure_pa`.
    Bme280,
}

impl SensorModel {
    fn default_address(self) -> u8 {
        match self {
            SensorModel::Sht3x => 0x44,
            SensorModel::Bme280 => 0x76,
        }
    }
}

impl Kind for I2cSourceConfig {
    const NAME: &'static str = "i2c";
    const ABOUT: &'static str =
        "SHT3x and BME280 sensors on a Linux I2C bus, measured at intervals on a blocking thread";
}

impl SourceConfig for I2cSourceConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        if self.sensors.is_empty() {
            return Err(Invalid::new(
                "no sensors: add `[[sources.NAME.i2c.sensors]]`",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for sensor in &self.sensors {
            let s = sensor.get_ref();
            if !seen.insert(s.name.as_str()) {
                return Err(Invalid::at(
                    sensor,
                    format!("sensor `{}` is named twice; names are record keys", s.name),
                ));
            }
            if s.poll_interval_ms.get() > 86_400_000 {
                return Err(Invalid::at(
                    sensor,
                    format!("sensor `{}`: poll_interval_ms is at most a day", s.name),
                ));
            }
            let address = s.address.unwrap_or(s.model.default_address());
            if !(0x08..=0x77).contains(&address) {
                return Err(Invalid::at(
                    sensor,
                    format!("address {address:#04x}: 7-bit addresses run from 0x08 to 0x77"),
                ));
            }
        }
        Ok(())
    }

    fn open(&self, _cx: &Context<'_>) -> Result<Source, DriverError> {
        let sensors = self
            .sensors
            .iter()
            .map(|s| {
                let s = s.get_ref();
                SensorPlan {
                    name: s.name.clone(),
                    model: s.model,
                    address: s.address.unwrap_or(s.model.default_address()),
                    every: Duration::from_millis(s.poll_interval_ms.get()),
                }
            })
            .collect();
        Ok(Source::Task(Box::new(I2cSourceTask::new(
            self.bus.get_ref().clone(),
            sensors,
        ))))
    }
}

fn default_interval() -> NonZeroU64 {
    NonZeroU64::new(5000).unwrap_or(NonZeroU64::MIN)
}
