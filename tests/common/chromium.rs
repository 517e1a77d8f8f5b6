//! Headless Chromium for the page tests (report, status page): load a URL, let its scripts run
//! for a virtual-time budget, and return the DOM it ends with and every console message.

use std::path::PathBuf;
use std::process::Command;

/// What a page ended as.
pub struct Page {
    /// `--dump-dom`: the DOM after the scripts ran.
    pub dom: String,
    /// Console messages (`console.*` calls and uncaught errors), one per line of Chromium's log.
    pub console: Vec<String>,
}

/// The Chromium of `PINPIPE_TEST_CHROMIUM`, or `None` (printing why) when the variable is unset.
/// When it is set, the executable must exist.
pub fn from_env() -> Option<PathBuf> {
    let Ok(path) = std::env::var("PINPIPE_TEST_CHROMIUM") else {
        eprintln!("PINPIPE_TEST_CHROMIUM is not set: skipping the headless-browser check");
        return None;
    };
    let path = PathBuf::from(path);
    assert!(path.exists(), "PINPIPE_TEST_CHROMIUM={} does not exist", path.display());
    Some(path)
}

/// Loads `url` in a fresh headless Chromium profile, lets `budget_ms` of virtual time pass, and
/// returns the final DOM and the console messages.
pub fn load(chromium: &PathBuf, url: &str, budget_ms: u64) -> Page {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromium.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed on {url}: {}\n{stderr}", out.status);
    let console = stderr.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    Page { dom: String::from_utf8_lossy(&out.stdout).into_owned(), console }
}
