//! The posting emulator (SPEC §2): picks random source rows and sends them to the ingest API.
//!
//! Fed by the source ([`crate::source::Reader`]), feeds the gateway over HTTP exactly as the
//! course's Python emulator does: per iteration one random row position `r`, the r-th row of each
//! of the three tables, sent as three requests — `POST /topics/<id>.{pin,geo,user}` (Kafka REST,
//! batch mode) or `PUT /streams/streaming-<id>-{pin,geo,user}/record` (stream mode). Which rows
//! are sent depends only on the seed and the iteration number, never on timing or concurrency.
//! 5xx answers and connection errors are retried with exponential backoff; 4xx answers are
//! reported and not retried (the request itself is wrong).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::contract::{self, Table};
use crate::source::{self, Reader};

/// Which family of API routes the emulator posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Kafka REST proxy routes: `POST /topics/<id>.pin` …
    Batch,
    /// Kinesis routes: `PUT /streams/streaming-<id>-pin/record` …
    Stream,
}

/// How long to wait between iterations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// The original emulator's habit: each worker sleeps a random 0–2 s after each iteration.
    Original,
    /// A fixed total rate in iterations per second over all workers; `0` means as fast as
    /// the API answers.
    Rate(f64),
}

/// Retry policy for 5xx answers and connection errors.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubles each time.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 8, initial: Duration::from_millis(100), max: Duration::from_secs(5) }
    }
}

/// Everything one emulator run needs. Its `Debug` never shows the API key.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Base URL of the gateway, stage path included (`http://127.0.0.1:8082/dev`).
    pub api: String,
    /// Sent as `x-api-key` when set.
    pub api_key: Option<String>,
    /// Pipeline id: names the topics and streams.
    pub id: String,
    pub mode: Mode,
    /// Iterations to run; `None` runs until cancelled.
    pub count: Option<u64>,
    pub pace: Pace,
    /// Iterations in flight at once.
    pub concurrency: usize,
    /// Picks the rows: the same seed sends the same rows.
    pub seed: u64,
    pub retry: Retry,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("api", &self.api)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("id", &self.id)
            .field("mode", &self.mode)
            .field("count", &self.count)
            .field("pace", &self.pace)
            .field("concurrency", &self.concurrency)
            .field("seed", &self.seed)
            .field("retry", &self.retry)
            .finish()
    }
}

impl EmulatorConfig {
    /// The defaults for pipeline `id` in `mode`: the gateway at its default address, no API key,
    /// 100 iterations at the original's pace, one in flight, seed 42.
    pub fn new(id: &str, mode: Mode) -> EmulatorConfig {
        EmulatorConfig {
            api: format!("http://{}", crate::gateway::DEFAULT_LISTEN),
            api_key: None,
            id: id.to_string(),
            mode,
            count: Some(100),
            pace: Pace::Original,
            concurrency: 1,
            seed: crate::source::DEFAULT_SEED,
            retry: Retry::default(),
        }
    }
}

/// What a run did, in records (three per iteration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Iterations started and finished (successfully or not).
    pub iterations: u64,
    /// Records the API acknowledged with a 2xx.
    pub sent: u64,
    /// Records given up on: a 4xx answer, or still failing after every retry.
    pub failed: u64,
    /// Extra attempts made after 5xx answers or connection errors.
    pub retries: u64,
}

