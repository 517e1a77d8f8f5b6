//! The gateway's TCP side: the accept loop, each connection's HTTP/1.1 settings, and the limits
//! that keep a public-facing server reachable for everyone while some clients misbehave (SPEC §3).
//!
//! Fed by the listener [`super::serve`] binds; feeds every request to the router of
//! [`super::app`]. Owns, per connection:
//! - **header-read timeout**: hyper's own (`header_read_timeout`): a request head must arrive
//!   whole within it, counted from the accept or from the end of the previous response, so a
//!   client that sends nothing, half a header, or a byte a second is closed.
//! - **idle timeout**: a keep-alive connection with no request in progress and no byte of the
//!   next one is closed after this long (it is also waiting for a header, so it cannot outlive the
//!   header-read timeout).
//! - **the connection cap**: at most `max_connections` at once, below the process's open-file
//!   limit so `accept` never runs out of descriptors. A new connection beyond the cap makes room
//!   by closing the connection that has waited longest without a request in progress — an idle
//!   one first, then one still sending its head (nginx reuses idle keep-alive connections the
//!   same way); when every connection is in the middle of a request, the new one is refused
//!   (closed at once). A request being answered is never cut.
//! - **answers to what is not HTTP**: hyper answers a request it cannot parse (a bad
//!   `Content-Length`, a header too large) with a bare status; on the API routes that answer is
//!   rewritten in the route family's error shape ([`Interceptor`]).
//!
//! The request body's own timeout and size limit are the router's business ([`super::layers`]).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::AppState;
use super::error::{self, Family};
use super::metrics::Connection as Event;

/// How long the server waits, after being told to stop, for requests in flight to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Descriptors kept free for everything else the process opens (log files, the lake, SQLite).
const MIN_RESERVED_FILES: u64 = 64;
/// Most connections the cap defaults to, however high the open-file limit.
const MAX_DEFAULT_CONNECTIONS: u64 = 65_536;
/// The least time between two warnings about the same accept trouble.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The limits one gateway applies to its connections (resolved settings, see `[gateway]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a whole request head, from the accept or the previous response.
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may sit with no request in progress and no byte of the
    /// next one; at most `header_read_timeout`.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// The default connection cap: the open-file limit minus a reserve for the rest of the process
/// (64 descriptors or a tenth of the limit, whichever is more), at most 65,536, at least 16.
pub fn default_max_connections() -> usize {
    let limit = open_file_limit().unwrap_or(1024);
    let reserve = MIN_RESERVED_FILES.max(limit / 10);
    usize::try_from(limit.saturating_sub(reserve).clamp(16, MAX_DEFAULT_CONNECTIONS)).unwrap_or(16)
}

/// The process's soft limit on open files (`RLIMIT_NOFILE`), where the platform has one.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit only writes the struct it is given.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        #[allow(clippy::useless_conversion, reason = "rlim_t is not u64 on every Unix")]
        (rc == 0).then(|| u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX))
    }
    #[cfg(not(unix))]
    None
}

/// Serves `app` on `listener` under `limits` until `shutdown`, then stops accepting, lets the
/// requests in flight finish (closing idle connections at once) and returns.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    state: AppState,
    limits: Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let tracker = Arc::new(Tracker::new(limits.max_connections));
    let mut tasks = JoinSet::new();
    let mut warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let metrics = state.metrics();
        let (stream, _peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors (or another resource): make room from the idle
                // connections and try again shortly, instead of stalling every client.
                metrics.connection(Event::AcceptError);
                let shed = tracker.shed_one(metrics);
                if warned.is_none_or(|w| w.elapsed() >= WARN_EVERY) {
                    tracing::warn!(error = %e, open = tracker.open(), shed, "accepting a connection failed; closed an idle one to make room");
                    warned = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(if shed { 1 } else { 50 })).await;
                continue;
            }
        };
        if tracker.open() >= tracker.cap && !tracker.shed_one(metrics) {
            // Every connection is in the middle of a request: refuse this one.
            metrics.connection(Event::Refused);
            if warned.is_none_or(|w| w.elapsed() >= WARN_EVERY) {
                tracing::warn!(
                    cap = tracker.cap,
                    "connection cap reached with every connection busy; refusing new ones"
                );
                warned = Some(Instant::now());
            }
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = tracker.admit();
        metrics.connection(Event::Accepted);
        tasks.spawn(serve_connection(
            stream,
            app.clone(),
            state.clone(),
            limits,
            conn,
            Arc::clone(&tracker),
            shutdown.clone(),
        ));
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(open = tasks.len(), "requests still in flight after {DRAIN_TIMEOUT:?}; closing them");
        tasks.shutdown().await;
    }
    Ok(())
}

