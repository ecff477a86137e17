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

/// How many field names of the last record are remembered in order.
const LAST_FIELDS: usize = 64;

/// Turns emitted records into owned ones, sharing one allocation per
/// distinct key and field name instead of one per record.
#[derive(Default)]
pub(crate) struct Interner {
    strings: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// The field names of the record turned last, in their order: a plugin
    /// emits records with the same fields over and over, and each name is
    /// then found by one comparison instead of a hash lookup.
    last_fields: Vec<Arc<str>>,
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

    /// The shared copy of field name `name`, the record's `i`-th.
    fn field_name(&mut self, i: usize, name: &str) -> Arc<str> {
        if let Some(last) = self.last_fields.get(i)
            && eddy_abi::same_text(last, name)
        {
            return last.clone();
        }
        let shared = self.get(name);
        if i < self.last_fields.len() {
            self.last_fields[i] = shared.clone();
        } else if i == self.last_fields.len() && i < LAST_FIELDS {
            self.last_fields.push(shared.clone());
        }
        shared
    }

    /// An owned record with shared key and field names.
    pub(crate) fn record(&mut self, r: &RecordRef<'_>) -> Record {
        let mut fields = Vec::with_capacity(r.fields.len());
        for (i, (name, value)) in r.fields.iter().enumerate() {
            fields.push((self.field_name(i, name), value.to_owned_value()));
        }
        Record {
            key: self.get(r.key),
            time: r.time,
            fields,
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

    #[test]
    fn records_with_other_fields_keep_their_own_names() {
        let mut i = Interner::default();
        let records = [
            Record::new("k", 1).with("a", 1.0).with("b", 2.0),
            Record::new("k", 2)
                .with("b", 2.0)
                .with("a", 1.0)
                .with("c", true),
            Record::new("k", 3).with("a", 1.0),
            Record::new("k", 4)
                .with("a", 1.0)
                .with("b", 2.0)
                .with("c", false),
        ];
        let owned: Vec<Record> = records.iter().map(|r| i.record(&r.as_ref())).collect();
        assert_eq!(owned, records);
        // Whichever position a name came in, it is one shared allocation.
        let a = |r: &Record| {
            r.fields
                .iter()
                .find(|(n, _)| &**n == "a")
                .unwrap()
                .0
                .clone()
        };
        assert!(owned.iter().all(|r| Arc::ptr_eq(&a(r), &a(&owned[0]))));
    }
}
