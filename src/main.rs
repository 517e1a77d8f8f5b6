//! The `pinpipe` binary: parses the command line and runs the stage it names (see `cli`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    pinpipe::cli::main().await
}
