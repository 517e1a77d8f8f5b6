//! The `kafka://HOST:PORT[,HOST:PORT]` backend: topics on a Kafka cluster through rdkafka.
//! (Being written: see issue #5.)

use std::sync::Arc;

use super::{Error, EventLog, Namespace, Result};

/// Opens the log `url` names for `namespace`.
pub async fn open(url: &str, namespace: Namespace) -> Result<Arc<dyn EventLog>> {
    let _ = namespace;
    Err(Error::UnsupportedUrl(url.to_string()))
}
