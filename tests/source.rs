//! The source database capability (SPEC §1): the generated data looks like the real data set, and
//! seeding then reading by position gives back exactly the generated rows, on SQLite always and on
//! MariaDB/MySQL when `PINPIPE_TEST_MYSQL_URL` is set (e.g. `mysql://root@127.0.0.1:3306/test`).
//!
//! The backend tests are written once as `async fn(Source)` bodies and run against each backend.
//! MySQL tests get a fresh database each (`pinpipe_test_<uuid>`, dropped afterwards), because the
//! table names are fixed. When the variable is set, an unreachable server fails the tests.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;

use futures::FutureExt;
use pinpipe::settings::SourceUrl;
use pinpipe::source::{self, COUNTRIES, Error, Generator, Post, Source, data, generate};
use sqlx::AssertSqlSafe;

const ROWS: u64 = source::DEFAULT_ROWS;

fn percent(posts: &[Post], predicate: impl Fn(&Post) -> bool) -> f64 {
    100.0 * posts.iter().filter(|p| predicate(p)).count() as f64 / posts.len() as f64
}

fn text(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or_default()
}

#[track_caller]
fn assert_share(what: &str, actual: f64, expected: f64) {
    assert!((actual - expected).abs() <= 2.0, "{what}: {actual:.2}% of rows, expected {expected}% ± 2");
}

