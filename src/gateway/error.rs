//! Gateway errors and the one place they become HTTP responses.
//!
//! Owns: [`Error`] (what went wrong, with the facts) and [`ApiError`] (an error plus the route
//! [`Family`] that decides the reply's shape). The handlers in [`super::kafka_rest`] and
//! [`super::kinesis`] return `Err(ApiError)`; `impl IntoResponse for ApiError` below is the only
//! code that picks a status and body. 5xx bodies are generic; their detail goes to the log.
//!
//! # Kafka REST routes (`/topics…`): body `{"error_code":N,"message":"…"}`
//!
//! | condition | status | `error_code` |
//! | --- | --- | --- |
//! | missing or wrong `x-api-key` | 403 | 403 |
//! | body over 10 MB (Content-Length or while reading) | 413 | 413 |
//! | content type not `application/vnd.kafka.json.v2+json` | 415 | 415 |
//! | body not JSON (or the client hung up mid-body) | 400 | 400 |
//! | JSON of the wrong shape, empty `records`, bad partition count | 422 | 422 |
//! | a record value over 1,000,000 bytes (compacted) | 422 | 42201 |
//! | unknown topic (or a name no topic can have) | 404 | 40401 |
//! | explicit partition out of range | 404 | 40402 |
//! | log unavailable (storage failed, writer stopped) | 503 | 50301 |
//! | anything else | 500 | 500 |
//!
//! # Kinesis routes (`/streams…`): body `{"__type":"…","message":"…"}`
//!
//! | condition | status | `__type` |
//! | --- | --- | --- |
//! | missing or wrong `x-api-key` | 403 | `AccessDeniedException` |
//! | body over 10 MB | 413 | `ValidationException` |
//! | content type not `application/json` / `application/x-amz-json-1.1` | 415 | `UnsupportedMediaTypeException` |
//! | body not JSON | 400 | `SerializationException` |
//! | wrong shape, bad name, 0 or > 500 records, record > 1 MiB, `StreamName` ≠ path, bad `ShardCount` | 400 | `ValidationException` |
//! | unknown stream | 404 | `ResourceNotFoundException` |
//! | creating a stream that exists | 409 | `ResourceInUseException` |
//! | log unavailable | 503 | `ServiceUnavailableException` |
//! | anything else | 500 | `InternalFailure` |
//!
//! No failed request is ever answered with 200.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::eventlog;

/// The Kafka REST proxy's content type for replies.
pub(crate) const KAFKA_CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";

/// Everything that can go wrong in the gateway, from a bad request to the server failing to run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API keys are on and the request's `x-api-key` is missing or not one of them.
    #[error("missing or invalid x-api-key")]
    Forbidden,
    /// The body is (or announced to be) bigger than the request limit.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The `Content-Type` is not one this route accepts.
    #[error("unsupported content type {content_type:?}")]
    UnsupportedMediaType { content_type: Option<String> },
    /// The client went away or sent a broken body stream.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// The body is not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(#[source] serde_json::Error),
    /// Well-formed JSON that is not the request this route takes.
    #[error("{0}")]
    InvalidRequest(String),
    /// One record is bigger than the per-record limit (Kafka: its value; Kinesis: data + key).
    #[error("record {index} is {size} bytes, more than the {limit}-byte limit")]
    RecordTooLarge { index: usize, size: usize, limit: usize },
    /// A call with no records at all.
    #[error("the request holds no records")]
    NoRecords,
    /// More records than one call may carry.
    #[error("{count} records in one request, more than the limit of {limit}")]
    TooManyRecords { count: usize, limit: usize },
    /// A Kinesis body naming another stream than the path.
    #[error("the body names stream `{body}` but the path names `{path}`")]
    StreamNameMismatch { path: String, body: String },
    /// The event log refused or failed.
    #[error(transparent)]
    Log(#[from] eventlog::Error),
    /// A bug or an impossible state on the server's side; answered with a generic 500.
    #[error("internal error: {0}")]
    Internal(String),
    /// The gateway's configuration cannot be served.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// The HTTP server itself failed (accepting connections).
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Which API family a route belongs to; decides the error body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Confluent REST proxy v2 routes.
    Kafka,
    /// Kinesis-proxy routes.
    Kinesis,
}

