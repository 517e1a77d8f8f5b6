//! Setting values and their bounds, in one place for the command line, the `PINPIPE_*`
//! environment and `pinpipe.toml`: durations (`10s`, `500ms`, `7d`), rates, counts and worker
//! shares, each parsed without overflow and checked against the range the setting allows.
//!
//! Fed by the CLI (clap value parsers built from the bounds below, so a flag and its variable
//! fail the same way, naming the flag) and by [`super::sections`] (the same bounds for the file's
//! keys); feeds the stages the checked values. A value out of range is a one-line error saying
//! what is allowed, never a panic later.

use std::fmt;
use std::time::Duration;

/// Parses a duration: a number (decimals allowed) with a unit `ms`, `s`, `m`, `h` or `d`, or a
/// bare number of seconds: `10s`, `500ms`, `1.5m`, `7d`, `30`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("`{text}` is not a duration such as 10s, 500ms, 5m, 24h or 7d");
    if number.is_empty() {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => return Err(format!("`{text}`: unknown unit `{other}` (use ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| format!("`{text}` is too long a duration"))
}

/// A duration as a person writes it: the largest unit that divides it (`7d`, `90s`, `250ms`).
pub fn display_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 && !d.is_zero() {
        return format!("{}us", d.as_micros());
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        0 => "0s".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The range a duration setting allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
}

impl DurationRange {
    /// Parses `text` and checks it is in range.
    pub fn parse(self, text: &str) -> Result<Duration, String> {
        self.check(parse_duration(text)?)
    }

    /// Checks a duration is in range.
    pub fn check(self, d: Duration) -> Result<Duration, String> {
        if d < self.min || d > self.max {
            return Err(format!("{} is out of range: use {self}", display_duration(d)));
        }
        Ok(d)
    }

    /// A clap value parser for a flag of this range.
    pub fn parser(self) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
        move |text| self.parse(text)
    }
}

impl fmt::Display for DurationRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", display_duration(self.min), display_duration(self.max))
    }
}

/// The range a count setting allows (records, connections, commits, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountRange {
    pub min: u64,
    pub max: u64,
}

impl CountRange {
    /// Parses `text` as a whole number and checks it is in range.
    pub fn parse(self, text: &str) -> Result<u64, String> {
        let text = text.trim().replace('_', "");
        let n: u64 = text.parse().map_err(|_| format!("`{text}` is not a whole number; use {self}"))?;
        self.check(n)
    }

    /// Checks a count is in range.
    pub fn check(self, n: u64) -> Result<u64, String> {
        if n < self.min || n > self.max {
            return Err(format!("{n} is out of range: use {self}"));
        }
        Ok(n)
    }

    /// A clap value parser for a flag of this range, as a `usize`.
    pub fn usize_parser(self) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
        move |text| self.parse(text).and_then(|n| usize::try_from(n).map_err(|_| format!("{n} is too large here")))
    }

    /// A clap value parser for a flag of this range, as a `u64`.
    pub fn u64_parser(self) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
        move |text| self.parse(text)
    }
}

impl fmt::Display for CountRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number from {} to {}", self.min, self.max)
    }
}

/// The range a rate setting allows (events per second); `0` may mean "no limit".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateRange {
    pub min: f64,
    pub max: f64,
    /// Whether `0` is allowed besides the range (as fast as possible).
    pub zero: bool,
}

impl RateRange {
    /// Parses `text` as a number and checks it is in range.
    pub fn parse(self, text: &str) -> Result<f64, String> {
        let text = text.trim();
        let rate: f64 = text.parse().map_err(|_| format!("`{text}` is not a number; use {self}"))?;
        self.check(rate)
    }

