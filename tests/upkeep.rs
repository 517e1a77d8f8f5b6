//! Delta table upkeep (SPEC §8): compaction keeps every row, stored position and older version;
//! two compactions of the same files never both commit; the stream job compacts its tables
//! while it appends and loses or doubles nothing when killed at any moment; vacuum deletes only
//! files no retained version needs; `pinpipe delta optimize|vacuum|describe` by hand.
//!
//! Tables are read back independently of the job — through deltalake + DataFusion and through
//! the Python `deltalake` package when `PINPIPE_TEST_PYTHON` names a Python that has it — and
//! compared as whole tables.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use pinpipe::clean::Table;
use pinpipe::lake::Lake;
use pinpipe::stream::{self, StreamConfig};
use pinpipe::upkeep::{self, DEFAULT_TARGET_FILE_SIZE};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

const ID: &str = "pinterest";

fn pin_table() -> String {
    format!("{ID}_pin_table")
}

/// A draining job that leaves the tables alone (no compaction, no vacuum): one commit per table
/// per micro-batch of at most `max_batch` records.
fn drain_cfg(max_batch: usize) -> StreamConfig {
    let mut cfg = StreamConfig::new(ID, true);
    cfg.max_batch_records = max_batch;
    cfg.checkpoint_every = 5;
    cfg.upkeep.compact_files = None;
    cfg.upkeep.vacuum_every = None;
    cfg
}

/// Appends `rounds` small rounds of posts (some bad records among them) and drains each on its
/// own, so every table gets one small file per round; returns everything appended.
async fn small_files(p: &common::StreamPipeline, first: u64, rounds: u64, all: &mut BTreeMap<Table, Vec<String>>) {
    for round in 0..rounds {
        let n = first + round * 7;
        let mut records = common::posts(n, 7);
        if round % 3 == 0 {
            records.get_mut(&Table::Pin).unwrap().push(format!("not a pin {n}"));
        }
        common::append_streams(&*p.streams, ID, &records).await;
        for (t, v) in records {
            all.entry(t).or_default().extend(v);
        }
        stream::run(&drain_cfg(1_000), p.streams.clone(), &p.lake, CancellationToken::new()).await.expect("drain");
    }
}

/// Every table of the pipeline as sorted rows.
async fn tables_now(lake: &Lake) -> BTreeMap<String, Vec<String>> {
    common::delta_tables(&lake.url_of("delta"), lake.storage_options(), &upkeep::pipeline_tables(ID)).await
}

/// Table `name` at `version` as sorted rows (time travel).
async fn rows_at(lake: &Lake, name: &str, version: i64) -> Vec<String> {
    let url = url::Url::parse(&lake.url_of(&format!("delta/{name}"))).unwrap();
    let mut table = deltalake::open_table_with_storage_options(url, lake.storage_options().clone()).await.unwrap();
    table.load_version(u64::try_from(version).unwrap()).await.expect("time travel");
    read_table(&table).await
}

async fn read_table(table: &deltalake::DeltaTable) -> Vec<String> {
    let ctx = datafusion::prelude::SessionContext::new();
    table.update_datafusion_session(&ctx.state()).expect("register store");
    let provider = table.table_provider().await.expect("table provider");
    common::table_rows(&ctx.read_table(provider).expect("read").collect().await.expect("collect"))
}

fn table_dir(p: &common::StreamPipeline, name: &str) -> PathBuf {
    p.dir.path().join("lake/delta").join(name)
}

/// The data files in a table's folder (committed or not).
fn parquet_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    files.sort();
    files
}

/// The actions of commit `version` of the table in `dir`.
fn commit_actions(dir: &Path, version: i64) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(format!("_delta_log/{version:020}.json"))).expect("commit file");
    text.lines().map(|l| serde_json::from_str(l).expect("action")).collect()
}

/// The operations of every commit of the table in `dir`, oldest first.
fn operations(dir: &Path) -> Vec<String> {
    let mut commits: Vec<(i64, String)> = std::fs::read_dir(dir.join("_delta_log"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let version = name.strip_suffix(".json")?.parse().ok()?;
            Some((version, name))
        })
        .collect();
    commits.sort();
    commits
        .into_iter()
        .flat_map(|(v, _)| commit_actions(dir, v))
        .filter_map(|a| Some(a.get("commitInfo")?.get("operation")?.as_str()?.to_string()))
        .collect()
}