/// Errors of one connection attempt that say nothing about the server.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Runs one connection until it ends, is shed, goes idle too long, or the server stops.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    state: AppState,
    limits: Limits,
    conn: Arc<Conn>,
    tracker: Arc<Tracker>,
    shutdown: CancellationToken,
) {
    let _leave = Leave { tracker: Arc::clone(&tracker), conn: Arc::clone(&conn), state: state.clone() };
    let io = TokioIo::new(Interceptor::new(stream, Arc::clone(&conn), state.clone()));
    let service = {
        let conn = Arc::clone(&conn);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = Busy::start(Arc::clone(&conn));
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(Body::new)).await;
                drop(busy);
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let metrics = state.metrics();
    let (mut stopping, mut shed_seen) = (false, false);
    // One timer, moved as the connection goes idle; it only ever fires to check.
    let idle = tokio::time::sleep_until(tokio::time::Instant::now() + limits.idle_timeout);
    tokio::pin!(idle);
    let mut armed = true;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        metrics.connection(Event::HeaderTimeout);
                    }
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = conn.shed.cancelled(), if !shed_seen => {
                shed_seen = true;
                if conn.busy.load(Ordering::Acquire) == 0 {
                    return;
                }
                // A request began just before the shed: finish it, then close.
                connection.as_mut().graceful_shutdown();
            }
            _ = idle.as_mut(), if armed => {
                match conn.idle_deadline(limits.idle_timeout) {
                    Some(deadline) if deadline <= Instant::now() => {
                        metrics.connection(Event::IdleClosed);
                        return;
                    }
                    Some(deadline) => idle.as_mut().reset(deadline.into()),
                    // Busy, or the next request is arriving: the next idle spell re-arms it.
                    None => armed = false,
                }
            }
            _ = conn.changed.notified() => {
                if let Some(deadline) = conn.idle_deadline(limits.idle_timeout) {
                    idle.as_mut().reset(deadline.into());
                    armed = true;
                }
            }
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Every open connection, for the cap and for choosing which one to close.
struct Tracker {
    cap: usize,
    epoch: Instant,
    next_id: AtomicU64,
    /// Connections admitted and neither closed nor shed.
    open: AtomicUsize,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

/// One connection as the tracker and its task see it.
struct Conn {
    id: u64,
    /// The tracker's epoch, the zero of `idle_since_ms`.
    epoch: Instant,
    /// Requests handed to the router and not answered yet.
    busy: AtomicUsize,
    /// Milliseconds after the tracker's epoch when the connection last had no request in
    /// progress (the accept, or the end of the last response).
    idle_since_ms: AtomicU64,
    /// True once a byte arrived since then: the client is sending its next request head.
    heard: AtomicBool,
    /// True while the connection counts toward the cap.
    counted: AtomicBool,
    /// Cancelled to make the connection close (it is shed).
    shed: CancellationToken,
    /// Woken when a request ends, so the task re-arms its idle timer.
    changed: Notify,
}

impl Tracker {
    fn new(cap: usize) -> Self {
        Tracker {
            cap: cap.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            conns: Mutex::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn admit(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            epoch: self.epoch,
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            heard: AtomicBool::new(false),
            counted: AtomicBool::new(true),
            shed: CancellationToken::new(),
            changed: Notify::new(),
        });
        self.open.fetch_add(1, Ordering::AcqRel);
        self.conns.lock().unwrap_or_else(PoisonError::into_inner).insert(conn.id, Arc::clone(&conn));
        conn
    }

    /// Stops counting `conn` (once, whether it was shed or ended).
    fn uncount(&self, conn: &Conn) {
        if conn.counted.swap(false, Ordering::AcqRel) {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Closes the connection that has waited longest with no request in progress, preferring
    /// those that sent nothing of a next request; false when every connection is busy.
    fn shed_one(&self, metrics: &super::Metrics) -> bool {
        let victim = {
            let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
            conns
                .values()
                .filter(|c| c.busy.load(Ordering::Acquire) == 0 && !c.shed.is_cancelled())
                .min_by_key(|c| (c.heard.load(Ordering::Relaxed), c.idle_since_ms.load(Ordering::Relaxed)))
                .cloned()
        };
        let Some(victim) = victim else { return false };
        victim.shed.cancel();
        self.uncount(&victim);
        metrics.connection(Event::Shed);
        true
    }
}

impl Conn {
    /// When this connection's idle time runs out, if it is idle now (no request in progress and
    /// nothing heard of the next).
    fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.busy.load(Ordering::Acquire) > 0 || self.heard.load(Ordering::Acquire) {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.epoch + since + idle_timeout)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Removes a connection from the tracker when its task ends, however it ends.
struct Leave {
    tracker: Arc<Tracker>,
    conn: Arc<Conn>,
    state: AppState,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.state.metrics().connection(Event::Closed);
        self.tracker.uncount(&self.conn);
        self.tracker.conns.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.conn.id);
    }
}

/// Marks a request in progress on its connection while alive.
struct Busy {
    conn: Arc<Conn>,
}

impl Busy {
    fn start(conn: Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy { conn }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The response is being written: the connection goes idle from now.
        self.conn.idle_since_ms.store(self.conn.now_ms(), Ordering::Release);
        self.conn.heard.store(false, Ordering::Release);
        self.conn.busy.fetch_sub(1, Ordering::AcqRel);
        self.conn.changed.notify_one();
    }
}

/// The socket as hyper sees it: notes when a client starts sending (for the idle timer and the
/// choice of which connection to shed), keeps the start of each request line, and rewrites
/// hyper's automatic answers to unparseable requests on the API routes into the route family's
/// error shape.
struct Interceptor {
    stream: TcpStream,
    conn: Arc<Conn>,
    state: AppState,
    /// The first bytes of the current request (its request line), for the family of a rewrite.
    line: Vec<u8>,
    /// True while bytes of a response are being written (the next read starts a new request).
    responding: bool,
    /// A rewritten answer still to be written, and how much of it is out.
    rewrite: Option<(Vec<u8>, usize)>,
    /// After a rewrite, what hyper writes of its own answer is dropped.
    swallow: bool,
}

/// Bytes of a request kept to find its path.
const LINE_BYTES: usize = 512;

impl Interceptor {
    fn new(stream: TcpStream, conn: Arc<Conn>, state: AppState) -> Self {
        Interceptor { stream, conn, state, line: Vec::new(), responding: false, rewrite: None, swallow: false }
    }

