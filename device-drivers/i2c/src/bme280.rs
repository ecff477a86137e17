//! Bosch BME280: calibration read once, then forced-mode measurements with
//! 1× oversampling, compensated with the datasheet's double-precision
//! formulas.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::{Reading, SensorError};

const CHIP_ID: u8 = 0x60;
const REG_CHIP_ID: u8 = 0xD0;
const REG_CALIB_TP: u8 = 0x88;
const REG_CALIB_H: u8 = 0xE1;
const REG_CTRL_HUM: u8 = 0xF2;
const REG_CTRL_MEAS: u8 = 0xF4;
const REG_DATA: u8 = 0xF7;
/// Humidity oversampling ×1.
const CTRL_HUM: u8 = 0x01;
/// Temperature oversampling ×1 (bits 7–5), pressure ×1 (bits 4–2), forced mode (bits 1–0).
const CTRL_MEAS: u8 = (0b001 << 5) | (0b001 << 2) | 0b01;
/// A forced measurement with ×1 oversampling takes at most 9.3 ms.
const MEASURE_MS: u32 = 10;

/// The trimming parameters the factory wrote into each chip.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Calibration {
    /// The datasheet's `dig_T1`.
    pub t1: u16,
    /// The datasheet's `dig_T2`.
    pub t2: i16,
    /// The datasheet's `dig_T3`.
    pub t3: i16,
    /// The datasheet's `dig_P1`.
    pub p1: u16,
    /// The datasheet's `dig_P2`.
    pub p2: i16,
    /// The datasheet's `dig_P3`.
    pub p3: i16,
    /// The datasheet's `dig_P4`.
    pub p4: i16,
    /// The datasheet's `dig_P5`.
    pub p5: i16,
    /// The datasheet's `dig_P6`.
    pub p6: i16,
    /// The datasheet's `dig_P7`.
    pub p7: i16,
    /// The datasheet's `dig_P8`.
    pub p8: i16,
    /// The datasheet's `dig_P9`.
    pub p9: i16,
    /// The datasheet's `dig_H1`.
    pub h1: u8,
    /// The datasheet's `dig_H2`.
    pub h2: i16,
    /// The datasheet's `dig_H3`.
    pub h3: u8,
    /// The datasheet's `dig_H4`.
    pub h4: i16,
    /// The datasheet's `dig_H5`.
    pub h5: i16,
    /// The datasheet's `dig_H6`.
    pub h6: i8,
}

impl Calibration {
    /// From registers 0x88–0xA1 (26 bytes) and 0xE1–0xE7 (7 bytes).
    pub fn from_registers(tp: &[u8; 26], h: &[u8; 7]) -> Self {
        let u = |i: usize| u16::from_le_bytes([tp[i], tp[i + 1]]);
        let s = |i: usize| i16::from_le_bytes([tp[i], tp[i + 1]]);
        Calibration {
            t1: u(0),
            t2: s(2),
            t3: s(4),
            p1: u(6),
            p2: s(8),
            p3: s(10),
            p4: s(12),
            p5: s(14),
            p6: s(16),
            p7: s(18),
            p8: s(20),
            p9: s(22),
            h1: tp[25],
            h2: i16::from_le_bytes([h[0], h[1]]),
            h3: h[2],
            // 12-bit signed values sharing the nibbles of 0xE5.
            h4: (i16::from(h[3] as i8) << 4) | i16::from(h[4] & 0x0F),
            h5: (i16::from(h[5] as i8) << 4) | i16::from(h[4] >> 4),
            h6: h[6] as i8,
        }
    }

    /// Temperature in °C and the fine temperature the others use.
    pub fn temperature(&self, adc_t: i32) -> (f64, f64) {
        let adc = f64::from(adc_t);
        let t1 = f64::from(self.t1);
        let var1 = (adc / 16384.0 - t1 / 1024.0) * f64::from(self.t2);
        let d = adc / 131072.0 - t1 / 8192.0;
        let var2 = d * d * f64::from(self.t3);
        let fine = var1 + var2;
        (fine / 5120.0, fine)
    }

    /// Pressure in Pa; `None` where the calibration divides by zero.
    pub fn pressure(&self, adc_p: i32, fine: f64) -> Option<f64> {
        let mut var1 = fine / 2.0 - 64000.0;
        let mut var2 = var1 * var1 * f64::from(self.p6) / 32768.0;
        var2 += var1 * f64::from(self.p5) * 2.0;
        var2 = var2 / 4.0 + f64::from(self.p4) * 65536.0;
        var1 = (f64::from(self.p3) * var1 * var1 / 524288.0 + f64::from(self.p2) * var1) / 524288.0;
        var1 = (1.0 + var1 / 32768.0) * f64::from(self.p1);
        if var1 == 0.0 {
            return None;
        }
        let mut p = 1048576.0 - f64::from(adc_p);
        p = (p - var2 / 4096.0) * 6250.0 / var1;
        let var1 = f64::from(self.p9) * p * p / 2147483648.0;
        let var2 = p * f64::from(self.p8) / 32768.0;
        Some(p + (var1 + var2 + f64::from(self.p7)) / 16.0)
    }

