//! Sensirion SHT3x: a single-shot measurement, high repeatability, without
//! clock stretching; temperature and humidity words each followed by their
//! CRC-8.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::{Reading, SensorError, crc8};

/// Single shot, high repeatability, clock stretching disabled.
const MEASURE: [u8; 2] = [0x24, 0x00];

/// The longest a high-repeatability measurement takes (15.5 ms), rounded up.
const MEASURE_MS: u32 = 16;

/// An SHT3x at an address (0x44 with ADDR low, 0x45 with ADDR high).
pub struct Sht3x<B> {
    bus: B,
    address: u8,
}

impl<B: I2c> Sht3x<B> {
    /// The sensor at `address` on `bus`.
    pub fn new(bus: B, address: u8) -> Self {
        Sht3x { bus, address }
    }

    /// Measures once: `temperature_c` and `humidity_pct`.
    pub fn measure(&mut self, delay: &mut impl DelayNs) -> Result<[Reading; 2], SensorError> {
        self.bus
            .write(self.address, &MEASURE)
            .map_err(SensorError::bus)?;
        delay.delay_ms(MEASURE_MS);
        let mut data = [0u8; 6];
        self.bus
            .read(self.address, &mut data)
            .map_err(SensorError::bus)?;
        let word = |i: usize| -> Result<u16, SensorError> {
            let computed = crc8(&data[i..i + 2]);
            if computed != data[i + 2] {
                return Err(SensorError::Crc {
                    got: data[i + 2],
                    computed,
                });
            }
            Ok(u16::from_be_bytes([data[i], data[i + 1]]))
        };
        let (t, rh) = (word(0)?, word(3)?);
        Ok([
            Reading {
                name: "temperature_c",
                value: -45.0 + 175.0 * f64::from(t) / 65535.0,
            },
            Reading {
                name: "humidity_pct",
                value: 100.0 * f64::from(rh) / 65535.0,
            },
        ])
    }

    /// Gives the bus back.
    pub fn release(self) -> B {
        self.bus
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    use super::*;

    #[test]
    fn a_measurement_is_converted_as_the_datasheet_says() {
        // 0x6666 = 26214: -45 + 175 × 26214 / 65535 = 24.9996… °C;
        // 0x8000 = 32768: 100 × 32768 / 65535 = 50.0008… %.
        let (t, rh) = ([0x66, 0x66], [0x80, 0x00]);
        let response = vec![t[0], t[1], crc8(&t), rh[0], rh[1], crc8(&rh)];
        let bus = Mock::new(&[
            Transaction::write(0x44, vec![0x24, 0x00]),
            Transaction::read(0x44, response),
        ]);
        let mut sensor = Sht3x::new(bus, 0x44);
        let [temperature, humidity] = sensor.measure(&mut NoopDelay::new()).unwrap();
        assert_eq!(temperature.name, "temperature_c");
        assert!((temperature.value - (-45.0 + 175.0 * 26214.0 / 65535.0)).abs() < 1e-12);
        assert!((humidity.value - 100.0 * 32768.0 / 65535.0).abs() < 1e-12);
        sensor.release().done();
    }

    #[test]
    fn a_damaged_word_or_a_nak_gives_no_measurement() {
        let bus = Mock::new(&[
            Transaction::write(0x44, vec![0x24, 0x00]),
            Transaction::read(
                0x44,
                vec![0xBE, 0xEF, 0x93, 0x80, 0x00, crc8(&[0x80, 0x00])],
            ),
        ]);
        let mut sensor = Sht3x::new(bus, 0x44);
        assert_eq!(
            sensor.measure(&mut NoopDelay::new()),
            Err(SensorError::Crc {
                got: 0x93,
                computed: 0x92
            })
        );
        sensor.release().done();

        let nak = ErrorKind::NoAcknowledge(embedded_hal::i2c::NoAcknowledgeSource::Address);
        let bus = Mock::new(&[Transaction::write(0x45, vec![0x24, 0x00]).with_error(nak)]);
        let mut sensor = Sht3x::new(bus, 0x45);
        assert_eq!(
            sensor.measure(&mut NoopDelay::new()),
            Err(SensorError::Bus(nak))
        );
        sensor.release().done();
    }
}
