//! What every API route does before and after its handler, as one layer on the API router: the
//! API key, the request body's size limit and deadline, and the request metrics.
//!
//! Fed by the router of [`super::app`] (only matched API routes pass through here; the status
//! routes, `/healthz` and `/metrics` do not); feeds the handlers in [`super::kafka_rest`] and
//! [`super::kinesis`] a request whose body stops at [`MAX_BODY_BYTES`] and at the body timeout,
//! and [`super::metrics`] one observation per answer. Errors are answered in the route family's
//! shape, found from the path ([`Family::of_path`]).
//!
//! The checks run in this order: key (403) → declared `Content-Length` (413), then, as the
//! handler reads the body, its size (413) and its deadline (408).

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::AppState;
use super::error::{ApiError, Error, Family};
use super::metrics::Route;

/// The largest request body accepted, as API Gateway's 10 MB payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The API layer (see the module doc).
pub(super) async fn api(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let family =
        Family::of_path(state.config().base_path.as_deref(), super::full_path(&request)).unwrap_or(Family::Kafka);
    let route = route_of(request.method(), request.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
    let response = match admit(&state, request.headers()) {
        Ok(()) => {
            let deadline = state.config().body_timeout;
            next.run(request.map(|body| Body::new(Limited::new(Deadline::new(body, deadline), MAX_BODY_BYTES)))).await
        }
        Err(error) => ApiError { family, error }.into_response(),
    };
    state.metrics().observe(route, response.status(), started);
    response
}

/// The checks made on the head alone: the API key, then the declared body size.
fn admit(state: &AppState, headers: &HeaderMap) -> Result<(), Error> {
    check_api_key(headers, &state.config().api_keys)?;
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        let too_big = std::str::from_utf8(len.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n > MAX_BODY_BYTES as u64);
        if too_big {
            return Err(Error::BodyTooLarge { limit: MAX_BODY_BYTES });
        }
    }
    Ok(())
}

/// The metrics family of a request: produce calls, stream puts, and everything else.
fn route_of(method: &Method, matched: Option<&str>) -> Route {
    match matched {
        Some(path) if method == Method::POST && path.ends_with("/topics/{topic}") => Route::Topics,
        Some(path) if method == Method::PUT && (path.ends_with("/record") || path.ends_with("/records")) => {
            Route::Streams
        }
        _ => Route::Admin,
    }
}

/// Checks `x-api-key` against the configured keys; no keys configured means the API is open.
pub fn check_api_key(headers: &HeaderMap, keys: &[String]) -> Result<(), Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let given = headers.get("x-api-key").map(|v| v.as_bytes()).ok_or(Error::Forbidden)?;
    // Look at every key, and every byte of equal-length keys, so timing says little.
    let found = keys.iter().fold(false, |found, k| found | same_bytes(given, k.as_bytes()));
    if found { Ok(()) } else { Err(Error::Forbidden) }
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a body the layer limited, whole: too large → [`Error::BodyTooLarge`], past its deadline
/// → [`Error::BodyTimeout`], a client that hung up → [`Error::BodyRead`].
pub(super) async fn collect(body: Body) -> Result<Bytes, Error> {
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => {
            let mut cause: Option<&(dyn StdError + 'static)> = Some(&e);
            while let Some(c) = cause {
                if c.is::<LengthLimitError>() {
                    return Err(Error::BodyTooLarge { limit: MAX_BODY_BYTES });
                }
                if let Some(elapsed) = c.downcast_ref::<DeadlineElapsed>() {
                    return Err(Error::BodyTimeout { limit: elapsed.0 });
                }
                cause = c.source();
            }
            Err(Error::BodyRead(e.to_string()))
        }
    }
}

/// A request body that fails once `limit` has passed since the head arrived: a client sending
/// its body slowly (or not at all) cannot hold a connection and a handler for long.
struct Deadline {
    inner: Body,
    limit: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Body, limit: Duration) -> Self {
        Deadline { inner, limit, sleep: Box::pin(tokio::time::sleep(limit)) }
    }
}

/// The error a [`Deadline`] body ends with.
#[derive(Debug)]
struct DeadlineElapsed(Duration);

impl fmt::Display for DeadlineElapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body did not arrive within {:?}", self.0)
    }
}

impl StdError for DeadlineElapsed {}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(DeadlineElapsed(self.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(body: Body, limit: Duration) -> Body {
        Body::new(Limited::new(Deadline::new(body, limit), MAX_BODY_BYTES))
    }

    #[test]
    fn api_keys_are_checked_only_when_configured() {
        let mut h = HeaderMap::new();
        assert!(check_api_key(&h, &[]).is_ok());
        let keys = vec!["k1".to_owned(), "secret".to_owned()];
        assert!(matches!(check_api_key(&h, &keys), Err(Error::Forbidden)));
        h.insert("x-api-key", "secreT".parse().unwrap());
        assert!(matches!(check_api_key(&h, &keys), Err(Error::Forbidden)));
        h.insert("x-api-key", "secret".parse().unwrap());
        assert!(check_api_key(&h, &keys).is_ok());
    }

    #[tokio::test]
    async fn bodies_stop_at_the_size_limit_and_the_deadline() {
        let ok = collect(limited(Body::from("{}"), Duration::from_secs(5))).await.unwrap();
        assert_eq!(&ok[..], b"{}");
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let e = collect(limited(Body::from(big), Duration::from_secs(5))).await.unwrap_err();
        assert!(matches!(e, Error::BodyTooLarge { .. }), "{e:?}");

        // A body whose bytes never come.
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
        let stalled = Body::new(http_body_util::StreamBody::new(tokio_stream_of(rx)));
        let e = collect(limited(stalled, Duration::from_millis(50))).await.unwrap_err();
        assert!(matches!(e, Error::BodyTimeout { limit } if limit == Duration::from_millis(50)), "{e:?}");
    }

    fn tokio_stream_of<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[test]
    fn routes_are_counted_by_family() {
        assert_eq!(route_of(&Method::POST, Some("/dev/topics/{topic}")), Route::Topics);
        assert_eq!(route_of(&Method::GET, Some("/topics/{topic}")), Route::Admin);
        assert_eq!(route_of(&Method::PUT, Some("/streams/{name}/records")), Route::Streams);
        assert_eq!(route_of(&Method::POST, Some("/streams/{name}")), Route::Admin);
    }
}
