//! GATT: a connection to a device serving Environmental Sensing
//! characteristics, notifications subscribed, values that cannot be
//! notified read at an interval, the connection made again when it drops.
//!
//! [`value_record`] turns one value into a record with no I/O; [`follow`]
//! is the thin loop around btleplug that feeds it.

use std::time::Duration;

use btleplug::api::{Central, CentralEvent, CharPropFlags, Characteristic, Peripheral as _};
use btleplug::platform::{Adapter, Peripheral};
use eddy_driver::{Record, Rejected};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::advert::hex;
use super::scan::short_uuid;
use crate::ess;

/// A device the source connects to.
#[derive(Debug, Clone)]
pub(crate) struct GattDevice {
    /// Its upper-case address.
    pub(crate) address: String,
    /// Its record key.
    pub(crate) key: String,
    /// How often characteristics that cannot notify are read.
    pub(crate) read_interval: Duration,
}

/// What a connection reports to the scan loop.
#[derive(Debug)]
pub(crate) enum GattEvent {
    /// Connected and subscribed.
    Up {
        /// The device's record key.
        key: String,
    },
    /// The connection could not be made, or dropped.
    Down {
        /// The device's record key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A value notified or read.
    Value {
        /// The device.
        device: GattDevice,
        /// The characteristic's 16-bit UUID.
        uuid: u16,
        /// The value as it came.
        value: Vec<u8>,
        /// When it came.
        time_ms: i64,
    },
}

/// The characteristics read here.
const CHARACTERISTICS: [u16; 3] = [ess::TEMPERATURE, ess::HUMIDITY, ess::PRESSURE];

/// Waits after a failed connection: doubled each time, up to a minute.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const LAST_BACKOFF: Duration = Duration::from_secs(60);
/// How long connecting (and resolving services) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One value of a device's characteristic as a record (key, the reading
/// as its field, the arrival time), nothing when the sensor says it does
/// not know the value, or a rejection saying why the bytes are not one.
pub(crate) fn value_record(
    key: &str,
    address: &str,
    uuid: u16,
    value: &[u8],
    time_ms: i64,
) -> Result<Option<Record>, Rejected> {
    match ess::decode(uuid, value) {
        Ok(reading) => Ok(reading.map(|r| Record::new(key, time_ms).with(r.name, r.value))),
        Err(e) => Err(Rejected {
            origin: format!("GATT characteristic 0x{uuid:04X} of {address}"),
            input: hex(value),
            reason: e.to_string(),
        }),
    }
}

/// Keeps a connection to `device` until the receiving side goes away:
/// connects, subscribes, reports values; after a failure or a drop, waits
/// (1 s, doubled up to a minute, back to 1 s after a good connection) and
/// connects again.
pub(crate) async fn follow(adapter: Adapter, device: GattDevice, tx: mpsc::Sender<GattEvent>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let reason = match connection(&adapter, &device, &tx).await {
            Ok(reason) => {
                backoff = FIRST_BACKOFF;
                reason
            }
            Err(reason) => reason,
        };
        let down = GattEvent::Down {
            key: device.key.clone(),
            reason,
        };
        if tx.send(down).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LAST_BACKOFF);
    }
}

/// One connection: `Ok` with the reason it ended once it was up, `Err`
/// with the reason it could not be made.
async fn connection(
    adapter: &Adapter,
    device: &GattDevice,
    tx: &mpsc::Sender<GattEvent>,
) -> Result<String, String> {
    // Listen before connecting, so a drop is not missed.
    let mut events = adapter.events().await.map_err(|e| e.to_string())?;
    let peripheral = find(adapter, &device.address).await?;
    let result = subscribed(&peripheral, device, tx, &mut events).await;
    if result.is_err() {
        // Leave no half-made connection behind for the next attempt.
        let _ = peripheral.disconnect().await;
    }
    result
}

/// The peripheral with this address, once the adapter has heard it.
async fn find(adapter: &Adapter, address: &str) -> Result<Peripheral, String> {
    let peripherals = adapter.peripherals().await.map_err(|e| e.to_string())?;
    peripherals
        .into_iter()
        .find(|p| p.address().to_string().eq_ignore_ascii_case(address))
        .ok_or_else(|| "not heard by the adapter yet (out of range or off)".to_owned())
}

