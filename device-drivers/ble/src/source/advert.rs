//! An advertisement becomes a record, or nothing (a repeat, a device
//! filtered out), or a rejection with the reason: no I/O here.

use std::collections::HashMap;

use eddy_driver::{Record, Rejected};

use crate::{Reading, bthome, ruuvi};

/// What the scanner saw of one advertisement.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    /// The device's address, `AA:BB:CC:DD:EE:FF`.
    pub(crate) address: String,
    /// Its advertised name, if any.
    pub(crate) name: Option<String>,
    /// The signal strength, dBm.
    pub(crate) rssi: Option<i16>,
    /// Service data by 16-bit UUID.
    pub(crate) service_data: Vec<(u16, Vec<u8>)>,
    /// Manufacturer data by company id.
    pub(crate) manufacturer_data: Vec<(u16, Vec<u8>)>,
}

/// A device the configuration knows.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    /// The record key to use instead of the address.
    pub(crate) key: Option<String>,
    /// Its BTHome bind key.
    pub(crate) bindkey: Option<[u8; 16]>,
}

/// A payload's readings and packet counter, or why it cannot be read.
/// The flag says the counter only grows (an encrypted packet's), so an
/// older one is a replay.
type Decoded = Result<(Vec<Reading>, Option<u32>, bool), String>;

/// Turns advertisements into records: filters, decodes, drops repeats.
#[derive(Debug, Default)]
pub(crate) struct Advertisements {
    /// Upper-case addresses: only these, if any.
    pub(crate) addresses: Vec<String>,
    /// Only devices whose name starts with one of these, if any.
    pub(crate) name_prefixes: Vec<String>,
    /// Devices by upper-case address.
    pub(crate) known: HashMap<String, Known>,
    /// The last packet counter seen per device and format.
    pub(crate) last: HashMap<(String, &'static str), u32>,
    /// Repeats (and replays) dropped so far.
    pub(crate) repeats: u64,
}

impl Advertisements {
    /// Whether the device passes the filters.
    fn wanted(&self, address: &str, name: Option<&str>) -> bool {
        let by_address = self.addresses.is_empty() || self.addresses.iter().any(|a| a == address);
        let by_name = self.name_prefixes.is_empty()
            || name.is_some_and(|n| self.name_prefixes.iter().any(|p| n.starts_with(p.as_str())));
        by_address && by_name
    }

