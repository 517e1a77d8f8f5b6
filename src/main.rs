//! The `pinpipe` binary: parses the command line and runs the stage it names (see `cli`).

mod cli;

/// mimalloc: the gateway and the batch job allocate many small buffers per record; it measured
/// faster than the system allocator in `pinpipe bench ingest`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::main().await
}
