//! A sink's bound and what happens when it is reached.

use std::collections::VecDeque;

use eddy_sink::OwnedOut;

use crate::config::{BufferConfig, WhenFull};

/// Adds `out` to `held` as the buffer's policy says; returns how many
/// records were dropped (0 or 1). `stuck` records held elsewhere (a batch
/// being delivered) count toward the bound but cannot be dropped.
pub(super) fn admit(
    held: &mut VecDeque<OwnedOut>,
    stuck: usize,
    out: OwnedOut,
    buffer: BufferConfig,
) -> u64 {
    if held.len() + stuck >= buffer.max_records {
        match buffer.when_full {
            WhenFull::DropOldest if !held.is_empty() => {
                held.pop_front();
                held.push_back(out);
                return 1;
            }
            // With nothing that can go, the newest goes.
            WhenFull::DropOldest | WhenFull::DropNewest => return 1,
            // Over the bound by at most one step's records: the pipeline
            // reads no sources until there is room.
            WhenFull::Block => {}
        }
    }
    held.push_back(out);
    0
}

/// The policy's name, for logs and metrics.
pub(super) fn policy_name(when_full: WhenFull) -> &'static str {
    match when_full {
        WhenFull::DropOldest => "drop_oldest",
        WhenFull::DropNewest => "drop_newest",
        WhenFull::Block => "block",
    }
}
