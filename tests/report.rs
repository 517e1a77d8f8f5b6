//! The batch report (SPEC §6, §10 `report`): every batch run writes `<out>/report.html`, a page
//! that works offline, shows every answer as the results files hold it, charts the charted ones,
//! and loads in a real browser without a console message; `pinpipe report` re-renders the same
//! page from the results folder.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pinpipe::batch::{self, BatchConfig};
use pinpipe::lake::Lake;
use pinpipe::report;

const ANSWERS: [&str; 9] = ["q1", "q2", "q3a", "q3b", "q4", "q5", "q6", "q7", "q8"];

/// A batch run over the golden sink files (rejects, ties, NULLs, odd country names included).
async fn golden_run() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/topics");
    common::copy_dir(&golden, &dir.path().join("lake/topics"));
    let lake = Lake::open(&format!("file://{}", dir.path().join("lake").display()).parse().unwrap()).unwrap();
    let out = dir.path().join("results");
    batch::run(&BatchConfig::new("pinterest", out.clone()), &lake).await.unwrap();
    (dir, out)
}

/// An answer's Parquet file as text rows (`|`-separated, NULL as `NULL`), header first.
fn parquet_rows(path: &Path) -> Vec<String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap()).unwrap();
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut rows = vec![names.join("|")];
    let options = FormatOptions::default().with_null("NULL");
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        let formatters: Vec<_> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for row in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    rows
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

/// The page's table for `answer` as text rows, header first (cells' tags stripped, unescaped).
fn page_rows(page: &str, answer: &str) -> Vec<String> {
    let start = page.find(&format!("<table class=\"answer\" data-answer=\"{answer}\">")).expect("answer table");
    let table = &page[start..start + page[start..].find("</table>").unwrap()];
    let mut rows = Vec::new();
    for tr in table.split("<tr>").skip(1) {
        let tr = &tr[..tr.find("</tr>").unwrap()];
        let cells: Vec<String> =
            tr.split("</t").filter_map(|cell| cell.rfind('>').map(|i| unescape(&cell[i + 1..]))).collect();
        // `split("</t")` leaves an empty tail after the last cell.
        let cells = &cells[..cells.len().saturating_sub(1)];
        rows.push(cells.join("|"));
    }
    rows
}

#[tokio::test]
async fn every_batch_run_writes_a_self_contained_report_of_every_answer() {
    let (_dir, out) = golden_run().await;
    let page = fs::read_to_string(out.join("report.html")).unwrap();
    for answer in ANSWERS {
        let want = parquet_rows(&out.join(format!("{answer}.parquet")));
        let got = page_rows(&page, answer);
        if want.len() == 1 {
            assert_eq!(got, [want[0].clone(), "no rows".to_string()], "{answer}");
        } else {
            assert_eq!(got, want, "{answer}: the page's table differs from the results file");
        }
    }
    let mut charts: Vec<&str> = page
        .match_indices("<svg class=\"chart\" data-answer=\"")
        .map(|(i, m)| {
            let rest = &page[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    charts.sort();
    let mut want: Vec<&str> = report::charted_answers().collect();
    want.sort();
    assert_eq!(charts, want, "one chart per charted answer");
    // Offline: nothing is fetched, nothing runs.
    for outside in ["http://", "https://", "<script", "<link", "<img", "<iframe", "url(", "@import", " src="] {
        assert!(!page.contains(outside), "the report refers to something outside itself: {outside}");
    }
    // Metadata, counts and rejects.
    let meta = report::read_meta(&out).unwrap();
    assert_eq!(meta.answers, ANSWERS);
    assert_eq!(meta.tables.iter().map(|t| t.table.name()).collect::<Vec<_>>(), ["pin", "geo", "user"]);
    assert!(page.contains(&format!("<dt>started</dt><dd>{}</dd>", meta.started_at)), "run metadata shown");
    for t in &meta.tables {
        let rejected: u64 = t.rejected.values().sum();
        let row = format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{rejected}</td><td class=\"num\">{}</td>",
            t.table, t.files, t.records, t.kept
        );
        assert!(page.contains(&row), "pipeline counts of {}: {row}", t.table);
        for (reason, n) in &t.rejected {
            let row =
                format!("<tr><td>{}</td><td>{}</td><td class=\"num\">{n}</td></tr>", t.table, report::escape(reason));
            assert!(page.contains(&row), "reject reason {reason}");
        }
    }
    assert!(meta.tables.iter().any(|t| !t.rejected.is_empty()), "the golden input has rejects");
}

#[tokio::test]
async fn the_report_command_rerenders_the_same_page_from_the_results_folder() {
    let (dir, out) = golden_run().await;
    let written = fs::read(out.join("report.html")).unwrap();
    fs::remove_file(out.join("report.html")).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_pinpipe")).args(["report", "--data"]).arg(dir.path()).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout), format!("report: {}\n", out.join("report.html").display()));
    assert!(fs::read(out.join("report.html")).unwrap() == written, "the re-rendered page differs");

    // A folder without run metadata: a clear error naming the file, exit 2.
    let empty = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_pinpipe")).args(["report", "--out"]).arg(empty.path()).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("run.json"), "{stderr}");
}

#[tokio::test]
async fn the_report_loads_in_a_browser_without_console_messages_and_draws_every_chart() {
    let Some(chromium) = common::chromium::from_env() else { return };
    let (_dir, out) = golden_run().await;
    let url = format!("file://{}", out.join("report.html").display());
    let page = common::chromium::load(&chromium, &url, 1000);
    assert!(page.console.is_empty(), "console messages:\n{}", page.console.join("\n"));
    let charts = page.dom.matches("<svg class=\"chart\"").count();
    assert_eq!(charts, report::charted_answers().count(), "charts in the rendered DOM");
    for answer in report::charted_answers() {
        assert!(page.dom.contains(&format!("data-answer=\"{answer}\"")), "chart of {answer}");
    }
    assert!(page.dom.contains("Q3b: The country whose top poster has the most followers"), "{}", page.dom);
}
