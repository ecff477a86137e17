//! What a pipeline writes in a `[sources.NAME.sim]` table.

use serde::Deserialize;

/// Simulated devices and how they behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of the generator: the same seed gives the same readings.
    #[serde(default)]
    pub seed: u64,
    /// Event time of the first readings, ms since the Unix epoch. Default:
    /// the wall clock at start. Set, the simulation is replayable: run
    /// again on the same state, it goes on from its last checkpoint.
    pub start_time_ms: Option<i64>,
    /// Event time between two readings of one device, in ms.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// How fast simulated time runs: 1 is real time, 60 is a minute per second,
    /// 0 is as fast as the pipeline takes records.
    #[serde(default = "default_speed")]
    pub speed: f64,
    /// How much event time to simulate, in ms; the source then ends. Default: no end.
    pub duration_ms: Option<u64>,
    /// UPS units with battery strings.
    #[serde(default)]
    pub ups: Vec<UpsConfig>,
    /// Room temperature and humidity sensors.
    #[serde(default)]
    pub rooms: Vec<RoomConfig>,
    /// Readings held back to arrive out of order or late.
    #[serde(default)]
    pub disorder: DisorderConfig,
    /// Injected faults.
    #[serde(default)]
    pub faults: Vec<FaultConfig>,
    /// Every this many ms of event time, every device starts reporting under
    /// a new key (`KEY~N`), as if the whole fleet were replaced: old keys
    /// stop reporting for good. For trying out state TTL. Default: never.
    pub key_churn_ms: Option<u64>,
}

/// One UPS and its battery strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsConfig {
    /// Its name, the first part of its cells' keys.
    pub name: String,
    /// Number of battery strings.
    #[serde(default = "default_strings")]
    pub strings: u32,
    /// Cells per string.
    #[serde(default = "default_cells")]
    pub cells_per_string: u32,
    /// Float voltage of a healthy cell, in V.
    #[serde(default = "default_float_voltage")]
    pub float_voltage: f64,
    /// Temperature of a healthy cell, in °C.
    #[serde(default = "default_cell_temperature")]
    pub temperature_c: f64,
}

/// One room sensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomConfig {
    /// Its name, which is its key.
    pub name: String,
    /// Mean temperature, in °C.
    #[serde(default = "default_room_temperature")]
    pub temperature_c: f64,
    /// Mean relative humidity, in %.
    #[serde(default = "default_humidity")]
    pub humidity_pct: f64,
}

/// How readings are held back.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisorderConfig {
    /// Share of readings held back, from 0 to 1.
    #[serde(default)]
    pub probability: f64,
    /// Longest hold, in ms of event time; each held reading waits 1 ms up to this.
    #[serde(default)]
    pub max_delay_ms: u64,
}

/// A fault injected into one device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// What goes wrong.
    pub kind: FaultKind,
    /// The key of the device it happens to, e.g. `ups-1/string-1/cell-03`.
    pub device: String,
    /// Event time after the start when it begins, in ms.
    #[serde(default)]
    pub start_after_ms: u64,
    /// `cell_overheat`: how fast the temperature rises once it began, in °C per minute.
    #[serde(default = "default_rise")]
    pub rise_c_per_min: f64,
    /// `cell_overheat`: the most it rises, in °C.
    #[serde(default = "default_max_rise")]
    pub max_rise_c: f64,
    /// `outage`: how long the device is silent, in ms of event time.
    #[serde(default)]
    pub duration_ms: u64,
    /// `outage`: whether the device keeps its readings and sends them all when
    /// it comes back (store and forward), rather than losing them.
    #[serde(default)]
    pub buffered: bool,
}

/// Kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A battery cell heats up (thermal runaway starting): its temperature and
    /// internal resistance rise and its voltage sags.
    CellOverheat,
    /// The device goes silent for `duration_ms`, e.g. its link is down.
    Outage,
}

fn default_interval_ms() -> u64 {
    1000
}
fn default_speed() -> f64 {
    1.0
}
fn default_strings() -> u32 {
    1
}
fn default_cells() -> u32 {
    8
}
fn default_float_voltage() -> f64 {
    13.5
}
fn default_cell_temperature() -> f64 {
    25.0
}
fn default_room_temperature() -> f64 {
    22.0
}
fn default_humidity() -> f64 {
    45.0
}
fn default_rise() -> f64 {
    5.0
}
fn default_max_rise() -> f64 {
    40.0
}

impl eddy_driver::Kind for SimConfig {
    const NAME: &'static str = "sim";
    const ABOUT: &'static str =
        "simulated UPS battery strings and room sensors, seeded, with injected faults and disorder";
}

impl eddy_driver::SourceConfig for SimConfig {
    /// With a start time, the simulation goes back to a checkpoint's
    /// position (see `SimDriver`'s `position`), so it needs no journal.
    fn rewindable(&self) -> bool {
        self.start_time_ms.is_some()
    }

    fn validate(&self, _cx: &eddy_driver::Context<'_>) -> Result<(), eddy_driver::Invalid> {
        // Building the devices touches nothing outside the process.
        crate::SimDriver::new(self)
            .map(drop)
            .map_err(|e| eddy_driver::Invalid::new(e.to_string()))
    }

    fn open(
        &self,
        _cx: &eddy_driver::Context<'_>,
    ) -> Result<eddy_driver::Source, eddy_driver::DriverError> {
        Ok(eddy_driver::Source::Polled(Box::new(
            crate::SimDriver::new(self)?,
        )))
    }
}
