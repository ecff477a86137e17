//! The Environmental Sensing service's characteristic values (Bluetooth
//! GATT Specification Supplement): little-endian integers with a fixed
//! resolution.

use crate::{DecodeError, Reading};

/// Temperature: `sint16`, 0.01 °C; 0x8000 is "value is not known".
pub const TEMPERATURE: u16 = 0x2A6E;
/// Humidity: `uint16`, 0.01 %; 0xFFFF is "value is not known".
pub const HUMIDITY: u16 = 0x2A6F;
/// Pressure: `uint32`, 0.1 Pa.
pub const PRESSURE: u16 = 0x2A6D;

/// Decodes the value of the characteristic with this 16-bit UUID; `None`
/// inside `Ok` when the sensor says it does not know the value.
pub fn decode(uuid: u16, value: &[u8]) -> Result<Option<Reading>, DecodeError> {
    let exact = |n: usize, expected: &'static str| {
        if value.len() == n {
            Ok(())
        } else {
            Err(DecodeError::Length {
                format: "Environmental Sensing",
                got: value.len(),
                expected,
            })
        }
    };
    Ok(match uuid {
        TEMPERATURE => {
            exact(2, "2 (temperature)")?;
            let raw = i16::from_le_bytes([value[0], value[1]]);
            (raw != i16::MIN).then(|| Reading::new("temperature_c", f64::from(raw) / 100.0))
        }
        HUMIDITY => {
            exact(2, "2 (humidity)")?;
            let raw = u16::from_le_bytes([value[0], value[1]]);
            (raw != u16::MAX).then(|| Reading::new("humidity_pct", f64::from(raw) / 100.0))
        }
        PRESSURE => {
            exact(4, "4 (pressure)")?;
            let raw = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
            Some(Reading::new("pressure_hpa", f64::from(raw) / 1000.0))
        }
        other => {
            return Err(DecodeError::Unsupported {
                format: "Environmental Sensing",
                what: format!("characteristic 0x{other:04X}"),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_their_units_and_unknown_markers_left_out() {
        // 0x0992 = 2450 → 24.50 °C; 0xFF38 = -200 → -2.00 °C.
        assert_eq!(
            decode(TEMPERATURE, &[0x92, 0x09]).unwrap(),
            Some(Reading::new("temperature_c", 24.5))
        );
        assert_eq!(
            decode(TEMPERATURE, &[0x38, 0xFF]).unwrap(),
            Some(Reading::new("temperature_c", -2.0))
        );
        assert_eq!(decode(TEMPERATURE, &[0x00, 0x80]).unwrap(), None);
        // 0x1388 = 5000 → 50.00 %.
        assert_eq!(
            decode(HUMIDITY, &[0x88, 0x13]).unwrap(),
            Some(Reading::new("humidity_pct", 50.0))
        );
        assert_eq!(decode(HUMIDITY, &[0xFF, 0xFF]).unwrap(), None);
        // 1013250 × 0.1 Pa = 101325 Pa = 1013.25 hPa.
        let hpa = decode(PRESSURE, &1_013_250u32.to_le_bytes())
            .unwrap()
            .unwrap();
        assert!((hpa.value - 1013.25).abs() < 1e-9, "{hpa:?}");
        assert!(decode(HUMIDITY, &[1]).is_err());
        assert!(decode(0x2A19, &[50]).is_err());
    }
}
