//! The source database (SPEC §1): the three tables the posting emulator reads from, on MySQL /
//! MariaDB (`mysql://…`, the production case) or an embedded SQLite file (`sqlite://PATH`).
//!
//! This module owns the table layout, filling the tables with generated rows ([`Source::seed`],
//! rows from [`generator`]) and reading them back by position ([`Reader::post_at`]). It feeds the
//! emulator (SPEC §2), which serializes each [`Post`] part as one JSON object: the field names and
//! order of [`Pin`], [`Geo`] and [`User`] are that wire format, and must stay the column names.
//!
//! One code path serves both databases: the SQL text is shared (`schema.rs`: only the column
//! types, the table options and how a datetime is read back as `YYYY-MM-DD HH:MM:SS` text differ)
//! and each operation is written once for both pools (`with_pool!`; row decoding in `rows.rs`).
//! Datetimes are written as that text on both: MySQL converts it into `DATETIME`, SQLite keeps it
//! as TEXT, so any SQLite client sees what the emulator sends.

mod countries;
pub mod data;
pub mod generator;
mod rows;
mod schema;

pub use countries::COUNTRIES;
pub use generator::{DEFAULT_ROWS, Generator, generate};
pub use schema::Table;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::settings::SourceUrl;
use schema::{Dialect, INSERT_GEO, INSERT_PIN, INSERT_USER, MYSQL, SELECT_PIN, SQLITE};

/// The random seed `pinpipe seed` uses when none is given.
pub const DEFAULT_SEED: u64 = 42;
/// The most rows [`Source::seed`] writes: the key columns are `INT`, as in the original schema.
pub(crate) const MAX_ROWS: u64 = i32::MAX as u64;
/// Rows per `INSERT` statement: 12 columns × 2,000 = 24,000 bound values, under SQLite's 32,766
/// and MySQL's 65,535 placeholder limits, and about 1 MB of SQL text, under `max_allowed_packet`.
const STATEMENT_ROWS: usize = 2_000;
const _: () = assert!(STATEMENT_ROWS * 12 <= 32_766, "an INSERT of pins must fit SQLite's placeholder limit");
/// Rows per transaction while seeding: large enough that commits are rare, small enough that
/// progress is reported often and a generated chunk is a few megabytes.
const CHUNK_ROWS: u64 = 10_000;

/// One post: row `i` of each of the three tables (they are aligned by their index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    /// Sent to the `<id>.pin` topic / `streaming-<id>-pin` stream.
    pub pin: Pin,
    /// Sent to the `<id>.geo` topic / stream.
    pub geo: Geo,
    /// Sent to the `<id>.user` topic / stream.
    pub user: User,
}

/// A `pinterest_data` row. Fields are the columns, in column order: the emulator's JSON object.
/// Text columns are `Option` because a user's database may hold NULLs; they serialize as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    pub index: i64,
    pub unique_id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub poster_name: Option<String>,
    /// Text on purpose (`"12k"`, `"3M"`, `"User Info Error"`): converting it is the cleaner's job.
    pub follower_count: Option<String>,
    /// Comma-joined tags.
    pub tag_list: Option<String>,
    pub is_image_or_video: Option<String>,
    pub image_src: Option<String>,
    /// 1 when the image was saved, 0 when `image_src` is an error placeholder.
    pub downloaded: Option<i64>,
    pub save_location: Option<String>,
    pub category: Option<String>,
}

/// A `geolocation_data` row, in column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    pub ind: i64,
    /// `YYYY-MM-DD HH:MM:SS`. `None` (JSON `null`) when the database holds NULL, so such a row is
    /// still sent and the cleaner rejects it with a reason instead of the emulator failing.
    pub timestamp: Option<String>,
    /// Required, like the key: a NULL coordinate fails the read ([`Error::Read`]) rather than
    /// sending a made-up number.
    pub latitude: f64,
    pub longitude: f64,
    pub country: Option<String>,
}

/// A `user_data` row, in column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub ind: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub age: Option<i64>,
    /// `YYYY-MM-DD HH:MM:SS`, or `None` for a NULL in the database (see [`Geo::timestamp`]).
    pub date_joined: Option<String>,
}

