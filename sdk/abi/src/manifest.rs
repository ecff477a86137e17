//! The plugin manifest, carried as JSON in the custom section [`crate::MANIFEST_SECTION`].

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// What a plugin says about itself. The host reads it before instantiating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name, e.g. `window-stats`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The ABI version it was built against; see [`crate::ABI_VERSION`].
    pub abi_version: u32,
    /// Which entry point it implements.
    pub kind: OperatorKind,
    /// The layout of the state it keeps; a plugin that cannot read the state
    /// an earlier version left bumps it. 0 when not declared.
    #[serde(default)]
    pub state_version: u32,
    /// What it declares it will use.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// The kind of operator a plugin implements, which decides its main entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    /// Sees every record as it arrives (`process`), with keyed state and timers.
    Process,
    /// Sees the records of each window when it fires (`window`).
    Window,
    /// Folds records into a small accumulator per window as they come
    /// (`aggregate`), and turns it into results when the window fires (`result`).
    Aggregate,
}

impl OperatorKind {
    /// The name of the guest export this kind requires.
    pub fn entry_point(self) -> &'static str {
        match self {
            OperatorKind::Process => crate::names::PROCESS,
            OperatorKind::Window => crate::names::WINDOW,
            OperatorKind::Aggregate => crate::names::AGGREGATE,
        }
    }

    /// Whether operators of this kind need a window.
    pub fn windowed(self) -> bool {
        !matches!(self, OperatorKind::Process)
    }
}

/// What a plugin declares it will touch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Names of the keyed state it reads and writes.
    #[serde(default)]
    pub state: Vec<String>,
    /// Names of the side outputs it emits to.
    #[serde(default)]
    pub side_outputs: Vec<String>,
    /// Whether it sets timers.
    #[serde(default)]
    pub timers: bool,
    /// Whether its params may change while it runs, from the device
    /// twin's desired state (its `init` runs again to check them).
    #[serde(default)]
    pub twin: bool,
}