    /// Checks a rate is in range.
    pub fn check(self, rate: f64) -> Result<f64, String> {
        if (self.zero && rate == 0.0) || (rate >= self.min && rate <= self.max) {
            return Ok(rate);
        }
        // Very small or large numbers in scientific notation, as a person would write them.
        let shown =
            if rate != 0.0 && !(1e-4..1e15).contains(&rate.abs()) { format!("{rate:e}") } else { format!("{rate}") };
        Err(format!("{shown} is out of range: use {self}"))
    }

    /// A clap value parser for a flag of this range.
    pub fn parser(self) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
        move |text| self.parse(text)
    }
}

impl fmt::Display for RateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.zero {
            write!(f, "0 (no limit) or a number from {} to {} per second", self.min, self.max)
        } else {
            write!(f, "a number from {} to {} per second", self.min, self.max)
        }
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const HOUR: Duration = secs(3600);
const DAY: Duration = secs(86_400);

/// `sink --flush-interval`, `[sink] flush_interval`.
pub const FLUSH_INTERVAL: DurationRange = DurationRange { min: ms(10), max: DAY };
/// `sink --flush-size`, `[sink] flush_size`.
pub const FLUSH_SIZE: CountRange = CountRange { min: 1, max: 10_000_000 };
/// `stream --max-latency`, `[stream] max_latency`.
pub const MAX_LATENCY: DurationRange = DurationRange { min: ms(10), max: HOUR };
/// `stream --max-batch`, `[stream] max_batch`.
pub const MAX_BATCH: CountRange = CountRange { min: 1, max: 1_000_000 };
/// `stream --checkpoint-every`, `[stream] checkpoint_every`.
pub const CHECKPOINT_EVERY: CountRange = CountRange { min: 1, max: 1_000_000 };
/// `emulate --rate`, `[emulator] rate`: iterations per second over all workers.
pub const EMULATOR_RATE: RateRange = RateRange { min: 0.001, max: 1_000_000.0, zero: true };
/// `emulate --concurrency`, `demo --concurrency`, `[emulator] concurrency`.
pub const CONCURRENCY: CountRange = CountRange { min: 1, max: 10_000 };
/// `seed --rows`, `demo --rows`.
pub const ROWS: CountRange = CountRange { min: 1, max: 1_000_000_000 };
/// `gateway --header-read-timeout`, `[gateway] header_read_timeout`.
pub const HEADER_READ_TIMEOUT: DurationRange = DurationRange { min: ms(100), max: HOUR };
/// `gateway --idle-timeout`, `[gateway] idle_timeout`.
pub const IDLE_TIMEOUT: DurationRange = DurationRange { min: ms(100), max: HOUR };
/// `gateway --body-timeout`, `[gateway] body_timeout`.
pub const BODY_TIMEOUT: DurationRange = DurationRange { min: ms(100), max: HOUR };
/// `gateway --max-connections`, `[gateway] max_connections`.
pub const MAX_CONNECTIONS: CountRange = CountRange { min: 1, max: 1_000_000 };
/// `stream --lake-timeout`, `[stream] lake_timeout`: how long the stream job waits out a lake
/// that is full or unreachable before it gives up.
pub const LAKE_TIMEOUT: DurationRange = DurationRange { min: secs(1), max: secs(30 * 86_400) };
/// `--retention`, `--stream-retention`, `[log] retention`, `[streams] retention`,
/// `topics create --retention`: how long a log keeps its records (or `forever`).
pub const RETENTION: DurationRange = DurationRange { min: secs(1), max: secs(100 * 365 * 86_400) };

/// Parses a retention: `forever`, or a duration in [`RETENTION`]'s range.
pub fn parse_retention(text: &str) -> Result<crate::eventlog::Retention, String> {
    use crate::eventlog::Retention;
    match text.trim() {
        "forever" => Ok(Retention::Forever),
        other => RETENTION.parse(other).map(Retention::For).map_err(|e| format!("{e} (or `forever`)")),
    }
}

/// `--max-pending`, `[log] max_pending`: records that may wait for the embedded log's writer.
pub const MAX_PENDING: CountRange = CountRange { min: 1, max: 100_000_000 };

