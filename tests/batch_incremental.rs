//! The incremental batch job (SPEC §6): a growing lake, run after run.
//!
//! Each step adds sink files to the lake — new posts spread over three partitions, later copies
//! of earlier posts with other contents (in lower and higher partitions than the first copy),
//! and broken records — then runs the batch job. After every step the incremental run's tables
//! and answers must equal those of a `--full-refresh` run over the same files (a second lake
//! that only ever runs full refreshes), and the tables must hold exactly the first copy of every
//! post, computed here independently. Also: runs killed with SIGKILL at random points, two runs
//! at once, the same on S3 (moto) with `--out s3://…`, and Python `deltalake` reading the
//! tables.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use object_store::{ObjectStoreExt as _, PutPayload};
use pinpipe::batch::{self, BatchConfig, BatchReport, BatchTable, Out};
use pinpipe::clean::{self, Table};
use pinpipe::lake::Lake;
use pinpipe::source::generator::Generator;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

const ID: &str = "pinterest";
const PARTITIONS: u32 = 3;
const ANSWERS: [&str; 9] = ["q1", "q2", "q3a", "q3b", "q4", "q5", "q6", "q7", "q8"];

/// A lake the test writes sink files into, as the sink would (Confluent layout, each
/// partition's files in offset order), remembering every record in the order the batch job
/// must count them received: by step (the run that first sees them), partition, offset.
struct GrowingLake {
    generator: Generator,
    next_offset: BTreeMap<(Table, u32), u64>,
    /// Per table: (step, partition, offset) → the record.
    written: BTreeMap<Table, BTreeMap<(usize, u32, u64), String>>,
    step: usize,
    posts: u64,
}

impl GrowingLake {
    fn new() -> GrowingLake {
        GrowingLake {
            generator: Generator::new(1_000, 7),
            next_offset: BTreeMap::new(),
            written: BTreeMap::new(),
            step: 0,
            posts: 0,
        }
    }

    fn post(&self, ind: u64) -> [Value; 3] {
        let p = self.generator.post(ind);
        [
            serde_json::to_value(&p.pin).unwrap(),
            serde_json::to_value(&p.geo).unwrap(),
            serde_json::to_value(&p.user).unwrap(),
        ]
    }

    /// A later copy of post `ind` whose contents must lose to the first copy.
    fn later_copy(&self, ind: u64) -> [Value; 3] {
        let [mut pin, mut geo, mut user] = self.post(ind);
        pin["category"] = json!("zz-later-copy");
        pin["follower_count"] = json!("99M");
        geo["country"] = json!("Later Copy Land");
        user["first_name"] = json!("Later");
        [pin, geo, user]
    }

    /// Writes one sink file of `lines` into `table`'s `partition` of every lake in `lakes`, at
    /// the partition's next offset.
    async fn file(&mut self, lakes: &[&Lake], table: Table, partition: u32, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let start = self.next_offset.get(&(table, partition)).copied().unwrap_or(0);
        let topic = format!("{ID}.{}", table.name());
        let key = format!("topics/{topic}/partition={partition}/{topic}+{partition}+{start:010}.json");
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        for lake in lakes {
            lake.store.put(&lake.path(&key), PutPayload::from(body.clone().into_bytes())).await.unwrap();
        }
        self.next_offset.insert((table, partition), start + lines.len() as u64);
        let written = self.written.entry(table).or_default();
        for (i, line) in lines.into_iter().enumerate() {
            written.insert((self.step, partition, start + i as u64), line);
        }
    }

