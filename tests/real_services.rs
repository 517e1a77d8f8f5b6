//! The same pipeline on real services gives the same answers (issue #5): a MariaDB source →
//! emulator → gateway → Kafka (Tansu) → sink → S3 (moto) → batch job, and → Kinesis (kinesalite)
//! → stream job → Delta tables on S3, each stage its own `pinpipe` process as a deployment runs
//! them, against the same stages on the embedded defaults with the same seeds. The eight answers,
//! the cleaned tables and the Delta tables must be equal.
//!
//! Needs every service variable (`PINPIPE_TEST_MYSQL_URL`, `PINPIPE_TEST_KAFKA`,
//! `PINPIPE_TEST_KINESIS_ENDPOINT`, `PINPIPE_TEST_S3_ENDPOINT`, `PINPIPE_TEST_PYTHON` for the
//! Delta reader); skipped with a message when none is set, failing when only some are.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROWS: &str = "400";
const COUNT: &str = "250";
const SEED: &str = "11";

/// The services, from the environment.
struct Services {
    mysql: String,
    kafka: String,
    kinesis: String,
    s3: String,
    python: String,
}

fn services() -> Option<Services> {
    let names = [
        "PINPIPE_TEST_MYSQL_URL",
        "PINPIPE_TEST_KAFKA",
        "PINPIPE_TEST_KINESIS_ENDPOINT",
        "PINPIPE_TEST_S3_ENDPOINT",
        "PINPIPE_TEST_PYTHON",
    ];
    let values: Vec<Option<String>> = names.iter().map(|n| std::env::var(n).ok().filter(|v| !v.is_empty())).collect();
    if values.iter().all(Option::is_none) {
        eprintln!("none of {names:?} is set: skipping the real-services end-to-end test");
        return None;
    }
    let missing: Vec<&str> = names.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(n, _)| *n).collect();
    assert!(missing.is_empty(), "the real-services test needs every service; missing {missing:?}");
    let mut v = values.into_iter().map(Option::unwrap);
    Some(Services {
        mysql: v.next().unwrap(),
        kafka: v.next().unwrap(),
        kinesis: v.next().unwrap(),
        s3: v.next().unwrap(),
        python: v.next().unwrap(),
    })
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

/// One deployment's settings: the global flags every stage gets, and its environment.
struct Deployment {
    flags: Vec<String>,
    env: Vec<(String, String)>,
}

