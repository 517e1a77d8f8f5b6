//! Connecting to Kinesis and reading its failures: the `kinesis://REGION[?endpoint=URL]` URL, the
//! SDK client's timeouts and retries, and [`Failure`], which sorts an SDK error into the trait's
//! [`Error`] (not found, unavailable, refused).
//!
//! Fed by [`super::open`] with the URL; feeds the SDK client every other file of the backend calls
//! through, and the classification each of them maps its failures with. Leaves what is called to
//! [`super::streams`], [`super::put`] and [`super::read`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::KinesisLog;
use crate::eventlog::{Error, Namespace, Result};

/// A failed Kinesis call, classified.
pub(super) struct Failure {
    /// The service's error code (`ResourceNotFoundException`, …), when it answered.
    code: Option<String>,
    /// True when retrying later may succeed (throttling, 5xx, timeouts, no connection).
    pub(super) transient: bool,
    pub(super) detail: String,
}

impl<E: ProvideErrorMetadata + std::error::Error + 'static> From<SdkError<E, HttpResponse>> for Failure {
    fn from(e: SdkError<E, HttpResponse>) -> Failure {
        let code = e.code().map(str::to_string);
        let status = e.raw_response().map(|r| r.status().as_u16());
        let transient = match &e {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            _ => {
                status.is_some_and(|s| s >= 500)
                    || matches!(
                        code.as_deref(),
                        Some(
                            "ProvisionedThroughputExceededException"
                                | "LimitExceededException"
                                | "ThrottlingException"
                                | "KMSThrottlingException"
                                | "InternalFailure"
                                | "ServiceUnavailable"
                                | "ServiceUnavailableException"
                                // A stream being created or deleted: `create` reads it as
                                // "already exists" before this applies.
                                | "ResourceInUseException"
                        )
                    )
            }
        };
        Failure { code, transient, detail: DisplayErrorContext(&e).to_string() }
    }
}

impl Failure {
    /// Whether the service answered with error `code`.
    pub(super) fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The log error for a failure on stream `name`.
    pub(super) fn into_error(self, noun: &'static str, name: &str) -> Error {
        if self.is("ResourceNotFoundException") {
            Error::NotFound { noun, name: name.to_string() }
        } else if self.transient {
            Error::Unavailable { backend: "Kinesis", detail: self.detail }
        } else {
            Error::Refused { backend: "Kinesis", detail: self.detail }
        }
    }
}

/// The Kinesis URL's parts: the region (empty: from the AWS chain) and the endpoint override.
fn parse_url(url: &str) -> Result<(Option<String>, Option<String>)> {
    let invalid = |reason: &str| Error::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
    let rest = url.strip_prefix("kinesis://").ok_or_else(|| Error::UnsupportedUrl(url.to_string()))?;
    let (region, query) = rest.split_once('?').unwrap_or((rest, ""));
    let region = region.trim_end_matches('/');
    if !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(invalid("the region may hold only letters, digits and `-`"));
    }
    let mut endpoint = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "endpoint" if v.starts_with("http://") || v.starts_with("https://") => endpoint = Some(v.into_owned()),
            "endpoint" => return Err(invalid("`endpoint` must be an http:// or https:// URL")),
            other => return Err(invalid(&format!("unknown setting `{other}` (expected `endpoint`)"))),
        }
    }
    Ok(((!region.is_empty()).then(|| region.to_string()), endpoint))
}

impl KinesisLog {
    /// Connects to Kinesis as `url` says (no call is made until the first operation).
    pub async fn open(url: &str, namespace: Namespace) -> Result<KinesisLog> {
        let (region, endpoint) = parse_url(url)?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_attempt_timeout(Duration::from_secs(4))
            .operation_timeout(Duration::from_secs(9))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(3));
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Error::InvalidUrl {
                url: url.to_string(),
                reason: "no region: write kinesis://REGION or set AWS_REGION".to_string(),
            });
        }
        Ok(KinesisLog {
            client: Client::new(&config),
            namespace,
            shards: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            round_robin: AtomicU64::new(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_region_and_an_endpoint() {
        assert_eq!(parse_url("kinesis://us-east-1").unwrap(), (Some("us-east-1".into()), None));
        assert_eq!(
            parse_url("kinesis://eu-west-1?endpoint=http://127.0.0.1:4567").unwrap(),
            (Some("eu-west-1".into()), Some("http://127.0.0.1:4567".into()))
        );
        assert_eq!(parse_url("kinesis://").unwrap(), (None, None));
        assert!(matches!(parse_url("kinesis://us-east-1?shards=2"), Err(Error::InvalidUrl { .. })));
        assert!(matches!(parse_url("kinesis://us-east-1?endpoint=localhost"), Err(Error::InvalidUrl { .. })));
        assert!(matches!(parse_url("kinesis://us east"), Err(Error::InvalidUrl { .. })));
    }
}