async fn subscribed(
    peripheral: &Peripheral,
    device: &GattDevice,
    tx: &mpsc::Sender<GattEvent>,
    events: &mut (impl futures_util::Stream<Item = CentralEvent> + Unpin),
) -> Result<String, String> {
    if !peripheral.is_connected().await.unwrap_or(false) {
        tokio::time::timeout(CONNECT_TIMEOUT, peripheral.connect())
            .await
            .map_err(|_| format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e| format!("connecting: {e}"))?;
    }
    peripheral
        .discover_services()
        .await
        .map_err(|e| format!("discovering services: {e}"))?;
    let characteristics: Vec<(u16, Characteristic)> = peripheral
        .characteristics()
        .into_iter()
        .filter_map(|c| {
            let uuid = short_uuid(c.uuid)?;
            CHARACTERISTICS.contains(&uuid).then_some((uuid, c))
        })
        .collect();
    if characteristics.is_empty() {
        return Err("serves no Environmental Sensing temperature, humidity or pressure".into());
    }
    let mut notifications = peripheral
        .notifications()
        .await
        .map_err(|e| format!("notifications: {e}"))?;
    let notifies = |c: &Characteristic| {
        c.properties
            .intersects(CharPropFlags::NOTIFY | CharPropFlags::INDICATE)
    };
    let readable: Vec<&(u16, Characteristic)> = characteristics
        .iter()
        .filter(|(_, c)| c.properties.contains(CharPropFlags::READ))
        .collect();
    // What can be read is read once now (a first value without waiting for
    // a change), then subscribed to; what cannot notify is read again at
    // the interval.
    read(peripheral, device, tx, readable.iter().copied()).await?;
    for (uuid, c) in characteristics.iter().filter(|(_, c)| notifies(c)) {
        peripheral
            .subscribe(c)
            .await
            .map_err(|e| format!("subscribing to 0x{uuid:04X}: {e}"))?;
    }
    let up = GattEvent::Up {
        key: device.key.clone(),
    };
    tx.send(up).await.map_err(|_| "stopped")?;
    let polled: Vec<&(u16, Characteristic)> = readable
        .iter()
        .copied()
        .filter(|(_, c)| !notifies(c))
        .collect();
    let mut reads = tokio::time::interval(device.read_interval);
    reads.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    reads.tick().await;
    let id = peripheral.id();
    loop {
        tokio::select! {
            note = notifications.next() => {
                let Some(note) = note else {
                    return Ok("the notification stream ended".into());
                };
                if let Some(uuid) = short_uuid(note.uuid) {
                    let value = value_event(device, uuid, note.value);
                    tx.send(value).await.map_err(|_| "stopped")?;
                }
            }
            event = events.next() => match event {
                Some(CentralEvent::DeviceDisconnected(gone)) if gone == id => {
                    return Ok("disconnected".into());
                }
                Some(_) => {}
                None => return Ok("the adapter's events ended".into()),
            },
            _ = reads.tick(), if !polled.is_empty() => {
                read(peripheral, device, tx, polled.iter().copied()).await?;
            }
        }
    }
}

/// Reads each characteristic and reports its value.
async fn read<'a>(
    peripheral: &Peripheral,
    device: &GattDevice,
    tx: &mpsc::Sender<GattEvent>,
    characteristics: impl Iterator<Item = &'a (u16, Characteristic)>,
) -> Result<(), String> {
    for (uuid, c) in characteristics {
        let value = peripheral
            .read(c)
            .await
            .map_err(|e| format!("reading 0x{uuid:04X}: {e}"))?;
        tx.send(value_event(device, *uuid, value))
            .await
            .map_err(|_| "stopped")?;
    }
    Ok(())
}

fn value_event(device: &GattDevice, uuid: u16, value: Vec<u8>) -> GattEvent {
    GattEvent::Value {
        device: device.clone(),
        uuid,
        value,
        time_ms: eddy_codec::now_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_driver::Value;

    #[test]
    fn a_value_is_a_record_an_unknown_one_nothing_and_a_bad_one_a_rejection() {
        // 0x0992 = 2450 → 24.50 °C.
        let record = value_record("rack-1", "C0:FF:EE:00:00:01", 0x2A6E, &[0x92, 0x09], 7)
            .unwrap()
            .unwrap();
        assert_eq!(record.key.as_ref(), "rack-1");
        assert_eq!(record.time, 7);
        assert_eq!(record.get("temperature_c"), Some(&Value::F64(24.5)));
        // 0x8000: the sensor does not know.
        assert!(
            value_record("rack-1", "C0:FF:EE:00:00:01", 0x2A6E, &[0x00, 0x80], 7)
                .unwrap()
                .is_none()
        );
        let rejected =
            value_record("rack-1", "C0:FF:EE:00:00:01", 0x2A6D, &[1, 2, 3], 7).unwrap_err();
        assert_eq!(rejected.input, "010203");
        assert!(rejected.origin.contains("0x2A6D"), "{rejected:?}");
        assert!(rejected.reason.contains("3 bytes"), "{rejected:?}");
    }
}
