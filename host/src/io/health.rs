//! What a source or sink reports about itself: up, retrying since when and
//! why, failed, ended; with counters. `eddy status`, `/metrics` and the log
//! all read it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::internal_events::{ComponentDown, ComponentUp};

/// A component's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// Opened; not connected yet (tasks), or not used yet.
    Starting,
    /// Working.
    Up,
    /// Its peer failed; retrying with backoff.
    Retrying,
    /// Its settings cannot work as things are; tried again now and then.
    Failed,
    /// Its input has ended (bounded sources).
    Ended,
}

/// A component's health, as `eddy status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    /// Its kind (`file`, `tcp`, …).
    pub kind: String,
    /// What it is doing.
    pub state: ComponentState,
    /// Since when, ms since the Unix epoch.
    pub since_ms: i64,
    /// The last error, while retrying or failed (and after, until the next one).
    pub last_error: Option<String>,
    /// Errors so far.
    pub errors: u64,
    /// Retries so far.
    pub retries: u64,
    /// The devices a source reads (Modbus units, sensors), by name: each
    /// device's polls and faults, while the source as a whole may be up.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, DeviceStatus>,
}

/// One device of a source, as `eddy status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// Whether its last poll gave a record.
    pub up: bool,
    /// Since when it has been up or in fault, ms since the Unix epoch.
    pub since_ms: i64,
    /// Polls so far.
    pub polls: u64,
    /// Polls that gave no record (an exception, a timeout, a bad frame, a
    /// connection lost).
    pub faults: u64,
    /// Why the last faulty poll gave no record.
    pub last_fault: Option<String>,
}

/// Whether a component is a source or a sink, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Source,
    Sink,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Sink => "sink",
        }
    }
}

/// A component's health, shared by the pipeline thread and its task.
pub(crate) struct Health {
    pub(crate) name: Arc<str>,
    pub(crate) role: Role,
    status: Mutex<ComponentStatus>,
}

impl Health {
    pub(crate) fn new(name: &str, role: Role, kind: &str) -> Arc<Health> {
        Arc::new(Health {
            name: name.into(),
            role,
            status: Mutex::new(ComponentStatus {
                kind: kind.to_owned(),
                state: ComponentState::Starting,
                since_ms: crate::dataflow::wall_clock_ms(),
                last_error: None,
                errors: 0,
                retries: 0,
                devices: BTreeMap::new(),
            }),
        })
    }

    fn status_mut(&self) -> MutexGuard<'_, ComponentStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the status.
    pub(crate) fn status(&self) -> ComponentStatus {
        self.status_mut().clone()
    }

    pub(crate) fn state(&self) -> ComponentState {
        self.status_mut().state
    }

    /// The component works (again).
    pub(crate) fn up(&self) {
        let mut status = self.status_mut();
        if status.state == ComponentState::Up {
            return;
        }
        let was = status.state;
        status.state = ComponentState::Up;
        status.since_ms = crate::dataflow::wall_clock_ms();
        let kind = status.kind.clone();
        drop(status);
        ComponentUp {
            component: &self.name,
            role: self.role,
            kind: &kind,
            recovered: matches!(was, ComponentState::Retrying | ComponentState::Failed),
        }
        .emit();
    }

    /// It failed: retried in `retry_in` (transient), or failed for a reason
    /// waiting may not cure.
    pub(crate) fn down(&self, error: &str, transient: bool, retry_in: Duration) {
        let mut status = self.status_mut();
        let state = if transient {
            ComponentState::Retrying
        } else {
            ComponentState::Failed
        };
        let changed = status.state != state;
        if changed {
            status.state = state;
            status.since_ms = crate::dataflow::wall_clock_ms();
        }
        status.errors += 1;
        status.last_error = Some(error.to_owned());
        let kind = status.kind.clone();
        drop(status);
        ComponentDown {
            component: &self.name,
            role: self.role,
            kind: &kind,
            error,
            transient,
            retry_in,
            first: changed,
        }
        .emit();
    }

    /// It is trying again.
    pub(crate) fn retrying(&self) {
        self.status_mut().retries += 1;
        crate::internal_events::ComponentRetried {
            component: &self.name,
            role: self.role,
        }
        .emit();
    }

    /// A task's component failed: reports it, waits out the backoff, and
    /// counts the retry that follows.
    pub(crate) async fn pause(
        &self,
        backoff: &mut super::Backoff,
        error: &str,
        transient: bool,
        retry_after: Option<Duration>,
    ) {
        let wait = backoff.after(transient, retry_after);
        self.down(error, transient, wait);
        tokio::time::sleep(wait).await;
        self.retrying();
    }

    /// One of its devices was polled; `fault` says why the poll gave no
    /// record.
    pub(crate) fn device_polled(&self, device: &str, fault: Option<&str>) {
        let now = crate::dataflow::wall_clock_ms();
        let mut status = self.status_mut();
        // A device is taken to be up until a poll says otherwise, so a
        // device in fault from its first poll is reported as it goes down.
        if !status.devices.contains_key(device) {
            status.devices.insert(
                device.to_owned(),
                DeviceStatus {
                    up: true,
                    since_ms: now,
                    polls: 0,
                    faults: 0,
                    last_fault: None,
                },
            );
        }
        let Some(entry) = status.devices.get_mut(device) else {
            return;
        };
        let changed = entry.up != fault.is_none();
        entry.polls += 1;
        if changed {
            entry.up = fault.is_none();
            entry.since_ms = now;
        }
        if let Some(fault) = fault {
            entry.faults += 1;
            entry.last_fault = Some(fault.to_owned());
        }
        drop(status);
        crate::internal_events::DevicePolled {
            component: &self.name,
            device,
            fault,
            changed,
        }
        .emit();
    }

    /// Its input has ended.
    pub(crate) fn ended(&self) {
        let mut status = self.status_mut();
        status.state = ComponentState::Ended;
        status.since_ms = crate::dataflow::wall_clock_ms();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_goes_down_and_comes_back_keeping_its_last_error() {
        let health = Health::new("peer", Role::Sink, "tcp");
        assert_eq!(health.state(), ComponentState::Starting);
        health.up();
        health.down("connection refused", true, Duration::from_millis(500));
        let down = health.status();
        assert_eq!(down.state, ComponentState::Retrying);
        assert_eq!(down.last_error.as_deref(), Some("connection refused"));
        health.down("connection refused", true, Duration::from_millis(1000));
        health.retrying();
        let still = health.status();
        assert_eq!(
            (still.errors, still.retries, still.since_ms),
            (2, 1, down.since_ms)
        );
        health.up();
        let up = health.status();
        assert_eq!(up.state, ComponentState::Up);
        assert_eq!(up.last_error.as_deref(), Some("connection refused"));
    }
}
