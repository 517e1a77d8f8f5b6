//! Every setting has a `pinpipe.toml` key, a flag and a `PINPIPE_*` variable that give the same
//! resolved settings (`--print-settings` shows them), and every value out of range is one line
//! naming the flag or the key, exit 2, whichever way it came in.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `pinpipe --config <config> <args> --print-settings` with only `env` in its environment.
fn run(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .arg("--config")
        .arg(config)
        .args(args)
        .arg("--print-settings")
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run pinpipe")
}

fn printed(out: Output) -> String {
    assert!(out.status.success(), "pinpipe failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// One setting: the command it belongs to, its key in the file (a line in `[table]`, or a global
/// line when the table is empty), its flag and its variable, with one value written each way.
struct Setting {
    command: &'static [&'static str],
    table: &'static str,
    key_line: &'static str,
    flag: &'static [&'static str],
    env: (&'static str, &'static str),
}

const fn s(
    command: &'static [&'static str],
    table: &'static str,
    key_line: &'static str,
    flag: &'static [&'static str],
    env: (&'static str, &'static str),
) -> Setting {
    Setting { command, table, key_line, flag, env }
}

const GATEWAY: &[&str] = &["gateway"];
const EMULATE: &[&str] = &["emulate", "--mode", "batch"];
const SINK: &[&str] = &["sink"];
const STREAM: &[&str] = &["stream"];
const ADMIN: &[&str] = &["topics", "list"];

