//! Keyed state: the values plugins keep per namespace and key.

use std::collections::HashMap;
use std::sync::Arc;

use super::CowMap;
use serde::{Deserialize, Serialize};

/// What the host is charged for each value beyond its key and value bytes:
/// the map slot, the two allocations and their headers.
pub(crate) const ENTRY_OVERHEAD: usize = 96;

/// The bytes a value of `key` with `value_len` bytes takes, as charged
/// against an operator's state cap.
pub(crate) fn entry_bytes(key: &str, value_len: usize) -> usize {
    ENTRY_OVERHEAD + key.len() + value_len
}

/// One value and when it was last written, on the operator's state clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// As a byte string: in postcard the same bytes as a sequence of
    /// bytes (what older versions wrote), written and read in one piece
    /// instead of byte by byte.
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    written: i64,
}

/// An operator's keyed state, held in memory and written back to the state
/// store whole at each checkpoint, so that the data path never waits on disk.
///
/// With a time to live, a value not written for that long on the state clock
/// (the operator's event-time watermark, so that replay expires exactly what
/// the first run expired) reads as absent and is dropped by [`KeyedState::expire`].
///
/// A clone is a snapshot taken in constant time (see [`CowMap`]): a
/// checkpoint encodes it off the pipeline thread.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct KeyedState {
    namespaces: HashMap<String, CowMap<Arc<str>, Entry>>,
    #[serde(skip)]
    ttl: Option<i64>,
    #[serde(skip)]
    clock: i64,
    /// What the values take, by [`entry_bytes`].
    #[serde(skip)]
    bytes: usize,
    /// How many values it holds.
    #[serde(skip)]
    keys: usize,
}

/// Keyed state as a snapshot holds it: the values only; what they take is
/// counted again when it is read.
#[derive(Deserialize)]
struct Stored {
    namespaces: HashMap<String, CowMap<Arc<str>, Entry>>,
}

impl From<Stored> for KeyedState {
    fn from(stored: Stored) -> Self {
        let keys = stored.namespaces.values().map(CowMap::len).sum();
        let bytes = stored
            .namespaces
            .values()
            .flat_map(CowMap::iter)
            .map(|(k, e)| entry_bytes(k, e.value.len()))
            .sum();
        KeyedState {
            namespaces: stored.namespaces,
            bytes,
            keys,
            ..KeyedState::default()
        }
    }
}

impl KeyedState {
    /// Empty state whose values live `ttl_ms` after their last write (forever with `None`).
    pub fn with_ttl(ttl_ms: Option<u64>) -> Self {
        KeyedState {
            ttl: ttl_ms.map(|t| t.min(i64::MAX as u64) as i64),
            ..KeyedState::default()
        }
    }

    /// The time to live of values, in ms.
    pub fn ttl(&self) -> Option<i64> {
        self.ttl
    }

    /// Moves the state clock (never backwards).
    pub fn set_clock(&mut self, now: i64) {
        self.clock = self.clock.max(now);
    }

    /// Takes over the values of `restored`, keeping this state's time to live and clock.
    pub fn restore(&mut self, restored: KeyedState) {
        self.namespaces = restored.namespaces;
        self.keys = restored.keys;
        self.bytes = restored.bytes;
    }

    fn expired(&self, entry: &Entry) -> bool {
        self.ttl
            .is_some_and(|ttl| entry.written.saturating_add(ttl) <= self.clock)
    }

    /// The size of the value of `namespace`/`key` as held, expired or not.
    pub fn held_len(&self, namespace: &str, key: &str) -> Option<usize> {
        Some(self.namespaces.get(namespace)?.get(key)?.value.len())
    }

    /// The value of `namespace`/`key`, if any and not expired.
    pub fn get(&self, namespace: &str, key: &str) -> Option<&[u8]> {
        let entry = self.namespaces.get(namespace)?.get(key)?;
        (!self.expired(entry)).then_some(entry.value.as_slice())
    }

    /// Sets the value of `namespace`/`key`.
    pub fn put(&mut self, namespace: &str, key: &str, value: &[u8]) {
        let written = self.clock;
        let keys = match self.namespaces.get_mut(namespace) {
            Some(keys) => keys,
            None => self.namespaces.entry(namespace.to_owned()).or_default(),
        };
        match keys.get_mut(key) {
            Some(entry) => {
                self.bytes = self.bytes - entry.value.len() + value.len();
                entry.value.clear();
                entry.value.extend_from_slice(value);
                entry.written = written;
            }
            None => {
                self.bytes += entry_bytes(key, value.len());
                self.keys += 1;
                keys.insert(
                    Arc::from(key),
                    Entry {
                        value: value.to_vec(),
                        written,
                    },
                );
            }
        }
    }

    /// Removes the value of `namespace`/`key`.
    pub fn delete(&mut self, namespace: &str, key: &str) {
        if let Some(keys) = self.namespaces.get_mut(namespace)
            && let Some(entry) = keys.remove(key)
        {
            self.bytes -= entry_bytes(key, entry.value.len());
            self.keys -= 1;
        }
    }

