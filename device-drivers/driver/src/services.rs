//! What the runtime shares with the components it opens.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// Services the runtime hands to components when they open, by type: the
/// pipeline's dead-letter log, and connections several components share
/// (one per broker). A component asks for the type it knows.
#[derive(Default)]
pub struct Services {
    by_type: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Services {
    /// No services.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the service of type `T`.
    pub fn insert<T: Any + Send + Sync>(&mut self, service: Arc<T>) {
        self.by_type.insert(TypeId::of::<T>(), service);
    }

    /// The service of type `T`, if the runtime provides one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.by_type
            .get(&TypeId::of::<T>())
            .and_then(|s| s.clone().downcast::<T>().ok())
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("count", &self.by_type.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_found_by_its_type() {
        let mut services = Services::new();
        services.insert(Arc::new(7u32));
        assert_eq!(services.get::<u32>().as_deref(), Some(&7));
        assert!(services.get::<u64>().is_none());
    }
}