const SETTINGS: &[Setting] = &[
    s(ADMIN, "", "data = \"/srv/pinpipe\"", &["--data", "/srv/pinpipe"], ("PINPIPE_DATA", "/srv/pinpipe")),
    s(ADMIN, "", "id = \"abc\"", &["--id", "abc"], ("PINPIPE_ID", "abc")),
    s(
        ADMIN,
        "",
        "source = \"mysql://u:pw@db:3306/p\"",
        &["--source", "mysql://u:pw@db:3306/p"],
        ("PINPIPE_SOURCE", "mysql://u:pw@db:3306/p"),
    ),
    s(
        ADMIN,
        "",
        "log = \"kafka://b:9092?sasl.password=pw\"",
        &["--log", "kafka://b:9092?sasl.password=pw"],
        ("PINPIPE_LOG", "kafka://b:9092?sasl.password=pw"),
    ),
    s(ADMIN, "log", "url = \"kafka://b:9092\"", &["--log", "kafka://b:9092"], ("PINPIPE_LOG", "kafka://b:9092")),
    s(
        ADMIN,
        "streams",
        "url = \"kinesis://eu-west-1\"",
        &["--streams", "kinesis://eu-west-1"],
        ("PINPIPE_STREAMS", "kinesis://eu-west-1"),
    ),
    s(ADMIN, "", "lake = \"s3://bucket/p\"", &["--lake", "s3://bucket/p"], ("PINPIPE_LAKE", "s3://bucket/p")),
    s(ADMIN, "", "log_format = \"json\"", &["--log-format", "json"], ("PINPIPE_LOG_FORMAT", "json")),
    s(ADMIN, "log", "retention = \"5m\"", &["--retention", "5m"], ("PINPIPE_RETENTION", "5m")),
    s(ADMIN, "log", "retention = \"forever\"", &["--retention", "forever"], ("PINPIPE_RETENTION", "forever")),
    s(ADMIN, "log", "min_free = \"2GiB\"", &["--min-free", "2GiB"], ("PINPIPE_MIN_FREE", "2GiB")),
    s(ADMIN, "log", "min_free = \"10%\"", &["--min-free", "10%"], ("PINPIPE_MIN_FREE", "10%")),
    s(
        ADMIN,
        "log",
        "retention_bytes = \"10GiB\"",
        &["--retention-bytes", "10GiB"],
        ("PINPIPE_RETENTION_BYTES", "10GiB"),
    ),
    s(
        ADMIN,
        "streams",
        "retention_bytes = \"5GB\"",
        &["--stream-retention-bytes", "5GB"],
        ("PINPIPE_STREAM_RETENTION_BYTES", "5GB"),
    ),
    s(ADMIN, "log", "max_pending = 500", &["--max-pending", "500"], ("PINPIPE_MAX_PENDING", "500")),
    s(ADMIN, "streams", "retention = \"48h\"", &["--stream-retention", "48h"], ("PINPIPE_STREAM_RETENTION", "48h")),
    s(
        GATEWAY,
        "gateway",
        "listen = \"127.0.0.1:9999\"",
        &["--listen", "127.0.0.1:9999"],
        ("PINPIPE_LISTEN", "127.0.0.1:9999"),
    ),
    s(GATEWAY, "gateway", "base_path = \"/dev\"", &["--base-path", "/dev"], ("PINPIPE_BASE_PATH", "/dev")),
    s(
        GATEWAY,
        "gateway",
        "api_keys = [\"k1\", \"k2\"]",
        &["--api-key", "k1", "--api-key", "k2"],
        ("PINPIPE_API_KEY", "k1,k2"),
    ),
    s(
        GATEWAY,
        "gateway",
        "header_read_timeout = \"20s\"",
        &["--header-read-timeout", "20s"],
        ("PINPIPE_HEADER_READ_TIMEOUT", "20s"),
    ),
    s(GATEWAY, "gateway", "idle_timeout = \"2s\"", &["--idle-timeout", "2s"], ("PINPIPE_IDLE_TIMEOUT", "2s")),
    s(GATEWAY, "gateway", "body_timeout = \"7s\"", &["--body-timeout", "7s"], ("PINPIPE_BODY_TIMEOUT", "7s")),
    s(GATEWAY, "gateway", "max_connections = 77", &["--max-connections", "77"], ("PINPIPE_MAX_CONNECTIONS", "77")),
    s(GATEWAY, "batch", "out = \"/srv/results\"", &["--out", "/srv/results"], ("PINPIPE_OUT", "/srv/results")),
    s(EMULATE, "emulator", "api = \"http://h:1/dev\"", &["--api", "http://h:1/dev"], ("PINPIPE_API", "http://h:1/dev")),
    s(EMULATE, "emulator", "api_key = \"k\"", &["--api-key", "k"], ("PINPIPE_API_KEY", "k")),
    s(EMULATE, "emulator", "rate = 5", &["--rate", "5"], ("PINPIPE_RATE", "5")),
    s(EMULATE, "emulator", "concurrency = 3", &["--concurrency", "3"], ("PINPIPE_CONCURRENCY", "3")),
    s(EMULATE, "emulator", "seed = 9", &["--seed", "9"], ("PINPIPE_SEED", "9")),
    s(SINK, "sink", "flush_size = 7", &["--flush-size", "7"], ("PINPIPE_FLUSH_SIZE", "7")),
    s(SINK, "sink", "flush_interval = \"3s\"", &["--flush-interval", "3s"], ("PINPIPE_FLUSH_INTERVAL", "3s")),
    s(SINK, "sink", "worker = \"1/2\"", &["--worker", "1/2"], ("PINPIPE_WORKER", "1/2")),
    s(
        SINK,
        "sink",
        "metrics_listen = \"127.0.0.1:9100\"",
        &["--metrics-listen", "127.0.0.1:9100"],
        ("PINPIPE_METRICS_LISTEN", "127.0.0.1:9100"),
    ),
    s(SINK, "sink", "on_gap = \"skip\"", &["--on-gap", "skip"], ("PINPIPE_ON_GAP", "skip")),
    s(STREAM, "stream", "on_gap = \"skip\"", &["--on-gap", "skip"], ("PINPIPE_ON_GAP", "skip")),
    s(STREAM, "stream", "max_batch = 5", &["--max-batch", "5"], ("PINPIPE_MAX_BATCH", "5")),
    s(STREAM, "stream", "max_latency = \"500ms\"", &["--max-latency", "500ms"], ("PINPIPE_MAX_LATENCY", "500ms")),
    s(STREAM, "stream", "checkpoint_every = 3", &["--checkpoint-every", "3"], ("PINPIPE_CHECKPOINT_EVERY", "3")),
    s(STREAM, "stream", "lake_timeout = \"1m\"", &["--lake-timeout", "1m"], ("PINPIPE_LAKE_TIMEOUT", "1m")),
    s(STREAM, "stream", "worker = \"1/2\"", &["--worker", "1/2"], ("PINPIPE_WORKER", "1/2")),
    s(
        STREAM,
        "stream",
        "metrics_listen = \"127.0.0.1:9101\"",
        &["--metrics-listen", "127.0.0.1:9101"],
        ("PINPIPE_METRICS_LISTEN", "127.0.0.1:9101"),
    ),
    s(STREAM, "stream", "compact_files = 7", &["--compact-files", "7"], ("PINPIPE_COMPACT_FILES", "7")),
    s(STREAM, "stream", "compact_files = \"off\"", &["--compact-files", "off"], ("PINPIPE_COMPACT_FILES", "off")),
    s(
        STREAM,
        "stream",
        "target_file_size = \"64MiB\"",
        &["--target-file-size", "64MiB"],
        ("PINPIPE_TARGET_FILE_SIZE", "64MiB"),
    ),
    s(STREAM, "stream", "file_retention = \"2d\"", &["--file-retention", "2d"], ("PINPIPE_FILE_RETENTION", "2d")),
    s(STREAM, "stream", "vacuum_every = \"10m\"", &["--vacuum-every", "10m"], ("PINPIPE_VACUUM_EVERY", "10m")),
    s(STREAM, "stream", "vacuum_every = \"off\"", &["--vacuum-every", "off"], ("PINPIPE_VACUUM_EVERY", "off")),
    s(&["batch"], "batch", "out = \"/srv/results\"", &["--out", "/srv/results"], ("PINPIPE_OUT", "/srv/results")),
    s(&["report"], "batch", "out = \"/srv/results\"", &["--out", "/srv/results"], ("PINPIPE_OUT", "/srv/results")),
    s(&["schedule"], "batch", "cron = \"0 5 * * *\"", &["--cron", "0 5 * * *"], ("PINPIPE_CRON", "0 5 * * *")),
    s(&["schedule"], "batch", "out = \"/srv/results\"", &["--out", "/srv/results"], ("PINPIPE_OUT", "/srv/results")),
];

