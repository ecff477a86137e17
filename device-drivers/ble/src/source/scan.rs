//! Scanning, on the async runtime: btleplug's BlueZ backend reports
//! advertisements as D-Bus property changes; each becomes records through
//! [`Advertisements`]. The devices read over GATT are followed by tasks
//! of their own (see [`gatt`](super::gatt)) whose values come back here.

use btleplug::api::{Central, CentralEvent, Manager as _, Peripheral as _, ScanFilter};
use btleplug::platform::{Adapter, Manager};
use eddy_driver::{Batch, BoxFuture, DriverError, SourceOutput, SourceTask};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::advert::{Advertisements, Seen};
use super::gatt::{self, GattDevice, GattEvent};

/// Scans until the adapter or BlueZ goes away; the host runs it again
/// after a backoff.
pub struct BleSourceTask {
    adapter: Option<String>,
    advertisements: Advertisements,
    /// The devices connected to.
    gatt: Vec<GattDevice>,
    /// The source's name, for messages.
    name: String,
}

impl BleSourceTask {
    pub(crate) fn new(
        adapter: Option<String>,
        advertisements: Advertisements,
        gatt: Vec<GattDevice>,
        name: String,
    ) -> Self {
        BleSourceTask {
            adapter,
            advertisements,
            gatt,
            name,
        }
    }

    fn peer(&self) -> String {
        format!("bluetooth {}", self.adapter.as_deref().unwrap_or("adapter"))
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> DriverError {
        DriverError::unavailable(self.peer(), e)
    }

    /// The configured adapter, or the first.
    async fn adapter(&self) -> Result<Adapter, DriverError> {
        let manager = Manager::new().await.map_err(|e| self.unavailable(e))?;
        let adapters = manager.adapters().await.map_err(|e| self.unavailable(e))?;
        for adapter in adapters {
            let info = adapter.adapter_info().await.unwrap_or_default();
            let wanted = self
                .adapter
                .as_deref()
                .is_none_or(|name| info.split_whitespace().next() == Some(name));
            if wanted {
                return Ok(adapter);
            }
        }
        Err(self.unavailable("no such adapter (is bluetoothd running, the adapter powered?)"))
    }

    async fn scan(&mut self, out: &mut SourceOutput) -> Result<(), DriverError> {
        let adapter = self.adapter().await?;
        let mut events = adapter.events().await.map_err(|e| self.unavailable(e))?;
        adapter
            .start_scan(ScanFilter::default())
            .await
            .map_err(|e| self.unavailable(e))?;
        out.connected();
        // The connections end with this scan (dropping the set aborts them).
        let (tx, mut values) = mpsc::channel(64);
        let mut connections = JoinSet::new();
        for device in &self.gatt {
            connections.spawn(gatt::follow(adapter.clone(), device.clone(), tx.clone()));
        }
        drop(tx);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => self.advertised(&adapter, event, out).await?,
                    None => break,
                },
                Some(value) = values.recv() => self.gatt_event(value, out).await?,
            }
        }
        Err(self.unavailable("the adapter's events ended"))
    }

    /// The records of one advertisement.
    async fn advertised(
        &mut self,
        adapter: &Adapter,
        event: CentralEvent,
        out: &mut SourceOutput,
    ) -> Result<(), DriverError> {
        let (id, mut seen) = match event {
            CentralEvent::ServiceDataAdvertisement { id, service_data } => (
                id,
                Seen {
                    service_data: service_data
                        .into_iter()
                        .filter_map(|(uuid, data)| short_uuid(uuid).map(|u| (u, data)))
                        .collect(),
                    ..Seen::default()
                },
            ),
            CentralEvent::ManufacturerDataAdvertisement {
                id,
                manufacturer_data,
            } => (
                id,
                Seen {
                    manufacturer_data: manufacturer_data.into_iter().collect(),
                    ..Seen::default()
                },
            ),
            _ => return Ok(()),
        };
        let Ok(peripheral) = adapter.peripheral(&id).await else {
            return Ok(());
        };
        let Ok(Some(properties)) = peripheral.properties().await else {
            return Ok(());
        };
        seen.address = properties.address.to_string();
        seen.name = properties.local_name;
        seen.rssi = properties.rssi;
        let mut batch = Batch {
            records: Vec::new(),
            rejected: Vec::new(),
            position: None,
            ack: None,
            watermark: None,
        };
        self.advertisements.take(
            &seen,
            eddy_codec::now_ms(),
            &mut batch.records,
            &mut batch.rejected,
        );
        for r in &mut batch.rejected {
            r.origin = format!("{} ({})", self.name, r.origin);
        }
        out.send(batch).await?;
        Ok(())
    }

    /// A GATT connection's news: its state for `eddy status`, or a value.
    async fn gatt_event(
        &self,
        event: GattEvent,
        out: &mut SourceOutput,
    ) -> Result<(), DriverError> {
        match event {
            GattEvent::Up { key } => out.device_polled(&key, None),
            GattEvent::Down { key, reason } => {
                out.device_polled(&key, Some(&format!("GATT: {reason}")));
            }
            GattEvent::Value {
                device,
                uuid,
                value,
                time_ms,
            } => {
                out.device_polled(&device.key, None);
                let mut batch = Batch {
                    records: Vec::new(),
                    rejected: Vec::new(),
                    position: None,
                    ack: None,
                    watermark: None,
                };
                match gatt::value_record(&device.key, &device.address, uuid, &value, time_ms) {
                    Ok(record) => batch.records.extend(record),
                    Err(mut rejected) => {
                        rejected.origin = format!("{} ({})", self.name, rejected.origin);
                        batch.rejected.push(rejected);
                    }
                }
                out.send(batch).await?;
            }
        }
        Ok(())
    }
}

/// The 16-bit form of a UUID on the Bluetooth base, if it is one.
pub(crate) fn short_uuid(uuid: uuid::Uuid) -> Option<u16> {
    const BASE: u128 = 0x0000_0000_0000_1000_8000_0080_5f9b_34fb;
    let value = uuid.as_u128();
    let low = value & ((1u128 << 96) - 1);
    (low == BASE && value >> 112 == 0).then_some((value >> 96) as u16)
}

impl SourceTask for BleSourceTask {
    fn run<'a>(
        &'a mut self,
        out: &'a mut SourceOutput,
        _resume: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.scan(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_uuids_come_out_of_the_base() {
        let bthome = btleplug::api::bleuuid::uuid_from_u16(0xFCD2);
        assert_eq!(short_uuid(bthome), Some(0xFCD2));
        let other = uuid::Uuid::from_u128(0x1234_5678_0000_1000_8000_0080_5f9b_34fb);
        assert_eq!(short_uuid(other), None);
    }
}