/// Errors of the source database. URLs in messages never include a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the folder {} for the SQLite source", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the source database {url}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create table `{}`", .table.source_table())]
    CreateTable {
        table: Table,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot count the rows of `{}`", .table.source_table())]
    Count {
        table: Table,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot list the row keys of `{}`", .table.source_table())]
    ListKeys {
        table: Table,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot read the row of `{}` with key {key}", .table.source_table())]
    Read {
        table: Table,
        key: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot insert {rows} rows starting at index {first} into `{}`", .table.source_table())]
    Insert {
        table: Table,
        first: i64,
        rows: usize,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot start or commit the transaction inserting {posts} posts starting at index {first}")]
    Transaction {
        first: i64,
        posts: usize,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "`{}` already holds {rows} rows: seed only fills empty tables \
         (seed a new database, or drop the three tables first)",
        .table.source_table()
    )]
    NotEmpty { table: Table, rows: u64 },
    #[error("`{}` has no rows: run `pinpipe seed` first", .table.source_table())]
    Empty { table: Table },
    #[error("cannot seed {rows} rows: the key columns are INT, which hold at most {max}")]
    TooManyRows { rows: u64, max: u64 },
    #[error("row position {position} is past the end: the source has {rows} rows")]
    PositionOutOfRange { position: u64, rows: u64 },
    #[error("`{}` has no row with key {key} any more: it was deleted after the reader listed the rows", .table.source_table())]
    RowVanished { table: Table, key: i64 },
    #[error("the row generator stopped unexpectedly")]
    Generator(#[source] tokio::task::JoinError),
}

/// The connection pool of one backend. Both pools are `Arc`s inside, so cloning is cheap.
#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$source` holds. The body is written once
/// and type-checked for each backend, which is how the SQL and logic stay shared.
macro_rules! with_pool {
    ($source:expr, $pool:ident => $body:expr) => {
        match &$source.pool {
            Pool::Sqlite($pool) => $body,
            Pool::MySql($pool) => $body,
        }
    };
}

/// A connected source database. Cheap to clone and shareable across tasks.
#[derive(Debug, Clone)]
pub struct Source {
    pool: Pool,
    url: Arc<str>,
}

impl Source {
    /// Connects to `sqlite://PATH` (relative or absolute; the file and its folder are created if
    /// missing, in WAL mode so readers never block the writer) or `mysql://user:pass@host:port/db`.
    /// Everything after `sqlite://` is the file path, as is.
    pub async fn connect(url: &SourceUrl) -> Result<Source, Error> {
        let shown = url.to_string();
        let pool = match url {
            SourceUrl::Sqlite(path) => {
                let path: &Path = path;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|source| Error::CreateDir { path: parent.to_path_buf(), source })?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // With WAL, NORMAL cannot corrupt the file; it only may lose the last commits on
                    // power loss, which re-running `seed` repairs.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await
                    .map_err(|source| Error::Connect { url: shown.clone(), source })?;
                Pool::Sqlite(pool)
            }
            SourceUrl::Mysql(url) => {
                let options = MySqlConnectOptions::from_str(url)
                    .map_err(|source| Error::Connect { url: shown.clone(), source })?;
                let pool = MySqlPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(|source| Error::Connect { url: shown.clone(), source })?;
                Pool::MySql(pool)
            }
        };
        Ok(Source { pool, url: shown.into() })
    }

    /// The URL this source was opened with, password replaced by `***`: safe to print.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates the three tables if absent; existing tables are left as they are.
    pub async fn create_tables(&self) -> Result<(), Error> {
        for (table, sql) in self.dialect().create {
            with_pool!(self, pool => sqlx::query(sql).execute(pool).await.map(drop))
                .map_err(|source| Error::CreateTable { table, source })?;
        }
        Ok(())
    }

    /// Number of rows in `pinterest_data` (0 when the tables are empty). Fails if it is absent:
    /// call [`Source::create_tables`] first.
    pub async fn row_count(&self) -> Result<u64, Error> {
        self.count(Table::Pin).await
    }

    /// Creates the tables if absent and fills them with `rows` generated posts (indexes
    /// `0..rows`), exactly [`generate`]`(rows, seed)`. Refuses ([`Error::NotEmpty`]) when any
    /// table already has rows: appending would break the row alignment and the determinism
    /// (`seed` twice must not double the data). Calls `progress(rows_done)` after each committed
    /// chunk of 10,000 rows. Generation runs on a blocking thread, a few chunks ahead of insertion.
    pub async fn seed(&self, rows: u64, seed: u64, progress: &(dyn Fn(u64) + Send + Sync)) -> Result<(), Error> {
        if rows > MAX_ROWS {
            return Err(Error::TooManyRows { rows, max: MAX_ROWS });
        }
        self.create_tables().await?;
        for table in Table::ALL {
            let existing = self.count(table).await?;
            if existing > 0 {
                return Err(Error::NotEmpty { table, rows: existing });
            }
        }
        let (sender, mut chunks) = tokio::sync::mpsc::channel::<Vec<Post>>(2);
        let producer = tokio::task::spawn_blocking(move || {
            let generator = Generator::new(rows, seed);
            let mut start = 0;
            while start < rows {
                let end = (start + CHUNK_ROWS).min(rows);
                let chunk = (start..end).map(|i| generator.post(i)).collect();
                if sender.blocking_send(chunk).is_err() {
                    break; // the inserting side failed and stopped listening
                }
                start = end;
            }
        });
        let mut done = 0;
        while let Some(chunk) = chunks.recv().await {
            done += chunk.len() as u64;
            self.insert(chunk).await?;
            progress(done);
        }
        producer.await.map_err(Error::Generator)
    }

    /// Inserts posts into the three tables in one transaction (all or nothing), in multi-row
    /// statements. The indexes must not exist yet. Used by [`Source::seed`], and by anyone loading
    /// hand-made rows (tests with sparse indexes, imports).
    pub async fn insert(&self, posts: Vec<Post>) -> Result<(), Error> {
        let mut pins = Vec::with_capacity(posts.len());
        let mut geos = Vec::with_capacity(posts.len());
        let mut users = Vec::with_capacity(posts.len());
        for Post { pin, geo, user } in posts {
            pins.push(pin);
            geos.push(geo);
            users.push(user);
        }
        let (first, posts) = (pins.first().map_or(0, |p| p.index), pins.len());
        // Each statement's error names its own first index and size.
        let failed = |table: Table, first: Option<i64>, rows: usize| {
            move |source| Error::Insert { table, first: first.unwrap_or_default(), rows, source }
        };
        let transaction = |source| Error::Transaction { first, posts, source };
        with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(transaction)?;
            for part in statements(pins) {
                let fail = failed(Table::Pin, part.first().map(|p| p.index), part.len());
                let mut query = QueryBuilder::new(INSERT_PIN);
                query.push_values(part, |mut row, pin| {
                    row.push_bind(pin.index)
                        .push_bind(pin.unique_id)
                        .push_bind(pin.title)
                        .push_bind(pin.description)
                        .push_bind(pin.poster_name)
                        .push_bind(pin.follower_count)
                        .push_bind(pin.tag_list)
                        .push_bind(pin.is_image_or_video)
                        .push_bind(pin.image_src)
                        .push_bind(pin.downloaded)
                        .push_bind(pin.save_location)
                        .push_bind(pin.category);
                });
                query.build().execute(&mut *tx).await.map_err(fail)?;
            }
            for part in statements(geos) {
                let fail = failed(Table::Geo, part.first().map(|g| g.ind), part.len());
                let mut query = QueryBuilder::new(INSERT_GEO);
                query.push_values(part, |mut row, geo| {
                    row.push_bind(geo.ind)
                        .push_bind(geo.timestamp)
                        .push_bind(geo.latitude)
                        .push_bind(geo.longitude)
                        .push_bind(geo.country);
                });
                query.build().execute(&mut *tx).await.map_err(fail)?;
            }
            for part in statements(users) {
                let fail = failed(Table::User, part.first().map(|u| u.ind), part.len());
                let mut query = QueryBuilder::new(INSERT_USER);
                query.push_values(part, |mut row, user| {
                    row.push_bind(user.ind)
                        .push_bind(user.first_name)
                        .push_bind(user.last_name)
                        .push_bind(user.age)
                        .push_bind(user.date_joined);
                });
                query.build().execute(&mut *tx).await.map_err(fail)?;
            }
            tx.commit().await.map_err(transaction)
        })
    }

    /// Lists the row keys of the three tables in index order, once, so that the emulator can read
    /// "the r-th row" with one keyed lookup per table however sparse the indexes are. Fails with
    /// [`Error::Empty`] when there is nothing to read.
    pub async fn reader(&self) -> Result<Reader, Error> {
        let (pins, geos, users) =
            tokio::try_join!(self.keys(Table::Pin), self.keys(Table::Geo), self.keys(Table::User))?;
        let lengths = [(Table::Pin, pins.len()), (Table::Geo, geos.len()), (Table::User, users.len())];
        let (shortest, rows) = lengths.into_iter().min_by_key(|&(_, n)| n).unwrap_or((Table::Pin, 0));
        if rows == 0 {
            return Err(Error::Empty { table: shortest });
        }
        if lengths.iter().any(|&(_, n)| n != rows) {
            tracing::warn!(
                ?lengths,
                rows,
                "the source tables differ in length; reading only the first {rows} rows of each"
            );
        }
        Ok(Reader { source: self.clone(), pins: pins.into(), geos: geos.into(), users: users.into(), rows })
    }

    fn dialect(&self) -> &'static Dialect {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE,
            Pool::MySql(_) => &MYSQL,
        }
    }

    async fn count(&self, table: Table) -> Result<u64, Error> {
        let count: i64 = with_pool!(self, pool => sqlx::query_scalar(schema::count_sql(table)).fetch_one(pool).await)
            .map_err(|source| Error::Count { table, source })?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn keys(&self, table: Table) -> Result<Vec<i64>, Error> {
        with_pool!(self, pool => sqlx::query_scalar(schema::keys_sql(table)).fetch_all(pool).await)
            .map_err(|source| Error::ListKeys { table, source })
    }

    async fn pin(&self, key: i64) -> Result<Pin, Error> {
        let row = with_pool!(self, pool => {
            let row = sqlx::query(SELECT_PIN).bind(key).fetch_optional(pool).await;
            row.and_then(|row| row.as_ref().map(rows::pin).transpose())
        });
        let row = row.map_err(|source| Error::Read { table: Table::Pin, key, source })?;
        row.ok_or(Error::RowVanished { table: Table::Pin, key })
    }

    async fn geo(&self, key: i64) -> Result<Geo, Error> {
        let sql = self.dialect().select_geo;
        let row = with_pool!(self, pool => {
            let row = sqlx::query(sql).bind(key).fetch_optional(pool).await;
            row.and_then(|row| row.as_ref().map(rows::geo).transpose())
        });
        let row = row.map_err(|source| Error::Read { table: Table::Geo, key, source })?;
        row.ok_or(Error::RowVanished { table: Table::Geo, key })
    }

    async fn user(&self, key: i64) -> Result<User, Error> {
        let sql = self.dialect().select_user;
        let row = with_pool!(self, pool => {
            let row = sqlx::query(sql).bind(key).fetch_optional(pool).await;
            row.and_then(|row| row.as_ref().map(rows::user).transpose())
        });
        let row = row.map_err(|source| Error::Read { table: Table::User, key, source })?;
        row.ok_or(Error::RowVanished { table: Table::User, key })
    }
}

