//! pinpipe: the Pinterest-style event pipeline as one program.
//!
//! ```text
//!  source (MySQL | SQLite) ─► emulator ─HTTP─► gateway ─► eventlog ─┬─► sink ─► object store (JSON, Confluent layout)
//!                                                                   │               │
//!                                                                   │          batch job (clean → Q1–Q8 → results, report)
//!                                                                   │               ▲ schedule
//!                                                                   └─► stream job (clean → Delta tables, exactly once)
//! ```
//!
//! Modules are listed below in pipeline order, a group per stage: what every stage shares (the
//! data `contract`; the `settings` from flags, environment and `pinpipe.toml`, parsed and checked
//! once; the `backoff` of retries), then `source` → `emulator` → `gateway` → `eventlog` → `sink`
//! (into the `lake`) → `clean` (shared by both jobs) → `batch` → `report` (run by hand or by `schedule`), and `eventlog` → `clean` → `stream` → `upkeep` (compaction and vacuum of its Delta tables);
//! `lag` and `observe` read how far the workers are (the gateway's status page, the workers'
//! `/metrics`); `demo` runs them all and `bench` measures them. Every stage is a library
//! function; the `pinpipe` binary (`main.rs` and its `cli/`) only parses flags, handles signals
//! and calls them, so `demo`, the command line and the tests share one code path.

// What every stage shares.
pub mod contract;
pub mod settings;
pub mod backoff;

// Source → emulator → ingest API → event log.
pub mod source;
pub mod emulator;
pub mod gateway;
pub mod eventlog;

// The batch path: sink → lake → cleaning → batch job → report, on a schedule.
pub mod lake;
pub mod sink;
pub mod clean;
pub mod batch;
pub mod report;
pub mod schedule;

// The stream path: event log → cleaning → Delta tables, kept compact and vacuumed.
pub mod stream;
pub mod upkeep;

// Watching it run.
pub mod lag;
pub mod observe;

// All of it at once, and measured.
pub mod demo;
pub mod bench;
