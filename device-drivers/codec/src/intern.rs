//! Interned strings: field names and keys repeat in nearly every record, so
//! a decoder hands out clones of one `Arc<str>` instead of allocating each.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::FixedState;

/// Strings looked at before the hash table: records of one shape repeat a
/// handful of field names, found faster by comparing than by hashing.
const RECENT: usize = 8;

/// A bounded set of interned strings. When it holds `capacity` strings it
/// starts afresh, so input with ever-new keys cannot grow it without bound.
#[derive(Debug)]
pub(crate) struct Interner {
    strings: HashMap<Arc<str>, (), FixedState>,
    capacity: usize,
    /// The strings asked for last, newest at `next - 1`.
    recent: [Option<Arc<str>>; RECENT],
    next: usize,
}

impl Interner {
    pub(crate) fn new(capacity: usize) -> Self {
        Interner {
            strings: HashMap::with_hasher(FixedState::default()),
            capacity,
            recent: Default::default(),
            next: 0,
        }
    }

    /// The interned copy of `s`.
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        for k in self.recent.iter().flatten() {
            if **k == *s {
                return k.clone();
            }
        }
        let k = match self.strings.get_key_value(s) {
            Some((k, ())) => k.clone(),
            None => {
                if self.strings.len() >= self.capacity {
                    self.strings.clear();
                }
                let k: Arc<str> = Arc::from(s);
                self.strings.insert(k.clone(), ());
                k
            }
        };
        self.recent[self.next % RECENT] = Some(k.clone());
        self.next = self.next.wrapping_add(1);
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_string_is_shared_and_the_set_stays_bounded() {
        let mut i = Interner::new(2);
        let a = i.get("a");
        assert!(Arc::ptr_eq(&a, &i.get("a")));
        i.get("b");
        i.get("c");
        assert!(i.strings.len() <= 2);
        assert_eq!(&*i.get("a"), "a");
    }
}
