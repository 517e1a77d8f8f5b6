//! Writing a run's results folder (SPEC §10 `batch`): the cleaned tables and the rejects as
//! Parquet, each answer as CSV (header row) and Parquet.
//!
//! Fed by the batch job's tables and answers; read by users, the report and Spark. The files (the
//! report's `run.json` and `report.html` among them, written by the caller's `finish`) are
//! written into a fresh folder beside `out` and swapped in only when all are written, so a run
//! that fails leaves the previous run's results as they were.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringBuilder};
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

use super::Error;
use super::queries::Answer;
use super::read::RejectRow;
use crate::clean::Table;

/// The schema of `rejects.parquet`.
pub fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// The rejects of every table as one batch of [`rejects_schema`].
pub(super) fn rejects_batch(rejects: &[(Table, &[RejectRow])]) -> Result<RecordBatch, Error> {
    let rows: usize = rejects.iter().map(|(_, r)| r.len()).sum();
    let mut columns: Vec<StringBuilder> = (0..4).map(|_| StringBuilder::with_capacity(rows, rows * 32)).collect();
    for (table, rows) in rejects {
        for row in *rows {
            columns[0].append_value(table.name());
            columns[1].append_value(&row.source);
            columns[2].append_value(&row.raw);
            columns[3].append_value(&row.reason);
        }
    }
    let arrays = columns.iter_mut().map(|c| Arc::new(c.finish()) as _).collect();
    Ok(RecordBatch::try_new(rejects_schema(), arrays)?)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write { path: path.to_path_buf(), source }
}

fn write_parquet(path: &Path, schema: SchemaRef, batches: &[RecordBatch]) -> Result<(), Error> {
    let parquet = |source| Error::Parquet { path: path.to_path_buf(), source };
    let file = File::create(path).map_err(io(path))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet)?;
    for batch in batches {
        writer.write(batch).map_err(parquet)?;
    }
    writer.close().map_err(parquet)?;
    Ok(())
}

/// CSV with a header row, also when there are no rows.
fn write_csv(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<(), Error> {
    let mut file = BufWriter::new(File::create(path).map_err(io(path))?);
    let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    writeln!(file, "{}", header.join(",")).map_err(io(path))?;
    {
        let mut writer = csv::WriterBuilder::new().with_header(false).build(&mut file);
        for batch in batches {
            writer.write(batch).map_err(|source| Error::Csv { path: path.to_path_buf(), source })?;
        }
    }
    file.flush().map_err(io(path))?;
    Ok(())
}

/// What a run writes.
pub(super) struct Results {
    pub tables: [(Table, Vec<RecordBatch>); 3],
    pub rejects: RecordBatch,
    pub answers: Vec<Answer>,
}

fn write_into(dir: &Path, results: &Results) -> Result<(), Error> {
    for (table, batches) in &results.tables {
        let schema = crate::clean::cleaned_schema(*table);
        write_parquet(&dir.join(format!("{}.parquet", table.name())), schema, batches)?;
    }
    write_parquet(&dir.join("rejects.parquet"), rejects_schema(), std::slice::from_ref(&results.rejects))?;
    for answer in &results.answers {
        write_csv(&dir.join(format!("{}.csv", answer.name)), &answer.schema, &answer.batches)?;
        write_parquet(&dir.join(format!("{}.parquet", answer.name)), answer.schema.clone(), &answer.batches)?;
    }
    Ok(())
}

/// Writes every result file into a new folder beside `out`, calls `finish` on that folder (the
/// run metadata and the report go in there too), then puts it in `out`'s place.
pub(super) fn write(
    out: &Path,
    results: &Results,
    finish: impl FnOnce(&Path, &Results) -> Result<(), Error>,
) -> Result<(), Error> {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let fresh = parent.join(format!(".{name}.new-{tag}"));
    std::fs::create_dir(&fresh).map_err(io(&fresh))?;
    if let Err(e) = write_into(&fresh, results).and_then(|()| finish(&fresh, results)) {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(e);
    }
    let old = parent.join(format!(".{name}.old-{tag}"));
    let had_old = match std::fs::rename(out, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(Error::Replace { out: out.to_path_buf(), source });
        }
    };
    if let Err(source) = std::fs::rename(&fresh, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(Error::Replace { out: out.to_path_buf(), source });
    }
    if had_old && let Err(e) = std::fs::remove_dir_all(&old) {
        tracing::warn!(folder = %old.display(), error = %e, "cannot remove the previous results");
    }
    Ok(())
}