    /// One step: `new` new posts over the partitions (two files each), later copies of earlier
    /// posts in partitions 0 and 2, an identical copy within the step, and broken records.
    async fn step(&mut self, lakes: &[&Lake], new: u64) {
        self.step += 1;
        let first = self.posts;
        self.posts += new;
        let mut files: BTreeMap<(Table, u32, usize), Vec<String>> = BTreeMap::new();
        for ind in first..self.posts {
            let partition = (ind % u64::from(PARTITIONS)) as u32;
            let half = usize::from(ind - first >= new / 2);
            for (table, value) in Table::ALL.into_iter().zip(self.post(ind)) {
                files.entry((table, partition, half)).or_default().push(value.to_string());
            }
        }
        if first > 0 {
            // Later copies of earlier posts (other contents): they must lose, wherever they land.
            for k in 0..12u64 {
                let ind = (k * 37 + self.step as u64) % first;
                let partition = if k % 2 == 0 { 0 } else { 2 };
                for (table, value) in Table::ALL.into_iter().zip(self.later_copy(ind)) {
                    files.entry((table, partition, 1)).or_default().push(value.to_string());
                }
            }
        }
        // An identical copy of this step's first post, in another partition of the same step.
        for (table, value) in Table::ALL.into_iter().zip(self.post(first)) {
            files.entry((table, 1, 1)).or_default().push(value.to_string());
        }
        // Broken records: not JSON, no key, a bad datetime.
        for table in Table::ALL {
            let key = table.key();
            let broken = vec![format!("{{\"{key}\": 1, oops"), json!({ "title": "no key" }).to_string()];
            files.entry((table, 2, 0)).or_default().extend(broken);
        }
        files.entry((Table::Geo, 0, 1)).or_default().push(
            json!({"ind": first, "timestamp": "yesterday", "latitude": 1.0, "longitude": 2.0, "country": "X"})
                .to_string(),
        );
        for ((table, partition, _), lines) in files {
            self.file(lakes, table, partition, lines).await;
        }
    }

    /// What the cleaned table of `table` must hold: the first readable record of every `ind`,
    /// in (step, partition, offset) order, cleaned — as sorted rows.
    fn expected_rows(&self, table: Table) -> Vec<String> {
        let records: Vec<&String> = self.written[&table].values().collect();
        let slices: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
        let decoded = clean::decode(table, &slices).unwrap();
        let cleaned = clean::clean(table, &decoded.batch).unwrap();
        let inds = cleaned.column(0).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap();
        let mut seen = std::collections::HashSet::new();
        let keep: datafusion::arrow::array::BooleanArray =
            inds.iter().map(|ind| Some(ind.is_some_and(|ind| seen.insert(ind)))).collect();
        let kept = datafusion::arrow::compute::filter_record_batch(&cleaned, &keep).unwrap();
        common::table_rows(&[kept])
    }

    /// How many broken records the lake holds.
    fn broken(&self) -> usize {
        Table::ALL
            .into_iter()
            .map(|table| {
                let records: Vec<&[u8]> = self.written[&table].values().map(|r| r.as_bytes()).collect();
                clean::decode(table, &records).unwrap().rejects.len()
            })
            .sum()
    }
}

/// Every batch table of `lake` as sorted rows, by table name.
async fn tables(lake: &Lake) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for which in BatchTable::ALL {
        let (_, batches) = batch::read_table(lake, ID, which).await.unwrap();
        out.insert(which.name(ID), common::table_rows(&batches));
    }
    out
}

/// Asserts two sorted row lists are equal, naming the first difference (not printing thousands
/// of rows).
fn same_rows(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} rows against {}; first difference at row {first}:\n  got:  {:?}\n  want: {:?}",
        got.len(),
        want.len(),
        got.get(first),
        want.get(first)
    );
}

/// The nine answers of a results folder, CSV text by name.
fn answers_in(dir: &Path) -> BTreeMap<&'static str, String> {
    ANSWERS.iter().map(|q| (*q, std::fs::read_to_string(dir.join(format!("{q}.csv"))).unwrap())).collect()
}

fn answers_of(report: &BatchReport) -> BTreeMap<&'static str, String> {
    report
        .answers
        .iter()
        .map(|a| {
            let mut out = Vec::new();
            {
                let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                for batch in &a.batches {
                    writer.write(batch).unwrap();
                }
            }
            (a.name, String::from_utf8(out).unwrap())
        })
        .collect()
}

fn local_lake(dir: &Path) -> Lake {
    Lake::open(&format!("file://{}", dir.display()).parse().unwrap()).unwrap()
}