#[test]
fn generated_rows_match_the_real_data_shares() {
    for seed in [42, 7] {
        let posts: Vec<Post> = generate(ROWS, seed).collect();
        assert_eq!(posts.len(), ROWS as usize);
        let pin = |f: fn(&source::Pin) -> bool| percent(&posts, |p| f(&p.pin));

        for category in &data::CATEGORIES {
            assert_share(category.name, percent(&posts, |p| text(&p.pin.category) == category.name), 100.0 / 13.0);
        }
        let followers = |p: &source::Pin| text(&p.follower_count).to_owned();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        assert_share(
            "follower_count <n>k",
            pin(|p| {
                text(&p.follower_count)
                    .strip_suffix('k')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            }),
            74.0,
        );
        assert_share(
            "follower_count digits",
            pin(|p| {
                let s = text(&p.follower_count);
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
            }),
            18.0,
        );
        assert_share(
            "follower_count <n>M",
            pin(|p| {
                text(&p.follower_count)
                    .strip_suffix('M')
                    .is_some_and(|n| n.parse::<u32>().is_ok_and(|m| (1..=15).contains(&m)))
            }),
            7.5,
        );
        assert_share("follower_count User Info Error", pin(|p| text(&p.follower_count) == data::USER_INFO_ERROR), 0.7);
        assert!(posts.iter().any(|p| followers(&p.pin) == "0"), "some follower counts are \"0\"");
        assert!(posts.iter().all(|p| {
            let f = followers(&p.pin);
            digits(&f) || digits(f.trim_end_matches(['k', 'M'])) || f == data::USER_INFO_ERROR
        }));

        assert_share("title placeholder", pin(|p| text(&p.title) == data::NO_TITLE), 0.5);
        assert!(pin(|p| text(&p.title).is_empty()) < 0.5, "empty titles are rare");
        assert_share("story description", pin(|p| text(&p.description) == data::NO_DESCRIPTION_STORY), 7.0);
        assert_share("no description", pin(|p| text(&p.description) == data::NO_DESCRIPTION), 0.5);
        assert_share("untitled description", pin(|p| text(&p.description) == data::UNTITLED), 0.3);
        assert_share("truncated description", pin(|p| text(&p.description).ends_with("…\u{a0}")), 20.0);
        assert_share("poster User Info Error", pin(|p| text(&p.poster_name) == data::USER_INFO_ERROR), 0.7);
        assert_share("poster trailing space", pin(|p| text(&p.poster_name).ends_with(' ')), 3.0);
        assert_share("no tags", pin(|p| text(&p.tag_list) == data::NO_TAGS), 1.5);
        assert_share("image src error", pin(|p| text(&p.image_src) == data::IMAGE_SRC_ERROR), 2.4);
        assert_share("image", pin(|p| text(&p.is_image_or_video) == data::MEDIA_IMAGE), 90.0);
        assert_share("story", pin(|p| text(&p.is_image_or_video) == data::MEDIA_STORY), 7.0);
        assert_share("video", pin(|p| text(&p.is_image_or_video) == data::MEDIA_VIDEO), 3.0);

        for Post { pin, .. } in &posts {
            let story = text(&pin.is_image_or_video) == data::MEDIA_STORY;
            assert_eq!(story, text(&pin.description) == data::NO_DESCRIPTION_STORY, "{pin:?}");
            let unknown_poster = text(&pin.poster_name) == data::USER_INFO_ERROR;
            assert_eq!(unknown_poster, text(&pin.follower_count) == data::USER_INFO_ERROR, "{pin:?}");
            let image_error = text(&pin.image_src) == data::IMAGE_SRC_ERROR;
            assert_eq!(pin.downloaded, Some(if image_error { 0 } else { 1 }), "{pin:?}");
            if !image_error {
                let name = text(&pin.image_src).strip_prefix("https://i.pinimg.com/originals/").unwrap_or_default();
                let hex = name.rsplit('/').next().and_then(|f| f.strip_suffix(".jpg")).unwrap_or_default();
                assert!(hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{pin:?}");
                assert!(name.starts_with(&format!("{}/{}/{}/", &hex[0..2], &hex[2..4], &hex[4..6])), "{pin:?}");
            }
            assert_eq!(text(&pin.save_location), format!("Local save in /data/{}", text(&pin.category)));
            let id = uuid::Uuid::parse_str(text(&pin.unique_id)).expect("unique_id is a uuid");
            assert_eq!(id.get_version_num(), 4);
            assert!(text(&pin.tag_list).split(',').count() >= 3, "{pin:?}");
        }
    }
}

#[test]
fn generated_rows_stay_in_the_real_data_ranges() {
    let posts: Vec<Post> = generate(ROWS, 42).collect();
    let categories: BTreeSet<&str> = posts.iter().map(|p| text(&p.pin.category)).collect();
    assert_eq!(categories.len(), 13);

    let mut ages: HashMap<i64, usize> = HashMap::new();
    for post in &posts {
        *ages.entry(post.user.age.expect("generated ages are set")).or_default() += 1;
    }
    assert!(ages.keys().all(|age| (20..=60).contains(age)), "{ages:?}");
    let most_common = ages.iter().max_by_key(|&(age, n)| (n, -age)).map(|(age, _)| *age);
    assert_eq!(most_common, Some(20), "{ages:?}");

    for (i, Post { pin, geo, user }) in posts.iter().enumerate() {
        assert_eq!((pin.index, geo.ind, user.ind), (i as i64, i as i64, i as i64));
        let timestamp = text(&geo.timestamp);
        assert!(("2017-10-01 00:00:00"..="2022-10-31 23:59:59").contains(&timestamp), "{geo:?}");
        assert!(chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%d %H:%M:%S").is_ok(), "{geo:?}");
        let joined = text(&user.date_joined);
        assert!(("2015-10-01 00:00:00"..="2017-10-31 23:59:59").contains(&joined), "{user:?}");
        assert!(chrono::NaiveDateTime::parse_from_str(joined, "%Y-%m-%d %H:%M:%S").is_ok(), "{user:?}");
        assert!((-90.0..=90.0).contains(&geo.latitude) && (-180.0..=180.0).contains(&geo.longitude), "{geo:?}");
        for coordinate in [geo.latitude, geo.longitude] {
            let decimals = coordinate.to_string().split_once('.').map_or(0, |(_, d)| d.len());
            assert!(decimals <= 4, "about 6 significant digits: {geo:?}");
        }
        assert!(COUNTRIES.contains(&text(&geo.country)), "{geo:?}");
        assert!(user.first_name.is_some() && user.last_name.is_some());
    }

    let distinct: BTreeSet<&str> = COUNTRIES.iter().copied().collect();
    assert_eq!(distinct.len(), 243);
    assert!(distinct.contains("Antarctica (the territory South of 60 deg S)") && distinct.contains("Cote d'Ivoire"));
    let mut by_country: HashMap<&str, usize> = HashMap::new();
    for post in &posts {
        *by_country.entry(text(&post.geo.country)).or_default() += 1;
    }
    let top = by_country.values().max().copied().unwrap_or_default();
    assert!(top as f64 > 0.03 * ROWS as f64, "skewed: the top country has {top} rows");
    assert!(by_country.len() > 200, "most countries appear: {}", by_country.len());
}

#[test]
fn generated_users_repeat_across_indexes() {
    let posts: Vec<Post> = generate(ROWS, 42).collect();
    let mut people: HashMap<(&str, &str, &str), Vec<&source::User>> = HashMap::new();
    for Post { user, .. } in &posts {
        let key = (text(&user.first_name), text(&user.last_name), text(&user.date_joined));
        people.entry(key).or_default().push(user);
    }
    assert!(people.len() < posts.len() / 2, "{} distinct users in {} rows", people.len(), posts.len());
    assert!(people.values().any(|rows| rows.len() >= 5));
    for rows in people.values() {
        assert!(rows.iter().all(|u| u.age == rows[0].age), "one person, one age: {rows:?}");
    }
}

#[test]
fn same_seed_gives_identical_rows_and_another_seed_other_rows() {
    let first: Vec<Post> = generate(2_000, 42).collect();
    assert_eq!(first, generate(2_000, 42).collect::<Vec<_>>());
    let other: Vec<Post> = generate(2_000, 43).collect();
    assert_eq!(first.len(), other.len());
    assert!(first.iter().zip(&other).all(|(a, b)| a.pin.unique_id != b.pin.unique_id));
}

#[test]
fn generated_rows_do_not_depend_on_how_they_are_chunked() {
    let all: Vec<Post> = generate(3_000, 5).collect();
    let generator = Generator::new(3_000, 5);
    let backwards: Vec<Post> = (0..3_000).rev().map(|i| generator.post(i)).collect();
    assert!(all.iter().eq(backwards.iter().rev()));
}

#[test]
fn posts_serialize_to_the_emulator_wire_format() {
    let post = Generator::new(10, 1).post(7);
    let json = |v: serde_json::Result<String>| v.expect("posts serialize");
    let pin = json(serde_json::to_string(&post.pin));
    assert!(pin.starts_with("{\"index\":7,\"unique_id\":\"") && pin.contains("\"category\":\""), "{pin}");
    let geo = json(serde_json::to_string(&post.geo));
    assert!(geo.starts_with("{\"ind\":7,\"timestamp\":\"20") && geo.contains(",\"latitude\":"), "{geo}");
    let user = json(serde_json::to_string(&post.user));
    assert!(user.starts_with("{\"ind\":7,\"first_name\":\"") && user.contains(",\"date_joined\":\"201"), "{user}");
    let null_time = source::Geo { timestamp: None, ..post.geo };
    assert!(json(serde_json::to_string(&null_time)).contains("\"timestamp\":null"));
}

// ---- one suite, every backend ----

async fn seeded_rows_read_back_exactly_as_generated(source: Source) {
    let calls = Mutex::new(Vec::new());
    let record = |done: u64| calls.lock().expect("progress lock").push(done);
    source.seed(500, 11, &record).await.expect("seed");
    assert_eq!(calls.lock().expect("progress lock").last(), Some(&500));
    assert_eq!(source.row_count().await.expect("row_count"), 500);

    let expected: Vec<Post> = generate(500, 11).collect();
    let reader = source.reader().await.expect("reader");
    assert_eq!(reader.rows(), 500);
    for r in [0, 1, 2, 137, 250, 498, 499] {
        assert_eq!(reader.post_at(r).await.expect("post_at"), expected[r as usize], "row {r}");
    }
    assert!(matches!(reader.post_at(500).await, Err(Error::PositionOutOfRange { position: 500, rows: 500 })));
}

async fn positions_skip_over_sparse_indexes(source: Source) {
    source.create_tables().await.expect("create_tables");
    let generator = Generator::new(10, 3);
    source.insert([9, 0, 5].map(|i| generator.post(i)).to_vec()).await.expect("insert");
    let reader = source.reader().await.expect("reader");
    assert_eq!(reader.rows(), 3);
    let indexes = [reader.post_at(0).await, reader.post_at(1).await, reader.post_at(2).await]
        .map(|post| post.expect("post_at").pin.index);
    assert_eq!(indexes, [0, 5, 9]);
    assert_eq!(reader.post_at(1).await.expect("post_at"), generator.post(5));
}

async fn seed_refuses_tables_that_already_hold_rows(source: Source) {
    source.seed(20, 1, &|_| {}).await.expect("first seed");
    let again = source.seed(20, 1, &|_| {}).await;
    assert!(matches!(again, Err(Error::NotEmpty { rows: 20, .. })), "{again:?}");
    assert_eq!(source.row_count().await.expect("row_count"), 20);
}

async fn reader_reports_empty_tables(source: Source) {
    source.create_tables().await.expect("create_tables");
    source.create_tables().await.expect("create_tables is idempotent");
    assert_eq!(source.row_count().await.expect("row_count"), 0);
    assert!(matches!(source.reader().await, Err(Error::Empty { .. })));
}

// ---- SQLite ----

async fn sqlite() -> (tempfile::TempDir, Source) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/nested/folder/source.db", dir.path().display());
    let source = Source::connect(&url.parse().unwrap()).await.expect("connect creates the file and its folders");
    (dir, source)
}

#[tokio::test]
async fn sqlite_seeded_rows_read_back_exactly_as_generated() {
    let (_dir, source) = sqlite().await;
    seeded_rows_read_back_exactly_as_generated(source).await;
}

#[tokio::test]
async fn sqlite_positions_skip_over_sparse_indexes() {
    let (_dir, source) = sqlite().await;
    positions_skip_over_sparse_indexes(source).await;
}

#[tokio::test]
async fn sqlite_seed_refuses_tables_that_already_hold_rows() {
    let (_dir, source) = sqlite().await;
    seed_refuses_tables_that_already_hold_rows(source).await;
}

#[tokio::test]
async fn sqlite_reader_reports_empty_tables() {
    let (_dir, source) = sqlite().await;
    reader_reports_empty_tables(source).await;
}

#[tokio::test]
async fn sqlite_file_holds_datetimes_as_text_and_coordinates_as_real() {
    let (dir, source) = sqlite().await;
    source.seed(50, 2, &|_| {}).await.expect("seed");
    drop(source);
    let file = rusqlite::Connection::open(dir.path().join("nested/folder/source.db")).expect("open with rusqlite");
    let expected = Generator::new(50, 2).post(3);
    let row: (String, String, String, f64, String, String) = file
        .query_row(
            "SELECT typeof(g.`timestamp`), g.`timestamp`, typeof(g.latitude), g.latitude, u.date_joined, p.title \
             FROM geolocation_data g JOIN user_data u ON u.ind = g.ind JOIN pinterest_data p ON p.`index` = g.ind \
             WHERE g.ind = 3",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .expect("query the file");
    assert_eq!(row.0, "text");
    assert_eq!(Some(row.1), expected.geo.timestamp);
    assert_eq!((row.2.as_str(), row.3), ("real", expected.geo.latitude));
    assert_eq!(Some(row.4), expected.user.date_joined);
    assert_eq!(Some(row.5), expected.pin.title);
}

#[test]
fn other_schemes_are_refused_without_showing_the_password() {
    let err = "postgres://me:hunter2@db/pins".parse::<SourceUrl>().expect_err("postgres is not a source");
    assert_eq!(
        err.to_string(),
        "`postgres://me:***@db/pins` is not a supported source (expected sqlite://FILE or mysql://user:pass@host:port/db)"
    );
}

#[tokio::test]
async fn connect_failures_do_not_show_the_password() {
    let err = Source::connect(&"mysql://me:hunter2@127.0.0.1:1/pins".parse().unwrap())
        .await
        .expect_err("nothing listens on port 1");
    let mut chain = err.to_string();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&err);
    while let Some(e) = cause {
        chain.push_str(&format!(": {e}"));
        cause = e.source();
    }
    assert!(matches!(err, Error::Connect { .. }), "{chain}");
    assert!(!chain.contains("hunter2"), "{chain}");
}

// ---- MariaDB / MySQL ----

/// A fresh database on the server named by `PINPIPE_TEST_MYSQL_URL`, dropped after `test` runs
/// (even when it panics). Prints a note and returns when the variable is unset.
async fn on_mysql<F, Fut>(test: F)
where
    F: FnOnce(Source, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(base) = std::env::var("PINPIPE_TEST_MYSQL_URL") else {
        eprintln!("skipped: set PINPIPE_TEST_MYSQL_URL (e.g. mysql://root@127.0.0.1:3306/test) to run the MySQL tests");
        return;
    };
    let admin = sqlx::MySqlPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PINPIPE_TEST_MYSQL_URL is set but the server cannot be reached: {e}"));
    let name = format!("pinpipe_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create database");
    let mut url = url::Url::parse(&base).expect("PINPIPE_TEST_MYSQL_URL is a URL");
    url.set_path(&name);
    let outcome = AssertUnwindSafe(async {
        let source = Source::connect(&url.as_str().parse().unwrap()).await.expect("connect to the test database");
        test(source, url.to_string()).await;
    })
    .catch_unwind()
    .await;
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&admin).await.expect("drop database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn mysql_seeded_rows_read_back_exactly_as_generated() {
    on_mysql(|source, url| async move {
        seeded_rows_read_back_exactly_as_generated(source).await;
        let raw = sqlx::MySqlPool::connect(&url).await.expect("connect");
        let types: Vec<(String, String)> = sqlx::query_as(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME IN ('timestamp', 'date_joined', 'latitude') \
             ORDER BY COLUMN_NAME",
        )
        .fetch_all(&raw)
        .await
        .expect("column types");
        let types: Vec<(&str, &str)> = types.iter().map(|(c, t)| (c.as_str(), t.as_str())).collect();
        assert_eq!(types, [("date_joined", "datetime"), ("latitude", "double"), ("timestamp", "datetime")]);
    })
    .await;
}

#[tokio::test]
async fn mysql_positions_skip_over_sparse_indexes() {
    on_mysql(|source, _| positions_skip_over_sparse_indexes(source)).await;
}

#[tokio::test]
async fn mysql_seed_refuses_tables_that_already_hold_rows() {
    on_mysql(|source, _| seed_refuses_tables_that_already_hold_rows(source)).await;
}

#[tokio::test]
async fn mysql_reader_reports_empty_tables() {
    on_mysql(|source, _| reader_reports_empty_tables(source)).await;
}

/// The original RDS schema declared `latitude`/`longitude` FLOAT: they must arrive as the values
/// MySQL prints, and NULL datetimes as `null`.
#[tokio::test]
async fn mysql_float_coordinates_and_null_datetimes_read_as_the_server_shows_them() {
    on_mysql(|source, url| async move {
        let raw = sqlx::MySqlPool::connect(&url).await.expect("connect");
        sqlx::query(
            "CREATE TABLE geolocation_data (ind INT PRIMARY KEY, `timestamp` DATETIME, latitude FLOAT, \
             longitude FLOAT, country TEXT) DEFAULT CHARSET=utf8mb4",
        )
        .execute(&raw)
        .await
        .expect("create the original FLOAT table");
        source.create_tables().await.expect("create the other tables, keep the FLOAT one");
        let mut post = Generator::new(10, 1).post(7);
        (post.geo.latitude, post.geo.longitude) = (-45.8508, 153.8231);
        post.user.date_joined = None;
        source.insert(vec![post.clone()]).await.expect("insert");
        let read = source.reader().await.expect("reader").post_at(0).await.expect("post_at");
        assert_eq!(read, post);
    })
    .await;
}

/// The seeding speed check: `cargo test --test source -- --ignored --nocapture`. Ignored by default
/// because it writes a million rows (about 500 MB) and takes tens of seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes a million rows; run on demand to measure seeding speed"]
async fn sqlite_seeds_a_million_rows_within_a_minute() {
    let (_dir, source) = sqlite().await;
    let started = std::time::Instant::now();
    source.seed(1_000_000, 42, &|_| {}).await.expect("seed");
    let elapsed = started.elapsed();
    eprintln!("seeded 1,000,000 rows into SQLite in {elapsed:.1?}");
    assert_eq!(source.row_count().await.expect("row_count"), 1_000_000);
    assert!(elapsed < std::time::Duration::from_secs(60), "{elapsed:?}");
}
