//! The gateway's own counters, served at `/metrics` in the Prometheus text format 0.0.4.
//!
//! Owns: requests by route family and status, records appended per log, and a request-duration
//! histogram per route family. The handlers in [`super::kafka_rest`] and [`super::kinesis`] feed
//! it once per request; Prometheus (or a curious human) reads it. The hot path is a handful of
//! relaxed atomic adds; only the first record for a log name, or a status code outside the usual
//! set, takes a lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use axum::http::StatusCode;

/// Which family of routes answered, the `route` label of every request metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /topics/{topic}`: the Kafka REST produce call.
    Topics,
    /// `PUT /streams/{name}/record(s)`: the Kinesis put calls.
    Streams,
    /// Everything that lists, describes, creates or deletes a topic or stream.
    Admin,
}

impl Route {
    const ALL: [Route; 3] = [Route::Topics, Route::Streams, Route::Admin];

    fn label(self) -> &'static str {
        match self {
            Route::Topics => "topics",
            Route::Streams => "streams",
            Route::Admin => "admin",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What happened to a connection, the `event` label of `pinpipe_gateway_connections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Accepted and served.
    Accepted,
    /// Closed at once: the cap was reached and every open connection was mid-request.
    Refused,
    /// Closed to make room for a new one: it had no request in progress.
    Shed,
    /// Closed after its idle timeout.
    IdleClosed,
    /// Closed because its request head did not arrive within the header-read timeout.
    HeaderTimeout,
    /// `accept` itself failed (out of file descriptors, say).
    AcceptError,
    /// Ended, for whatever reason (the gauge of open connections is accepted minus closed).
    Closed,
}

impl Connection {
    const ALL: [Connection; 7] = [
        Connection::Accepted,
        Connection::Refused,
        Connection::Shed,
        Connection::IdleClosed,
        Connection::HeaderTimeout,
        Connection::AcceptError,
        Connection::Closed,
    ];

    fn label(self) -> &'static str {
        match self {
            Connection::Accepted => "accepted",
            Connection::Refused => "refused",
            Connection::Shed => "shed",
            Connection::IdleClosed => "idle_timeout",
            Connection::HeaderTimeout => "header_timeout",
            Connection::AcceptError => "accept_error",
            Connection::Closed => "closed",
        }
    }
}

/// The statuses the gateway answers with; each gets a lock-free counter per route.
const STATUSES: [u16; 12] = [200, 400, 403, 404, 405, 408, 409, 413, 415, 422, 500, 503];

/// Upper bounds of the duration histogram, in seconds (the `le` labels).
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Per-route duration histogram: cumulative buckets are computed when rendering.
#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// All gateway counters. Shared by every request through [`super::AppState`].
#[derive(Default)]
pub struct Metrics {
    /// `[route][status index]` for the statuses in [`STATUSES`].
    requests: [[AtomicU64; STATUSES.len()]; 3],
    /// Any other status, rare enough for a lock.
    other_requests: Mutex<BTreeMap<(usize, u16), u64>>,
    durations: [Histogram; 3],
    /// Records appended, by log name.
    records: RwLock<BTreeMap<String, Arc<AtomicU64>>>,
    /// Connection events, by [`Connection`] in the order of `Connection::ALL`.
    connections: [AtomicU64; Connection::ALL.len()],
}

impl Metrics {
    /// Counts one answered request of `route` that started at `started`.
    pub fn observe(&self, route: Route, status: StatusCode, started: Instant) {
        let r = route.index();
        let code = status.as_u16();
        match STATUSES.iter().position(|&s| s == code) {
            Some(i) => {
                self.requests[r][i].fetch_add(1, Ordering::Relaxed);
            }
            None => {
                let mut other = self.other_requests.lock().unwrap_or_else(PoisonError::into_inner);
                *other.entry((r, code)).or_default() += 1;
            }
        }
        let elapsed = started.elapsed();
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&le| secs <= le).unwrap_or(BUCKETS.len());
        let h = &self.durations[r];
        h.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        h.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        h.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one connection event.
    pub fn connection(&self, event: Connection) {
        self.connections[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many connection events of this kind happened so far.
    pub fn connections(&self, event: Connection) -> u64 {
        self.connections[event as usize].load(Ordering::Relaxed)
    }

    /// Counts `n` records durably appended to the log `name`.
    pub fn add_records(&self, name: &str, n: usize) {
        let n = n as u64;
        {
            let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(counter) = records.get(name) {
                counter.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        records.entry(name.to_owned()).or_default().fetch_add(n, Ordering::Relaxed);
    }

    /// The number of requests of `route` answered with `status` so far.
    pub fn requests(&self, route: Route, status: StatusCode) -> u64 {
        let code = status.as_u16();
        match STATUSES.iter().position(|&s| s == code) {
            Some(i) => self.requests[route.index()][i].load(Ordering::Relaxed),
            None => {
                let other = self.other_requests.lock().unwrap_or_else(PoisonError::into_inner);
                other.get(&(route.index(), code)).copied().unwrap_or(0)
            }
        }
    }

    /// The number of requests of `route` answered with anything but 200 so far.
    pub fn rejected(&self, route: Route) -> u64 {
        let known: u64 = STATUSES
            .iter()
            .zip(&self.requests[route.index()])
            .filter(|&(&s, _)| s != 200)
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum();
        let other = self.other_requests.lock().unwrap_or_else(PoisonError::into_inner);
        known + other.iter().filter(|&(&(r, _), _)| r == route.index()).map(|(_, &n)| n).sum::<u64>()
    }

    /// The number of records appended to `log` so far.
    pub fn records(&self, log: &str) -> u64 {
        let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
        records.get(log).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Everything, in the Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail; the results are ignored on purpose.
        out.push_str("# HELP pinpipe_gateway_requests_total Requests answered, by route family and HTTP status.\n");
        out.push_str("# TYPE pinpipe_gateway_requests_total counter\n");
        let other = self.other_requests.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for route in Route::ALL {
            let mut rows: BTreeMap<u16, u64> = STATUSES
                .iter()
                .zip(&self.requests[route.index()])
                .map(|(&s, c)| (s, c.load(Ordering::Relaxed)))
                .filter(|&(_, n)| n > 0)
                .collect();
            for (&(r, code), &n) in &other {
                if r == route.index() {
                    rows.insert(code, n);
                }
            }
            for (code, n) in rows {
                let _ = writeln!(
                    out,
                    "pinpipe_gateway_requests_total{{route=\"{}\",status=\"{code}\"}} {n}",
                    route.label()
                );
            }
        }

        out.push_str("# HELP pinpipe_gateway_records_total Records durably appended, by log.\n");
        out.push_str("# TYPE pinpipe_gateway_records_total counter\n");
        for (name, n) in self.records.read().unwrap_or_else(PoisonError::into_inner).iter() {
            // Log names are [A-Za-z0-9._-] (eventlog::validate_name): nothing to escape.
            let _ = writeln!(out, "pinpipe_gateway_records_total{{log=\"{name}\"}} {}", n.load(Ordering::Relaxed));
        }

        out.push_str("# HELP pinpipe_gateway_connections_open Connections open now.\n");
        out.push_str("# TYPE pinpipe_gateway_connections_open gauge\n");
        let open = self.connections(Connection::Accepted).saturating_sub(self.connections(Connection::Closed));
        let _ = writeln!(out, "pinpipe_gateway_connections_open {open}");
        out.push_str("# HELP pinpipe_gateway_connections_total Connection events: accepted, closed, and why some were closed or refused.\n");
        out.push_str("# TYPE pinpipe_gateway_connections_total counter\n");
        for event in Connection::ALL {
            let _ = writeln!(
                out,
                "pinpipe_gateway_connections_total{{event=\"{}\"}} {}",
                event.label(),
                self.connections(event)
            );
        }

        out.push_str(
            "# HELP pinpipe_gateway_request_duration_seconds Time from routing to the reply, by route family.\n",
        );
        out.push_str("# TYPE pinpipe_gateway_request_duration_seconds histogram\n");
        for route in Route::ALL {
            let h = &self.durations[route.index()];
            let label = route.label();
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "pinpipe_gateway_request_duration_seconds_bucket{{route=\"{label}\",le=\"{le}\"}} {cumulative}"
                );
            }
            cumulative += h.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "pinpipe_gateway_request_duration_seconds_bucket{{route=\"{label}\",le=\"+Inf\"}} {cumulative}"
            );
            let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "pinpipe_gateway_request_duration_seconds_sum{{route=\"{label}\"}} {sum}");
            let _ = writeln!(
                out,
                "pinpipe_gateway_request_duration_seconds_count{{route=\"{label}\"}} {}",
                h.count.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// Appends `pinpipe_gateway_log_accepting`: per log, 1 while it takes appends, 0 while it answers
/// 503 with `Retry-After` (backpressure), with the reason (`low_space`, `disk_full`, `queue`).
pub fn render_intake(out: &mut String, logs: &[(&str, Option<crate::eventlog::Pressure>)]) {
    out.push_str("# HELP pinpipe_gateway_log_accepting 1 while the log takes appends, 0 while it answers 503 (reason: low_space, disk_full, queue).\n");
    out.push_str("# TYPE pinpipe_gateway_log_accepting gauge\n");
    for (log, pressure) in logs {
        let (reason, accepting) = pressure.as_ref().map_or(("", 1), |p| (p.label(), 0));
        let _ = writeln!(out, "pinpipe_gateway_log_accepting{{log=\"{log}\",reason=\"{reason}\"}} {accepting}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_records_and_durations() {
        let m = Metrics::default();
        let t = Instant::now();
        m.observe(Route::Topics, StatusCode::OK, t);
        m.observe(Route::Topics, StatusCode::OK, t);
        m.observe(Route::Streams, StatusCode::IM_A_TEAPOT, t);
        m.add_records("pinterest.pin", 3);
        m.add_records("pinterest.pin", 2);
        assert_eq!(m.requests(Route::Topics, StatusCode::OK), 2);
        assert_eq!(m.requests(Route::Streams, StatusCode::IM_A_TEAPOT), 1);
        assert_eq!(m.records("pinterest.pin"), 5);
        assert_eq!((m.rejected(Route::Topics), m.rejected(Route::Streams)), (0, 1));
        let text = m.render();
        assert!(text.contains("pinpipe_gateway_requests_total{route=\"topics\",status=\"200\"} 2\n"), "{text}");
        assert!(text.contains("pinpipe_gateway_requests_total{route=\"streams\",status=\"418\"} 1\n"), "{text}");
        assert!(text.contains("pinpipe_gateway_records_total{log=\"pinterest.pin\"} 5\n"), "{text}");
        assert!(text.contains("pinpipe_gateway_request_duration_seconds_bucket{route=\"topics\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("pinpipe_gateway_request_duration_seconds_count{route=\"admin\"} 0\n"));
    }
}
