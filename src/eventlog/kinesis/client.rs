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
use crate::eventlog::{Error, Namespace, Result, Retention};
use crate::settings::{KinesisUrl, LogUrl};

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

impl KinesisLog {
    /// Connects to Kinesis as `url` says (no call is made until the first operation).
    pub async fn open(url: &KinesisUrl, namespace: Namespace) -> Result<KinesisLog> {
        let KinesisUrl { region, endpoint } = url.clone();
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
                url: LogUrl::Kinesis(url.clone()).to_string(),
                reason: "no region: write kinesis://REGION or set AWS_REGION".to_string(),
            });
        }
        Ok(KinesisLog {
            client: Client::new(&config),
            namespace,
            shards: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            round_robin: AtomicU64::new(0),
            retention: Retention::default_for(namespace),
        })
    }
}
