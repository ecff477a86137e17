//! BTHome v2: service data of UUID 0xFCD2. A device information byte
//! (encryption, trigger-based, version), then objects: an id, then a value
//! whose size and factor the id fixes. The objects of a packet come in
//! ascending id order; an id this decoder does not know ends the packet
//! with an error, since its size cannot be known.

use crate::{DecodeError, Reading};

/// The 16-bit service UUID whose service data is BTHome.
pub const SERVICE_UUID: u16 = 0xFCD2;

const FORMAT: &str = "BTHome v2";

/// How an object's value is laid out.
#[derive(Clone, Copy)]
enum Kind {
    U8,
    U16,
    S16,
    U24,
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::U8 => 1,
            Kind::U16 | Kind::S16 => 2,
            Kind::U24 => 3,
        }
    }

    /// The little-endian value of `bytes` (of [`Kind::size`]).
    fn read(self, bytes: &[u8]) -> f64 {
        match self {
            Kind::U8 => f64::from(bytes[0]),
            Kind::U16 => f64::from(u16::from_le_bytes([bytes[0], bytes[1]])),
            Kind::S16 => f64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
            Kind::U24 => f64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], 0])),
        }
    }
}

/// The objects this decoder knows: id, field, layout, factor.
const OBJECTS: &[(u8, &str, Kind, f64)] = &[
    (0x01, "battery_pct", Kind::U8, 1.0),
    (0x02, "temperature_c", Kind::S16, 0.01),
    (0x03, "humidity_pct", Kind::U16, 0.01),
    (0x04, "pressure_hpa", Kind::U24, 0.01),
    (0x05, "illuminance_lux", Kind::U24, 0.01),
    (0x08, "dewpoint_c", Kind::S16, 0.01),
    (0x09, "count", Kind::U8, 1.0),
    (0x0A, "energy_kwh", Kind::U24, 0.001),
    (0x0B, "power_w", Kind::U24, 0.01),
    (0x0C, "voltage_v", Kind::U16, 0.001),
    (0x0D, "pm2_5_ugm3", Kind::U16, 1.0),
    (0x0E, "pm10_ugm3", Kind::U16, 1.0),
    (0x0F, "generic_boolean", Kind::U8, 1.0),
    (0x12, "co2_ppm", Kind::U16, 1.0),
    (0x13, "tvoc_ugm3", Kind::U16, 1.0),
    (0x14, "moisture_pct", Kind::U16, 0.01),
    (0x21, "motion", Kind::U8, 1.0),
    (0x2D, "window", Kind::U8, 1.0),
    (0x2E, "humidity_pct", Kind::U8, 1.0),
    (0x2F, "moisture_pct", Kind::U8, 1.0),
    (0x3A, "button", Kind::U8, 1.0),
    (0x3F, "rotation_deg", Kind::S16, 0.1),
    (0x40, "distance_mm", Kind::U16, 1.0),
    (0x43, "current_a", Kind::U16, 0.001),
    (0x45, "temperature_c", Kind::S16, 0.1),
    (0x4A, "voltage_v", Kind::U16, 0.1),
];

/// The packet id object: a counter that repeats in repeated advertisements.
const PACKET_ID: u8 = 0x00;

/// A decoded BTHome advertisement.
#[derive(Debug, Clone, PartialEq)]
pub struct Advertisement {
    /// Its readings, in the packet's order.
    pub readings: Vec<Reading>,
    /// The packet id, if the device sends one: the same id again is the
    /// same measurement advertised again.
    pub packet_id: Option<u8>,
    /// Whether the device sends when something happens rather than at an
    /// interval.
    pub trigger_based: bool,
}