    /// The records of one advertisement (one per format it carries that
    /// is new), and what could not be read. `time_ms` is when it came.
    pub(crate) fn take(
        &mut self,
        seen: &Seen,
        time_ms: i64,
        records: &mut Vec<Record>,
        rejected: &mut Vec<Rejected>,
    ) {
        let address = seen.address.to_ascii_uppercase();
        if !self.wanted(&address, seen.name.as_deref()) {
            return;
        }
        let known = self.known.get(&address).cloned();
        let key = known
            .as_ref()
            .and_then(|k| k.key.clone())
            .unwrap_or_else(|| address.clone());
        let mut decoded: Vec<(&'static str, Decoded, &[u8])> = Vec::new();
        for (uuid, data) in &seen.service_data {
            if *uuid == bthome::SERVICE_UUID {
                let result = match known.as_ref().and_then(|k| k.bindkey) {
                    // A device with a key sends encrypted packets: a plain
                    // one in its name is someone else's.
                    Some(_) if data.first().is_some_and(|info| info & 0x01 == 0) => {
                        Err(crate::DecodeError::Unsupported {
                            format: "BTHome v2",
                            what: "an unencrypted packet from a device that has a key".into(),
                        })
                    }
                    Some(bindkey) => match mac(&address) {
                        Some(mac) => bthome::decode_with_key(data, mac, &bindkey),
                        None => bthome::decode(data),
                    },
                    None => bthome::decode(data),
                }
                .map(|a| {
                    let counter = a.packet_id.map(u32::from).or(a.counter);
                    let replay_guard = a.packet_id.is_none() && a.counter.is_some();
                    (a.readings, counter, replay_guard)
                })
                .map_err(|e| e.to_string());
                decoded.push(("bthome", result, data));
            }
        }
        for (company, data) in &seen.manufacturer_data {
            if *company == ruuvi::COMPANY_ID && data.first() == Some(&ruuvi::FORMAT) {
                let result = ruuvi::decode(data)
                    .map(|a| (a.readings, a.sequence.map(u32::from), false))
                    .map_err(|e| e.to_string());
                decoded.push(("ruuvi", result, data));
            }
        }
        for (format, result, data) in decoded {
            match result {
                Err(reason) => rejected.push(Rejected {
                    origin: format!("{format} advertisement from {address}"),
                    input: hex(data),
                    reason,
                }),
                Ok((readings, counter, grows)) => {
                    if let Some(counter) = counter {
                        let last = self.last.get(&(address.clone(), format)).copied();
                        // The same counter is the same packet heard again;
                        // an encrypted packet's counter only grows, so an
                        // older one is a replay.
                        let stale = match last {
                            Some(last) if grows => counter <= last,
                            Some(last) => counter == last,
                            None => false,
                        };
                        if stale {
                            self.repeats += 1;
                            continue;
                        }
                        self.last.insert((address.clone(), format), counter);
                    }
                    let mut record = Record::new(key.as_str(), time_ms);
                    for r in readings {
                        record = record.with(r.name, r.value);
                    }
                    if let Some(rssi) = seen.rssi {
                        record = record.with("rssi_dbm", i64::from(rssi));
                    }
                    if let Some(counter) = counter {
                        record = record.with("packet", i64::from(counter));
                    }
                    records.push(record);
                }
            }
        }
    }
}

/// The six bytes of an address written `AA:BB:CC:DD:EE:FF`.
pub(crate) fn mac(address: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = address.split(':');
    for byte in &mut out {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Bytes as hex, for the dead-letter log.
pub(crate) fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_driver::Value;

    fn bthome(address: &str, data: &[u8], rssi: i16) -> Seen {
        Seen {
            address: address.into(),
            name: Some("ATC_rack3".into()),
            rssi: Some(rssi),
            service_data: vec![(0xFCD2, data.to_vec())],
            manufacturer_data: Vec::new(),
        }
    }

    #[test]
    fn repeats_of_a_packet_are_one_record_with_rssi_and_counter() {
        let mut ads = Advertisements::default();
        let (mut records, mut rejected) = (Vec::new(), Vec::new());
        // Packet 7: temperature 25.06 °C; then the same packet again.
        let packet = [0x40, 0x00, 0x07, 0x02, 0xCA, 0x09];
        ads.take(
            &bthome("a4:c1:38:00:00:01", &packet, -60),
            1,
            &mut records,
            &mut rejected,
        );
        ads.take(
            &bthome("A4:C1:38:00:00:01", &packet, -58),
            2,
            &mut records,
            &mut rejected,
        );
        let next = [0x40, 0x00, 0x08, 0x02, 0xCB, 0x09];
        ads.take(
            &bthome("A4:C1:38:00:00:01", &next, -61),
            3,
            &mut records,
            &mut rejected,
        );
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(ads.repeats, 1);
        let r = &records[0];
        assert_eq!(r.key.as_ref(), "A4:C1:38:00:00:01");
        assert_eq!(r.get("rssi_dbm"), Some(&Value::I64(-60)));
        assert_eq!(r.get("packet"), Some(&Value::I64(7)));
        let Some(Value::F64(t)) = records[1].get("temperature_c") else {
            panic!("{:?}", records[1]);
        };
        assert!((t - 25.07).abs() < 1e-9);
        assert!(rejected.is_empty());
    }

    #[test]
    fn filters_names_and_bad_payloads() {
        let mut ads = Advertisements {
            addresses: vec!["A4:C1:38:00:00:01".into()],
            ..Default::default()
        };
        ads.known.insert(
            "A4:C1:38:00:00:01".into(),
            Known {
                key: Some("rack-3".into()),
                bindkey: None,
            },
        );
        let (mut records, mut rejected) = (Vec::new(), Vec::new());
        let ok = [0x40, 0x02, 0xCA, 0x09];
        ads.take(
            &bthome("A4:C1:38:00:00:02", &ok, -60),
            1,
            &mut records,
            &mut rejected,
        );
        assert!(records.is_empty(), "filtered out by address");
        ads.take(
            &bthome("A4:C1:38:00:00:01", &ok, -60),
            1,
            &mut records,
            &mut rejected,
        );
        assert_eq!(records[0].key.as_ref(), "rack-3");
        // An object id whose size is unknown: dead-lettered with the reason.
        ads.take(
            &bthome("A4:C1:38:00:00:01", &[0x40, 0xF7, 0x00], -60),
            1,
            &mut records,
            &mut rejected,
        );
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].input, "40f700");
        assert!(rejected[0].reason.contains("0xF7"), "{:?}", rejected[0]);
        let mut by_name = Advertisements {
            name_prefixes: vec!["SHT".into()],
            ..Default::default()
        };
        by_name.take(
            &bthome("A4:C1:38:00:00:01", &ok, -60),
            1,
            &mut records,
            &mut rejected,
        );
        assert_eq!(records.len(), 1, "ATC_rack3 does not start with SHT");
    }

