//! The posting emulator (SPEC §2): stub, being written.