fn file_text(table: &str, line: &str) -> String {
    if table.is_empty() { format!("{line}\n") } else { format!("[{table}]\n{line}\n") }
}

#[test]
fn the_file_the_environment_and_a_flag_give_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let with_key = dir.path().join("pinpipe.toml");
    for setting in SETTINGS {
        let default = printed(run(&empty, setting.command, &[]));
        std::fs::write(&with_key, file_text(setting.table, setting.key_line)).unwrap();
        let from_file = printed(run(&with_key, setting.command, &[]));
        let from_env = printed(run(&empty, setting.command, &[setting.env]));
        let args: Vec<&str> = setting.command.iter().chain(setting.flag).copied().collect();
        let from_flag = printed(run(&empty, &args, &[]));
        let name = setting.flag[0];
        assert_ne!(from_file, default, "{name}: the file's value changed nothing");
        assert_eq!(from_env, from_file, "{name}: the variable and the file differ");
        assert_eq!(from_flag, from_file, "{name}: the flag and the file differ");
        assert!(!from_file.contains("pw") && !from_file.contains("k1"), "{name}: a secret shows:\n{from_file}");
    }
}

#[test]
fn the_flag_wins_over_the_variable_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pinpipe.toml");
    std::fs::write(&config, "[sink]\nflush_size = 5\n").unwrap();
    let size = |out: Output| {
        let text = printed(out);
        text.lines().find_map(|l| l.trim().strip_prefix("flush_size: ").map(str::to_string)).unwrap()
    };
    assert_eq!(size(run(&config, &["sink"], &[])), "5,");
    assert_eq!(size(run(&config, &["sink"], &[("PINPIPE_FLUSH_SIZE", "6")])), "6,");
    assert_eq!(size(run(&config, &["sink", "--flush-size", "7"], &[("PINPIPE_FLUSH_SIZE", "6")])), "7,");
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(size(run(&empty, &["sink"], &[])), "1000,", "the sink's default");
}

/// A value out of range (or of the wrong form) for one setting, as a flag and in the file.
struct Bad {
    command: &'static [&'static str],
    table: &'static str,
    key: &'static str,
    flag: &'static str,
    value: &'static str,
    toml_value: &'static str,
}

const fn b(
    command: &'static [&'static str],
    table: &'static str,
    key: &'static str,
    flag: &'static str,
    value: &'static str,
    toml_value: &'static str,
) -> Bad {
    Bad { command, table, key, flag, value, toml_value }
}