    /// Relative humidity in %, within 0–100.
    pub fn humidity(&self, adc_h: i32, fine: f64) -> f64 {
        let x = fine - 76800.0;
        let h = (f64::from(adc_h) - (f64::from(self.h4) * 64.0 + f64::from(self.h5) / 16384.0 * x))
            * (f64::from(self.h2) / 65536.0
                * (1.0
                    + f64::from(self.h6) / 67108864.0
                        * x
                        * (1.0 + f64::from(self.h3) / 67108864.0 * x)));
        (h * (1.0 - f64::from(self.h1) * h / 524288.0)).clamp(0.0, 100.0)
    }
}

/// A BME280 at an address (0x76 or 0x77), its calibration read.
pub struct Bme280<B> {
    bus: B,
    address: u8,
    calibration: Calibration,
}

impl<B: I2c> Bme280<B> {
    /// Checks the chip id and reads the calibration.
    pub fn new(mut bus: B, address: u8) -> Result<Self, SensorError> {
        let mut id = [0u8];
        bus.write_read(address, &[REG_CHIP_ID], &mut id)
            .map_err(SensorError::bus)?;
        if id[0] != CHIP_ID {
            return Err(SensorError::WrongChip {
                expected: "BME280",
                id: id[0],
            });
        }
        let mut tp = [0u8; 26];
        let mut h = [0u8; 7];
        bus.write_read(address, &[REG_CALIB_TP], &mut tp)
            .map_err(SensorError::bus)?;
        bus.write_read(address, &[REG_CALIB_H], &mut h)
            .map_err(SensorError::bus)?;
        Ok(Bme280 {
            bus,
            address,
            calibration: Calibration::from_registers(&tp, &h),
        })
    }

    /// The calibration read from the chip.
    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// Measures once: `temperature_c`, `humidity_pct` and `pressure_hpa`
    /// (left out when the calibration cannot give it).
    pub fn measure(&mut self, delay: &mut impl DelayNs) -> Result<Vec<Reading>, SensorError> {
        let address = self.address;
        // ctrl_hum takes effect with the following write of ctrl_meas.
        self.bus
            .write(address, &[REG_CTRL_HUM, CTRL_HUM])
            .map_err(SensorError::bus)?;
        self.bus
            .write(address, &[REG_CTRL_MEAS, CTRL_MEAS])
            .map_err(SensorError::bus)?;
        delay.delay_ms(MEASURE_MS);
        let mut d = [0u8; 8];
        self.bus
            .write_read(address, &[REG_DATA], &mut d)
            .map_err(SensorError::bus)?;
        let adc20 = |i: usize| {
            (i32::from(d[i]) << 12) | (i32::from(d[i + 1]) << 4) | (i32::from(d[i + 2]) >> 4)
        };
        let (adc_p, adc_t) = (adc20(0), adc20(3));
        let adc_h = (i32::from(d[6]) << 8) | i32::from(d[7]);
        let c = &self.calibration;
        let (temperature, fine) = c.temperature(adc_t);
        let mut readings = vec![
            Reading {
                name: "temperature_c",
                value: temperature,
            },
            Reading {
                name: "humidity_pct",
                value: c.humidity(adc_h, fine),
            },
        ];
        if let Some(pa) = c.pressure(adc_p, fine) {
            readings.push(Reading {
                name: "pressure_hpa",
                value: pa / 100.0,
            });
        }
        Ok(readings)
    }

