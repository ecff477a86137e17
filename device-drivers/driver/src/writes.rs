//! Writes to devices by the sources that read them: the way a device
//! twin's desired state reaches a setpoint. A source whose devices can be
//! written registers each device (the record key it produces) with
//! [`DeviceWriters`], a runtime service, and serves the writes between its
//! polls on its own connection (a serial bus carries one frame at a time).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

/// Writes a source's queue holds before a writer waits.
const QUEUE: usize = 16;

/// A value written to a point, or read back from it.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteValue {
    /// A bit or switch.
    Bool(bool),
    /// A number (scaled as the point's profile says).
    Number(f64),
    /// Characters.
    Text(String),
}

/// Why a write did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WriteRefused {
    /// What happened.
    pub message: String,
    /// Whether trying again later may help (the device did not answer, the
    /// connection is down), as opposed to a write that cannot work.
    pub transient: bool,
}

impl WriteRefused {
    /// A write that cannot work (no such point, read-only, out of range).
    pub fn permanent(message: impl Into<String>) -> Self {
        WriteRefused {
            message: message.into(),
            transient: false,
        }
    }

    /// A write that may work later.
    pub fn transient(message: impl Into<String>) -> Self {
        WriteRefused {
            message: message.into(),
            transient: true,
        }
    }
}

/// One write asked of a source.
#[derive(Debug)]
pub struct PointWrite {
    /// The device (its record key).
    pub device: String,
    /// The point's name.
    pub point: String,
    /// The value.
    pub value: WriteValue,
    /// Gets the value read back, which the device confirmed, or why not.
    pub reply: oneshot::Sender<Result<WriteValue, WriteRefused>>,
}

/// The devices that can be written, by record key.
#[derive(Debug, Default)]
pub struct DeviceWriters {
    by_device: Mutex<HashMap<String, mpsc::Sender<PointWrite>>>,
}

impl DeviceWriters {
    /// No devices yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `devices`, which one source serves from the returned queue.
    pub fn register<'a>(
        &self,
        devices: impl IntoIterator<Item = &'a str>,
    ) -> mpsc::Receiver<PointWrite> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let mut map = self.by_device.lock().unwrap_or_else(|p| p.into_inner());
        for device in devices {
            map.insert(device.to_owned(), sender.clone());
        }
        receiver
    }

    /// Whether `device` can be written.
    pub fn knows(&self, device: &str) -> bool {
        self.by_device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(device)
    }

    /// Writes `value` to `point` of `device` and returns what the device
    /// reads back.
    pub async fn write(
        &self,
        device: &str,
        point: &str,
        value: WriteValue,
    ) -> Result<WriteValue, WriteRefused> {
        let sender = self
            .by_device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(device)
            .cloned()
            .ok_or_else(|| {
                WriteRefused::permanent(format!("no source of this pipeline writes to `{device}`"))
            })?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(PointWrite {
                device: device.to_owned(),
                point: point.to_owned(),
                value,
                reply,
            })
            .await
            .map_err(|_| WriteRefused::transient("the device's source has stopped"))?;
        answer
            .await
            .map_err(|_| WriteRefused::transient("the device's source dropped the write"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_reaches_the_source_that_registered_the_device() {
        let writers = DeviceWriters::new();
        let mut queue = writers.register(["ups-1", "ups-2"]);
        let serve = async {
            let write = queue.recv().await.unwrap();
            assert_eq!(
                (write.device.as_str(), write.point.as_str()),
                ("ups-2", "limit")
            );
            let _ = write.reply.send(Ok(WriteValue::Number(41.5)));
        };
        let (answer, ()) = tokio::join!(
            writers.write("ups-2", "limit", WriteValue::Number(41.5)),
            serve
        );
        assert_eq!(answer, Ok(WriteValue::Number(41.5)));
        let unknown = writers
            .write("ups-9", "limit", WriteValue::Bool(true))
            .await;
        assert!(matches!(
            unknown,
            Err(WriteRefused {
                transient: false,
                ..
            })
        ));
    }
}
