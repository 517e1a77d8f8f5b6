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
//! | body not received whole within the body timeout | 408 | 408 |
//! | content type not `application/vnd.kafka.json.v2+json` | 415 | 415 |
//! | body not JSON or not UTF-8 (or the client hung up mid-body) | 400 | 400 |
//! | a path segment that is not valid percent-encoded UTF-8 | 400 | 400 |
//! | a request that is not valid HTTP/1.1 (a bad `Content-Length`, …) | 400 (431, 414) | 400 (431, 414) |
//! | JSON of the wrong shape (an array for an object, …), empty `records`, bad partition count | 422 | 422 |
//! | a record value or key nested more than 100 levels deep | 422 | 422 |
//! | a record value over 1,000,000 bytes (compacted) | 422 | 42201 |
//! | no such route | 404 | 404 |
//! | a method the route does not take | 405 | 405 |
//! | unknown topic (or a name no topic can have) | 404 | 40401 |
//! | explicit partition out of range | 404 | 40402 |
//! | log unavailable (storage failed, writer stopped) | 503 | 50301 |
//! | log takes no records now (disk under `min_free`, disk full, `max_pending` records waiting); `Retry-After: 1` | 503 | 50302 |
//! | anything else | 500 | 500 |
//!
//! # Kinesis routes (`/streams…`): body `{"__type":"…","message":"…"}`
//!
//! | condition | status | `__type` |
//! | --- | --- | --- |
//! | missing or wrong `x-api-key` | 403 | `AccessDeniedException` |
//! | body over 10 MB | 413 | `ValidationException` |
//! | body not received whole within the body timeout | 408 | `RequestTimeoutException` |
//! | content type not `application/json` / `application/x-amz-json-1.1` | 415 | `UnsupportedMediaTypeException` |
//! | body not JSON or not UTF-8 | 400 | `SerializationException` |
//! | a request that is not valid HTTP/1.1 (a bad `Content-Length`, …) | 400 (431, 414) | `SerializationException` |
//! | wrong shape, bad name or path, 0 or > 500 records, record > 1 MiB, data nested > 100 levels, `StreamName` ≠ path, bad `ShardCount` | 400 | `ValidationException` |
//! | no such route | 404 | `UnknownOperationException` |
//! | a method the route does not take | 405 | `UnknownOperationException` |
//! | unknown stream | 404 | `ResourceNotFoundException` |
//! | creating a stream that exists | 409 | `ResourceInUseException` |
//! | log unavailable | 503 | `ServiceUnavailableException` |
//! | log takes no records now (as above); `Retry-After: 1` | 503 | `ProvisionedThroughputExceededException` |
//! | anything else | 500 | `InternalFailure` |
//!
//! No failed request is ever answered with 200.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::eventlog;
use crate::observe::ErrorChain;

/// Seconds a client is told to wait (`Retry-After`) when the log takes no records now.
pub(crate) const RETRY_AFTER_SECS: u64 = 1;

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
    /// The body did not arrive whole within the body timeout (a slow or stalled client).
    #[error("the request body did not arrive within {}", crate::settings::display_duration(*limit))]
    BodyTimeout { limit: std::time::Duration },
    /// The client went away or sent a broken body stream.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// The body is not UTF-8, so it is not JSON (RFC 8259).
    #[error("malformed JSON: the request body is not UTF-8")]
    NotUtf8,
    /// The body is not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(#[source] serde_json::Error),
    /// A path segment that is not valid percent-encoded UTF-8.
    #[error("invalid path: {0}")]
    BadPath(String),
    /// hyper could not parse the request as HTTP/1.1 and answered `status` itself.
    #[error("the request is not valid HTTP/1.1")]
    Unparseable { status: u16 },
    /// No route has this path.
    #[error("no route for {path}")]
    NoRoute { path: String },
    /// The route exists but does not take this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// A record's value or key nests arrays and objects deeper than the limit.
    #[error("record {index} is nested {depth} levels deep, more than the limit of {limit}")]
    TooDeep { index: usize, depth: usize, limit: usize },
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

