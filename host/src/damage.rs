//! Damage done to bytes by the fuzz properties: a byte changed, the bytes
//! cut short, a byte inserted; as a disk, a network or an attacker would.

use proptest::prelude::*;

/// One change: where (taken modulo the length), which byte, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Damage {
    /// The byte at this place becomes this one.
    Set(usize, u8),
    /// Everything from this place on is lost (the first byte stays).
    Cut(usize),
    /// This byte is inserted at this place.
    Insert(usize, u8),
}

/// Up to four changes.
pub(crate) fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Set(at, b)),
        any::<usize>().prop_map(Damage::Cut),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Insert(at, b)),
    ];
    proptest::collection::vec(one, 0..4)
}

/// `bytes` with the changes made, in order.
pub(crate) fn apply(mut bytes: Vec<u8>, damage: &[Damage]) -> Vec<u8> {
    for change in damage {
        let len = bytes.len().max(1);
        match *change {
            Damage::Set(at, b) if !bytes.is_empty() => bytes[at % len] = b,
            Damage::Cut(at) => bytes.truncate((at % len).max(1)),
            Damage::Insert(at, b) => bytes.insert((at % len).min(bytes.len()), b),
            Damage::Set(..) => {}
        }
    }
    bytes
}
