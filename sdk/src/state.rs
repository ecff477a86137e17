//! Keyed state: values the host keeps per key, across batches and restarts.

use std::cell::RefCell;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, host};

thread_local! {
    /// Reused buffer for state values on their way in and out.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

/// A named keyed state holding values of type `T`, encoded with postcard.
///
/// The host keeps it (not the plugin's memory), so it survives the plugin
/// being restarted after a failure.
pub struct State<T> {
    name: &'static str,
    _value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> State<T> {
    pub(crate) fn new(name: &'static str) -> Self {
        State {
            name,
            _value: PhantomData,
        }
    }

    /// The value stored for `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<T>> {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            if !host::state_get(self.name, key, &mut s) {
                return Ok(None);
            }
            Ok(Some(postcard::from_bytes(&s)?))
        })
    }

    /// Stores `value` for `key`.
    pub fn put(&self, key: &str, value: &T) -> Result<()> {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.clear();
            eddy_abi::encode_into(value, &mut s)?;
            host::state_put(self.name, key, &s);
            Ok(())
        })
    }

    /// Removes the value for `key`.
    pub fn delete(&self, key: &str) {
        host::state_delete(self.name, key);
    }
}
