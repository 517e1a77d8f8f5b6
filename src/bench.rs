//! Benchmarks: stub, being written.
