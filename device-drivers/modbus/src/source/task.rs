//! Polling a connection's devices, on the async runtime.
//!
//! One task per connection: requests on one connection go one at a time
//! (a serial bus carries one frame at a time; a TCP server is asked in
//! turn), so devices on other connections, which are other sources, never
//! wait for these. Each device is polled at its own interval; a device
//! that faults gives no record for that poll and is counted, while the
//! others go on. A lost connection is opened again at once; when that
//! fails, the source reports the peer unavailable and the host retries it
//! with backoff.

use std::time::Duration;

use eddy_driver::{
    BoxFuture, DriverError, PointWrite, Schedule, SourceOutput, SourceTask, WriteRefused,
    WriteValue,
};
use tokio::sync::mpsc;
use tokio_modbus::client::{Client, Context, Reader};
use tokio_modbus::slave::{Slave, SlaveContext};

use super::link::LinkConfig;
use super::record::{Response, assemble};
use crate::{Point, PointValue, PointWriter, Request, Table, WriteError};

/// A device, its points and the requests that read them.
#[derive(Debug, Clone)]
pub(crate) struct DevicePlan {
    pub(crate) name: String,
    pub(crate) unit: u8,
    pub(crate) every: Duration,
    pub(crate) points: Vec<Point>,
    pub(crate) requests: Vec<Request>,
    /// Points that can be written (read-write and write-only).
    pub(crate) writable: Vec<Point>,
}

/// A device while the task runs.
struct Device {
    plan: DevicePlan,
    /// Whether its last poll failed: it is then asked once a poll, with
    /// no retries, so a dead device costs at most one timeout.
    in_fault: bool,
}

/// Why a poll gave no record.
struct Fault {
    message: String,
    /// The connection cannot be trusted after it (a timeout, whose late
    /// answer would be taken for the next; a reset; a garbled frame).
    reconnect: bool,
    /// Asking again may help (the device was busy, or did not answer).
    again: bool,
}

/// Polls the devices of one connection until the connection cannot be
/// opened; the host runs it again after a backoff.
pub struct ModbusSourceTask {
    link: LinkConfig,
    devices: Vec<Device>,
    schedule: Schedule,
    timeout: Duration,
    retries: u8,
    pause: Duration,
    /// Writes to its devices (from the device twin), served between polls.
    writes: Option<mpsc::Receiver<PointWrite>>,
}

/// The next write, or never when there is no queue.
async fn next_write(writes: &mut Option<mpsc::Receiver<PointWrite>>) -> Option<PointWrite> {
    match writes {
        Some(queue) => queue.recv().await,
        None => std::future::pending().await,
    }
}

impl ModbusSourceTask {
    /// Serves writes from `writes` on this task's connection.
    pub(crate) fn with_writes(mut self, writes: Option<mpsc::Receiver<PointWrite>>) -> Self {
        self.writes = writes;
        self
    }

