//! How the Kafka backend builds its librdkafka clients: the client context (librdkafka's log lines
//! to tracing, MSK IAM tokens on request) and the configuration each kind of client gets.
//!
//! Fed by [`super::settings`] (the merged settings) and [`super::iam`] (the token source); feeds
//! every client of [`super::KafkaLog`]: the producer ([`super::produce`]), the admin and metadata
//! clients ([`super::admin`]) and the per-partition consumers ([`super::read`]). Leaves what the
//! clients do to those files. A setting librdkafka refuses becomes an [`Error::InvalidUrl`] naming
//! the key, with a secret value hidden.

use rdkafka::ClientConfig;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

use super::iam;
use super::settings::{PRODUCER_ONLY, Settings};
use crate::eventlog::{Error, Result};
use crate::settings::url::is_secret;

/// What librdkafka calls back into: logs to tracing, MSK IAM tokens.
pub(super) struct KafkaContext {
    iam: Option<iam::TokenSource>,
}

impl ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, "librdkafka: {reason}");
    }

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> std::result::Result<OAuthToken, Box<dyn std::error::Error>> {
        match &self.iam {
            Some(source) => source.token(),
            None => Err("OAUTHBEARER tokens are generated only for sasl.mechanism=AWS_MSK_IAM".into()),
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// Builds one librdkafka client of kind `T` from `settings` (producer settings only for a producer).
pub(super) fn client<T>(settings: &Settings, iam: &Option<iam::TokenSource>, producer: bool, url: &str) -> Result<T>
where
    T: rdkafka::config::FromClientConfigAndContext<KafkaContext>,
{
    let mut config = ClientConfig::new();
    for (k, v) in &settings.pairs {
        if producer || !PRODUCER_ONLY.contains(&k.as_str()) {
            config.set(k, v);
        }
    }
    if !producer {
        // Readers assign partitions by hand: a group id is needed for that, no group is joined
        // and no offset is ever committed.
        config.set("group.id", "pinpipe-reader");
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        config.set("auto.offset.reset", "earliest");
        config.set("fetch.wait.max.ms", "100");
        config.set("enable.partition.eof", "false");
    }
    config.set_log_level(RDKafkaLogLevel::Warning);
    config.create_with_context(KafkaContext { iam: iam.clone() }).map_err(|e| config_error(url, e))
}

/// A client-creation failure as an error naming the bad setting (its value hidden if secret).
/// `url` is the log's URL as shown (secrets hidden).
fn config_error(url: &str, e: KafkaError) -> Error {
    let reason = match e {
        KafkaError::ClientConfig(_, description, key, value) => {
            let description =
                if is_secret(&key) && !value.is_empty() { description.replace(&value, "***") } else { description };
            format!("setting `{key}`: {description}")
        }
        KafkaError::ClientCreation(reason) => format!("cannot create a Kafka client: {reason}"),
        other => other.to_string(),
    };
    Error::InvalidUrl { url: url.to_string(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_messages() {
        let e = config_error(
            "kafka://h:1?ssl.key.password=***",
            KafkaError::ClientConfig(
                rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
                "Invalid value \"hunter2\"".into(),
                "ssl.key.password".into(),
                "hunter2".into(),
            ),
        );
        let text = e.to_string();
        assert!(!text.contains("hunter2") && text.contains("ssl.key.password"), "{text}");
    }
}
