//! What the binary sets up for the whole process and the terminal: log lines (text or JSON, with
//! the warning and error counter of [`pinpipe::observe`]), the panic hook, the open-file limit,
//! the shutdown signal, and progress bars.
//!
//! Process-wide state lives here, in the binary, never in the library.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use pinpipe::observe;
use tokio_util::sync::CancellationToken;

use pinpipe::settings::LogFormat;

/// Log lines on stderr: text on a terminal (coloured) or elsewhere, JSON lines with
/// `--log-format json`; filtered by `RUST_LOG`.
pub(super) fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    // deltalake warns of every commit that found another ahead of it and rebased: routine while
    // the stream job compacts beside its own appends, so not a warning by default.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn,deltalake_core::kernel::transaction=error,\
             rdkafka=warn,aws_config=warn",
        )
    });
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // Counts warnings and errors for the workers' /metrics.
    let registry = tracing_subscriber::registry().with(filter).with(observe::EventCounter);
    match format {
        LogFormat::Text => registry.with(lines.with_ansi(std::io::stderr().is_terminal())).init(),
        LogFormat::Json => registry.with(lines.json()).init(),
    }
}

/// deltalake aborts a Parquet upload whose completion failed (a full disk under a local lake)
/// and catches the panic object_store's `BufWriter` raises, by design, when aborted after it
/// began shutting down (deltalake-core `datafile/writer.rs`). The job goes on and retries; only
/// the default hook's message would read like a crash. That one panic is logged at debug level;
/// every other goes to the default hook.
pub(super) fn quiet_caught_upload_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_buffered =
            info.location().is_some_and(|l| l.file().contains("object_store") && l.file().ends_with("buffered.rs"));
        let message = info.payload().downcast_ref::<&str>().copied().unwrap_or_default();
        if in_buffered && message == "Already shut down" {
            tracing::debug!("object_store refused to abort an upload that had failed (deltalake catches this)");
            return;
        }
        default(info);
    }));
}

/// Raises this process's soft limit on open files to its hard limit (as Go's runtime does): the
/// gateway's connection cap and the workers' files scale with it. Left as it is if that fails.
pub(super) fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
                // An unlimited hard limit is not a soft limit Linux accepts: stop at 2^20.
                let raised = libc::rlimit { rlim_cur: limit.rlim_max.min(1 << 20), rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                    tracing::debug!("cannot raise the open-file limit");
                }
            }
        }
    }
}

/// A token cancelled by Ctrl-C or SIGTERM: long-running commands stop cleanly on it.
pub(super) fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still stops");
                    let _ = ctrl_c.await;
                    cancel.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stopping");
        cancel.cancel();
    });
    token
}

/// A progress bar on a terminal; hidden otherwise (callers print plain lines instead).
pub(super) fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