/// Errors that stop the emulator as a whole (a failing request only counts as failed).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the source has no rows: run `pinpipe seed` first")]
    EmptySource,
    #[error("reading source row {position}")]
    Source {
        position: u64,
        #[source]
        source: source::Error,
    },
    #[error("invalid API URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("concurrency must be at least 1")]
    NoConcurrency,
    #[error("invalid rate: {0}")]
    BadRate(String),
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("encoding source row {position} as JSON")]
    Encode {
        position: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// The row position iteration `i` sends: a hash of (seed, i), so the choice is independent of
/// timing and concurrency.
pub fn position_for(seed: u64, iteration: u64, rows: u64) -> u64 {
    let mut z = seed ^ iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z % rows
}

/// Runs the emulator until `count` iterations are done or `shutdown` fires; `progress` gets
/// the number of finished iterations after each one.
pub async fn run(
    cfg: EmulatorConfig,
    reader: Reader,
    shutdown: CancellationToken,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<Summary, Error> {
    if cfg.concurrency == 0 {
        return Err(Error::NoConcurrency);
    }
    if let Pace::Rate(rate) = cfg.pace {
        crate::settings::values::EMULATOR_RATE.check(rate).map_err(Error::BadRate)?;
    }
    let rows = reader.rows();
    if rows == 0 {
        return Err(Error::EmptySource);
    }
    let api = reqwest::Url::parse(cfg.api.trim_end_matches('/'))
        .map_err(|e| Error::BadUrl { url: cfg.api.clone(), reason: e.to_string() })?;
    if !matches!(api.scheme(), "http" | "https") {
        return Err(Error::BadUrl { url: cfg.api.clone(), reason: "the scheme must be http or https".into() });
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.concurrency)
        // Below the gateway's default idle timeout (5 s), so the client retires a connection
        // before the server closes it under a request.
        .pool_idle_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(Error::Client)?;
    let shared = Arc::new(Shared {
        cfg,
        api: api.as_str().trim_end_matches('/').to_string(),
        client,
        reader,
        rows,
        next_iteration: AtomicU64::new(0),
        done: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        next_slot: Mutex::new(Instant::now()),
        shutdown,
        progress,
    });
    let workers: Vec<_> =
        (0..shared.cfg.concurrency).map(|w| tokio::spawn(Arc::clone(&shared).work(w as u64))).collect();
    let mut first_error = None;
    for worker in workers {
        match worker.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shared.shutdown.cancel();
                first_error.get_or_insert(e);
            }
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(shared.summary())
}

/// State the workers share.
struct Shared {
    cfg: EmulatorConfig,
    api: String,
    client: reqwest::Client,
    reader: Reader,
    rows: u64,
    next_iteration: AtomicU64,
    done: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    /// When the next iteration may start under a fixed rate.
    next_slot: Mutex<Instant>,
    shutdown: CancellationToken,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
}

/// One request: where it goes and what it carries.
struct Request {
    url: String,
    body: String,
}

impl Shared {
    fn summary(&self) -> Summary {
        Summary {
            iterations: self.done.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }

    async fn work(self: Arc<Self>, worker: u64) -> Result<(), Error> {
        let mut pause_rng = ChaCha8Rng::seed_from_u64(self.cfg.seed ^ worker.wrapping_mul(0x2545_F491_4F6C_DD1D));
        loop {
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            let iteration = self.next_iteration.fetch_add(1, Ordering::Relaxed);
            if self.cfg.count.is_some_and(|count| iteration >= count) {
                return Ok(());
            }
            if !self.wait_for_slot().await {
                return Ok(());
            }
            let position = position_for(self.cfg.seed, iteration, self.rows);
            let post = self.reader.post_at(position).await.map_err(|source| Error::Source { position, source })?;
            for request in self.requests(&post, position)? {
                self.send(request).await;
            }
            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            (self.progress)(done);
            if self.cfg.pace == Pace::Original {
                let pause = Duration::from_secs_f64(pause_rng.random_range(0.0..2.0));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = self.shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }

    /// Under a fixed rate, sleeps until this iteration's slot; false if cancelled meanwhile.
    async fn wait_for_slot(&self) -> bool {
        let Pace::Rate(rate) = self.cfg.pace else { return true };
        if rate <= 0.0 {
            return true;
        }
        let slot = {
            let mut next = self.next_slot.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + Duration::from_secs_f64(1.0 / rate);
            slot
        };
        tokio::select! {
            _ = tokio::time::sleep_until(slot) => true,
            _ = self.shutdown.cancelled() => false,
        }
    }

    /// The three requests of one iteration, in the original's order: pin, geo, user.
    fn requests(&self, post: &source::Post, position: u64) -> Result<[Request; 3], Error> {
        let encode = |json: serde_json::Result<String>| json.map_err(|source| Error::Encode { position, source });
        let pin = encode(serde_json::to_string(&post.pin))?;
        let geo = encode(serde_json::to_string(&post.geo))?;
        let user = encode(serde_json::to_string(&post.user))?;
        let id = &self.cfg.id;
        let key = post.pin.index.to_string();
        let build = |table: Table, value: String| match self.cfg.mode {
            Mode::Batch => Request {
                url: format!("{}/topics/{}", self.api, contract::topic(id, table)),
                body: format!(r#"{{"records":[{{"value":{value}}}]}}"#),
            },
            Mode::Stream => {
                let stream = contract::stream(id, table);
                Request {
                    url: format!("{}/streams/{stream}/record", self.api),
                    body: format!(r#"{{"StreamName":"{stream}","Data":{value},"PartitionKey":"{key}"}}"#),
                }
            }
        };
        Ok([build(Table::Pin, pin), build(Table::Geo, geo), build(Table::User, user)])
    }

    /// Sends one request, retrying what may succeed later; counts the outcome. A 503 or 429
    /// with `Retry-After` (the log's backpressure) is waited out as the server asks, and does not
    /// use up an attempt: the emulator slows down to what the pipeline takes.
    async fn send(&self, request: Request) {
        let (method, content_type) = match self.cfg.mode {
            Mode::Batch => (reqwest::Method::POST, "application/vnd.kafka.json.v2+json"),
            Mode::Stream => (reqwest::Method::PUT, "application/json"),
        };
        let retry = self.cfg.retry;
        let attempts = retry.attempts.max(1);
        let mut backoff = Backoff::new(retry.initial, retry.max);
        let mut attempt = 1;
        loop {
            let mut builder = self
                .client
                .request(method.clone(), &request.url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(request.body.clone());
            if let Some(key) = &self.cfg.api_key {
                builder = builder.header("x-api-key", key);
            }
            let outcome = match builder.send().await {
                Ok(response) if response.status().is_success() => {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(response) if response.status().is_server_error() || response.status().as_u16() == 429 => {
                    if let Some(wait) = retry_after(&response) {
                        tracing::debug!(url = %request.url, status = %response.status(), ?wait, "the API asks to wait");
                        self.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => continue,
                            _ = self.shutdown.cancelled() => break,
                        }
                    }
                    format!("HTTP {}", response.status())
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    tracing::warn!(url = %request.url, %status, %body, "the API refused a record; not retrying");
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => format!("{e}"),
            };
            if attempt >= attempts || self.shutdown.is_cancelled() {
                tracing::warn!(url = %request.url, error = %outcome, attempts = attempt, "giving up on a record");
                break;
            }
            tracing::debug!(url = %request.url, error = %outcome, "retrying after {:?}", backoff.next_wait());
            self.retries.fetch_add(1, Ordering::Relaxed);
            backoff.pause(&self.shutdown).await;
            attempt += 1;
        }
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Longest `Retry-After` the emulator waits for at once (it asks again after).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The wait a `Retry-After` header asks for, in whole seconds (its HTTP-date form is not used by
/// pinpipe's gateway and is taken as no header), at most [`MAX_RETRY_AFTER`].
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_depend_only_on_seed_and_iteration() {
        let a: Vec<u64> = (0..100).map(|i| position_for(42, i, 11_154)).collect();
        let b: Vec<u64> = (0..100).map(|i| position_for(42, i, 11_154)).collect();
        let c: Vec<u64> = (0..100).map(|i| position_for(43, i, 11_154)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|&p| p < 11_154));
    }

    #[test]
    fn positions_cover_the_table() {
        let mut seen = [false; 100];
        for i in 0..2000 {
            seen[position_for(7, i, 100) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