/// Parses a size: a whole or decimal number with an optional unit, `B`, `KB`/`MB`/`GB`/`TB`
/// (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024): `2GiB`, `500MB`, `0`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a size such as 2GiB, 500MB or 0");
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(bytes as u64)
}

/// Parses `--min-free` / `[log] min_free`: a size ([`parse_size`]) or a share of the disk
/// (`5%`).
pub fn parse_min_free(text: &str) -> Result<crate::eventlog::MinFree, String> {
    use crate::eventlog::MinFree;
    let text = text.trim();
    match text.strip_suffix('%') {
        Some(percent) => match percent.trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(MinFree::Percent(p)),
            Ok(_) => Err(format!("{text} is out of range: use 0% to 100%")),
            Err(_) => Err(format!("`{text}` is not a share such as 5%")),
        },
        None => parse_size(text).map(MinFree::Bytes).map_err(|e| format!("{e}, or a share such as 5%")),
    }
}

/// A byte limit that may be off: `--retention-bytes`, `[log] retention_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteLimit(pub Option<u64>);

/// Parses `--retention-bytes` / `[log] retention_bytes`: a size of at least 1 MiB
/// ([`parse_size`]), or `none`.
pub fn parse_retention_bytes(text: &str) -> Result<ByteLimit, String> {
    if text.trim() == "none" {
        return Ok(ByteLimit(None));
    }
    let bytes = parse_size(text).map_err(|e| format!("{e} (or `none`)"))?;
    if bytes < 1 << 20 {
        return Err(format!("{} is out of range: use 1MiB or more, or `none`", text.trim()));
    }
    Ok(ByteLimit(Some(bytes)))
}

/// A setting that can be turned off: `Some` when on, `None` for `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrOff<T>(pub Option<T>);

/// `stream --compact-files`, `[stream] compact_files`: small files a Delta table may have before
/// the stream job compacts it (or `off`).
pub const COMPACT_FILES: CountRange = CountRange { min: 1, max: 1_000_000 };

/// Parses `--compact-files` / `[stream] compact_files`: a count in [`COMPACT_FILES`] or `off`.
pub fn parse_compact_files(text: &str) -> Result<OrOff<usize>, String> {
    if text.trim() == "off" {
        return Ok(OrOff(None));
    }
    let n = COMPACT_FILES.parse(text).map_err(|e| format!("{e} (or `off`)"))?;
    Ok(OrOff(Some(usize::try_from(n).unwrap_or(usize::MAX))))
}

/// `stream --vacuum-every`, `[stream] vacuum_every`: how often the stream job vacuums its tables.
pub const VACUUM_EVERY: DurationRange = DurationRange { min: secs(1), max: secs(30 * 86_400) };

/// Parses `--vacuum-every` / `[stream] vacuum_every`: a duration in [`VACUUM_EVERY`] or `off`.
pub fn parse_vacuum_every(text: &str) -> Result<OrOff<Duration>, String> {
    if text.trim() == "off" {
        return Ok(OrOff(None));
    }
    VACUUM_EVERY.parse(text).map(|d| OrOff(Some(d))).map_err(|e| format!("{e} (or `off`)"))
}

/// `--file-retention`, `[stream] file_retention`: how long vacuum keeps data files no version
/// needs any more (Delta's `delta.deletedFileRetentionDuration`).
pub const FILE_RETENTION: DurationRange = DurationRange { min: secs(1), max: secs(100 * 365 * 86_400) };

/// Parses `--target-file-size` / `[stream] target_file_size`: a size ([`parse_size`]) from 1 MiB
/// to 16 GiB.
pub fn parse_target_file_size(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if !(1 << 20..=16 << 30).contains(&bytes) {
        return Err(format!("{} is out of range: use 1MiB to 16GiB", text.trim()));
    }
    Ok(bytes)
}

