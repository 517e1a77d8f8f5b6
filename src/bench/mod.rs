//! Benchmarks (`pinpipe bench …`): each stage measured beside a baseline run in the same process
//! or script, so the figure that matters is a ratio that holds on a noisy machine.
//!
//! `ingest` and `stream` measure the gateway over the log a `--backend` names (a temporary embedded
//! log by default, or Kafka / Kinesis); [`backend`] holds the setup they share. `soak` runs the
//! pipeline as separate long-running processes and watches what grows.

pub mod backend;
pub mod batch;
pub mod ingest;
pub mod soak;
pub mod stream;
