//! The command-line contract (SPEC §10): global flags anywhere, environment variables, the
//! default logs on first start, clear errors and exit codes.

use std::process::{Command, Output};

fn pinpipe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pinpipe")).args(args).env_remove("PINPIPE_DATA").output().expect("run pinpipe")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "pinpipe failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn the_six_default_logs_exist_after_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    assert_eq!(stdout(&pinpipe(&["topics", "list", "--data", data])), "pinterest.geo\npinterest.pin\npinterest.user\n");
    assert_eq!(
        stdout(&pinpipe(&["--data", data, "streams", "list"])),
        "streaming-pinterest-geo\nstreaming-pinterest-pin\nstreaming-pinterest-user\n"
    );
}

#[test]
fn global_flags_work_before_or_after_the_subcommand_and_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    stdout(&pinpipe(&["--data", data, "--id", "abc", "topics", "create", "extra", "--partitions", "3"]));
    let after = stdout(&pinpipe(&["topics", "list", "--id", "abc", "--data", data]));
    assert_eq!(after, "abc.geo\nabc.pin\nabc.user\nextra\n");
    let from_env = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["topics", "describe", "extra"])
        .env("PINPIPE_DATA", data)
        .output()
        .unwrap();
    assert!(stdout(&from_env).starts_with("topic extra: 3 partition(s)\n"));
}

#[test]
fn a_config_file_sets_defaults_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pinpipe.toml");
    std::fs::write(&config, format!("data = {:?}\nid = \"fromfile\"\n", dir.path().join("d"))).unwrap();
    let config = config.to_str().unwrap();
    assert_eq!(
        stdout(&pinpipe(&["--config", config, "topics", "list"])),
        "fromfile.geo\nfromfile.pin\nfromfile.user\n"
    );
    assert_eq!(stdout(&pinpipe(&["topics", "list", "--config", config, "--id", "flag"])).lines().count(), 6);
}

#[test]
fn bad_config_and_unknown_names_fail_with_a_message_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "dta = \"x\"\n").unwrap();
    let out = pinpipe(&["--config", config.to_str().unwrap(), "topics", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dta"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = pinpipe(&["--data", dir.path().to_str().unwrap(), "topics", "describe", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("topic `nope` does not exist"));
}

#[test]
fn help_explains_every_subcommand() {
    let help = stdout(&pinpipe(&["--help"]));
    for word in [
        "seed", "emulate", "gateway", "topics", "streams", "schedule", "report", "bench", "--data", "--source",
        "--log", "--lake",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
}

#[test]
fn demo_runs_end_to_end_and_every_sent_record_lands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let text = stdout(&pinpipe(&["demo", "--count", "200", "--rows", "500", "--data", data]));
    for answer in ["Q1:", "Q2:", "Q3a:", "Q3b:", "Q4:", "Q5:", "Q6:", "Q7:", "Q8:"] {
        assert!(text.contains(answer), "{answer} missing from the demo output:\n{text}");
    }
    let batch = "batch path:  sent 600 = in the topics 600 = in the lake files 600 (pin 200, geo 200, user 200)";
    let stream = "stream path: sent 600 = in the streams 600 = in the Delta tables 600 (pin 200, geo 200, user 200)";
    assert!(text.contains(batch), "{text}");
    assert!(text.contains(stream), "{text}");
    for file in ["pin.parquet", "geo.parquet", "user.parquet", "rejects.parquet", "q1.csv", "q8.parquet", "report.html"]
    {
        assert!(dir.path().join("results").join(file).is_file(), "results/{file} missing");
    }
    let report = dir.path().join("results/report.html");
    assert!(text.contains(&format!("  report:  {}\n", report.display())), "the demo says where the report is:\n{text}");
    assert!(text.contains("/lake/delta/pinterest_pin_table\n"), "the demo says where the Delta tables are:\n{text}");
    // A second run on the same data reuses the source and counts only its own records.
    let again = stdout(&pinpipe(&["demo", "--count", "50", "--data", data]));
    assert!(!again.contains("seeding"), "{again}");
    assert!(
        again.contains("batch path:  sent 150 = in the topics 150 = in the lake files 150 (pin 50, geo 50, user 50)"),
        "{again}"
    );
    assert!(
        again
            .contains("stream path: sent 150 = in the streams 150 = in the Delta tables 150 (pin 50, geo 50, user 50)"),
        "{again}"
    );
}