    /// The family-shaped replacement for `head`, when it is hyper's own answer to a request it
    /// could not parse (a 4xx without a body or content type) on an API route.
    fn replacement(&self, head: &[u8]) -> Option<Vec<u8>> {
        let status = automatic_error_status(head)?;
        let path = request_path(&self.line)?;
        let family = Family::of_path(self.state.config().base_path.as_deref(), path)?;
        Some(error::unparseable_request(family, status))
    }
}

impl AsyncRead for Interceptor {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            if this.responding {
                this.responding = false;
                this.line.clear();
            }
            if this.line.len() < LINE_BYTES {
                let take = read.len().min(LINE_BYTES - this.line.len());
                this.line.extend_from_slice(&read[..take]);
            }
            if !this.conn.heard.load(Ordering::Relaxed) && this.conn.busy.load(Ordering::Relaxed) == 0 {
                this.conn.heard.store(true, Ordering::Release);
            }
        }
        polled
    }
}

impl AsyncWrite for Interceptor {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.swallow && this.rewrite.is_none() {
            return Poll::Ready(Ok(buf.len()));
        }
        if this.rewrite.is_none()
            && !this.responding
            && let Some(bytes) = this.replacement(buf)
        {
            this.rewrite = Some((bytes, 0));
            this.swallow = true;
        }
        this.responding = true;
        if let Some((bytes, written)) = &mut this.rewrite {
            while *written < bytes.len() {
                match Pin::new(&mut this.stream).poll_write(cx, &bytes[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            this.rewrite = None;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The status of `head` when it is one of hyper's automatic answers to an unparseable request:
/// a 4xx status line whose head has no `content-type` (every answer of the router has one).
fn automatic_error_status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    let code = std::str::from_utf8(rest.get(..3)?).ok()?.parse::<u16>().ok()?;
    if !(400..500).contains(&code) {
        return None;
    }
    let end = memchr::memmem::find(head, b"\r\n\r\n").unwrap_or(head.len());
    let has_type = head[..end]
        .split(|&b| b == b'\n')
        .any(|line| line.len() >= 13 && line[..13].eq_ignore_ascii_case(b"content-type:"));
    (!has_type).then_some(code)
}

/// The path of the request line in `line` (`POST /topics/x HTTP/1.1`), query dropped.
fn request_path(line: &[u8]) -> Option<&str> {
    let end = memchr::memchr(b'\r', line).or_else(|| memchr::memchr(b'\n', line)).unwrap_or(line.len());
    let text = std::str::from_utf8(&line[..end]).ok()?;
    let mut parts = text.split(' ');
    let _method = parts.next()?;
    let target = parts.next()?;
    Some(target.split('?').next().unwrap_or(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_4xx_heads_are_rewritten() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 10:00:00 GMT\r\n\r\n";
        assert_eq!(automatic_error_status(bare), Some(400));
        assert_eq!(automatic_error_status(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n"), Some(431));
        let ours = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(automatic_error_status(ours), None);
        assert_eq!(automatic_error_status(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(automatic_error_status(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"), None);
        assert_eq!(automatic_error_status(b"{\"a\":1}"), None);
    }

    #[test]
    fn request_paths_come_from_the_request_line() {
        assert_eq!(request_path(b"POST /dev/topics/a?x=1 HTTP/1.1\r\nHost: h\r\n"), Some("/dev/topics/a"));
        assert_eq!(request_path(b"GET /streams HTTP/1.1"), Some("/streams"));
        assert_eq!(request_path(b"GARBAGE"), None);
    }

    #[test]
    fn the_default_cap_stays_below_the_open_file_limit() {
        let cap = default_max_connections() as u64;
        let limit = open_file_limit().unwrap_or(1024);
        assert!(cap >= 16 && (cap + MIN_RESERVED_FILES <= limit || limit < 80), "cap {cap}, limit {limit}");
    }
}
