//! The batch report: one self-contained HTML page, `<out>/report.html`, for the last batch run
//! (SPEC §6, §10 `report`).
//!
//! Fed by the batch job, which hands over its answers and a [`RunMeta`] after writing its result
//! files (the page and `run.json` go into the same folder before it is swapped in), and by
//! `pinpipe report`, which re-renders the page from a results folder: `run.json` plus each
//! answer's Parquet file. Read by people, in a browser, offline: no script, no external style,
//! font or image; every chart is inline SVG drawn by [`svg`], every value HTML-escaped.
//!
//! The page is a pure function of the run metadata and the answers (no clock read while
//! rendering), so re-rendering a results folder gives the page the batch run wrote, byte for byte.
//! The layout lives in [`html`]; this file owns the data model, `run.json` and the file I/O.

mod html;
mod svg;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::contract::Table;

pub use html::{charted_answers, render};

/// The run metadata file the batch job writes beside its answers.
pub(crate) const RUN_FILE: &str = "run.json";
/// The report's file name inside the results folder.
pub const REPORT_FILE: &str = "report.html";

/// What a batch run was: when, how long, over what input. Written as `run.json`; read by
/// `pinpipe report` and the gateway's status page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunMeta {
    /// Pipeline id whose topics were read.
    pub id: String,
    /// The lake the sink files came from.
    pub lake: String,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    /// When the results were complete, RFC 3339 in UTC.
    pub finished_at: String,
    /// Wall time of the whole run, in seconds.
    pub duration_seconds: f64,
    /// Wall time of each phase (`read`, `queries`, `write`), in seconds.
    pub phases: Vec<PhaseTime>,
    /// What the run read and added per cleaned table, and the rows each holds after it, in the
    /// order pin, geo, user.
    pub tables: Vec<TableCounts>,
    /// The answers in SPEC order (`q1`, `q2`, `q3a`, …): the stems of their result files.
    pub answers: Vec<String>,
    /// The pinpipe version that ran.
    pub version: String,
    /// The batch run whose tables the answers read (the `txn` version of the batch tables).
    #[serde(default)]
    pub run: u64,
    /// Whether this run rebuilt the tables from every file (`--full-refresh`).
    #[serde(default)]
    pub full_refresh: bool,
}

/// One phase of a run and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseTime {
    pub name: String,
    pub seconds: f64,
}

/// What the batch job made of one table's input: the counts its summary prints and the report
/// shows (`run.json` holds them as they are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableCounts {
    /// `pin`, `geo` or `user`.
    pub table: Table,
    /// Sink files this run read (those new since the run before; every file for a full refresh).
    pub files: u64,
    /// Records read (non-blank lines).
    pub records: u64,
    /// Records rejected, by reason (the reasons of [`crate::clean::decode`]).
    pub rejected: BTreeMap<String, u64>,
    /// pin: follower counts that were present but not a number (NULL in the table; SPEC §6
    /// counts them).
    pub unreadable_follower_counts: u64,
    /// Rows this run added to the cleaned table: one per `ind` it did not hold.
    pub kept: u64,
    /// Rows in the cleaned table after the run.
    #[serde(default)]
    pub rows: u64,
}

impl TableCounts {
    /// All rejected records of the table.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// One answer as text cells: what the page shows and charts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTable {
    /// `q1`, `q3a`, …
    pub name: String,
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows of cells; `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

impl AnswerTable {
    /// Formats Arrow batches (an answer of the batch job, or one read back from Parquet).
    pub fn from_batches(name: &str, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Self, Error> {
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        let options = FormatOptions::default();
        let mut rows = Vec::new();
        for batch in batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| Error::Format { answer: name.to_string(), source })?;
            for row in 0..batch.num_rows() {
                let cells = batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(column, f)| (!column.is_null(row)).then(|| f.value(row).to_string()))
                    .collect();
                rows.push(cells);
            }
        }
        Ok(AnswerTable { name: name.to_string(), columns, rows })
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Errors writing or re-rendering a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path} (is this a results folder written by `pinpipe batch`?)")]
    ReadMeta {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid run metadata")]
    ParseMeta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("answer `{answer}` in {path} is not a plain file name")]
    BadAnswerName { answer: String, path: PathBuf },
    #[error("cannot read answer file {path}")]
    ReadAnswer {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot format the values of answer `{answer}`")]
    Format {
        answer: String,
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialize the run metadata")]
    Serialize(#[source] serde_json::Error),
}

/// Reads `run.json` from a results folder.
pub fn read_meta(out: &Path) -> Result<RunMeta, Error> {
    let path = out.join(RUN_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadMeta { path: path.clone(), source })?;
    serde_json::from_str(&text).map_err(|source| Error::ParseMeta { path, source })
}

/// Reads one answer back from `<out>/<name>.parquet`.
pub(crate) fn read_answer(out: &Path, name: &str) -> Result<AnswerTable, Error> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::BadAnswerName { answer: name.to_string(), path: out.join(RUN_FILE) });
    }
    let path = out.join(format!("{name}.parquet"));
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| Error::ReadAnswer { path: path.clone(), source };
    let file = File::open(&path).map_err(|e| failed(Box::new(e)))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| failed(Box::new(e)))?;
    let schema = reader.schema().clone();
    let reader = reader.build().map_err(|e| failed(Box::new(e)))?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| failed(Box::new(e)))?;
    AnswerTable::from_batches(name, &schema, &batches)
}

/// Writes `run.json` and `report.html` into `dir`.
pub fn write(dir: &Path, meta: &RunMeta, answers: &[AnswerTable]) -> Result<(), Error> {
    let json = serde_json::to_vec_pretty(meta).map_err(Error::Serialize)?;
    let path = dir.join(RUN_FILE);
    std::fs::write(&path, json).map_err(|source| Error::Write { path, source })?;
    write_page(dir, meta, answers)
}

fn write_page(dir: &Path, meta: &RunMeta, answers: &[AnswerTable]) -> Result<(), Error> {
    let path = dir.join(REPORT_FILE);
    std::fs::write(&path, render(meta, answers)).map_err(|source| Error::Write { path, source })
}

/// `pinpipe report`: re-renders `<out>/report.html` from `run.json` and the answers' Parquet
/// files, and returns the page's path. The page is written beside them through a temporary file,
/// so a reader never sees half a page.
pub fn rerender(out: &Path) -> Result<PathBuf, Error> {
    let meta = read_meta(out)?;
    let answers = meta.answers.iter().map(|name| read_answer(out, name)).collect::<Result<Vec<_>, _>>()?;
    let page = render(&meta, &answers);
    let path = out.join(REPORT_FILE);
    let tmp = out.join(format!(".{REPORT_FILE}.tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, page).map_err(|source| Error::Write { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, &path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        Error::Write { path: path.clone(), source }
    })?;
    Ok(path)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"<b a="1">'x' & y</b>"#), "&lt;b a=&quot;1&quot;&gt;&#39;x&#39; &amp; y&lt;/b&gt;");
    }

    #[test]
    fn formats_cells_with_nulls_as_none() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("age_group", DataType::Utf8, true),
            Field::new("median_follower_count", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("+50"), None])),
                Arc::new(Float64Array::from(vec![Some(2500.5), Some(7000.0)])),
            ],
        )
        .unwrap();
        let table = AnswerTable::from_batches("q5", &schema, &[batch]).unwrap();
        assert_eq!(table.columns, ["age_group", "median_follower_count"]);
        assert_eq!(
            table.rows,
            vec![vec![Some("+50".to_string()), Some("2500.5".to_string())], vec![None, Some("7000.0".to_string())]]
        );
    }
}
