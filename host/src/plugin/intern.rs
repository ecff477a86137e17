//! Sharing the strings plugins emit over and over.

use std::collections::HashSet;
use std::sync::Arc;

use eddy_abi::{Record, RecordRef};

/// How many distinct strings are shared at most; past that, new ones are
/// allocated as usual, so a plugin emitting ever-new keys cannot grow it.
const CAPACITY: usize = 16_384;

/// Only strings up to this long are shared (keys and field names are
/// short), so what the interner keeps is bounded in bytes too.
const LONGEST: usize = 128;

/// Turns emitted records into owned ones, sharing one allocation per
/// distinct key and field name instead of one per record.
#[derive(Default)]
pub(crate) struct Interner {
    strings: HashSet<Arc<str>, foldhash::fast::RandomState>,
}

impl Interner {
    /// The shared copy of `s`.
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if s.len() > LONGEST {
            return s.into();
        }
        if let Some(shared) = self.strings.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = s.into();
        if self.strings.len() < CAPACITY {
            self.strings.insert(shared.clone());
        }
        shared
    }

    /// An owned record with shared key and field names.
    pub(crate) fn record(&mut self, r: &RecordRef<'_>) -> Record {
        Record {
            key: self.get(r.key),
            time: r.time,
            fields: r
                .fields
                .iter()
                .map(|(name, value)| (self.get(name), value.to_owned_value()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation() {
        let mut i = Interner::default();
        let a = i.record(&Record::new("k", 1).with("v", 1.0).as_ref());
        let b = i.record(&Record::new("k", 2).with("v", 2.0).as_ref());
        assert!(Arc::ptr_eq(&a.key, &b.key));
        assert!(Arc::ptr_eq(&a.fields[0].0, &b.fields[0].0));
        assert_eq!(b, Record::new("k", 2).with("v", 2.0));
    }
}