    /// Carries out one write and answers it.
    async fn write(&self, link: &mut Context, write: PointWrite) -> Result<(), Fault> {
        let PointWrite {
            device,
            point,
            value,
            reply,
        } = write;
        let Some(plan) = self
            .devices
            .iter()
            .map(|d| &d.plan)
            .find(|p| p.name == device)
        else {
            let _ = reply.send(Err(WriteRefused::permanent(format!(
                "no device `{device}` here"
            ))));
            return Ok(());
        };
        let Some(target) = plan.writable.iter().find(|p| p.name == point) else {
            let names: Vec<&str> = plan.writable.iter().map(|p| p.name.as_str()).collect();
            let _ = reply.send(Err(WriteRefused::permanent(format!(
                "device `{device}` has no writable point `{point}` (writable: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ))));
            return Ok(());
        };
        let value = match value {
            WriteValue::Bool(b) => PointValue::Bool(b),
            WriteValue::Number(n) => PointValue::Float(n),
            WriteValue::Text(t) => PointValue::Text(t),
        };
        let result = link
            .write_point(plan.unit, target, &value, self.timeout)
            .await;
        let (answer, fault) = match result {
            Ok(back) => (
                Ok(match back {
                    PointValue::Bool(b) => WriteValue::Bool(b),
                    PointValue::Int(i) => WriteValue::Number(i as f64),
                    PointValue::Float(f) => WriteValue::Number(f),
                    PointValue::Text(t) => WriteValue::Text(t),
                }),
                None,
            ),
            Err(e @ WriteError::Unavailable { .. }) => {
                let message = e.to_string();
                (
                    Err(WriteRefused::transient(message.clone())),
                    // The connection cannot be trusted after a timeout.
                    Some(Fault {
                        message,
                        reconnect: true,
                        again: true,
                    }),
                )
            }
            Err(e @ WriteError::NotConfirmed { .. }) => {
                (Err(WriteRefused::transient(e.to_string())), None)
            }
            Err(e) => (Err(WriteRefused::permanent(e.to_string())), None),
        };
        let _ = reply.send(answer);
        fault.map_or(Ok(()), Err)
    }

    pub(crate) fn new(
        link: LinkConfig,
        devices: Vec<DevicePlan>,
        timeout: Duration,
        retries: u8,
        pause: Duration,
    ) -> Self {
        let schedule = Schedule::new(devices.iter().map(|d| d.every), std::time::Instant::now());
        ModbusSourceTask {
            link,
            devices: devices
                .into_iter()
                .map(|plan| Device {
                    plan,
                    in_fault: false,
                })
                .collect(),
            schedule,
            timeout,
            retries,
            pause,
            writes: None,
        }
    }

    async fn open(&self) -> Result<Context, DriverError> {
        self.link
            .open()
            .await
            .map_err(|e| DriverError::unavailable(self.link.peer(), e))
    }

    /// Polls until the connection fails; then every device is in fault
    /// (none can be read) until the host's retry opens it again.
    async fn run_polls(&mut self, out: &mut SourceOutput) -> Result<(), DriverError> {
        let result = self.poll_devices(out).await;
        if let Err(e) = &result
            && !out.is_closed()
        {
            let why = format!("no connection: {e}");
            for device in &mut self.devices {
                device.in_fault = true;
                out.device_polled(&device.plan.name, Some(&why));
            }
        }
        result
    }

    async fn poll_devices(&mut self, out: &mut SourceOutput) -> Result<(), DriverError> {
        let mut link = self.open().await?;
        out.connected();
        loop {
            let next = tokio::select! {
                next = self.schedule.wait_next() => next,
                Some(write) = next_write(&mut self.writes) => {
                    if let Err(fault) = self.write(&mut link, write).await
                        && fault.reconnect
                    {
                        let _ = link.disconnect().await;
                        link = self.open().await?;
                    }
                    continue;
                }
            };
            let Some(next) = next else {
                return Ok(());
            };
            let device = &mut self.devices[next];
            let attempts = if device.in_fault {
                1
            } else {
                self.retries.saturating_add(1)
            };
            let outcome = poll(
                &self.link,
                &mut link,
                &device.plan,
                attempts,
                self.timeout,
                self.pause,
            )
            .await;
            match outcome {
                Ok(responses) => {
                    let time = eddy_codec::now_ms();
                    let plan = &device.plan;
                    match assemble(&plan.name, &plan.points, &plan.requests, &responses, time) {
                        Ok(record) => {
                            device.in_fault = false;
                            out.device_polled(&plan.name, None);
                            out.records(vec![record]).await?;
                        }
                        Err(message) => {
                            device.in_fault = true;
                            out.device_polled(&plan.name, Some(&message));
                        }
                    }
                }
                Err(fault) => {
                    device.in_fault = true;
                    out.device_polled(&device.plan.name, Some(&fault.message));
                    if fault.reconnect {
                        let _ = link.disconnect().await;
                        link = self.open().await?;
                    }
                }
            }
        }
    }
}

/// Sends a device's requests in order, each up to `attempts` times (the
/// connection opened again after a timeout or a garbled answer); stops at
/// the first that fails for good.
async fn poll(
    config: &LinkConfig,
    link: &mut Context,
    plan: &DevicePlan,
    attempts: u8,
    timeout: Duration,
    pause: Duration,
) -> Result<Vec<Response>, Fault> {
    link.set_slave(Slave(plan.unit));
    let mut responses = Vec::with_capacity(plan.requests.len());
    for request in &plan.requests {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            match read(link, request, timeout).await {
                Ok(response) => {
                    responses.push(response);
                    break;
                }
                Err(fault) if attempt >= attempts || !fault.again => return Err(fault),
                Err(fault) => {
                    if fault.reconnect {
                        let _ = link.disconnect().await;
                        *link = config.open().await.map_err(|e| Fault {
                            message: format!("{}; connecting again: {e}", fault.message),
                            reconnect: true,
                            again: false,
                        })?;
                        link.set_slave(Slave(plan.unit));
                    }
                }
            }
        }
    }
    Ok(responses)
}

/// One read request, within `timeout`.
async fn read(link: &mut Context, request: &Request, timeout: Duration) -> Result<Response, Fault> {
    let (address, count) = (request.address, request.count);
    // Named only when something went wrong: the request's table and range.
    let what = || {
        format!(
            "{:?} {address}..{}",
            request.table,
            u32::from(address) + u32::from(count)
        )
    };
    let call = async {
        match request.table {
            Table::Coils => link
                .read_coils(address, count)
                .await
                .map(|r| r.map(Response::Bits)),
            Table::DiscreteInputs => link
                .read_discrete_inputs(address, count)
                .await
                .map(|r| r.map(Response::Bits)),
            Table::HoldingRegisters => link
                .read_holding_registers(address, count)
                .await
                .map(|r| r.map(Response::Registers)),
            Table::InputRegisters => link
                .read_input_registers(address, count)
                .await
                .map(|r| r.map(Response::Registers)),
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(Fault {
            message: format!("{}: no answer within {} ms", what(), timeout.as_millis()),
            reconnect: true,
            again: true,
        }),
        Ok(Err(tokio_modbus::Error::Transport(e))) => Err(Fault {
            message: format!("{}: connection lost: {e}", what()),
            reconnect: true,
            again: true,
        }),
        Ok(Err(tokio_modbus::Error::Protocol(e))) => Err(Fault {
            message: format!("{}: bad response: {e}", what()),
            reconnect: true,
            again: true,
        }),
        Ok(Ok(Err(exception))) => Err(Fault {
            message: format!(
                "{}: exception {:#04x} ({exception})",
                what(),
                u8::from(exception)
            ),
            reconnect: false,
            // Busy, or working on it: worth asking again; anything else
            // (an address the device does not have) will not change.
            again: matches!(
                exception,
                tokio_modbus::ExceptionCode::ServerDeviceBusy
                    | tokio_modbus::ExceptionCode::Acknowledge
            ),
        }),
        Ok(Ok(Ok(response))) => {
            // A response of another length is another request's (a late
            // answer on a serial line): never decoded as this one's.
            let (got, fits) = match &response {
                Response::Registers(words) => (words.len(), words.len() == usize::from(count)),
                Response::Bits(bits) => (
                    bits.len(),
                    bits.len() >= usize::from(count) && bits.len() < usize::from(count) + 8,
                ),
            };
            if fits {
                Ok(response)
            } else {
                Err(Fault {
                    message: format!("{}: {got} values in the response, not {count}", what()),
                    reconnect: true,
                    again: true,
                })
            }
        }
    }
}

impl SourceTask for ModbusSourceTask {
    fn run<'a>(
        &'a mut self,
        out: &'a mut SourceOutput,
        _resume: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.run_polls(out))
    }
}
