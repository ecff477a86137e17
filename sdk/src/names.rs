//! Field names made once and shared by the records that carry them.

use std::sync::Arc;

/// Field names made once, for a plugin that emits many records with the
/// same fields: [`Record::with`](crate::Record::with) then takes a shared
/// name instead of allocating a copy of it for every record.
///
/// Lookups compare names one by one: meant for the tens of names a plugin
/// emits, not for names taken from its input.
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
}

impl Names {
    /// The name `name`.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        self.joined(name, "")
    }

    /// The name `prefix` followed by `suffix` (`"temp"`, `"_max"`: `"temp_max"`).
    pub fn joined(&mut self, prefix: &str, suffix: &str) -> Arc<str> {
        let found = self.made.iter().find(|name| {
            name.len() == prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        });
        if let Some(name) = found {
            return name.clone();
        }
        let name: Arc<str> = [prefix, suffix].concat().into();
        self.made.push(name.clone());
        name
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
}
