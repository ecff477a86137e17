//! Interned strings: field names and keys repeat in nearly every record, so
//! a decoder hands out clones of one `Arc<str>` instead of allocating each.

use std::hash::BuildHasher;
use std::sync::Arc;

use eddy_abi::same_text as same;
use foldhash::fast::FixedState;
use hashbrown::HashTable;

/// Field names a [`Names`] interner keeps in a list before it falls back to
/// hashing: records of one shape repeat a handful of names, found faster by
/// comparing than by hashing.
const LISTED: usize = 32;

/// A bounded set of interned strings. When it holds `capacity` strings it
/// starts afresh, so input with ever-new keys cannot grow it without bound.
#[derive(Debug)]
pub(crate) struct Interner {
    strings: HashTable<Arc<str>>,
    hasher: FixedState,
    capacity: usize,
    /// The first strings seen, compared before hashing (field names).
    listed: Vec<Arc<str>>,
    /// How many strings to list (0 for keys, which are too many).
    list: usize,
}

impl Interner {
    /// An interner that lists its first strings (field names), or hashes
    /// everything (keys).
    pub(crate) fn new(capacity: usize, listed: bool) -> Self {
        Interner {
            strings: HashTable::new(),
            hasher: FixedState::default(),
            capacity,
            listed: Vec::new(),
            list: if listed { LISTED } else { 0 },
        }
    }

    /// The interned copy of `s`.
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(k) = self.listed.iter().find(|k| same(k, s)) {
            return k.clone();
        }
        let hash = self.hasher.hash_one(s);
        if let Some(k) = self.strings.find(hash, |k| same(k, s)) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(s);
        if self.listed.len() < self.list {
            self.listed.push(k.clone());
            return k;
        }
        if self.strings.len() >= self.capacity {
            self.strings.clear();
        }
        let hasher = &self.hasher;
        self.strings
            .insert_unique(hash, k.clone(), |k| hasher.hash_one(&**k));
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_string_is_shared_and_the_set_stays_bounded() {
        for listed in [false, true] {
            let mut i = Interner::new(2, listed);
            let a = i.get("a");
            i.get("b");
            assert!(Arc::ptr_eq(&a, &i.get("a")));
            for n in 0..100 {
                i.get(&n.to_string());
            }
            assert!(i.strings.len() <= 2);
            assert!(i.listed.len() <= LISTED);
            assert_eq!(&*i.get("a"), "a");
        }
    }
}
