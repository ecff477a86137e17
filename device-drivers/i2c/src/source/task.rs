//! Measuring, on a blocking thread: I2C transfers on Linux are blocking
//! system calls (and a measurement waits milliseconds for the sensor), so
//! they never run on the async workers. The task sleeps on the runtime
//! until a sensor is due, then measures it with `spawn_blocking`.

use std::path::PathBuf;
use std::time::Duration;

use eddy_driver::{BoxFuture, DriverError, Record, Schedule, SourceOutput, SourceTask};
use linux_embedded_hal::{Delay, I2cdev};

use super::config::SensorModel;
use crate::{Bme280, Reading, SensorError, Sht3x};

/// A sensor, as configured.
#[derive(Debug, Clone)]
pub(crate) struct SensorPlan {
    pub(crate) name: String,
    pub(crate) model: SensorModel,
    pub(crate) address: u8,
    pub(crate) every: Duration,
}

/// A sensor's driver, once it has answered.
enum Driver {
    Sht3x(Sht3x<I2cdev>),
    Bme280(Bme280<I2cdev>),
}

/// A sensor while the task runs.
struct Sensor {
    plan: SensorPlan,
    /// Made at the first measurement that finds the sensor; dropped after
    /// a fault, so a sensor that was replaced is set up afresh.
    driver: Option<Driver>,
}

/// Measures the sensors of one bus; the host runs it again after a
/// failure to open the bus.
pub struct I2cSourceTask {
    bus: PathBuf,
    sensors: Vec<Sensor>,
    schedule: Schedule,
}

impl I2cSourceTask {
    pub(crate) fn new(bus: PathBuf, sensors: Vec<SensorPlan>) -> Self {
        let schedule = Schedule::new(sensors.iter().map(|s| s.every), std::time::Instant::now());
        I2cSourceTask {
            bus,
            sensors: sensors
                .into_iter()
                .map(|plan| Sensor { plan, driver: None })
                .collect(),
            schedule,
        }
    }

    async fn measure_all(&mut self, out: &mut SourceOutput) -> Result<(), DriverError> {
        // The bus must be there: a missing device file is the source's
        // failure, shown and retried, not every sensor's.
        open(&self.bus)?;
        out.connected();
        loop {
            let Some(next) = self.schedule.wait_next().await else {
                return Ok(());
            };
            let sensor = &mut self.sensors[next];
            let bus = self.bus.clone();
            let plan = sensor.plan.clone();
            let driver = sensor.driver.take();
            let (driver, result) =
                tokio::task::spawn_blocking(move || measure(&bus, &plan, driver))
                    .await
                    .map_err(|e| DriverError::Config(format!("a measurement failed: {e}")))?;
            let sensor = &mut self.sensors[next];
            match result {
                Ok(readings) => {
                    sensor.driver = driver;
                    out.device_polled(&sensor.plan.name, None);
                    let mut record = Record::new(sensor.plan.name.as_str(), eddy_codec::now_ms());
                    for r in readings {
                        record = record.with(r.name, r.value);
                    }
                    out.records(vec![record]).await?;
                }
                Err(Fault::Sensor(e)) => {
                    out.device_polled(&sensor.plan.name, Some(&e.to_string()));
                }
                Err(Fault::Bus(e)) => return Err(e),
            }
        }
    }
}

/// Why a measurement gave nothing.
enum Fault {
    /// The sensor: counted for it.
    Sensor(SensorError),
    /// The bus itself: the source's failure.
    Bus(DriverError),
}

/// Opens the bus's device file.
fn open(bus: &PathBuf) -> Result<I2cdev, DriverError> {
    I2cdev::new(bus).map_err(|e| {
        let hint = if bus.exists() {
            ""
        } else {
            " (no such device file: is the bus enabled and the i2c-dev module loaded?)"
        };
        DriverError::unavailable(bus.display().to_string(), format!("{e}{hint}"))
    })
}

/// One measurement, on a blocking thread; gives the driver back to keep.
fn measure(
    bus: &PathBuf,
    plan: &SensorPlan,
    driver: Option<Driver>,
) -> (Option<Driver>, Result<Vec<Reading>, Fault>) {
    let mut driver = match driver {
        Some(d) => d,
        None => {
            let dev = match open(bus) {
                Ok(dev) => dev,
                Err(e) => return (None, Err(Fault::Bus(e))),
            };
            match plan.model {
                SensorModel::Sht3x => Driver::Sht3x(Sht3x::new(dev, plan.address)),
                SensorModel::Bme280 => match Bme280::new(dev, plan.address) {
                    Ok(d) => Driver::Bme280(d),
                    Err(e) => return (None, Err(Fault::Sensor(e))),
                },
            }
        }
    };
    let mut delay = Delay;
    let result = match &mut driver {
        Driver::Sht3x(d) => d.measure(&mut delay).map(|r| r.to_vec()),
        Driver::Bme280(d) => d.measure(&mut delay),
    };
    match result {
        Ok(readings) => (Some(driver), Ok(readings)),
        Err(e) => (None, Err(Fault::Sensor(e))),
    }
}

impl SourceTask for I2cSourceTask {
    fn run<'a>(
        &'a mut self,
        out: &'a mut SourceOutput,
        _resume: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.measure_all(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bus_device_file_is_a_clear_retryable_error() {
        let missing = PathBuf::from("/dev/i2c-eddy-test-missing");
        let Err(e) = open(&missing) else {
            panic!("opened a missing bus");
        };
        assert!(e.is_transient(), "{e}");
        let text = e.to_string();
        assert!(text.starts_with("/dev/i2c-eddy-test-missing: "), "{text}");
        assert!(text.contains("i2c-dev module"), "{text}");
    }

    #[test]
    fn a_file_that_is_not_an_i2c_bus_is_the_sources_error_not_a_record() {
        // A regular file opens, but the I2C ioctl that sets the address
        // fails on it: nothing is measured, and the source reports the bus.
        let file = std::env::temp_dir().join(format!("eddy-not-i2c-{}", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        let plan = SensorPlan {
            name: "s".into(),
            model: SensorModel::Sht3x,
            address: 0x44,
            every: Duration::from_secs(1),
        };
        let (driver, result) = measure(&file, &plan, None);
        assert!(driver.is_none());
        let Err(Fault::Bus(e)) = result else {
            panic!("measured a regular file");
        };
        assert!(e.is_transient(), "{e}");
        assert!(
            e.to_string().starts_with(&file.display().to_string()),
            "{e}"
        );
        assert!(!e.to_string().contains("no such device file"), "{e}");
        std::fs::remove_file(&file).unwrap();
    }
}
