//! The local copy of each twin, in the host's state store: the shadow's
//! last-seen desired and reported state and the reported changes not yet
//! accepted, so that they survive a restart and can be read offline.

use crate::checkpoint::{StateStore, StoreError};

use super::shadow::Saved;
use super::topics::ShadowId;

/// The sled tree twins are kept in.
const TREE: &str = "twins";

/// Twins kept in a state store, by shadow.
#[derive(Clone)]
pub struct LocalTwins {
    tree: sled::Tree,
    store: StateStore,
}

impl LocalTwins {
    /// The twins of `store`.
    pub fn open(store: &StateStore) -> Result<LocalTwins, StoreError> {
        let tree = store.db().open_tree(TREE).map_err(|e| store.fail(e))?;
        Ok(LocalTwins {
            tree,
            store: store.clone(),
        })
    }

    /// What is kept of `id` (empty when nothing is).
    pub fn load(&self, id: &ShadowId) -> Saved {
        self.tree
            .get(id.to_string())
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }

    /// Keeps `saved` for `id`, on disk before it returns.
    pub fn save(&self, id: &ShadowId, saved: &Saved) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(saved).unwrap_or_default();
        self.tree
            .insert(id.to_string(), bytes)
            .map_err(|e| self.store.fail(e))?;
        self.tree.flush().map_err(|e| self.store.fail(e))?;
        Ok(())
    }

    /// Every twin kept, by shadow (`thing` or `thing/name`).
    pub fn all(&self) -> Vec<(String, Saved)> {
        self.tree
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(k, v)| {
                Some((
                    String::from_utf8(k.to_vec()).ok()?,
                    serde_json::from_slice(&v).ok()?,
                ))
            })
            .collect()
    }
}