    /// Gives the bus back.
    pub fn release(self) -> B {
        self.bus
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    use super::*;

    /// The datasheet's worked example (BMP280, whose temperature and
    /// pressure compensation the BME280 shares).
    fn example() -> Calibration {
        Calibration {
            t1: 27504,
            t2: 26435,
            t3: -1000,
            p1: 36477,
            p2: -10685,
            p3: 3024,
            p4: 2855,
            p5: 140,
            p6: -7,
            p7: 15500,
            p8: -14600,
            p9: 6000,
            h1: 75,
            h2: 362,
            h3: 0,
            h4: 313,
            h5: 50,
            h6: 30,
        }
    }

    #[test]
    fn the_datasheet_example_compensates_to_its_published_values() {
        let c = example();
        let (t, fine) = c.temperature(519888);
        assert!((t - 25.08).abs() < 0.005, "{t}");
        let p = c.pressure(415148, fine).unwrap();
        assert!((p - 100653.27).abs() < 0.01, "{p}");
    }

    /// The datasheet's 32-bit fixed-point humidity formula, written out
    /// here on its own, agrees with the driver's double-precision one.
    #[test]
    fn humidity_agrees_with_the_fixed_point_formula() {
        let c = example();
        let fixed = |adc_t: i32, adc_h: i32| -> f64 {
            let t1 = i32::from(c.t1);
            let var1 = (((adc_t >> 3) - (t1 << 1)) * i32::from(c.t2)) >> 11;
            let var2 =
                (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * i32::from(c.t3)) >> 14;
            let fine = var1 + var2;
            let mut x = fine - 76800;
            x = ((((adc_h << 14) - (i32::from(c.h4) << 20) - (i32::from(c.h5) * x)) + 16384) >> 15)
                * (((((((x * i32::from(c.h6)) >> 10) * (((x * i32::from(c.h3)) >> 11) + 32768))
                    >> 10)
                    + 2097152)
                    * i32::from(c.h2)
                    + 8192)
                    >> 14);
            x -= ((((x >> 15) * (x >> 15)) >> 7) * i32::from(c.h1)) >> 4;
            let x = x.clamp(0, 419430400);
            f64::from(x >> 12) / 1024.0
        };
        for (adc_t, adc_h) in [
            (519888, 30000),
            (519888, 26000),
            (480000, 33000),
            (540000, 28000),
        ] {
            let (_, fine) = c.temperature(adc_t);
            let double = c.humidity(adc_h, fine);
            let int = fixed(adc_t, adc_h);
            assert!(
                (double - int).abs() < 0.05,
                "adc {adc_t}/{adc_h}: {double} vs {int}"
            );
            assert!(
                (5.0..95.0).contains(&double),
                "a plausible humidity: {double}"
            );
        }
    }

    /// Registers 0x88–0xA1 holding `c`'s temperature and pressure words and H1.
    fn registers(c: &Calibration) -> [u8; 26] {
        let words = [
            c.t1,
            c.t2 as u16,
            c.t3 as u16,
            c.p1,
            c.p2 as u16,
            c.p3 as u16,
            c.p4 as u16,
            c.p5 as u16,
            c.p6 as u16,
            c.p7 as u16,
            c.p8 as u16,
            c.p9 as u16,
        ];
        let mut tp = [0u8; 26];
        for (i, w) in words.into_iter().enumerate() {
            tp[2 * i..2 * i + 2].copy_from_slice(&w.to_le_bytes());
        }
        tp[25] = c.h1;
        tp
    }

    #[test]
    fn calibration_registers_are_read_as_the_datasheet_lays_them_out() {
        let c = example();
        let tp = registers(&c);
        // H4 = 313 = 0x139: 0xE4 = 0x13, low nibble of 0xE5 = 0x9;
        // H5 = 50 = 0x032: high nibble of 0xE5 = 0x2, 0xE6 = 0x03.
        let h = [0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 30];
        assert_eq!(Calibration::from_registers(&tp, &h), c);
    }

    #[test]
    fn a_measurement_over_the_bus() {
        let c = example();
        let tp = registers(&c);
        let h = vec![0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 30];
        // adc_P = 415148 = 0x655AC, adc_T = 519888 = 0x7EED0, adc_H = 30000.
        let data = vec![0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x75, 0x30];
        let bus = Mock::new(&[
            Transaction::write_read(0x76, vec![0xD0], vec![0x60]),
            Transaction::write_read(0x76, vec![0x88], tp.to_vec()),
            Transaction::write_read(0x76, vec![0xE1], h),
            Transaction::write(0x76, vec![0xF2, 0x01]),
            Transaction::write(0x76, vec![0xF4, 0x25]),
            Transaction::write_read(0x76, vec![0xF7], data),
        ]);
        let mut sensor = Bme280::new(bus, 0x76).unwrap();
        let readings = sensor.measure(&mut NoopDelay::new()).unwrap();
        let value = |name: &str| readings.iter().find(|r| r.name == name).unwrap().value;
        assert!((value("temperature_c") - 25.08).abs() < 0.005);
        assert!((value("pressure_hpa") - 1006.5327).abs() < 0.0001);
        sensor.release().done();
    }

    #[test]
    fn another_chip_is_refused() {
        let bus = Mock::new(&[Transaction::write_read(0x77, vec![0xD0], vec![0x58])]);
        let Err(error) = Bme280::new(bus.clone(), 0x77) else {
            panic!("a BMP280 (0x58) is not a BME280");
        };
        assert_eq!(
            error,
            SensorError::WrongChip {
                expected: "BME280",
                id: 0x58
            }
        );
        bus.clone().done();
    }
}