/// Five steps on `incremental` and `refreshed` (two lakes given the same files): after each,
/// the incremental run and a full refresh agree, and both hold the first copies.
async fn grow_and_compare(incremental: &Lake, refreshed: &Lake, out: impl Fn(&str) -> Out) {
    let mut lake = GrowingLake::new();
    let mut sizes = Vec::new();
    for step in 1..=5usize {
        let files_before = lake.next_offset.len();
        lake.step(&[incremental, refreshed], 150).await;
        if step == 3 {
            // The cache of the ind's a table holds is only a cache: garbage or none, the run
            // reads the table instead.
            let cache =
                |table: Table| incremental.path(&format!("batch/inds/{}.roaring", BatchTable::Clean(table).name(ID)));
            incremental.store.put(&cache(Table::Pin), PutPayload::from_static(b"garbage")).await.unwrap();
            incremental.store.delete(&cache(Table::Geo)).await.unwrap();
        }
        let inc = batch::run(&BatchConfig::new(ID, out("incremental")), incremental).await.unwrap();
        let full = BatchConfig { full_refresh: true, ..BatchConfig::new(ID, out("refreshed")) };
        let full = batch::run(&full, refreshed).await.unwrap();
        assert_eq!((inc.run, inc.full_refresh, full.run, full.full_refresh), (step as u64, false, step as u64, true));

        let (a, b) = (tables(incremental).await, tables(refreshed).await);
        for (name, rows) in &a {
            same_rows(rows, &b[name], &format!("step {step}: {name}, incremental vs full refresh"));
        }
        for table in Table::ALL {
            let got = &a[&BatchTable::Clean(table).name(ID)];
            same_rows(
                got,
                &lake.expected_rows(table),
                &format!("step {step}: {table} vs the first copy of every post"),
            );
            assert!(
                !got.iter().any(|r| r.contains("later-copy") || r.contains("Later")),
                "step {step}: a later copy won"
            );
        }
        assert_eq!(a[&BatchTable::Rejects.name(ID)].len(), lake.broken(), "step {step}: every broken record once");
        assert_eq!(answers_of(&inc), answers_of(&full), "step {step}: the answers differ");
        assert!(answers_of(&inc)["q1"].lines().count() > 1, "step {step}: Q1 has rows");

        // The incremental run read only this step's files; the full refresh read them all.
        let new_files = inc.tables.iter().map(|t| t.files).sum::<u64>();
        let all_files = full.tables.iter().map(|t| t.files).sum::<u64>();
        sizes.push((new_files, all_files));
        assert!(files_before == 0 || new_files < all_files, "step {step}: {new_files} files read of {all_files}");
        assert_eq!(inc.tables[0].rows, lake.expected_rows(Table::Pin).len() as u64);
    }
    // A run with nothing new adds nothing and answers the same.
    let again = batch::run(&BatchConfig::new(ID, out("incremental")), incremental).await.unwrap();
    assert_eq!((again.run, again.tables.iter().map(|t| t.files).sum::<u64>()), (5, 0));
    println!("files read per step (incremental, full refresh): {sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_over_a_growing_lake_equal_full_refreshes_after_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (local_lake(&dir.path().join("a")), local_lake(&dir.path().join("b")));
    let results = dir.path().to_path_buf();
    grow_and_compare(&a, &b, |name| Out::Folder(results.join(name))).await;
    assert_eq!(answers_in(&dir.path().join("incremental")), answers_in(&dir.path().join("refreshed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_on_s3_with_results_on_s3_equal_full_refreshes() {
    let Some(endpoint) = common::s3_endpoint() else { return };
    let (bucket, store) = common::new_bucket(&endpoint, "batch-inc").await;
    let options: std::collections::HashMap<String, String> = [
        ("AWS_ENDPOINT_URL".to_string(), endpoint.clone()),
        ("AWS_ACCESS_KEY_ID".to_string(), common::aws_var("AWS_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY".to_string(), common::aws_var("AWS_SECRET_ACCESS_KEY")),
        ("AWS_REGION".to_string(), common::aws_var("AWS_REGION")),
    ]
    .into();
    let open =
        |prefix: &str| Lake::open_with(&format!("s3://{bucket}/{prefix}").parse().unwrap(), options.clone()).unwrap();
    let (a, b) = (open("a"), open("b"));
    let out = |name: &str| Out::Store(open(&format!("results/{name}")));
    grow_and_compare(&a, &b, out).await;
    let inc = common::objects(&*store, "results/incremental").await;
    let full = common::objects(&*store, "results/refreshed").await;
    for q in ANSWERS {
        let key = format!("{q}.csv");
        assert!(inc.contains_key(&key) && inc.get(&key) == full.get(&key), "{key} on S3");
    }
    assert!(inc.contains_key("report.html") && inc.contains_key("run.json"), "{:?}", inc.keys());
    // The tables are Delta tables in the bucket.
    let log = common::objects(&*store, &format!("a/delta/{ID}_batch_pin/_delta_log")).await;
    assert!(log.keys().any(|k| k.ends_with(".json")), "{:?}", log.keys());
}

/// `pinpipe batch` on `data` (its lake and results inside), output discarded.
fn batch_command(data: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pinpipe"));
    command
        .arg("batch")
        .arg("--data")
        .arg(data)
        .args(extra)
        .env_remove("PINPIPE_LAKE")
        .env_remove("PINPIPE_OUT")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn run_to_end(data: &Path, extra: &[&str]) {
    let out = batch_command(data, extra).output().unwrap();
    assert!(out.status.success(), "pinpipe batch failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A data folder whose lake had one run over 1,200 posts, then got 1,200 more posts' files.
async fn lake_with_new_files(data: &Path) -> GrowingLake {
    let lake = local_lake(&data.join("lake"));
    let mut growing = GrowingLake::new();
    growing.step(&[&lake], 1_200).await;
    run_to_end(data, &[]);
    growing.step(&[&lake], 1_200).await;
    growing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_killed_at_random_points_are_completed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let growing = lake_with_new_files(&base).await;
    // The uninterrupted run, on a copy.
    let reference = dir.path().join("reference");
    common::copy_dir(&base, &reference);
    let started = Instant::now();
    run_to_end(&reference, &[]);
    let took = started.elapsed();
    let want_tables = tables(&local_lake(&reference.join("lake"))).await;
    let want_answers = answers_in(&reference.join("results"));
    same_rows(&want_tables[&BatchTable::Clean(Table::Pin).name(ID)], &growing.expected_rows(Table::Pin), "reference");

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    let mut killed_while_running = 0;
    for trial in 0..6 {
        let data = dir.path().join(format!("trial-{trial}"));
        common::copy_dir(&base, &data);
        // One or two kills, each at a random moment of a run (the last trials kill full
        // refreshes), then a plain run to the end.
        let killed: &[&str] = if trial >= 4 { &["--full-refresh"] } else { &[] };
        for _ in 0..(1 + trial % 2) {
            let mut child = batch_command(&data, killed).spawn().unwrap();
            let wait = Duration::from_millis(rng.random_range(0..took.as_millis().max(1) as u64));
            std::thread::sleep(wait);
            if child.try_wait().unwrap().is_none() {
                killed_while_running += 1;
            }
            child.kill().unwrap();
            child.wait().unwrap();
        }
        run_to_end(&data, &[]);
        let lake = local_lake(&data.join("lake"));
        for (name, rows) in tables(&lake).await {
            same_rows(&rows, &want_tables[&name], &format!("trial {trial}: {name} against an uninterrupted run's"));
        }
        assert_eq!(answers_in(&data.join("results")), want_answers, "trial {trial}: the answers differ");
        let leftovers: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        // A killed run may leave its staging folder; the next run's results are in place anyway.
        println!("trial {trial}: leftovers {leftovers:?}");
    }
    assert!(killed_while_running >= 3, "only {killed_while_running} kills hit a running batch job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_leave_the_tables_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let growing = lake_with_new_files(&data).await;
    let first = batch_command(&data, &[]).spawn().unwrap();
    let second = batch_command(&data, &[]).spawn().unwrap();
    let outcomes = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
    let succeeded = outcomes.iter().filter(|o| o.status.success()).count();
    assert!(succeeded >= 1, "neither run succeeded");
    for outcome in outcomes.iter().filter(|o| !o.status.success()) {
        let stderr = String::from_utf8_lossy(&outcome.stderr);
        assert!(stderr.contains("another batch run is working"), "the loser says why:\n{stderr}");
    }
    let lake = local_lake(&data.join("lake"));
    let got = tables(&lake).await;
    for table in Table::ALL {
        same_rows(&got[&BatchTable::Clean(table).name(ID)], &growing.expected_rows(table), table.name());
    }
    assert_eq!(got[&BatchTable::Rejects.name(ID)].len(), growing.broken());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_deltalake_reads_the_batch_tables_with_the_spec_columns_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let growing = lake_with_new_files(&data).await;
    run_to_end(&data, &[]);
    let script = r#"
import os, sys
import pyarrow as pa
from deltalake import DeltaTable
for path in sys.argv[1:]:
    table = DeltaTable(path).to_pyarrow_table()
    types = []
    for field in table.schema:
        t = field.type
        types.append(f"{field.name} " + (f"list<{t.value_type}>" if pa.types.is_list(t) else str(t)))
    print(os.path.basename(path), table.num_rows, ", ".join(types))
sys.stdout.flush()
os._exit(0)
"#;
    let delta = data.join("lake/delta");
    let paths: Vec<String> =
        BatchTable::ALL.iter().map(|t| delta.join(t.name(ID)).to_string_lossy().into_owned()).collect();
    let Some(printed) = common::python(script, &paths) else { return };
    let text = "string";
    let want = [
        format!(
            "pinterest_batch_pin {} ind int64, unique_id {text}, title {text}, description {text}, follower_count int64, \
             poster_name {text}, tag_list {text}, is_image_or_video {text}, image_src {text}, save_location {text}, \
             category {text}",
            growing.expected_rows(Table::Pin).len()
        ),
        format!(
            "pinterest_batch_geo {} ind int64, country {text}, coordinates list<double>, timestamp timestamp[us]",
            growing.expected_rows(Table::Geo).len()
        ),
        format!(
            "pinterest_batch_user {} ind int64, user_name {text}, age int32, date_joined timestamp[us]",
            growing.expected_rows(Table::User).len()
        ),
        format!("pinterest_batch_rejects {} table {text}, source {text}, raw {text}, reason {text}", growing.broken()),
    ];
    assert_eq!(printed.lines().collect::<Vec<_>>(), want);
}

#[test]
fn a_bad_out_url_is_a_one_line_error_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = batch_command(dir.path(), &["--out", "s3://"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--out s3://"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_table_stops_incremental_runs_until_a_full_refresh_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(&dir.path().join("lake"));
    let out = || BatchConfig::new(ID, dir.path().join("results"));
    let mut growing = GrowingLake::new();
    for _ in 0..2 {
        growing.step(&[&lake], 200).await;
        batch::run(&out(), &lake).await.unwrap();
    }
    growing.step(&[&lake], 200).await;
    std::fs::remove_dir_all(dir.path().join("lake/delta").join(BatchTable::Clean(Table::Geo).name(ID))).unwrap();
    let error = batch::run(&out(), &lake).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("pinterest_batch_geo") && message.contains("--full-refresh"), "{message}");
    let rebuilt = batch::run(&BatchConfig { full_refresh: true, ..out() }, &lake).await.unwrap();
    assert_eq!((rebuilt.run, rebuilt.full_refresh), (3, true));
    let got = tables(&lake).await;
    for table in Table::ALL {
        same_rows(&got[&BatchTable::Clean(table).name(ID)], &growing.expected_rows(table), table.name());
    }
    assert_eq!(got[&BatchTable::Rejects.name(ID)].len(), growing.broken());
}
