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
//! Modules follow the data, in pipeline order: `source` → `emulator` → `gateway` → `eventlog` →
//! `sink` (into the `lake`) → `clean` (shared) → `batch` → `report` (run by hand or by `schedule`),
//! and `eventlog` → `clean` → `stream`; `lag` and `observe` read how far the workers are (the
//! gateway's status page, the workers' `/metrics`). Every stage is a library function; the `pinpipe`
//! binary (`main.rs`, `cli.rs`) only parses flags, handles signals and calls them, so `demo`, the
//! command line and the tests share one code path.

pub mod backoff;
pub mod batch;
pub mod bench;
pub mod clean;
pub mod cli;
pub mod config;
pub mod demo;
pub mod emulator;
pub mod eventlog;
pub mod gateway;
pub mod lag;
pub mod lake;
pub mod observe;
pub mod report;
pub mod schedule;
pub mod settings;
pub mod sink;
pub mod source;
pub mod stream;
pub mod table;
