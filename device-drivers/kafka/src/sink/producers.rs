//! Kafka sinks with the same cluster and settings share one producer: one
//! set of broker connections and librdkafka threads (a main thread and one
//! a broker) however many sinks write there. A producer lives while a sink
//! holds it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use rdkafka::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;

use crate::client::Quiet;

/// A producer shared by sinks.
pub(crate) type Shared = Arc<FutureProducer<Quiet>>;

/// The producers alive, by their settings.
static PRODUCERS: Mutex<BTreeMap<String, Weak<FutureProducer<Quiet>>>> =
    Mutex::new(BTreeMap::new());

/// The producer for `config`: the one a sink made for the same settings,
/// while it lives, else a new one (whose client id is this sink's).
pub(crate) fn shared(config: &ClientConfig) -> KafkaResult<Shared> {
    let key = settings(config);
    let mut producers = PRODUCERS.lock().unwrap_or_else(PoisonError::into_inner);
    producers.retain(|_, p| p.strong_count() > 0);
    if let Some(producer) = producers.get(&key).and_then(Weak::upgrade) {
        return Ok(producer);
    }
    let producer: Shared = Arc::new(config.create_with_context(Quiet)?);
    producers.insert(key, Arc::downgrade(&producer));
    Ok(producer)
}

/// Every setting but the client id (each sink names its own), in order.
fn settings(config: &ClientConfig) -> String {
    let mut key = String::new();
    for (name, value) in config.config_map() {
        if name != "client.id" {
            key.push_str(name);
            key.push('=');
            key.push_str(value);
            key.push('\n');
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(linger_ms: &str, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("client.id", client_id)
            .set("linger.ms", linger_ms);
        config
    }

    #[test]
    fn sinks_with_the_same_settings_share_a_producer_while_one_holds_it() {
        let a = shared(&config("5", "a")).unwrap();
        let b = shared(&config("5", "b")).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same cluster and settings");
        let c = shared(&config("50", "c")).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "other settings");
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none(), "gone with its last sink");
        drop(c);
    }
}