impl Deployment {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pinpipe"));
        c.args(args).args(&self.flags).env("RUST_LOG", "warn");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for k in ["PINPIPE_DATA", "PINPIPE_SOURCE", "PINPIPE_LOG", "PINPIPE_STREAMS", "PINPIPE_LAKE", "PINPIPE_ID"] {
            c.env_remove(k);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run pinpipe");
        assert!(
            out.status.success(),
            "pinpipe {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// seed → gateway + emulator (both modes) → sink → stream job → batch job into `results`.
    fn run_pipeline(&self, results: &Path) {
        self.run(&["seed", "--rows", ROWS, "--seed", "42"]);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}");
        let mut gateway =
            Gateway(self.command(&["gateway", "--listen", &listen]).stdout(Stdio::null()).spawn().unwrap());
        wait_for_port(&listen);
        let api = format!("http://{listen}");
        for mode in ["batch", "stream"] {
            self.run(&["emulate", "--mode", mode, "--api", &api, "--count", COUNT, "--rate", "0", "--seed", SEED]);
        }
        gateway.stop();
        self.run(&["sink", "--drain"]);
        self.run(&["stream", "--drain"]);
        self.run(&["batch", "--out", results.to_str().unwrap()]);
    }
}

/// A gateway process, stopped (SIGTERM, then waited for) when dropped.
struct Gateway(Child);

impl Gateway {
    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A whole Parquet file or Delta table as sorted JSON lines, read by pyarrow / deltalake.
fn rows_of(python: &str, what: &str, location: &str, options: &str) -> Vec<String> {
    let script = r#"
import json, os, sys
kind, location, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if kind == "parquet":
    import pyarrow.parquet as pq
    rows = pq.read_table(location).to_pylist()
else:
    from deltalake import DeltaTable
    rows = DeltaTable(location, storage_options=options).to_pyarrow_table().to_pylist()
for r in sorted(json.dumps(r, sort_keys=True, default=str) for r in rows):
    print(r)
# pyarrow's and deltalake's thread pools can abort the interpreter's normal exit ("terminate called
# without an active exception", apache/arrow#34314, delta-io/delta-rs#2184): leave without it.
sys.stdout.flush()
os._exit(0)
"#;
    let out = Command::new(python).args(["-c", script, what, location, options]).output().expect("run python");
    assert!(out.status.success(), "reading {location}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn real_services_give_the_same_answers_tables_and_delta_tables_as_the_embedded_run() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let id = format!("e2e{}", &tag[..12]);

    // The embedded run.
    let embedded = Deployment {
        flags: vec!["--data".into(), dir.path().join("embedded").to_str().unwrap().into(), "--id".into(), id.clone()],
        env: vec![],
    };
    let embedded_results = dir.path().join("embedded-results");
    embedded.run_pipeline(&embedded_results);

    // The real-services run: a database of its own, topics/streams named by a fresh id, a bucket.
    let database = format!("pinpipe_e2e_{}", &tag[..12]);
    let mysql = Command::new("mysql")
        .args(["--protocol=tcp", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"])
        .arg(format!("CREATE DATABASE {database}"))
        .status();
    assert!(matches!(mysql, Ok(st) if st.success()), "create the MariaDB database: {mysql:?}");
    let mut source = url::Url::parse(&s.mysql).expect("PINPIPE_TEST_MYSQL_URL is a URL");
    source.set_path(&database);
    let bucket = format!("pinpipe-e2e-{tag}");
    let put = Command::new("curl").args(["-sf", "-X", "PUT", &format!("{}/{bucket}", s.s3)]).status();
    assert!(matches!(put, Ok(st) if st.success()), "create bucket {bucket} at {}: {put:?}", s.s3);
    let lake = format!("s3://{bucket}/lake");
    let aws = vec![
        ("AWS_ENDPOINT_URL".to_string(), s.s3.clone()),
        ("AWS_ACCESS_KEY_ID".to_string(), env_or("AWS_ACCESS_KEY_ID", "test")),
        ("AWS_SECRET_ACCESS_KEY".to_string(), env_or("AWS_SECRET_ACCESS_KEY", "test")),
        ("AWS_REGION".to_string(), env_or("AWS_REGION", "us-east-1")),
    ];
    let real = Deployment {
        flags: [
            "--data",
            dir.path().join("real").to_str().unwrap(),
            "--id",
            &id,
            "--source",
            source.as_str(),
            "--log",
            &format!("kafka://{}", s.kafka),
            "--streams",
            &format!("kinesis://us-east-1?endpoint={}", s.kinesis),
            "--lake",
            &lake,
        ]
        .map(String::from)
        .to_vec(),
        env: aws.clone(),
    };
    let real_results = dir.path().join("real-results");
    real.run_pipeline(&real_results);

    // The eight answers, byte for byte.
    for q in ["q1", "q2", "q3a", "q3b", "q4", "q5", "q6", "q7", "q8"] {
        let a = std::fs::read_to_string(embedded_results.join(format!("{q}.csv"))).unwrap();
        let b = std::fs::read_to_string(real_results.join(format!("{q}.csv"))).unwrap();
        assert_eq!(a, b, "{q}.csv differs between the embedded and the real-services run");
        assert!(a.lines().count() > 1, "{q}.csv has no rows:\n{a}");
    }
    // The Delta tables, row for row (every event kept; order aside).
    let options = serde_json::json!({
        "AWS_ENDPOINT_URL": s.s3, "AWS_ALLOW_HTTP": "true", "AWS_REGION": env_or("AWS_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": env_or("AWS_ACCESS_KEY_ID", "test"),
        "AWS_SECRET_ACCESS_KEY": env_or("AWS_SECRET_ACCESS_KEY", "test"),
    })
    .to_string();
    // The batch job's cleaned tables and rejects, row for row.
    for table in ["batch_pin", "batch_geo", "batch_user", "batch_rejects"] {
        let local = dir.path().join("embedded/lake/delta").join(format!("{id}_{table}"));
        let a = rows_of(&s.python, "delta", local.to_str().unwrap(), "{}");
        let b = rows_of(&s.python, "delta", &format!("{lake}/delta/{id}_{table}"), &options);
        assert_eq!(a, b, "batch table {table} differs");
    }
    // The stream job's tables (every event kept; order aside).
    for table in ["pin", "geo", "user"] {
        let local = dir.path().join("embedded/lake/delta").join(format!("{id}_{table}_table"));
        let a = rows_of(&s.python, "delta", local.to_str().unwrap(), "{}");
        let b = rows_of(&s.python, "delta", &format!("{lake}/delta/{id}_{table}_table"), &options);
        assert_eq!(a.len(), COUNT.parse::<usize>().unwrap(), "{table}: one row per record sent");
        assert_eq!(a, b, "Delta table {table} differs");
    }
    let _ = Command::new("mysql")
        .args(["--protocol=tcp", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"])
        .arg(format!("DROP DATABASE {database}"))
        .status();
}