/// An [`Error`] on its way to becoming a response of one [`Family`].
#[derive(Debug)]
pub struct ApiError {
    pub family: Family,
    pub error: Error,
}

impl ApiError {
    /// The error in the Kafka REST shape.
    pub fn kafka(error: impl Into<Error>) -> Self {
        ApiError { family: Family::Kafka, error: error.into() }
    }

    /// The error in the Kinesis shape.
    pub fn kinesis(error: impl Into<Error>) -> Self {
        ApiError { family: Family::Kinesis, error: error.into() }
    }
}

#[derive(Serialize)]
struct KafkaBody<'a> {
    error_code: u32,
    message: &'a str,
}

#[derive(Serialize)]
struct KinesisBody<'a> {
    #[serde(rename = "__type")]
    kind: &'a str,
    message: &'a str,
}

/// The Kinesis account id used in ARNs and messages.
pub(crate) const ACCOUNT: &str = "000000000000";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use eventlog::Error as L;
        use {Error as E, StatusCode as S};

        let err = &self.error;
        let server_side = match err {
            E::Log(l) => {
                l.is_unavailable()
                    || !matches!(
                        l,
                        L::NotFound { .. }
                            | L::AlreadyExists { .. }
                            | L::NoSuchPartition { .. }
                            | L::InvalidName { .. }
                            | L::InvalidPartitionCount(_)
                    )
            }
            E::Internal(_) | E::Config(_) | E::Serve(_) => true,
            _ => false,
        };
        let unavailable = matches!(err, E::Log(l) if l.is_unavailable());
        if server_side {
            tracing::error!(error = %ErrorChain(err), family = ?self.family, "request failed");
        } else {
            tracing::debug!(error = %err, family = ?self.family, "request rejected");
        }

        let (status, body, content_type) = match self.family {
            Family::Kafka => {
                let (status, code, message) = match err {
                    E::Forbidden => (S::FORBIDDEN, 403, "Forbidden".to_owned()),
                    E::BodyTooLarge { limit } => {
                        (S::PAYLOAD_TOO_LARGE, 413, format!("Request entity too large: the limit is {limit} bytes."))
                    }
                    E::UnsupportedMediaType { .. } => {
                        (S::UNSUPPORTED_MEDIA_TYPE, 415, "HTTP 415 Unsupported Media Type".to_owned())
                    }
                    E::BodyRead(_) | E::MalformedJson(_) => (S::BAD_REQUEST, 400, err.to_string()),
                    E::InvalidRequest(_) | E::NoRecords | E::TooManyRecords { .. } | E::StreamNameMismatch { .. } => {
                        (S::UNPROCESSABLE_ENTITY, 422, err.to_string())
                    }
                    E::RecordTooLarge { .. } => (S::UNPROCESSABLE_ENTITY, 42201, err.to_string()),
                    E::Log(L::NotFound { name, .. } | L::InvalidName { name, .. }) => {
                        (S::NOT_FOUND, 40401, format!("Topic {name} not found."))
                    }
                    E::Log(L::NoSuchPartition { .. }) => (S::NOT_FOUND, 40402, "Partition not found.".to_owned()),
                    E::Log(L::AlreadyExists { name, .. }) => {
                        (S::CONFLICT, 40902, format!("Topic {name} already exists."))
                    }
                    E::Log(L::InvalidPartitionCount(_)) => (S::UNPROCESSABLE_ENTITY, 422, err.to_string()),
                    _ if unavailable => (S::SERVICE_UNAVAILABLE, 50301, "Service unavailable".to_owned()),
                    _ => (S::INTERNAL_SERVER_ERROR, 500, "Internal server error".to_owned()),
                };
                (status, json(&KafkaBody { error_code: code, message: &message }), KAFKA_CONTENT_TYPE)
            }
            Family::Kinesis => {
                let (status, kind, message) = match err {
                    E::Forbidden => (S::FORBIDDEN, "AccessDeniedException", "Forbidden".to_owned()),
                    E::BodyTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "ValidationException", err.to_string()),
                    E::UnsupportedMediaType { .. } => (
                        S::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaTypeException",
                        "Unsupported Media Type".to_owned(),
                    ),
                    E::BodyRead(_) | E::MalformedJson(_) => (S::BAD_REQUEST, "SerializationException", err.to_string()),
                    E::InvalidRequest(_)
                    | E::NoRecords
                    | E::TooManyRecords { .. }
                    | E::RecordTooLarge { .. }
                    | E::StreamNameMismatch { .. }
                    | E::Log(L::InvalidName { .. } | L::InvalidPartitionCount(_) | L::NoSuchPartition { .. }) => {
                        (S::BAD_REQUEST, "ValidationException", err.to_string())
                    }
                    E::Log(L::NotFound { name, .. }) => (
                        S::NOT_FOUND,
                        "ResourceNotFoundException",
                        format!("Stream {name} under account {ACCOUNT} not found."),
                    ),
                    E::Log(L::AlreadyExists { name, .. }) => (
                        S::CONFLICT,
                        "ResourceInUseException",
                        format!("Stream {name} under account {ACCOUNT} already exists."),
                    ),
                    _ if unavailable => {
                        (S::SERVICE_UNAVAILABLE, "ServiceUnavailableException", "Service unavailable".to_owned())
                    }
                    _ => (S::INTERNAL_SERVER_ERROR, "InternalFailure", "Internal service error".to_owned()),
                };
                (status, json(&KinesisBody { kind, message: &message }), "application/json")
            }
        };
        super::reply(status, content_type, body)
    }
}

