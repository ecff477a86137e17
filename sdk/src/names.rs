//! Field names made once and shared by the records that carry them.

use std::sync::Arc;

use eddy_abi::same_bytes;

/// Field names made once, for a plugin that emits many records with the
/// same fields: [`Record::with`](crate::Record::with) then takes a shared
/// name instead of allocating a copy of it for every record.
///
/// A lookup first tries the name made after the one found last, so names
/// asked for in the same order for every record are each found at the
/// first comparison; others are compared one by one. Meant for the tens of
/// names a plugin emits, not for names taken from its input.
///
/// ```
/// use eddy_sdk::{Names, Record};
///
/// let mut names = Names::default();
/// let a = Record::new("k", 1).with(names.get("count"), 3i64);
/// let b = Record::new("k", 2).with(names.joined("temp", "_max"), 21.5);
/// assert_eq!(a.fields[0].0, names.get("count"));
/// assert_eq!(&*b.fields[0].0, "temp_max");
/// ```
#[derive(Debug, Default)]
pub struct Names {
    made: Vec<Arc<str>>,
    /// Where the next lookup looks first: after the name found last.
    next: usize,
}

impl Names {
    /// The name `name`.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        self.joined(name, "")
    }

    /// The name `prefix` followed by `suffix` (`"temp"`, `"_max"`: `"temp_max"`).
    pub fn joined(&mut self, prefix: &str, suffix: &str) -> Arc<str> {
        // Compared by words, not by calls to the plugin's byte-by-byte `memcmp`.
        let is = |name: &Arc<str>| {
            let (name, at) = (name.as_bytes(), prefix.len());
            name.len() == at + suffix.len()
                && same_bytes(&name[..at], prefix.as_bytes())
                && same_bytes(&name[at..], suffix.as_bytes())
        };
        let found = match self.made.get(self.next) {
            Some(name) if is(name) => Some(self.next),
            _ => self.made.iter().position(is),
        };
        let at = match found {
            Some(at) => at,
            None => {
                self.made.push([prefix, suffix].concat().into());
                self.made.len() - 1
            }
        };
        self.next = at + 1;
        self.made[at].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_made_once_however_it_is_asked_for() {
        let mut names = Names::default();
        let sum = names.joined("v", "_sum");
        assert!(Arc::ptr_eq(&sum, &names.joined("v", "_sum")));
        assert!(Arc::ptr_eq(&sum, &names.joined("v_", "sum")));
        assert!(Arc::ptr_eq(&sum, &names.get("v_sum")));
        assert_eq!(&*names.joined("w", "_sum"), "w_sum");
        assert_eq!(&*names.joined("v", "_min"), "v_min");
        assert!(Arc::ptr_eq(&names.get("count"), &names.get("count")));
    }

    #[test]
    fn names_asked_for_in_any_order_are_the_same_names() {
        let mut names = Names::default();
        let order = ["a", "b_sum", "b_min", "c"];
        let first: Vec<Arc<str>> = order.iter().map(|n| names.get(n)).collect();
        // The same order again, reversed, and skipping some.
        for round in [vec![0, 1, 2, 3], vec![3, 2, 1, 0], vec![2, 0, 3, 3, 1]] {
            for i in round {
                assert!(Arc::ptr_eq(&names.get(order[i]), &first[i]), "{}", order[i]);
            }
        }
        assert_eq!(names.made.len(), 4, "no name made twice");
    }
}