/// Every table under `paths` read by Python `deltalake`: rows as sorted JSON, and the number of
/// files it opened; `None` without `PINPIPE_TEST_PYTHON`.
fn python_tables(paths: &[String]) -> Option<serde_json::Value> {
    let script = r#"
import json, os, sys, deltalake
out = {}
for path in sys.argv[1:]:
    dt = deltalake.DeltaTable(path)
    rows = sorted(json.dumps(r, default=str, sort_keys=True) for r in dt.to_pyarrow_table().to_pylist())
    out[path] = {"rows": rows, "files": len(dt.file_uris()), "version": dt.version()}
print(json.dumps(out))
# Skip the interpreter's normal exit, which pyarrow's thread pools can abort (apache/arrow#34314).
sys.stdout.flush()
os._exit(0)
"#;
    let out = common::python(script, paths)?;
    Some(serde_json::from_str(out.trim()).expect("python output is JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_row_stored_position_and_older_version() {
    let p = common::stream_pipeline(ID).await;
    let mut all = BTreeMap::new();
    small_files(&p, 0, 12, &mut all).await;
    let before = tables_now(&p.lake).await;
    assert_eq!(before, common::expected_stream_tables(ID, &all), "the tables hold every record once");
    let paths: Vec<String> =
        upkeep::pipeline_tables(ID).iter().map(|n| table_dir(&p, n).display().to_string()).collect();
    let python_before = python_tables(&paths);
    let stop = CancellationToken::new();
    for name in upkeep::pipeline_tables(ID) {
        let mut table = upkeep::open(&p.lake, &name).await.expect("open");
        let described = upkeep::describe(&mut table, &name, DEFAULT_TARGET_FILE_SIZE).await.expect("describe");
        assert!(described.files >= 4, "{described}");
        assert!(!described.positions.is_empty(), "{described}");
        let (last, middle) = (described.version, described.version / 2);
        let at_middle = rows_at(&p.lake, &name, middle).await;

        let done = upkeep::compact(&mut table, &name, DEFAULT_TARGET_FILE_SIZE, 0, &stop).await.expect("compact");
        assert_eq!((done.files_removed, done.files_added, done.abandoned), (described.files, 1, 0), "{name}: {done:?}");
        assert_eq!(done.version, last + 1, "{name}: one commit");

        let after = upkeep::describe(&mut table, &name, DEFAULT_TARGET_FILE_SIZE).await.expect("describe");
        assert_eq!(after.files, 1, "{after}");
        assert_eq!(after.rows, described.rows, "{after}");
        assert_eq!(after.positions, described.positions, "txn versions, log identities and native positions kept");
        assert_eq!(tables_now(&p.lake).await[&name], before[&name], "{name} reads the same after compaction");
        assert_eq!(rows_at(&p.lake, &name, middle).await, at_middle, "{name} at version {middle} still reads");
        assert_eq!(rows_at(&p.lake, &name, last).await, before[&name], "{name} at version {last} still reads");
        // A data-neutral commit, as OPTIMIZE: no add or remove says the data changed.
        let actions = commit_actions(&table_dir(&p, &name), done.version);
        let files: Vec<&serde_json::Value> =
            actions.iter().filter_map(|a| a.get("add").or_else(|| a.get("remove"))).collect();
        assert_eq!(files.len(), described.files + 1, "{actions:?}");
        assert!(files.iter().all(|f| f["dataChange"] == false), "{actions:?}");
        assert!(actions.iter().any(|a| a["commitInfo"]["operation"] == "OPTIMIZE"), "{actions:?}");
    }
    if let (Some(before), Some(after)) = (python_before, python_tables(&paths)) {
        for path in &paths {
            assert_eq!(after[path]["rows"], before[path]["rows"], "Python deltalake reads {path} the same");
            assert_eq!(after[path]["files"], 1, "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_compactions_of_the_same_files_never_both_commit() {
    let p = common::stream_pipeline(ID).await;
    let mut all = BTreeMap::new();
    let name = pin_table();
    let stop = CancellationToken::new();
    let mut abandoned = 0;
    for race in 0..3 {
        small_files(&p, race * 100, 8, &mut all).await;
        let mut first = upkeep::open(&p.lake, &name).await.expect("open");
        let mut second = upkeep::open(&p.lake, &name).await.expect("open");
        let files = upkeep::describe(&mut first, &name, DEFAULT_TARGET_FILE_SIZE).await.unwrap().small_files;
        let (a, b) = tokio::join!(
            upkeep::compact(&mut first, &name, DEFAULT_TARGET_FILE_SIZE, 0, &stop),
            upkeep::compact(&mut second, &name, DEFAULT_TARGET_FILE_SIZE, 0, &stop),
        );
        let (a, b) = (a.expect("first compaction"), b.expect("second compaction"));
        eprintln!("race {race}: {a:?} / {b:?}");
        abandoned += a.abandoned + b.abandoned;
        assert_eq!(a.files_removed + b.files_removed, files, "each small file replaced once: {a:?} {b:?}");
        assert_eq!(tables_now(&p.lake).await, common::expected_stream_tables(ID, &all), "no row doubled or lost");
    }
    assert!(abandoned >= 1, "at least one race was lost by a compaction that had already written its file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_compacts_its_tables_while_it_appends() {
    let p = common::stream_pipeline(ID).await;
    let mut cfg = drain_cfg(20);
    cfg.drain = false;
    cfg.max_latency = Duration::from_millis(50);
    cfg.upkeep.compact_files = Some(4);
    let shutdown = CancellationToken::new();
    let job = tokio::spawn({
        let (streams, lake, shutdown) = (p.streams.clone(), p.lake.clone(), shutdown.clone());
        async move { stream::run(&cfg, streams, &lake, shutdown).await }
    });
    let mut all: BTreeMap<Table, Vec<String>> = BTreeMap::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut next = 0;
    while tokio::time::Instant::now() < until {
        let records = common::posts(next, 3);
        next += 3;
        common::append_streams(&*p.streams, ID, &records).await;
        for (t, v) in records {
            all.entry(t).or_default().extend(v);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // The appends have stopped; the job's background compaction (at a lower CPU priority) gets up
    // to a minute to catch up, which it needs when the machine is busy (tests run in parallel).
    let dir = table_dir(&p, &pin_table());
    let caught_up = tokio::time::Instant::now() + Duration::from_secs(60);
    tokio::time::sleep(Duration::from_secs(1)).await;
    while tokio::time::Instant::now() < caught_up {
        let writes = operations(&dir).iter().filter(|o| *o == "WRITE").count();
        let mut table = upkeep::open(&p.lake, &pin_table()).await.unwrap();
        let files = upkeep::describe(&mut table, &pin_table(), DEFAULT_TARGET_FILE_SIZE).await.unwrap().files;
        if files < writes / 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shutdown.cancel();
    let report = job.await.expect("join").expect("stream job");
    stream::run(&drain_cfg(1_000), p.streams.clone(), &p.lake, CancellationToken::new()).await.expect("drain");
    assert_eq!(tables_now(&p.lake).await, common::expected_stream_tables(ID, &all));
    let ops = operations(&dir);
    let optimized = ops.iter().filter(|o| *o == "OPTIMIZE").count();
    assert!(optimized >= 1, "the job compacted while it ran: {ops:?}");
    let mut table = upkeep::open(&p.lake, &pin_table()).await.unwrap();
    let described = upkeep::describe(&mut table, &pin_table(), DEFAULT_TARGET_FILE_SIZE).await.unwrap();
    assert!(
        described.files < report.tables[0].commits as usize / 2,
        "{} commits left {described}",
        report.tables[0].commits
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_job_while_it_compacts_and_appends_loses_and_doubles_nothing() {
    let p = common::stream_pipeline(ID).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xc0de);
    let mut all: BTreeMap<Table, Vec<String>> = BTreeMap::new();
    let mut next = 0;
    for trial in 0..6 {
        let mut child =
            common::spawn_stream(p.dir.path(), &["--compact-files", "3", "--max-latency", "30ms", "--max-batch", "40"]);
        let until = tokio::time::Instant::now() + Duration::from_millis(rng.random_range(800..3_500));
        while tokio::time::Instant::now() < until {
            let n = rng.random_range(1..20);
            let mut batch = common::posts(next, n);
            next += n;
            if rng.random_bool(0.3) {
                batch.get_mut(&Table::Pin).unwrap().push(format!("bad pin {trial} {next}"));
            }
            common::append_streams(&*p.streams, ID, &batch).await;
            for (t, v) in batch {
                all.entry(t).or_default().extend(v);
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
        }
        child.kill().expect("SIGKILL the stream job");
        child.wait().expect("reap");
    }
    let dir = table_dir(&p, &pin_table());
    assert!(operations(&dir).iter().any(|o| o == "OPTIMIZE"), "the killed jobs compacted at least once");
    let status = common::spawn_stream(p.dir.path(), &["--compact-files", "3", "--drain"]).wait().expect("run drain");
    assert!(status.success(), "pinpipe stream --drain failed: {status}");
    let want = common::expected_stream_tables(ID, &all);
    assert_eq!(tables_now(&p.lake).await, want, "every record once after the kills");
    let paths: Vec<String> =
        upkeep::pipeline_tables(ID).iter().map(|n| table_dir(&p, n).display().to_string()).collect();
    if let Some(python) = python_tables(&paths) {
        for (path, name) in paths.iter().zip(upkeep::pipeline_tables(ID)) {
            let rows = python[path]["rows"].as_array().expect("rows").len();
            assert_eq!(rows, want[&name].len(), "Python deltalake opens {path} and finds every row once");
        }
    }
}

/// Sets a file's modification time `age` into the past.
fn age_file(path: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).expect("open file");
    file.set_modified(SystemTime::now() - age).expect("set mtime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_deletes_only_files_no_retained_version_needs() {
    let p = common::stream_pipeline(ID).await;
    let name = pin_table();
    let dir = table_dir(&p, &name);
    let mut all = BTreeMap::new();
    let stop = CancellationToken::new();
    small_files(&p, 0, 6, &mut all).await;
    let first_files = parquet_files(&dir);
    let mut table = upkeep::open(&p.lake, &name).await.unwrap();
    let first = upkeep::compact(&mut table, &name, DEFAULT_TARGET_FILE_SIZE, 0, &stop).await.unwrap();
    assert_eq!(first.files_removed, first_files.len());
    let compacted: Vec<String> = parquet_files(&dir).into_iter().filter(|f| !first_files.contains(f)).collect();
    assert_eq!(compacted.len(), 1, "{compacted:?}");
    // A file of a write that never committed, long ago.
    let old_orphan = dir.join("part-00000-orphan-old.parquet");
    std::fs::copy(dir.join(&first_files[0]), &old_orphan).unwrap();
    age_file(&old_orphan, Duration::from_secs(3600));

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // Newer work: files removed within the retention, and a write in progress.
    small_files(&p, 500, 3, &mut all).await;
    let second = upkeep::compact(&mut table, &name, DEFAULT_TARGET_FILE_SIZE, 0, &stop).await.unwrap();
    assert_eq!(second.files_removed, 4, "the first compacted file and three new ones: {second:?}");
    let new_orphan = dir.join("part-00000-orphan-new.parquet");
    std::fs::copy(dir.join(&first_files[0]), &new_orphan).unwrap();
    let reader = upkeep::open(&p.lake, &name).await.unwrap();
    let current = read_table(&reader).await;

    let dry = upkeep::vacuum(&mut table, &name, Some(Duration::from_secs(2)), true).await.unwrap();
    let mut want: Vec<String> = first_files.clone();
    want.push("part-00000-orphan-old.parquet".into());
    want.sort();
    let mut listed = dry.deleted.clone();
    listed.sort();
    let listed: Vec<String> = listed.iter().map(|f| f.rsplit('/').next().unwrap().to_string()).collect();
    assert_eq!(listed, want, "only files removed before the retention and old uncommitted ones");
    assert!(dir.join(&first_files[0]).exists(), "a dry run deletes nothing");

    let done = upkeep::vacuum(&mut table, &name, Some(Duration::from_secs(2)), false).await.unwrap();
    assert_eq!(done.deleted.len(), want.len());
    let left = parquet_files(&dir);
    assert!(first_files.iter().all(|f| !left.contains(f)), "{left:?}");
    assert!(left.contains(&compacted[0]), "a file removed within the retention is kept: {left:?}");
    assert!(new_orphan.exists(), "a young uncommitted file is kept");
    assert!(!old_orphan.exists(), "an old uncommitted file is deleted");
    assert_eq!(read_table(&reader).await, current, "a reader of the current version is unaffected");
    assert_eq!(tables_now(&p.lake).await[&name], common::expected_stream_tables(ID, &all)[&name]);
    assert_eq!(
        rows_at(&p.lake, &name, first.version).await.len(),
        42,
        "the version the first compaction made still reads"
    );
}

/// `pinpipe <args> --data <dir>`: exit status, stdout, stderr.
fn pinpipe(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(args)
        .arg("--data")
        .arg(dir)
        .env_remove("PINPIPE_LAKE")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run pinpipe");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_commands_optimize_vacuum_and_describe_tables_by_hand() {
    let p = common::stream_pipeline(ID).await;
    let mut all = BTreeMap::new();
    small_files(&p, 0, 5, &mut all).await;
    let dir = p.dir.path();

    let (code, out, err) = pinpipe(dir, &["delta", "describe"]);
    assert_eq!(code, Some(0), "{err}");
    for name in upkeep::pipeline_tables(ID) {
        assert!(out.contains(&format!("{name} (version ")), "{out}");
    }
    assert!(out.contains("data files: 5 ("), "{out}");
    // 35 posts and 2 bad records: the pin table accounts for offsets up to 36.
    assert!(out.contains("pinpipe-streaming-pinterest-pin-0 = 36"), "the stored position of the pin stream: {out}");

    let (code, out, err) = pinpipe(dir, &["delta", "optimize", "pin"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with(&format!("{}: 5 small files", pin_table())), "{out}");
    assert!(out.contains("rewritten into 1 ("), "{out}");
    let (_, out, _) = pinpipe(dir, &["delta", "describe", "pin"]);
    assert!(out.contains("data files: 1 ("), "{out}");

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (code, out, err) = pinpipe(dir, &["delta", "vacuum", "pin", "--file-retention", "1s", "--dry-run"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with(&format!("{}: would delete 5 files", pin_table())), "{out}");
    assert_eq!(out.lines().count(), 6, "the files are listed: {out}");
    let (code, out, err) = pinpipe(dir, &["delta", "vacuum", "pin", "--file-retention", "1s"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), format!("{}: deleted 5 files", pin_table()));
    assert_eq!(tables_now(&p.lake).await, common::expected_stream_tables(ID, &all));

    let (code, _, err) = pinpipe(dir, &["delta", "describe", "nosuch_table"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("there is no Delta table at"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_job_compacts_and_vacuums_its_tables_on_s3() {
    let Some(endpoint) = common::s3_endpoint() else { return };
    let (bucket, _) = common::new_bucket(&endpoint, "pinpipe-upkeep").await;
    let lake = format!("s3://{bucket}/lake");
    let p = common::stream_pipeline(ID).await;
    let pinpipe_s3 = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
            .args(args)
            .args(["--lake", &lake, "--data"])
            .arg(p.dir.path())
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", common::aws_var("AWS_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", common::aws_var("AWS_SECRET_ACCESS_KEY"))
            .env("AWS_REGION", common::aws_var("AWS_REGION"))
            .env("RUST_LOG", "warn")
            .output()
            .expect("run pinpipe");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "pinpipe {args:?} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut all: BTreeMap<Table, Vec<String>> = BTreeMap::new();
    for round in 0..4 {
        let records = common::posts(round * 10, 10);
        common::append_streams(&*p.streams, ID, &records).await;
        for (t, v) in records {
            all.entry(t).or_default().extend(v);
        }
        // Each drain adds a file per data table; the fourth finds more than 3 and compacts.
        pinpipe_s3(&["stream", "--drain", "--compact-files", "3", "--vacuum-every", "off"]);
    }
    let described = pinpipe_s3(&["delta", "describe", "pin"]);
    assert!(described.contains("data files: 1 ("), "{described}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let vacuumed = pinpipe_s3(&["delta", "vacuum", "pin", "--file-retention", "1s"]);
    assert_eq!(vacuumed.trim(), format!("{}: deleted 4 files", pin_table()));
    let options = std::collections::HashMap::from([
        ("AWS_ENDPOINT_URL".to_string(), endpoint.clone()),
        ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
        ("AWS_ACCESS_KEY_ID".to_string(), common::aws_var("AWS_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY".to_string(), common::aws_var("AWS_SECRET_ACCESS_KEY")),
        ("AWS_REGION".to_string(), common::aws_var("AWS_REGION")),
    ]);
    let tables = common::delta_tables(&format!("{lake}/delta"), &options, &upkeep::pipeline_tables(ID)).await;
    assert_eq!(tables, common::expected_stream_tables(ID, &all), "every record once after compaction and vacuum");
}
