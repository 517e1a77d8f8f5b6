//! `pinpipe bench batch`: STUB, being written.