/// Decodes the service data of UUID 0xFCD2 (without the UUID).
pub fn decode(data: &[u8]) -> Result<Advertisement, DecodeError> {
    let (&info, mut rest) = data.split_first().ok_or(DecodeError::Length {
        format: FORMAT,
        got: 0,
        expected: "at least 1",
    })?;
    let version = info >> 5;
    if version != 2 {
        return Err(DecodeError::Unsupported {
            format: FORMAT,
            what: format!("version {version}, not 2"),
        });
    }
    if info & 0x01 != 0 {
        return Err(DecodeError::Unsupported {
            format: FORMAT,
            what: "an encrypted packet; encrypted BTHome is not read yet".into(),
        });
    }
    let mut advertisement = Advertisement {
        readings: Vec::new(),
        packet_id: None,
        trigger_based: info & 0x04 != 0,
    };
    while let Some((&id, tail)) = rest.split_first() {
        let (name, kind, factor) = if id == PACKET_ID {
            ("", Kind::U8, 1.0)
        } else {
            let &(_, name, kind, factor) = OBJECTS
                .iter()
                .find(|(known, ..)| *known == id)
                .ok_or_else(|| DecodeError::Unsupported {
                    format: FORMAT,
                    what: format!("object id 0x{id:02X}, whose size is not known here"),
                })?;
            (name, kind, factor)
        };
        let bytes = tail.get(..kind.size()).ok_or(DecodeError::Length {
            format: FORMAT,
            got: data.len(),
            expected: "room for every object's value",
        })?;
        if id == PACKET_ID {
            advertisement.packet_id = Some(bytes[0]);
        } else {
            advertisement
                .readings
                .push(Reading::new(name, kind.read(bytes) * factor));
        }
        rest = &tail[kind.size()..];
    }
    Ok(advertisement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Advertisement, expected: &[(&str, f64)]) {
        assert_eq!(a.readings.len(), expected.len(), "{a:?}");
        for (r, (name, value)) in a.readings.iter().zip(expected) {
            assert_eq!(r.name, *name);
            assert!((r.value - value).abs() < 1e-9, "{r:?} != {value}");
        }
    }

    /// Examples from the format's documentation and its implementations:
    /// 0x09CA = 2506 → 25.06 °C, 0x13BF = 5055 → 50.55 %; 0x0929 = 2345 →
    /// 23.45 °C and motion.
    #[test]
    fn published_examples_read_as_published() {
        let a = decode(&[0x40, 0x02, 0xCA, 0x09, 0x03, 0xBF, 0x13]).unwrap();
        close(&a, &[("temperature_c", 25.06), ("humidity_pct", 50.55)]);
        assert_eq!((a.packet_id, a.trigger_based), (None, false));
        let a = decode(&[0x40, 0x02, 0x29, 0x09, 0x21, 0x01]).unwrap();
        close(&a, &[("temperature_c", 23.45), ("motion", 1.0)]);
    }

    /// A Shelly BLU H&T style packet: packet id, battery, humidity (uint8),
    /// temperature (sint16, 0.1 °C; 0xFF38 = -200 → -20.0 °C), trigger flag.
    #[test]
    fn packet_id_battery_and_negative_temperatures() {
        let a = decode(&[0x44, 0x00, 0x07, 0x01, 0x5A, 0x2E, 0x30, 0x45, 0x38, 0xFF]).unwrap();
        close(
            &a,
            &[
                ("battery_pct", 90.0),
                ("humidity_pct", 48.0),
                ("temperature_c", -20.0),
            ],
        );
        assert_eq!((a.packet_id, a.trigger_based), (Some(7), true));
        // Pressure, uint24: 0x018A8C = 101004 → 1010.04 hPa.
        let a = decode(&[0x40, 0x04, 0x8C, 0x8A, 0x01]).unwrap();
        close(&a, &[("pressure_hpa", 1010.04)]);
    }

    #[test]
    fn what_cannot_be_read_is_refused_with_the_reason() {
        let error = |bytes: &[u8]| decode(bytes).unwrap_err().to_string();
        assert!(error(&[]).contains("0 bytes"));
        assert!(error(&[0x20, 0x02, 0xCA, 0x09]).contains("version 1"));
        assert!(error(&[0x41, 0x02, 0xCA, 0x09]).contains("encrypted"));
        assert!(error(&[0x40, 0x02, 0xCA]).contains("room for every object"));
        assert!(error(&[0x40, 0x02, 0xCA, 0x09, 0xF7, 0x00]).contains("object id 0xF7"));
    }
}
