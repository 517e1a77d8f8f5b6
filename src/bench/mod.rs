//! Benchmarks (`pinpipe bench …`): each stage measured beside a baseline run in the same process
//! or script, so the figure that matters is a ratio that holds on a noisy machine.

pub mod batch;
pub mod ingest;
pub mod stream;
