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
    for file in ["q1.csv", "q8.parquet", "report.html", "run.json"] {
        assert!(dir.path().join("results").join(file).is_file(), "results/{file} missing");
    }
    for table in ["pinterest_batch_pin", "pinterest_batch_geo", "pinterest_batch_user", "pinterest_batch_rejects"] {
        let log = dir.path().join("lake/delta").join(table).join("_delta_log");
        assert!(log.is_dir(), "the batch table {table} is missing");
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

/// The exit code and the whole stderr of a run that must fail.
fn failure(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pinpipe"));
    cmd.args(args).arg("--data").arg(dir.path()).env_remove("PINPIPE_DATA");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run pinpipe");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn out_of_range_values_are_one_line_errors_naming_the_flag() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["sink", "--flush-interval", "99999999999999999999h"],
            "error: invalid value '99999999999999999999h' for '--flush-interval <DURATION>': `99999999999999999999h` is too long a duration",
        ),
        (
            &["stream", "--max-latency", "99999999999999999999h"],
            "error: invalid value '99999999999999999999h' for '--max-latency <DURATION>': `99999999999999999999h` is too long a duration",
        ),
        (
            &["emulate", "--mode", "batch", "--rate", "1e-20"],
            "error: invalid value '1e-20' for '--rate <RATE>': 1e-20 is out of range: use 0 (no limit) or a number from 0.001 to 1000000 per second",
        ),
        (
            &["stream", "--checkpoint-every", "0"],
            "error: invalid value '0' for '--checkpoint-every <N>': 0 is out of range: use a whole number from 1 to 1000000",
        ),
        (
            &["sink", "--flush-size", "0"],
            "error: invalid value '0' for '--flush-size <N>': 0 is out of range: use a whole number from 1 to 10000000",
        ),
        (
            &["stream", "--max-latency", "5ms"],
            "error: invalid value '5ms' for '--max-latency <DURATION>': 5ms is out of range: use 10ms to 1h",
        ),
        (
            &["gateway", "--idle-timeout", "ten"],
            "error: invalid value 'ten' for '--idle-timeout <DURATION>': `ten` is not a duration such as 10s, 500ms, 5m, 24h or 7d",
        ),
        (
            &["bench", "ingest", "--seconds", "1e30"],
            "error: invalid value '1e30' for '--seconds <DURATION>': `1e30`: unknown unit `e30` (use ms, s, m, h or d)",
        ),
    ];
    for (args, expected) in cases {
        let (code, stderr) = failure(args, &[]);
        assert_eq!((code, stderr.as_str()), (Some(2), format!("{expected}\n").as_str()), "{args:?}");
    }
    // The same check for the variable, which names the flag it stands for.
    let (code, stderr) = failure(&["stream"], &[("PINPIPE_CHECKPOINT_EVERY", "0")]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: invalid value '0' for '--checkpoint-every <N>'"), "{stderr}");
}

#[test]
fn mistakes_in_the_config_file_are_one_line_errors_naming_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pinpipe.toml");
    let path = config.display();
    for (toml, expected) in [
        (
            "[stream]\ncheckpoint_every = 0\n".to_string(),
            format!("error: invalid config file {path}, line 2, `stream.checkpoint_every`: 0 is out of range: use a whole number from 1 to 1000000"),
        ),
        (
            "id = \"x\"\n[sink]\nflush_interval = \"99999999999999999999h\"\n".to_string(),
            format!("error: invalid config file {path}, line 3, `sink.flush_interval`: `99999999999999999999h` is too long a duration"),
        ),
        (
            "[emulator]\nrate = 1e-20\n".to_string(),
            format!("error: invalid config file {path}, line 2, `emulator.rate`: 1e-20 is out of range: use 0 (no limit) or a number from 0.001 to 1000000 per second"),
        ),
        (
            "[batch]\nout = \"/r\"\nwhen = \"daily\"\n".to_string(),
            format!("error: invalid config file {path}, line 3, `batch.when`: unknown field `when`, expected `out` or `cron`"),
        ),
        (
            "lake = \"gs://bucket\"\n".to_string(),
            format!("error: invalid config file {path}, line 1, `lake`: `gs://bucket` is not a supported lake (expected file://DIR or s3://bucket/prefix)"),
        ),
        (
            "[gateway]\nidle_timeout = \"20s\"\n".to_string(),
            "error: invalid gateway configuration: the idle timeout (20s) may not exceed the header-read timeout (10s): an idle connection is also waiting for its next request's header".to_string(),
        ),
    ] {
        std::fs::write(&config, &toml).unwrap();
        let (code, stderr) =
            failure(&["--config", config.to_str().unwrap(), "gateway", "--listen", "127.0.0.1:0"], &[]);
        assert_eq!((code, stderr.as_str()), (Some(2), format!("{expected}\n").as_str()), "{toml}");
    }
    // A bad URL on the command line is the same one line, naming the flag.
    let (code, stderr) = failure(&["topics", "list", "--log", "kafka://broker"], &[]);
    assert_eq!(
        (code, stderr.as_str()),
        (
            Some(2),
            "error: invalid value 'kafka://broker' for '--log <URL>': `kafka://broker` has a broker address `broker` that is not HOST:PORT\n"
        )
    );
}

/// Starts `pinpipe gateway` with `args` and `env` and returns the address it says it listens on.
fn gateway_address(args: &[&str], env: &[(&str, &str)]) -> String {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .arg("gateway")
        .args(args)
        .env_remove("PINPIPE_LISTEN")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    first.trim().rsplit("http://").next().unwrap().to_string()
}

#[test]
fn a_stage_setting_comes_from_the_flag_then_the_variable_then_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let (in_file, in_env, in_flag) = (free(), free(), free());
    let config = dir.path().join("pinpipe.toml");
    std::fs::write(
        &config,
        format!(
            "data = {:?}\n[log]\nurl = \"embedded://{}\"\n[gateway]\nlisten = \"{in_file}\"\n",
            dir.path(),
            dir.path().join("elsewhere").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    assert_eq!(gateway_address(&["--config", config], &[]), in_file);
    assert_eq!(gateway_address(&["--config", config], &[("PINPIPE_LISTEN", &in_env)]), in_env);
    assert_eq!(gateway_address(&["--config", config, "--listen", &in_flag], &[("PINPIPE_LISTEN", &in_env)]), in_flag);
    // The `[log]` table's URL is where the topics and (an embedded log's) streams are.
    assert!(dir.path().join("elsewhere").is_dir() && !dir.path().join("log").exists());
}

#[test]
fn emulate_exits_1_when_the_api_refuses_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    stdout(&pinpipe(&["seed", "--rows", "20", "--data", data]));
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["gateway", "--listen", &listen, "--data", data])
        .env("PINPIPE_API_KEY", "secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the gateway did not come up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let api = format!("http://{listen}");
    let out = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["emulate", "--mode", "batch", "--count", "2", "--rate", "0", "--api", &api, "--data", data])
        .env_remove("PINPIPE_API_KEY")
        .output()
        .unwrap();
    let _ = gateway.kill();
    let _ = gateway.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().last(), Some("error: 6 records were not accepted (see the warnings above)"), "{stderr}");
}