    /// Drops every expired value; returns how many.
    pub fn expire(&mut self) -> usize {
        let (Some(ttl), clock) = (self.ttl, self.clock) else {
            return 0;
        };
        let mut dropped = 0;
        let mut freed = 0;
        for keys in self.namespaces.values_mut() {
            keys.remove_if(
                |_, e| e.written.saturating_add(ttl) <= clock,
                |k, e| {
                    dropped += 1;
                    freed += entry_bytes(k, e.value.len());
                },
            );
        }
        self.namespaces.retain(|_, keys| !keys.is_empty());
        self.keys -= dropped;
        self.bytes -= freed;
        dropped
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.keys
    }

    /// What its values take, as charged against the state cap
    /// ([`entry_bytes`] each).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `(namespace, key, value)`, sorted.
    pub fn entries(&self) -> Vec<(&str, &str, &[u8])> {
        let mut all: Vec<(&str, &str, &[u8])> = self
            .namespaces
            .iter()
            .flat_map(|(ns, keys)| {
                keys.iter()
                    .map(move |(k, e)| (ns.as_str(), &**k, e.value.as_slice()))
            })
            .collect();
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_keep_keys_apart() {
        let mut s = KeyedState::default();
        s.put("a", "k", b"1");
        s.put("b", "k", b"2");
        s.put("a", "k", b"3");
        assert_eq!(s.get("a", "k"), Some(&b"3"[..]));
        assert_eq!(s.get("b", "k"), Some(&b"2"[..]));
        s.delete("a", "k");
        assert_eq!(s.get("a", "k"), None);
        assert_eq!(s.get("c", "k"), None);
    }

    #[test]
    fn values_expire_a_ttl_after_their_last_write_on_the_state_clock() {
        let mut s = KeyedState::with_ttl(Some(100));
        s.set_clock(1000);
        s.put("n", "quiet", b"1");
        s.put("n", "busy", b"1");
        s.set_clock(1050);
        s.put("n", "busy", b"2");
        s.set_clock(1100);
        assert_eq!(
            s.get("n", "quiet"),
            None,
            "written at 1000, expired at 1100"
        );
        assert_eq!(s.get("n", "busy"), Some(&b"2"[..]));
        assert_eq!(s.expire(), 1);
        assert_eq!(s.len(), 1);
        s.set_clock(1150);
        assert_eq!(s.expire(), 1);
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn the_bytes_held_follow_puts_overwrites_deletes_and_restores() {
        let mut s = KeyedState::default();
        s.put("n", "ab", b"1234");
        s.put("m", "c", b"");
        assert_eq!(s.bytes(), (ENTRY_OVERHEAD + 2 + 4) + (ENTRY_OVERHEAD + 1));
        s.put("n", "ab", b"12");
        assert_eq!(s.bytes(), (ENTRY_OVERHEAD + 2 + 2) + (ENTRY_OVERHEAD + 1));
        s.delete("m", "c");
        s.delete("m", "absent");
        assert_eq!((s.len(), s.bytes()), (1, ENTRY_OVERHEAD + 4));
        let copy: KeyedState = postcard::from_bytes(&postcard::to_allocvec(&s).unwrap()).unwrap();
        let mut restored = KeyedState::default();
        restored.restore(copy);
        assert_eq!((restored.len(), restored.bytes()), (1, ENTRY_OVERHEAD + 4));
    }

    #[test]
    fn values_are_written_as_older_versions_wrote_them() {
        /// An entry as older versions declared it: the value a sequence.
        #[derive(Serialize)]
        struct Older {
            value: Vec<u8>,
            written: i64,
        }
        for value in [vec![], vec![0, 1, 200, 255], vec![7; 300]] {
            let older = postcard::to_allocvec(&Older {
                value: value.clone(),
                written: -3,
            })
            .unwrap();
            let entry = Entry { value, written: -3 };
            assert_eq!(postcard::to_allocvec(&entry).unwrap(), older);
            assert_eq!(postcard::from_bytes::<Entry>(&older).unwrap(), entry);
        }
    }

    #[test]
    fn many_keys_are_stored_and_read_back_whole() {
        let mut s = KeyedState::default();
        for i in 0..50_000u32 {
            s.put("alert", &format!("sensor-{i:07}"), &i.to_le_bytes());
        }
        let snapshot = s.clone();
        s.put("alert", "sensor-0000007", b"changed after the snapshot");
        let bytes = postcard::to_allocvec(&snapshot).unwrap();
        let back: KeyedState = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(
            (back.len(), back.bytes()),
            (snapshot.len(), snapshot.bytes())
        );
        for i in [0u32, 7, 12_345, 49_999] {
            assert_eq!(
                back.get("alert", &format!("sensor-{i:07}")),
                Some(&i.to_le_bytes()[..])
            );
        }
    }
}
