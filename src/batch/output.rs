//! Writing a run's results folder (SPEC §10 `batch`): the cleaned tables and the rejects as
//! Parquet, each answer as CSV (header row) and Parquet.
//!
//! Fed by the batch job's tables and answers; read by users, the report and Spark. Everything is
//! written into a fresh folder beside `out` ([`Staging`]) and swapped in only when all is
//! written, so a run that fails leaves the previous run's results as they were. The cleaned
//! tables are written first, batch by batch as `read` keeps them ([`TableWriter`]), and the
//! queries then run over those files: a run never holds a whole table in memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringBuilder};
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use datafusion::parquet::schema::types::ColumnPath;

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

/// Rows per Parquet row group of the cleaned tables: what a writer buffers before encoding.
const ROW_GROUP_ROWS: usize = 128 * 1024;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write { path: path.to_path_buf(), source }
}

fn parquet(path: &Path) -> impl FnOnce(ParquetError) -> Error + '_ {
    move |source| Error::Parquet { path: path.to_path_buf(), source }
}

fn write_parquet(path: &Path, schema: SchemaRef, batches: &[RecordBatch]) -> Result<(), Error> {
    let file = File::create(path).map_err(io(path))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(properties().build())).map_err(parquet(path))?;
    for batch in batches {
        writer.write(batch).map_err(parquet(path))?;
    }
    writer.close().map_err(parquet(path))?;
    Ok(())
}

/// Snappy (what Spark writes and every reader reads), row groups of [`ROW_GROUP_ROWS`].
fn properties() -> WriterPropertiesBuilder {
    WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
}

/// Text columns of the cleaned tables whose values are nearly all different (ids, free text,
/// URLs): written plain, where a dictionary would only be built to be thrown away.
const HIGH_CARDINALITY: &[&str] = &["unique_id", "title", "description", "tag_list", "image_src"];

/// The cleaned tables' properties: [`properties`] without dictionaries for the
/// [`HIGH_CARDINALITY`] columns.
fn table_properties(table: Table) -> WriterProperties {
    let schema = crate::clean::cleaned_schema(table);
    let plain = schema.fields().iter().map(|f| f.name().as_str()).filter(|name| HIGH_CARDINALITY.contains(name));
    plain.fold(properties(), |props, name| props.set_column_dictionary_enabled(ColumnPath::from(name), false)).build()
}

/// One cleaned table's Parquet file, written batch by batch.
pub(super) struct TableWriter {
    path: PathBuf,
    writer: ArrowWriter<File>,
}

impl TableWriter {
    /// Appends `batch` (blocking: encodes and writes).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        self.writer.write(batch).map_err(parquet(&self.path))
    }

    /// Writes the footer: the file is complete.
    pub fn close(self) -> Result<(), Error> {
        self.writer.close().map(|_| ()).map_err(parquet(&self.path))
    }
}

/// A run's results folder while it is written: a fresh folder beside `out`, removed unless
/// [`Staging::commit`] puts it in `out`'s place.
pub(super) struct Staging {
    out: PathBuf,
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates the fresh folder beside `out`.
    pub fn create(out: &Path) -> Result<Staging, Error> {
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
        let parent = parent_of(out);
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let dir = parent.join(format!(".{name}.new-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(Staging { out: out.to_path_buf(), dir, committed: false })
    }

    /// The path of `table`'s cleaned Parquet file in the folder.
    pub fn table_path(&self, table: Table) -> PathBuf {
        self.dir.join(format!("{}.parquet", table.name()))
    }

    /// Starts `table`'s cleaned Parquet file.
    pub fn table_writer(&self, table: Table) -> Result<TableWriter, Error> {
        let path = self.table_path(table);
        let file = File::create(&path).map_err(io(&path))?;
        let writer = ArrowWriter::try_new(file, crate::clean::cleaned_schema(table), Some(table_properties(table)))
            .map_err(parquet(&path))?;
        Ok(TableWriter { path, writer })
    }

    /// Writes the rejects and the answers, calls `finish` on the folder (the run metadata and
    /// the report go in there too), then puts the folder in `out`'s place.
    pub fn commit(
        mut self,
        results: &Results,
        finish: impl FnOnce(&Path, &Results) -> Result<(), Error>,
    ) -> Result<(), Error> {
        write_into(&self.dir, results)?;
        finish(&self.dir, results)?;
        replace(&self.out, &self.dir)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
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
    pub rejects: RecordBatch,
    pub answers: Vec<Answer>,
}

fn write_into(dir: &Path, results: &Results) -> Result<(), Error> {
    write_parquet(&dir.join("rejects.parquet"), rejects_schema(), std::slice::from_ref(&results.rejects))?;
    for answer in &results.answers {
        write_csv(&dir.join(format!("{}.csv", answer.name)), &answer.schema, &answer.batches)?;
        write_parquet(&dir.join(format!("{}.parquet", answer.name)), answer.schema.clone(), &answer.batches)?;
    }
    Ok(())
}

/// Puts the finished folder `fresh` in `out`'s place: the previous results move aside, the new
/// ones move in (rolled back if that fails), then the previous ones are removed.
fn replace(out: &Path, fresh: &Path) -> Result<(), Error> {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
    let parent = parent_of(out);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let old = parent.join(format!(".{name}.old-{tag}"));
    let had_old = match std::fs::rename(out, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(Error::Replace { out: out.to_path_buf(), source }),
    };
    if let Err(source) = std::fs::rename(fresh, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        return Err(Error::Replace { out: out.to_path_buf(), source });
    }
    if had_old && let Err(e) = std::fs::remove_dir_all(&old) {
        tracing::warn!(folder = %old.display(), error = %e, "cannot remove the previous results");
    }
    Ok(())
}
