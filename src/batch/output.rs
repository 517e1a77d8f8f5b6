//! Writing a run's results (SPEC §10 `batch`): each answer as CSV (header row) and Parquet, with
//! the run metadata and the report, into `--out`: a local folder or `s3://bucket/prefix`.
//!
//! Fed by the batch job's answers; read by users, the report and Spark. Everything is written
//! into a fresh folder first ([`Staging`]: beside a local `out`, a temporary one for a bucket)
//! and put in place only when all is written. A local `out` is swapped whole, so a run that
//! fails leaves the previous results as they were; in a bucket each object is replaced whole,
//! the report and `run.json` last. The rows themselves live in the batch tables of the lake
//! ([`super::tables`]); this folder holds what they answer.

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

use object_store::{ObjectStoreExt as _, PutPayload};

use super::Error;
use super::queries::Answer;
use super::read::RejectRow;
use crate::clean::Table;
use crate::lake::Lake;
use crate::settings::LakeUrl;

/// The columns of the rejects table (`<id>_batch_rejects`): which table, where the record was
/// (`<sink file key>:<line>`), the record as it was, and why it was rejected.
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
pub(super) fn table_properties(table: Table) -> WriterProperties {
    let schema = crate::clean::cleaned_schema(table);
    let plain = schema.fields().iter().map(|f| f.name().as_str()).filter(|name| HIGH_CARDINALITY.contains(name));
    plain.fold(properties(), |props, name| props.set_column_dictionary_enabled(ColumnPath::from(name), false)).build()
}

/// Where a run's results go (`--out`).
#[derive(Debug, Clone)]
pub enum Out {
    /// A local folder, replaced whole by each run.
    Folder(PathBuf),
    /// `s3://bucket/prefix`: objects under the prefix, each replaced by each run.
    Store(Lake),
}

impl Out {
    /// `s3://bucket[/prefix]` (credentials and endpoint as for the lake), or a local folder.
    pub fn parse(out: &Path) -> Result<Out, Error> {
        match out.to_str() {
            Some(url) if url.starts_with("s3://") => {
                let invalid = |reason: String| Error::Out { out: url.to_string(), reason };
                let parsed: LakeUrl = url.parse().map_err(|e: crate::settings::UrlError| invalid(e.to_string()))?;
                Ok(Out::Store(Lake::open(&parsed).map_err(|e| invalid(format!("{e:#}")))?))
            }
            _ => Ok(Out::Folder(out.to_path_buf())),
        }
    }

    /// Where the file `name` of the results is (a path or a URL), for messages.
    pub fn show(&self, name: &str) -> String {
        match self {
            Out::Folder(dir) if name.is_empty() => dir.display().to_string(),
            Out::Folder(dir) => dir.join(name).display().to_string(),
            Out::Store(lake) => lake.url_of(name),
        }
    }
}

impl From<PathBuf> for Out {
    fn from(dir: PathBuf) -> Out {
        Out::Folder(dir)
    }
}

/// A run's results while they are written: a fresh local folder (beside a local `out`), removed
/// unless [`Staging::publish`] puts it in `out`'s place.
pub(super) struct Staging {
    out: Out,
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates the fresh folder.
    pub fn create(out: &Out) -> Result<Staging, Error> {
        let (parent, name) = match out {
            Out::Folder(out) => (
                parent_of(out),
                out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into()),
            ),
            Out::Store(_) => (std::env::temp_dir(), "pinpipe-results".to_string()),
        };
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let dir = parent.join(format!(".{name}.new-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(Staging { out: out.clone(), dir, committed: false })
    }

    /// Writes the answers, then calls `finish` on the folder (the run metadata and the report
    /// go in there too).
    pub fn write(
        &self,
        results: &Results,
        finish: impl FnOnce(&Path, &Results) -> Result<(), Error>,
    ) -> Result<(), Error> {
        write_into(&self.dir, results)?;
        finish(&self.dir, results)
    }

    /// Puts the written folder in `out`'s place: a local folder is swapped whole; in a bucket
    /// every file is put under the prefix (replacing the previous run's), `run.json` and the
    /// report last.
    pub async fn publish(mut self) -> Result<(), Error> {
        match &self.out {
            // The folder is `out` now: nothing left to remove.
            Out::Folder(out) => {
                replace(out, &self.dir)?;
                self.committed = true;
            }
            // The local copy is removed on drop.
            Out::Store(lake) => upload(lake, &self.dir).await?,
        }
        Ok(())
    }
}

/// Puts every file of `dir` under `lake`'s prefix (`run.json` and the report last).
async fn upload(lake: &Lake, dir: &Path) -> Result<(), Error> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|entry| Some(entry.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    let last = |name: &str| match name {
        crate::report::RUN_FILE => 1,
        crate::report::REPORT_FILE => 2,
        _ => 0,
    };
    names.sort_by_key(|name| (last(name), name.clone()));
    for name in &names {
        let path = dir.join(name);
        let body = std::fs::read(&path).map_err(io(&path))?;
        let key = lake.path(name);
        lake.store
            .put(&key, PutPayload::from(body))
            .await
            .map_err(|source| Error::Upload { key: key.to_string(), source })?;
    }
    Ok(())
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
    pub answers: Vec<Answer>,
}

fn write_into(dir: &Path, results: &Results) -> Result<(), Error> {
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
