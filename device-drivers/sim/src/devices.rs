//! The simulated devices: what each one reads at a given event time.

use std::sync::Arc;

use eddy_driver::{Record, Value};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::{FaultConfig, RoomConfig, UpsConfig};

/// Field names, shared by every record.
pub(crate) struct Names {
    voltage: Arc<str>,
    temperature: Arc<str>,
    resistance: Arc<str>,
    humidity: Arc<str>,
}

impl Names {
    pub(crate) fn new() -> Self {
        Names {
            voltage: "voltage".into(),
            temperature: "temperature".into(),
            resistance: "resistance".into(),
            humidity: "humidity".into(),
        }
    }
}

/// One simulated device.
pub(crate) struct Device {
    pub(crate) key: Arc<str>,
    model: Model,
    fault: Option<Fault>,
    outages: Vec<Outage>,
}

enum Model {
    Cell {
        voltage: f64,
        temperature: f64,
        resistance: f64,
    },
    Room {
        temperature: f64,
        humidity: f64,
    },
}

/// An overheating fault in absolute event time.
pub(crate) struct Fault {
    start: i64,
    rise_per_ms: f64,
    max_rise: f64,
}

impl Fault {
    pub(crate) fn new(config: &FaultConfig, sim_start: i64) -> Self {
        Fault {
            start: sim_start + config.start_after_ms as i64,
            rise_per_ms: config.rise_c_per_min / 60_000.0,
            max_rise: config.max_rise_c,
        }
    }

    /// Degrees above normal at `time`.
    fn rise(&self, time: i64) -> f64 {
        if time < self.start {
            return 0.0;
        }
        ((time - self.start) as f64 * self.rise_per_ms).min(self.max_rise)
    }
}

/// A silent period in absolute event time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outage {
    start: i64,
    /// When the device speaks again.
    pub(crate) end: i64,
    /// Whether it then sends what it read meanwhile.
    pub(crate) buffered: bool,
}

impl Outage {
    pub(crate) fn new(config: &FaultConfig, sim_start: i64) -> Self {
        let start = sim_start + config.start_after_ms as i64;
        Outage {
            start,
            end: start + config.duration_ms as i64,
            buffered: config.buffered,
        }
    }
}

/// Rounds to thousandths, as a real sensor's resolution would.
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Device {
    /// The cells of a UPS, each with its own small offset from nominal.
    pub(crate) fn cells(ups: &UpsConfig, rng: &mut ChaCha8Rng) -> Vec<Device> {
        let mut cells = Vec::new();
        for s in 1..=ups.strings {
            for c in 1..=ups.cells_per_string {
                cells.push(Device {
                    key: format!("{}/string-{s}/cell-{c:02}", ups.name).into(),
                    model: Model::Cell {
                        voltage: ups.float_voltage + rng.random_range(-0.05..0.05),
                        temperature: ups.temperature_c + rng.random_range(-0.5..0.5),
                        resistance: 4.0 + rng.random_range(-0.3..0.3),
                    },
                    fault: None,
                    outages: Vec::new(),
                });
            }
        }
        cells
    }

    /// A room sensor.
    pub(crate) fn room(room: &RoomConfig) -> Device {
        Device {
            key: room.name.as_str().into(),
            model: Model::Room {
                temperature: room.temperature_c,
                humidity: room.humidity_pct,
            },
            fault: None,
            outages: Vec::new(),
        }
    }

    /// Makes this device overheat.
    pub(crate) fn set_fault(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }

    /// Makes this device go silent for a while.
    pub(crate) fn add_outage(&mut self, outage: Outage) {
        self.outages.push(outage);
    }

    /// The outage the device is in at `time`, if any.
    pub(crate) fn outage(&self, time: i64) -> Option<Outage> {
        self.outages
            .iter()
            .find(|o| o.start <= time && time < o.end)
            .copied()
    }

    /// What the device reads at `time`.
    pub(crate) fn read(&self, time: i64, names: &Names, rng: &mut ChaCha8Rng) -> Record {
        let rise = self.fault.as_ref().map_or(0.0, |f| f.rise(time));
        let fields = match self.model {
            Model::Cell {
                voltage,
                temperature,
                resistance,
            } => vec![
                (
                    names.voltage.clone(),
                    Value::F64(round(voltage - rise * 0.01 + rng.random_range(-0.01..0.01))),
                ),
                (
                    names.temperature.clone(),
                    Value::F64(round(temperature + rise + rng.random_range(-0.2..0.2))),
                ),
                (
                    names.resistance.clone(),
                    Value::F64(round(
                        resistance * (1.0 + rise * 0.02) + rng.random_range(-0.02..0.02),
                    )),
                ),
            ],
            Model::Room {
                temperature,
                humidity,
            } => {
                let day = (time.rem_euclid(86_400_000) as f64) / 86_400_000.0;
                let daily = (day * std::f64::consts::TAU).sin();
                vec![
                    (
                        names.temperature.clone(),
                        Value::F64(round(
                            temperature + rise + 0.5 * daily + rng.random_range(-0.1..0.1),
                        )),
                    ),
                    (
                        names.humidity.clone(),
                        Value::F64(round(humidity - 2.0 * daily + rng.random_range(-1.0..1.0))),
                    ),
                ]
            }
        };
        Record {
            key: self.key.clone(),
            time,
            fields,
        }
    }
}
