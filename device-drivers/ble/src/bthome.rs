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
    /// An encrypted packet's counter, when it has no packet id: the same
    /// counter again is the same packet advertised again.
    pub counter: Option<u32>,
    /// Whether the device sends when something happens rather than at an
    /// interval.
    pub trigger_based: bool,
}

/// Decodes the service data of UUID 0xFCD2 (without the UUID). An
/// encrypted packet needs the device's key: [`decode_with_key`].
pub fn decode(data: &[u8]) -> Result<Advertisement, DecodeError> {
    let (info, rest) = header(data)?;
    if info & 0x01 != 0 {
        return Err(DecodeError::Unsupported {
            format: FORMAT,
            what: "an encrypted packet, and no key is configured for this device".into(),
        });
    }
    objects(info, rest, data.len())
}

/// Decodes service data that may be encrypted (AES-128-CCM with the
/// device's 16-byte bind key, as BTHome v2 specifies: the nonce is the
/// device's MAC address, the UUID, the device information byte and the
/// packet's 4-byte counter; the tag is 4 bytes). `mac` is the address as
/// written, most significant byte first. A packet that is not encrypted is
/// decoded as it is; one whose tag does not verify is refused.
pub fn decode_with_key(
    data: &[u8],
    mac: [u8; 6],
    key: &[u8; 16],
) -> Result<Advertisement, DecodeError> {
    use ccm::aead::{Aead, KeyInit, generic_array::GenericArray};
    let (info, rest) = header(data)?;
    if info & 0x01 == 0 {
        return objects(info, rest, data.len());
    }
    // Objects, then the counter (4) and the tag (4).
    let Some(split) = rest.len().checked_sub(8) else {
        return Err(DecodeError::Length {
            format: FORMAT,
            got: data.len(),
            expected: "at least 9 for an encrypted packet",
        });
    };
    let (sealed, tail) = rest.split_at(split);
    let (counter, tag) = tail.split_at(4);
    let mut nonce = [0u8; 13];
    nonce[..6].copy_from_slice(&mac);
    nonce[6..8].copy_from_slice(&SERVICE_UUID.to_le_bytes());
    nonce[8] = info;
    nonce[9..].copy_from_slice(counter);
    let cipher = ccm::Ccm::<aes::Aes128, ccm::consts::U4, ccm::consts::U13>::new(
        GenericArray::from_slice(key),
    );
    let mut message = sealed.to_vec();
    message.extend_from_slice(tag);
    let plain = cipher
        .decrypt(GenericArray::from_slice(&nonce), message.as_slice())
        .map_err(|_| DecodeError::Unsupported {
            format: FORMAT,
            what: "an encrypted packet whose tag does not verify (a wrong key, or damaged)".into(),
        })?;
    let mut advertisement = objects(info, &plain, data.len())?;
    // The counter is the packet's own: repeats of a packet carry it again.
    if advertisement.packet_id.is_none() {
        advertisement.counter = Some(u32::from_le_bytes([
            counter[0], counter[1], counter[2], counter[3],
        ]));
    }
    Ok(advertisement)
}

/// The device information byte, checked, and what follows it.
fn header(data: &[u8]) -> Result<(u8, &[u8]), DecodeError> {
    let (&info, rest) = data.split_first().ok_or(DecodeError::Length {
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
    Ok((info, rest))
}

/// The objects of a (decrypted) packet.
fn objects(info: u8, mut rest: &[u8], length: usize) -> Result<Advertisement, DecodeError> {
    let mut advertisement = Advertisement {
        readings: Vec::new(),
        packet_id: None,
        counter: None,
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
            got: length,
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
        assert!(error(&[0x41, 0x02, 0xCA, 0x09]).contains("no key is configured"));
        assert!(error(&[0x40, 0x02, 0xCA]).contains("room for every object"));
        assert!(error(&[0x40, 0x02, 0xCA, 0x09, 0xF7, 0x00]).contains("object id 0xF7"));
    }

    /// An encrypted packet laid out by an independent implementation
    /// (Python's `cryptography`, AESCCM with a 4-byte tag): key
    /// 231d39c1d7cc1ab1aee224cd096db932, MAC 54:48:E6:8F:80:A5, counter
    /// 0x33221100 (bytes 00 11 22 33), the objects 02 CA 09 03 BF 13.
    const KEY: [u8; 16] = [
        0x23, 0x1d, 0x39, 0xc1, 0xd7, 0xcc, 0x1a, 0xb1, 0xae, 0xe2, 0x24, 0xcd, 0x09, 0x6d, 0xb9,
        0x32,
    ];
    const MAC: [u8; 6] = [0x54, 0x48, 0xE6, 0x8F, 0x80, 0xA5];
    const SEALED: [u8; 15] = [
        0x41, 0xa4, 0x72, 0x66, 0xc9, 0x5f, 0x73, 0x00, 0x11, 0x22, 0x33, 0x78, 0x23, 0x72, 0x14,
    ];

    #[test]
    fn an_encrypted_packet_reads_with_its_key_and_not_without() {
        let a = decode_with_key(&SEALED, MAC, &KEY).unwrap();
        close(&a, &[("temperature_c", 25.06), ("humidity_pct", 50.55)]);
        assert_eq!(a.counter, Some(0x3322_1100));
        assert!(decode(&SEALED).unwrap_err().to_string().contains("no key"));
        let mut wrong = KEY;
        wrong[0] ^= 1;
        let e = decode_with_key(&SEALED, MAC, &wrong).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let mut damaged = SEALED;
        damaged[3] ^= 0x80;
        assert!(decode_with_key(&damaged, MAC, &KEY).is_err());
        // Another device's address is another nonce.
        assert!(decode_with_key(&SEALED, [0; 6], &KEY).is_err());
        assert!(decode_with_key(&SEALED[..8], MAC, &KEY).is_err());
        // An unencrypted packet reads the same with a key.
        let plain = [0x40, 0x02, 0xCA, 0x09];
        assert_eq!(decode_with_key(&plain, MAC, &KEY), decode(&plain));
    }
}