impl Family {
    /// The family of a request path: `{base}/topics…` is Kafka, `{base}/streams…` Kinesis,
    /// anything else (the status routes, a path outside the base) neither.
    pub fn of_path(base: Option<&str>, path: &str) -> Option<Family> {
        let rest = match base {
            Some(base) => path.strip_prefix(base)?,
            None => path,
        };
        let under = |prefix: &str| rest.strip_prefix(prefix).is_some_and(|r| r.is_empty() || r.starts_with('/'));
        if under("/topics") {
            Some(Family::Kafka)
        } else if under("/streams") {
            Some(Family::Kinesis)
        } else {
            None
        }
    }
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

/// What a Kafka REST handler fails with: answered in the proxy's envelope.
#[derive(Debug)]
pub struct KafkaError(pub Error);

/// What a Kinesis-route handler fails with: answered in Kinesis's shape.
#[derive(Debug)]
pub struct KinesisError(pub Error);

impl<E: Into<Error>> From<E> for KafkaError {
    fn from(e: E) -> Self {
        KafkaError(e.into())
    }
}

impl<E: Into<Error>> From<E> for KinesisError {
    fn from(e: E) -> Self {
        KinesisError(e.into())
    }
}

impl IntoResponse for KafkaError {
    fn into_response(self) -> Response {
        ApiError::kafka(self.0).into_response()
    }
}

impl IntoResponse for KinesisError {
    fn into_response(self) -> Response {
        ApiError::kinesis(self.0).into_response()
    }
}

/// A whole HTTP/1.1 response (head and body, `connection: close`) answering a request hyper
/// could not parse on a route of `family`, in that family's shape; `status` is hyper's.
pub(crate) fn unparseable_request(family: Family, status: u16) -> Vec<u8> {
    let (status, body, content_type) = ApiError { family, error: Error::Unparseable { status } }.parts();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
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

impl ApiError {
    /// The status, body and content type this error is answered with; logs server-side
    /// failures with their detail (which the body never shows).
    fn parts(&self) -> (StatusCode, Vec<u8>, &'static str) {
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
                            | L::Backpressure { .. }
                    )
            }
            E::Internal(_) | E::Config(_) | E::Serve(_) => true,
            _ => false,
        };
        let unavailable = matches!(err, E::Log(l) if l.is_unavailable());
        let refusing = matches!(err, E::Log(L::Backpressure { .. }));
        if server_side {
            tracing::error!(error = %ErrorChain(err), family = ?self.family, "request failed");
        } else {
            tracing::debug!(error = %err, family = ?self.family, "request rejected");
        }
        // hyper's statuses for what it cannot parse: 400, 431 (headers too large), 414 (URI).
        let unparseable = |status: u16| S::from_u16(status).ok().filter(S::is_client_error).unwrap_or(S::BAD_REQUEST);