    #[test]
    fn addresses_parse_to_bytes() {
        assert_eq!(
            mac("54:48:E6:8F:80:A5"),
            Some([0x54, 0x48, 0xE6, 0x8F, 0x80, 0xA5])
        );
        assert_eq!(mac("54:48:E6:8F:80"), None);
        assert_eq!(mac("54:48:E6:8F:80:A5:00"), None);
    }

    #[test]
    fn a_keyed_device_takes_only_fresh_encrypted_packets() {
        let address = "54:48:E6:8F:80:A5";
        let mut ads = Advertisements::default();
        let key = [
            0x23, 0x1d, 0x39, 0xc1, 0xd7, 0xcc, 0x1a, 0xb1, 0xae, 0xe2, 0x24, 0xcd, 0x09, 0x6d,
            0xb9, 0x32,
        ];
        ads.known.insert(
            address.into(),
            Known {
                key: None,
                bindkey: Some(key),
            },
        );
        // The encrypted vector of the decoder's tests (counter 0x33221100).
        let sealed = [
            0x41, 0xa4, 0x72, 0x66, 0xc9, 0x5f, 0x73, 0x00, 0x11, 0x22, 0x33, 0x78, 0x23, 0x72,
            0x14,
        ];
        let (mut records, mut rejected) = (Vec::new(), Vec::new());
        ads.take(
            &bthome(address, &sealed, -60),
            1,
            &mut records,
            &mut rejected,
        );
        assert_eq!(records.len(), 1, "{rejected:?}");
        // Heard again, or replayed after a newer one: dropped.
        ads.take(
            &bthome(address, &sealed, -60),
            2,
            &mut records,
            &mut rejected,
        );
        ads.last.insert((address.into(), "bthome"), 0x3322_1101);
        ads.take(
            &bthome(address, &sealed, -60),
            3,
            &mut records,
            &mut rejected,
        );
        assert_eq!(records.len(), 1);
        assert_eq!(ads.repeats, 2);
        // A plain packet in the name of a keyed device is refused.
        ads.take(
            &bthome(address, &[0x40, 0x02, 0xCA, 0x09], -60),
            4,
            &mut records,
            &mut rejected,
        );
        assert_eq!(records.len(), 1);
        assert!(rejected[0].reason.contains("unencrypted"), "{rejected:?}");
    }
}