/// Reads rows by position (0-based, in index order), as the emulator samples them. Holds the
/// three key lists (8 bytes per row and table) behind `Arc`s: cloning is cheap.
#[derive(Debug, Clone)]
pub struct Reader {
    source: Source,
    pins: Arc<[i64]>,
    geos: Arc<[i64]>,
    users: Arc<[i64]>,
    rows: usize,
}

impl Reader {
    /// The number of readable positions: the length of the shortest table.
    pub fn rows(&self) -> u64 {
        self.rows as u64
    }

    /// The `r`-th row of each table (a position, not an index value: indexes may be sparse).
    pub async fn post_at(&self, r: u64) -> Result<Post, Error> {
        let position = usize::try_from(r)
            .ok()
            .filter(|&p| p < self.rows)
            .ok_or(Error::PositionOutOfRange { position: r, rows: self.rows() })?;
        let (pin, geo, user) = tokio::try_join!(
            self.source.pin(self.pins[position]),
            self.source.geo(self.geos[position]),
            self.source.user(self.users[position]),
        )?;
        Ok(Post { pin, geo, user })
    }
}

/// Splits rows into groups of [`STATEMENT_ROWS`], one `INSERT` each.
fn statements<T>(rows: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut rows = rows.into_iter();
    std::iter::from_fn(move || {
        let part: Vec<T> = rows.by_ref().take(STATEMENT_ROWS).collect();
        (!part.is_empty()).then_some(part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_their_futures_can_cross_threads() {
        fn shared<T: Send + Sync + Clone>() {}
        fn send<T: Send>(_: &T) {}
        shared::<Source>();
        shared::<Reader>();
        // Type-checked, never run: the emulator and the CLI spawn these futures on a runtime.
        let _check = |source: Source, reader: Reader| {
            send(&source.seed(1, 1, &|_| {}));
            send(&source.reader());
            send(&reader.post_at(0));
        };
    }

    #[test]
    fn statements_split_rows_into_bounded_groups() {
        let sizes: Vec<usize> = statements((0..4_500).collect::<Vec<_>>()).map(|p| p.len()).collect();
        assert_eq!(sizes, [2_000, 2_000, 500]);
        assert_eq!(statements(Vec::<u8>::new()).count(), 0);
    }

    #[test]
    fn pins_serialize_as_the_column_names_in_column_order() {
        let post = generate(1, 1).next().map(|p| p.pin);
        let json = serde_json::to_string(&post).unwrap_or_default();
        let keys = [
            "index",
            "unique_id",
            "title",
            "description",
            "poster_name",
            "follower_count",
            "tag_list",
            "is_image_or_video",
            "image_src",
            "downloaded",
            "save_location",
            "category",
        ];
        let positions: Vec<usize> = keys.iter().filter_map(|k| json.find(&format!("\"{k}\":"))).collect();
        assert_eq!(positions.len(), keys.len(), "{json}");
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    }
}
