//! Ruuvi RAWv2 (data format 5): the manufacturer data of company 0x0499,
//! 24 bytes, big-endian. Each value has a marker for "not available"
//! (the largest or smallest value of its type), which is left out.

use crate::{DecodeError, Reading};

/// Ruuvi Innovations' Bluetooth company identifier.
pub const COMPANY_ID: u16 = 0x0499;

/// The first byte of a RAWv2 payload.
pub const FORMAT: u8 = 5;

/// A decoded RAWv2 advertisement.
#[derive(Debug, Clone, PartialEq)]
pub struct Advertisement {
    /// The values the tag knew.
    pub readings: Vec<Reading>,
    /// The measurement sequence number, if given: repeated advertisements
    /// of one measurement carry the same number.
    pub sequence: Option<u16>,
    /// The tag's MAC address, if given.
    pub mac: Option<[u8; 6]>,
}

/// Decodes the manufacturer data that follows the company id.
pub fn decode(data: &[u8]) -> Result<Advertisement, DecodeError> {
    let format = "Ruuvi RAWv2";
    let Some(&first) = data.first() else {
        return Err(DecodeError::Length {
            format,
            got: 0,
            expected: "24",
        });
    };
    if first != FORMAT {
        return Err(DecodeError::Unsupported {
            format,
            what: format!("data format {first}, not 5"),
        });
    }
    let d: &[u8; 24] = data.try_into().map_err(|_| DecodeError::Length {
        format,
        got: data.len(),
        expected: "24",
    })?;
    let u16_at = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]);
    let i16_at = |i: usize| i16::from_be_bytes([d[i], d[i + 1]]);
    let mut readings = Vec::with_capacity(10);
    let mut push = |name, value: Option<f64>| {
        if let Some(value) = value {
            readings.push(Reading::new(name, value));
        }
    };
    let signed = |raw: i16, scale: f64| (raw != i16::MIN).then(|| f64::from(raw) * scale);
    push("temperature_c", signed(i16_at(1), 0.005));
    let humidity = u16_at(3);
    push(
        "humidity_pct",
        (humidity != u16::MAX).then(|| f64::from(humidity) * 0.0025),
    );
    let pressure = u16_at(5);
    push(
        "pressure_hpa",
        (pressure != u16::MAX).then(|| (f64::from(pressure) + 50_000.0) / 100.0),
    );
    push("acceleration_x_mg", signed(i16_at(7), 1.0));
    push("acceleration_y_mg", signed(i16_at(9), 1.0));
    push("acceleration_z_mg", signed(i16_at(11), 1.0));
    // 11 bits of battery voltage above 1600 mV, 5 bits of transmit power
    // in 2 dBm steps above -40 dBm.
    let power = u16_at(13);
    let battery = power >> 5;
    push(
        "battery_mv",
        (battery != 0x7FF).then(|| f64::from(battery) + 1600.0),
    );
    let tx = power & 0x1F;
    push(
        "tx_power_dbm",
        (tx != 0x1F).then(|| f64::from(tx) * 2.0 - 40.0),
    );
    push(
        "movement_count",
        (d[15] != u8::MAX).then(|| f64::from(d[15])),
    );
    let sequence = u16_at(16);
    let mac: [u8; 6] = [d[18], d[19], d[20], d[21], d[22], d[23]];
    Ok(Advertisement {
        readings,
        sequence: (sequence != u16::MAX).then_some(sequence),
        mac: (mac != [0xFF; 6]).then_some(mac),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn value(a: &Advertisement, name: &str) -> Option<f64> {
        a.readings.iter().find(|r| r.name == name).map(|r| r.value)
    }

    /// The format's published "valid data" vector and its published values.
    #[test]
    fn the_published_vector_reads_as_published() {
        let a = decode(&hex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")).unwrap();
        let close = |name: &str, expected: f64| {
            let got = value(&a, name).unwrap();
            assert!((got - expected).abs() < 1e-9, "{name}: {got} != {expected}");
        };
        close("temperature_c", 24.3);
        close("humidity_pct", 53.49);
        close("pressure_hpa", 1000.44);
        close("acceleration_x_mg", 4.0);
        close("acceleration_y_mg", -4.0);
        close("acceleration_z_mg", 1036.0);
        close("battery_mv", 2977.0);
        close("tx_power_dbm", 4.0);
        close("movement_count", 66.0);
        assert_eq!(a.sequence, Some(205));
        assert_eq!(a.mac, Some([0xCB, 0xB8, 0x33, 0x4C, 0x88, 0x4F]));
    }

    /// The published "invalid values" vector: every value marked unknown.
    #[test]
    fn values_marked_unknown_are_left_out() {
        let a = decode(&hex("058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF")).unwrap();
        assert_eq!(a.readings, []);
        assert_eq!((a.sequence, a.mac), (None, None));
    }

    #[test]
    fn other_formats_and_lengths_are_refused() {
        assert!(decode(&hex("0312FC")).is_err());
        assert!(decode(&hex("0512FC5394")).is_err());
        assert!(decode(&[]).is_err());
    }
}