const BAD: &[Bad] = &[
    b(ADMIN, "", "source", "--source", "postgres://h/db", "\"postgres://h/db\""),
    b(ADMIN, "", "log", "--log", "kafka://nohost", "\"kafka://nohost\""),
    b(ADMIN, "", "streams", "--streams", "kinesis://r?x=1", "\"kinesis://r?x=1\""),
    b(ADMIN, "", "lake", "--lake", "gs://b", "\"gs://b\""),
    b(ADMIN, "", "log_format", "--log-format", "xml", "\"xml\""),
    b(ADMIN, "log", "retention", "--retention", "500ms", "\"500ms\""),
    b(ADMIN, "streams", "retention", "--stream-retention", "always", "\"always\""),
    b(ADMIN, "log", "min_free", "--min-free", "lots", "\"lots\""),
    b(ADMIN, "log", "min_free", "--min-free", "120%", "\"120%\""),
    b(ADMIN, "log", "max_pending", "--max-pending", "0", "0"),
    b(ADMIN, "log", "retention_bytes", "--retention-bytes", "100KB", "\"100KB\""),
    b(GATEWAY, "gateway", "header_read_timeout", "--header-read-timeout", "2h", "\"2h\""),
    b(GATEWAY, "gateway", "idle_timeout", "--idle-timeout", "10ms", "\"10ms\""),
    b(GATEWAY, "gateway", "body_timeout", "--body-timeout", "ten", "\"ten\""),
    b(GATEWAY, "gateway", "max_connections", "--max-connections", "0", "0"),
    b(EMULATE, "emulator", "rate", "--rate", "1e-20", "1e-20"),
    b(EMULATE, "emulator", "concurrency", "--concurrency", "0", "0"),
    b(SINK, "sink", "flush_size", "--flush-size", "0", "0"),
    b(SINK, "sink", "flush_interval", "--flush-interval", "99999999999999999999h", "\"99999999999999999999h\""),
    b(SINK, "sink", "worker", "--worker", "2/2", "\"2/2\""),
    b(STREAM, "stream", "max_batch", "--max-batch", "0", "0"),
    b(STREAM, "stream", "max_latency", "--max-latency", "2h", "\"2h\""),
    b(STREAM, "stream", "checkpoint_every", "--checkpoint-every", "0", "0"),
    b(STREAM, "stream", "lake_timeout", "--lake-timeout", "100ms", "\"100ms\""),
    b(STREAM, "stream", "worker", "--worker", "0/0", "\"0/0\""),
    b(SINK, "sink", "on_gap", "--on-gap", "ignore", "\"ignore\""),
    b(STREAM, "stream", "compact_files", "--compact-files", "0", "0"),
    b(STREAM, "stream", "target_file_size", "--target-file-size", "1KB", "\"1KB\""),
    b(STREAM, "stream", "file_retention", "--file-retention", "0s", "\"0s\""),
    b(STREAM, "stream", "vacuum_every", "--vacuum-every", "never", "\"never\""),
];

fn one_line_error(out: Output) -> String {
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn every_bad_value_is_one_line_naming_the_flag_or_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let config = dir.path().join("pinpipe.toml");
    for bad in BAD {
        let args: Vec<&str> = bad.command.iter().copied().chain([bad.flag, bad.value]).collect();
        let flag = one_line_error(run(&empty, &args, &[]));
        assert!(flag.starts_with(&format!("error: invalid value '{}' for '{}", bad.value, bad.flag)), "{flag}");
        let variable = format!("PINPIPE_{}", bad.flag.trim_start_matches("--").replace('-', "_").to_uppercase());
        let env = one_line_error(run(&empty, bad.command, &[(&variable, bad.value)]));
        assert!(env.starts_with(&format!("error: invalid value '{}' for '{}", bad.value, bad.flag)), "{env}");
        std::fs::write(&config, file_text(bad.table, &format!("{} = {}", bad.key, bad.toml_value))).unwrap();
        let file = one_line_error(run(&config, bad.command, &[]));
        let key = if bad.table.is_empty() { bad.key.to_string() } else { format!("{}.{}", bad.table, bad.key) };
        let line = if bad.table.is_empty() { 1 } else { 2 };
        let expected = format!("error: invalid config file {}, line {line}, `{key}`: ", config.display());
        assert!(file.starts_with(&expected), "{file}");
    }
}
