//! Keyed state in memory.

use std::collections::HashMap;

use super::KeyedState;

/// Keyed state held in memory: lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryState {
    namespaces: HashMap<String, HashMap<String, Vec<u8>>>,
}

impl KeyedState for MemoryState {
    fn get(&self, namespace: &str, key: &str) -> Option<&[u8]> {
        self.namespaces.get(namespace)?.get(key).map(Vec::as_slice)
    }

    fn put(&mut self, namespace: &str, key: &str, value: &[u8]) {
        let keys = match self.namespaces.get_mut(namespace) {
            Some(keys) => keys,
            None => self.namespaces.entry(namespace.to_owned()).or_default(),
        };
        match keys.get_mut(key) {
            Some(v) => {
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                keys.insert(key.to_owned(), value.to_vec());
            }
        }
    }

    fn delete(&mut self, namespace: &str, key: &str) {
        if let Some(keys) = self.namespaces.get_mut(namespace) {
            keys.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_keep_keys_apart() {
        let mut s = MemoryState::default();
        s.put("a", "k", b"1");
        s.put("b", "k", b"2");
        s.put("a", "k", b"3");
        assert_eq!(s.get("a", "k"), Some(&b"3"[..]));
        assert_eq!(s.get("b", "k"), Some(&b"2"[..]));
        s.delete("a", "k");
        assert_eq!(s.get("a", "k"), None);
        assert_eq!(s.get("c", "k"), None);
    }
}
