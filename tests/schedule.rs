//! `pinpipe schedule` (SPEC §7): runs the batch job at every cron tick, retries a failed run at
//! the next tick, and stops cleanly (exit 0) on SIGTERM.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// A data folder whose lake holds the golden sink files.
fn golden_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/topics");
    common::copy_dir(&golden, &dir.path().join("lake/topics"));
    dir
}

/// Starts `pinpipe schedule` with `args`; its stdout lines arrive on the receiver.
fn start(args: &[&str], data: &Path) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .arg("schedule")
        .args(args)
        .arg("--data")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The next stdout line, within 60 s.
fn next_line(rx: &Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(60)).expect("a line from pinpipe schedule within 60 s")
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!("pinpipe schedule did not stop within 60 s of SIGTERM");
}

#[test]
fn runs_the_batch_at_every_tick_and_stops_cleanly_on_sigterm() {
    let data = golden_data();
    let (mut child, rx) = start(&["--cron", "* * * * * *"], data.path());
    let results = data.path().join("results");
    let mut started = Vec::new();
    for n in 1..=2 {
        let line = next_line(&rx);
        assert!(line.starts_with(&format!("run {n} (tick ")), "{line}");
        // Incremental: the first run reads the 57 records, the next only what is new (nothing).
        let read = if n == 1 { 57 } else { 0 };
        assert!(
            line.contains("): ok in ")
                && line.ends_with(&format!(" {read} records read; results in {}", results.display())),
            "{line}"
        );
        let meta = pinpipe::report::read_meta(&results).unwrap();
        started.push(meta.started_at);
    }
    assert!(results.join("report.html").is_file() && results.join("q1.csv").is_file());
    assert!(started[0] <= started[1]);
    let status = terminate(&mut child);
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    let mut rest: Vec<String> = rx.iter().collect();
    let last = rest.pop().expect("a closing line");
    assert!(last.starts_with("schedule stopped: ") && last.contains(" 0 failed"), "{last}");
    // Whatever ran before the signal finished: no half-written folder is left beside the results.
    let leftovers: Vec<String> = fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".results"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_failed_run_is_retried_at_the_next_tick() {
    let data = golden_data();
    // A symbolic-link loop makes the pin topic unlistable: the runs fail until it is removed.
    let trap = data.path().join("lake/topics/pinterest.pin/partition=0/loop");
    std::os::unix::fs::symlink("..", &trap).unwrap();
    let (mut child, rx) = start(&["--cron", "* * * * * *"], data.path());
    let line = next_line(&rx);
    assert!(
        line.starts_with("run 1 (tick ") && line.contains("): failed: ") && line.contains("pinterest.pin"),
        "{line}"
    );
    assert!(!data.path().join("results").exists(), "a failed run writes no results");
    fs::remove_file(&trap).unwrap();
    let line = loop {
        let line = next_line(&rx);
        if !line.contains("): failed: ") {
            break line;
        }
    };
    assert!(line.contains("): ok in "), "{line}");
    assert!(data.path().join("results/report.html").is_file());
    assert_eq!(terminate(&mut child).code(), Some(0));
}

#[test]
fn a_bad_cron_expression_is_refused_with_the_flag_named() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["schedule", "--cron", "0 0 *", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--cron `0 0 *` has 3 fields"), "{stderr}");
}