        match self.family {
            Family::Kafka => {
                let (status, code, message) = match err {
                    E::Forbidden => (S::FORBIDDEN, 403, "Forbidden".to_owned()),
                    E::BodyTooLarge { limit } => {
                        (S::PAYLOAD_TOO_LARGE, 413, format!("Request entity too large: the limit is {limit} bytes."))
                    }
                    E::BodyTimeout { .. } => (S::REQUEST_TIMEOUT, 408, err.to_string()),
                    E::UnsupportedMediaType { .. } => {
                        (S::UNSUPPORTED_MEDIA_TYPE, 415, "HTTP 415 Unsupported Media Type".to_owned())
                    }
                    E::BodyRead(_) | E::NotUtf8 | E::MalformedJson(_) | E::BadPath(_) => {
                        (S::BAD_REQUEST, 400, err.to_string())
                    }
                    E::Unparseable { status } => {
                        let status = unparseable(*status);
                        let reason = status.canonical_reason().unwrap_or("Bad Request");
                        let code = u32::from(status.as_u16());
                        (status, code, format!("HTTP {code} {reason}: the request is not valid HTTP/1.1"))
                    }
                    E::NoRoute { .. } => (S::NOT_FOUND, 404, "HTTP 404 Not Found".to_owned()),
                    E::MethodNotAllowed { .. } => {
                        (S::METHOD_NOT_ALLOWED, 405, "HTTP 405 Method Not Allowed".to_owned())
                    }
                    E::InvalidRequest(_)
                    | E::NoRecords
                    | E::TooManyRecords { .. }
                    | E::StreamNameMismatch { .. }
                    | E::TooDeep { .. } => (S::UNPROCESSABLE_ENTITY, 422, err.to_string()),
                    E::RecordTooLarge { .. } => (S::UNPROCESSABLE_ENTITY, 42201, err.to_string()),
                    E::Log(L::NotFound { name, .. } | L::InvalidName { name, .. }) => {
                        (S::NOT_FOUND, 40401, format!("Topic {name} not found."))
                    }
                    E::Log(L::NoSuchPartition { .. }) => (S::NOT_FOUND, 40402, "Partition not found.".to_owned()),
                    E::Log(L::AlreadyExists { name, .. }) => {
                        (S::CONFLICT, 40902, format!("Topic {name} already exists."))
                    }
                    E::Log(L::InvalidPartitionCount(_)) => (S::UNPROCESSABLE_ENTITY, 422, err.to_string()),
                    _ if refusing => (S::SERVICE_UNAVAILABLE, 50302, REFUSING.to_owned()),
                    _ if unavailable => (S::SERVICE_UNAVAILABLE, 50301, "Service unavailable".to_owned()),
                    _ => (S::INTERNAL_SERVER_ERROR, 500, "Internal server error".to_owned()),
                };
                (status, json(&KafkaBody { error_code: code, message: &message }), KAFKA_CONTENT_TYPE)
            }
            Family::Kinesis => {
                let (status, kind, message) = match err {
                    E::Forbidden => (S::FORBIDDEN, "AccessDeniedException", "Forbidden".to_owned()),
                    E::BodyTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "ValidationException", err.to_string()),
                    E::BodyTimeout { .. } => (S::REQUEST_TIMEOUT, "RequestTimeoutException", err.to_string()),
                    E::UnsupportedMediaType { .. } => (
                        S::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaTypeException",
                        "Unsupported Media Type".to_owned(),
                    ),
                    E::BodyRead(_) | E::NotUtf8 | E::MalformedJson(_) => {
                        (S::BAD_REQUEST, "SerializationException", err.to_string())
                    }
                    E::Unparseable { status } => (unparseable(*status), "SerializationException", err.to_string()),
                    E::NoRoute { .. } => (S::NOT_FOUND, "UnknownOperationException", err.to_string()),
                    E::MethodNotAllowed { .. } => (S::METHOD_NOT_ALLOWED, "UnknownOperationException", err.to_string()),
                    E::InvalidRequest(_)
                    | E::NoRecords
                    | E::TooManyRecords { .. }
                    | E::RecordTooLarge { .. }
                    | E::TooDeep { .. }
                    | E::BadPath(_)
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
                    _ if refusing => {
                        (S::SERVICE_UNAVAILABLE, "ProvisionedThroughputExceededException", REFUSING.to_owned())
                    }
                    _ if unavailable => {
                        (S::SERVICE_UNAVAILABLE, "ServiceUnavailableException", "Service unavailable".to_owned())
                    }
                    _ => (S::INTERNAL_SERVER_ERROR, "InternalFailure", "Internal service error".to_owned()),
                };
                (status, json(&KinesisBody { kind, message: &message }), "application/json")
            }
        }
    }
}

/// The message of a 503 for an append the log refused for now (the reason goes to the log).
const REFUSING: &str = "The event log takes no records now; nothing was stored. Retry after the Retry-After seconds.";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refusing = matches!(self.error, Error::Log(eventlog::Error::Backpressure { .. }));
        let (status, body, content_type) = self.parts();
        let mut response = super::reply(status, content_type, body);
        if refusing {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECS.into());
        }
        response
    }
}

/// Serializes an error body; these structs of strings and numbers always serialize.
fn json<T: Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec())
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
        let e = eventlog::Error::InvalidUrl { url: "x://secret".into(), reason: "no".into() };
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