/// Serializes an error body; these structs of strings and numbers always serialize.
fn json<T: Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec())
}

/// Displays an error with its sources, `a: b: c`, for the log.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;
    use http_body_util::BodyExt;

    async fn reply(e: ApiError) -> (StatusCode, String, String) {
        let r = e.into_response();
        let status = r.status();
        let ct = r.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn kafka_errors_use_the_proxy_envelope() {
        let nf = eventlog::Error::NotFound { noun: "topic", name: "pinterest.x".into() };
        assert_eq!(
            reply(ApiError::kafka(nf)).await,
            (
                StatusCode::NOT_FOUND,
                KAFKA_CONTENT_TYPE.into(),
                r#"{"error_code":40401,"message":"Topic pinterest.x not found."}"#.into()
            )
        );
        let (s, _, b) = reply(ApiError::kafka(Error::UnsupportedMediaType { content_type: None })).await;
        assert_eq!(
            (s, b.as_str()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, r#"{"error_code":415,"message":"HTTP 415 Unsupported Media Type"}"#)
        );
    }

    #[tokio::test]
    async fn server_side_failures_stay_generic() {
        let e = eventlog::Error::Io { path: "/secret/dir".into(), source: std::io::Error::other("disk on fire") };
        let (s, _, b) = reply(ApiError::kafka(e)).await;
        assert_eq!(
            (s, b.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, r#"{"error_code":50301,"message":"Service unavailable"}"#)
        );
        let e = eventlog::Error::UnsupportedUrl("x://secret".into());
        let (s, ct, b) = reply(ApiError::kinesis(e)).await;
        assert_eq!(
            (s, ct.as_str(), b.as_str()),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                r#"{"__type":"InternalFailure","message":"Internal service error"}"#
            )
        );
    }

    #[tokio::test]
    async fn kinesis_errors_use_the_kinesis_shape() {
        let e = eventlog::Error::AlreadyExists { noun: "stream", name: "s".into() };
        let (s, _, b) = reply(ApiError::kinesis(e)).await;
        assert_eq!(
            (s, b.as_str()),
            (
                StatusCode::CONFLICT,
                r#"{"__type":"ResourceInUseException","message":"Stream s under account 000000000000 already exists."}"#
            )
        );
        let (s, _, b) = reply(ApiError::kinesis(Error::BodyTooLarge { limit: 10 })).await;
        assert_eq!(
            (s, b.as_str()),
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"__type":"ValidationException","message":"request body is larger than 10 bytes"}"#
            )
        );
    }
}
