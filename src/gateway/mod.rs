//! The ingest API (SPEC §3): stub, being written.
