//! The Airflow DAG (`deploy/airflow/pinterest_dag.py`, SPEC §7): with a real Airflow 3
//! (`PINPIPE_TEST_AIRFLOW`, the `airflow` executable of its venv), in a temporary AIRFLOW_HOME with
//! a SQLite metadata database, `airflow dags test pinterest_dag` runs the pinpipe batch job on a
//! data folder landed by the pinpipe binary, and the results equal a direct `pinpipe batch` run's.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DAG: &str = "deploy/airflow/pinterest_dag.py";

fn airflow() -> Option<PathBuf> {
    let Ok(path) = std::env::var("PINPIPE_TEST_AIRFLOW") else {
        eprintln!("PINPIPE_TEST_AIRFLOW is not set: skipping the Airflow DAG test");
        return None;
    };
    let path = PathBuf::from(path);
    assert!(path.is_file(), "PINPIPE_TEST_AIRFLOW={} is not a file", path.display());
    Some(path)
}

fn pinpipe(args: &[&str], data: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pinpipe")).args(args).arg("--data").arg(data).output().unwrap();
    assert!(out.status.success(), "pinpipe {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// An Airflow home with the DAG in its dags folder and a migrated SQLite database.
fn airflow_home(airflow: &Path) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    fs::create_dir(home.path().join("dags")).unwrap();
    fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(DAG), home.path().join("dags/pinterest_dag.py")).unwrap();
    let out = airflow_command(airflow, home.path()).args(["db", "migrate"]).output().unwrap();
    assert!(out.status.success(), "airflow db migrate: {}", String::from_utf8_lossy(&out.stderr));
    home
}

fn airflow_command(airflow: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(airflow);
    cmd.env("AIRFLOW_HOME", home)
        .env("AIRFLOW__CORE__DAGS_FOLDER", home.join("dags"))
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .env("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", format!("sqlite:///{}", home.join("airflow.db").display()))
        .env_remove("PINPIPE_ID")
        .env_remove("PINPIPE_OUT");
    cmd
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn the_dag_runs_the_batch_job_and_its_results_equal_a_direct_run() {
    let Some(airflow) = airflow() else { return };
    let data = tempfile::tempdir().unwrap();
    // Seed, emulate, sink (and a first batch run) with the pinpipe binary; then only the lake is kept.
    pinpipe(&["demo", "--count", "60", "--rows", "200"], data.path());
    fs::remove_dir_all(data.path().join("results")).unwrap();
    let direct = tempfile::tempdir().unwrap();
    let direct = direct.path().join("results");
    pinpipe(&["batch", "--out", direct.to_str().unwrap()], data.path());

    let home = airflow_home(&airflow);
    let out = airflow_command(&airflow, home.path())
        .args(["dags", "test", "pinterest_dag"])
        .env("PINPIPE_BIN", env!("CARGO_BIN_EXE_pinpipe"))
        .env("PINPIPE_DATA", data.path())
        .output()
        .unwrap();
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "airflow dags test failed:\n{log}");
    let finished = log.lines().find(|l| l.contains("DagRun Finished: dag_id=pinterest_dag")).unwrap_or_default();
    assert!(finished.contains(", state=success,"), "the DAG run did not succeed:\n{log}");

    let results = data.path().join("results");
    assert_eq!(listing(&results), listing(&direct));
    for file in listing(&direct) {
        if file == "run.json" || file == "report.html" {
            continue; // they hold the run's own times
        }
        assert!(fs::read(results.join(&file)).unwrap() == fs::read(direct.join(&file)).unwrap(), "{file} differs");
    }
    let (dag, direct) = (pinpipe::report::read_meta(&results).unwrap(), pinpipe::report::read_meta(&direct).unwrap());
    assert_eq!(dag.tables, direct.tables);
    // The DAG ran the incremental job: nothing new since the demo's run, so no file read and
    // the answers of the same run's tables.
    assert_eq!((dag.run, dag.full_refresh), (direct.run, false));
    assert!(dag.tables.iter().all(|t| t.files == 0 && t.rows > 0), "{:?}", dag.tables);
}

#[test]
fn the_dag_is_daily_without_catchup_with_retries_and_its_id_follows_the_pipeline_id() {
    let Some(airflow) = airflow() else { return };
    let python = airflow.with_file_name("python");
    let script = r#"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("pinterest_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.dag
task = dag.get_task("run_batch")
print(json.dumps({
    "dag_id": dag.dag_id,
    "schedule": str(dag.schedule),
    "catchup": dag.catchup,
    "retries": task.retries,
    "retry_delay_s": task.retry_delay.total_seconds(),
    "operator": type(task).__name__,
    "bash_command": task.bash_command,
}, sort_keys=True))
"#;
    let home = tempfile::tempdir().unwrap();
    let dag = Path::new(env!("CARGO_MANIFEST_DIR")).join(DAG);
    for (id, want_id) in [(None, "pinterest_dag"), (Some("0a1b2c3d4e5f"), "0a1b2c3d4e5f_dag")] {
        let mut cmd = airflow_command(&python, home.path());
        cmd.args(["-c", script]).arg(&dag);
        if let Some(id) = id {
            cmd.env("PINPIPE_ID", id);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let want = format!(
            r#"{{"bash_command": "\"$PINPIPE_BIN\" batch", "catchup": false, "dag_id": "{want_id}", "operator": "BashOperator", "retries": 2, "retry_delay_s": 300.0, "schedule": "@daily"}}"#
        );
        assert_eq!(last, want);
    }
}
