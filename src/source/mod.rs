//! The source database (SPEC §1): stub, being written.