/// `bench … --seconds`: how long a benchmark measures.
pub const BENCH_DURATION: DurationRange = DurationRange { min: ms(100), max: DAY };

/// Which share of the partitions one sink or stream worker owns. `--worker I/N` takes the
/// partitions `p` with `p % N == I`, so N workers started as `0/N` … `N-1/N` split every topic or
/// stream between them without overlap; each keeps its positions in the outputs, as one worker
/// does, so workers can stop and start independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    pub index: u32,
    pub count: u32,
}

impl Worker {
    /// The only worker: every partition.
    pub const ALL: Worker = Worker { index: 0, count: 1 };

    /// True when this worker owns `partition`.
    pub fn owns(&self, partition: u32) -> bool {
        partition % self.count == self.index
    }
}

impl Default for Worker {
    fn default() -> Self {
        Worker::ALL
    }
}

impl std::fmt::Display for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Worker {
    type Err = String;

    fn from_str(text: &str) -> Result<Worker, String> {
        let bad = || format!("`{text}` is not a worker share I/N with 0 <= I < N, such as 0/2");
        let (index, count) = text.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Worker { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_never_overflow() {
        assert_eq!(parse_duration("10s").unwrap(), secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), ms(250));
        assert_eq!(parse_duration("1.5m").unwrap(), secs(90));
        assert_eq!(parse_duration("7d").unwrap(), secs(7 * 86_400));
        assert_eq!(parse_duration("2").unwrap(), secs(2));
        for bad in ["ten", "5w", "", "s", "-1s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let e = parse_duration("99999999999999999999h").unwrap_err();
        assert!(e.contains("too long"), "{e}");
    }

    #[test]
    fn durations_display_in_their_largest_unit() {
        assert_eq!(display_duration(secs(7 * 86_400)), "7d");
        assert_eq!(display_duration(secs(90)), "90s");
        assert_eq!(display_duration(secs(120)), "2m");
        assert_eq!(display_duration(ms(250)), "250ms");
        assert_eq!(display_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn out_of_range_values_say_what_is_allowed() {
        assert_eq!(FLUSH_INTERVAL.parse("10s").unwrap(), secs(10));
        let e = FLUSH_INTERVAL.parse("99999999999999999999h").unwrap_err();
        assert!(e.contains("too long"), "{e}");
        assert_eq!(MAX_LATENCY.parse("2h").unwrap_err(), "2h is out of range: use 10ms to 1h");
        assert_eq!(CHECKPOINT_EVERY.parse("0").unwrap_err(), "0 is out of range: use a whole number from 1 to 1000000");
        assert!(CHECKPOINT_EVERY.parse("-3").unwrap_err().contains("not a whole number"));
        assert_eq!(EMULATOR_RATE.parse("0").unwrap(), 0.0);
        assert!(EMULATOR_RATE.parse("1e-20").unwrap_err().contains("out of range"));
        assert!(EMULATOR_RATE.parse("NaN").unwrap_err().contains("out of range"));
        assert!(EMULATOR_RATE.parse("inf").unwrap_err().contains("out of range"));
        assert_eq!(MAX_BATCH.usize_parser()("1_000").unwrap(), 1000);
    }

    #[test]
    fn worker_shares_split_partitions_without_overlap() {
        let workers: Vec<Worker> = ["0/3", "1/3", "2/3"].iter().map(|w| w.parse().unwrap()).collect();
        for p in 0..12 {
            assert_eq!(workers.iter().filter(|w| w.owns(p)).count(), 1, "partition {p}");
        }
        assert!(Worker::ALL.owns(7));
        for bad in ["", "1", "2/2", "0/0", "a/b", "-1/2"] {
            assert!(bad.parse::<Worker>().is_err(), "{bad:?}");
        }
        assert_eq!("1/4".parse::<Worker>().unwrap().to_string(), "1/4");
    }
}
