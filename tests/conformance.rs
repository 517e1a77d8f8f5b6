//! The event-log conformance suite (SPEC §4, issue #5): the same test functions run on every
//! backend — the embedded log, Kafka (a Tansu broker at `PINPIPE_TEST_KAFKA`, `host:port`) and
//! Kinesis (kinesalite at `PINPIPE_TEST_KINESIS_ENDPOINT`, a URL). A backend whose variable is
//! unset is skipped with a message; one whose variable is set must be reachable, or its tests fail.
//!
//! Each test works on logs of its own (a random suffix), so the suites can share one broker.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use pinpipe::eventlog::{self, Appended, Error, EventLog, Namespace, NewRecord, Record};

/// A backend under test: the log, and whatever must live as long as it (a temp folder).
struct Backend {
    log: Arc<dyn EventLog>,
    _dir: Option<tempfile::TempDir>,
}

async fn embedded() -> Option<Backend> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("embedded://{}", dir.path().join("log").display());
    let log = eventlog::open(&url.parse().unwrap(), Namespace::Topics).await.expect("open the embedded log");
    Some(Backend { log, _dir: Some(dir) })
}

async fn kafka() -> Option<Backend> {
    let Ok(addr) = std::env::var("PINPIPE_TEST_KAFKA") else {
        eprintln!("PINPIPE_TEST_KAFKA is not set: skipping the Kafka conformance test");
        return None;
    };
    let url = format!("kafka://{addr}");
    let log =
        eventlog::open(&url.parse().unwrap(), Namespace::Topics).await.unwrap_or_else(|e| panic!("open {url}: {e:#}"));
    Some(Backend { log, _dir: None })
}

async fn kinesis() -> Option<Backend> {
    let Ok(endpoint) = std::env::var("PINPIPE_TEST_KINESIS_ENDPOINT") else {
        eprintln!("PINPIPE_TEST_KINESIS_ENDPOINT is not set: skipping the Kinesis conformance test");
        return None;
    };
    let url = format!("kinesis://us-east-1?endpoint={endpoint}");
    let log =
        eventlog::open(&url.parse().unwrap(), Namespace::Streams).await.unwrap_or_else(|e| panic!("open {url}: {e:#}"));
    Some(Backend { log, _dir: None })
}

/// A log name no other test uses.
fn fresh_name(what: &str) -> String {
    format!("conformance-{what}-{}", uuid::Uuid::new_v4().simple())
}

/// Every record of `name`, partition by partition, reading in chunks of `chunk` until a read
/// comes back empty.
async fn read_all(log: &dyn EventLog, name: &str, chunk: usize) -> Vec<Record> {
    let info = log.describe(name).await.expect("describe");
    let mut all = Vec::new();
    for p in info.partitions {
        let mut from = p.start;
        loop {
            let batch = log.read(name, p.partition, from, chunk).await.expect("read");
            let Some(last) = batch.last() else { break };
            assert!(batch.len() <= chunk, "read returned {} records, asked for at most {chunk}", batch.len());
            from = last.position.offset + 1;
            all.extend(batch);
        }
    }
    all
}

/// Offsets of one partition start at the partition's first offset and go up by one.
fn assert_contiguous(records: &[Record]) {
    let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in records {
        by_partition.entry(r.position.partition).or_default().push(r.position.offset);
    }
    for (p, offsets) in by_partition {
        let first = offsets[0];
        let expected: Vec<u64> = (first..first + offsets.len() as u64).collect();
        assert_eq!(offsets, expected, "offsets of partition {p} are not contiguous");
    }
}

/// Appended records read back byte for byte, keys included, in the partitions `append` named.
async fn round_trip_is_byte_identical(b: Backend) {
    let log = &*b.log;
    let name = fresh_name("roundtrip");
    log.create(&name, 3, None).await.expect("create");
    let values: Vec<Vec<u8>> = vec![
        br#"{"index":1,"unique_id":"a","title":"Caf\u00e9 ideas","follower_count":"10k"}"#.to_vec(),
        "{\"title\":\"日本語のタイトル 🎨\",\"tag_list\":\"a,b\"}".as_bytes().to_vec(),
        br#"{"empty":"","nested":{"a":[1,2.5,null,true]}}"#.to_vec(),
        b"[]".to_vec(),
        format!("{{\"big\":\"{}\"}}", "x".repeat(200_000)).into_bytes(),
    ];
    let records: Vec<NewRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewRecord { key: Some(format!("key-{i}").into_bytes()), value: v.clone(), partition: None })
        .collect();
    let appended = log.append(&name, records).await.expect("append");
    assert_eq!(appended.len(), values.len());

    let read = read_all(log, &name, 1000).await;
    assert_eq!(read.len(), values.len(), "every appended record reads back once");
    for (i, v) in values.iter().enumerate() {
        let key = format!("key-{i}").into_bytes();
        let r = read.iter().find(|r| r.key.as_deref() == Some(&key[..])).expect("record with its key");
        assert_eq!(&r.value, v, "value {i} reads back byte for byte");
        assert_eq!(r.position.partition, appended[i].partition(), "record {i} is in the partition append named");
        assert!(r.timestamp_ms > 1_600_000_000_000, "timestamp {} is milliseconds since the epoch", r.timestamp_ms);
    }
    assert_contiguous(&read);
}

/// Records with one key all land in one partition, in append order.
async fn one_key_keeps_one_partition_in_order(b: Backend) {
    let log = &*b.log;
    let name = fresh_name("keyed");
    log.create(&name, 4, None).await.expect("create");
    for i in 0..20 {
        let r = NewRecord { key: Some(b"same-key".to_vec()), value: format!("{i}").into_bytes(), partition: None };
        log.append(&name, vec![r]).await.expect("append");
    }
    let read = read_all(log, &name, 7).await;
    let partitions: BTreeSet<u32> = read.iter().map(|r| r.position.partition).collect();
    assert_eq!(partitions.len(), 1, "one key, one partition: {partitions:?}");
    let values: Vec<String> = read.iter().map(|r| String::from_utf8(r.value.clone()).unwrap()).collect();
    assert_eq!(values, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_contiguous(&read);
}

/// An explicit partition is honoured.
async fn explicit_partition_is_honoured(b: Backend) {
    let log = &*b.log;
    let name = fresh_name("explicit");
    log.create(&name, 3, None).await.expect("create");
    let records =
        (0..3u32).map(|p| NewRecord { key: None, value: format!("to-{p}").into_bytes(), partition: Some(p) }).collect();
    let appended = log.append(&name, records).await.expect("append");
    assert_eq!(appended.iter().map(Appended::partition).collect::<Vec<_>>(), [0, 1, 2]);
    for p in 0..3u32 {
        let read = log.read(&name, p, 0, 10).await.expect("read");
        let values: Vec<&[u8]> = read.iter().map(|r| &r.value[..]).collect();
        assert_eq!(values, [format!("to-{p}").as_bytes()]);
    }
    let err = log.append(&name, vec![NewRecord { key: None, value: b"x".to_vec(), partition: Some(3) }]).await;
    assert!(matches!(err, Err(Error::NoSuchPartition { partition: 3, .. })), "{err:?}");
}

/// Many appenders at once: every record is stored exactly once, each appender's records keep
/// their order, and offsets stay contiguous per partition.
async fn concurrent_appenders_lose_nothing(b: Backend) {
    let name = fresh_name("concurrent");
    b.log.create(&name, 2, None).await.expect("create");
    let (appenders, appends, per_append) = (8, 12, 5);
    let mut tasks = Vec::new();
    for a in 0..appenders {
        let log = Arc::clone(&b.log);
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..appends {
                let records = (0..per_append)
                    .map(|i| NewRecord {
                        key: Some(format!("appender-{a}").into_bytes()),
                        value: format!("{a}/{n}/{i}").into_bytes(),
                        partition: None,
                    })
                    .collect();
                let appended = log.append(&name, records).await.expect("append");
                assert_eq!(appended.len(), per_append);
            }
        }));
    }
    for t in tasks {
        t.await.expect("appender task");
    }
    let read = read_all(&*b.log, &name, 100).await;
    assert_eq!(read.len(), appenders * appends * per_append);
    let distinct: BTreeSet<&[u8]> = read.iter().map(|r| &r.value[..]).collect();
    assert_eq!(distinct.len(), read.len(), "no record stored twice");
    assert_contiguous(&read);
    for a in 0..appenders {
        let prefix = format!("{a}/");
        let mine: Vec<String> = read
            .iter()
            .map(|r| String::from_utf8(r.value.clone()).unwrap())
            .filter(|v| v.starts_with(&prefix))
            .collect();
        let expected: Vec<String> =
            (0..appends).flat_map(|n| (0..per_append).map(move |i| format!("{a}/{n}/{i}"))).collect();
        assert_eq!(mine, expected, "appender {a}'s records in its order");
    }
}

/// `read` from any offset returns that offset first; from the end, nothing. On a backend with
/// native positions, a resume hint gives the same records.
async fn read_starts_at_the_given_offset(b: Backend) {
    let log = &*b.log;
    let name = fresh_name("from");
    log.create(&name, 1, None).await.expect("create");
    for chunk in 0..5 {
        let records = (0..10).map(|i| NewRecord::value(format!("r{}", chunk * 10 + i))).collect();
        log.append(&name, records).await.expect("append");
    }
    let all = read_all(log, &name, 1000).await;
    assert_eq!(all.len(), 50);
    let start = all[0].position.offset;
    for k in [0u64, 1, 17, 49] {
        let got = log.read(&name, 0, start + k, 5).await.expect("read");
        let values: Vec<String> = got.iter().map(|r| String::from_utf8(r.value.clone()).unwrap()).collect();
        let expected: Vec<String> = (k..(k + 5).min(50)).map(|i| format!("r{i}")).collect();
        assert_eq!(values, expected, "reading from offset {}", start + k);
        assert_eq!(got[0].position.offset, start + k);
    }
    assert!(log.read(&name, 0, start + 50, 5).await.expect("read at the end").is_empty());

    // A reader that kept the native position of record 29 resumes right after it.
    if let Some(native) = all[29].native.clone() {
        log.resume_hint(&name, 0, start + 30, &native);
        let got = log.read(&name, 0, start + 30, 3).await.expect("read after a hint");
        let values: Vec<String> = got.iter().map(|r| String::from_utf8(r.value.clone()).unwrap()).collect();
        assert_eq!(values, ["r30", "r31", "r32"]);
        assert_eq!(got[0].position.offset, start + 30);
        assert_eq!(got[0].native, all[30].native);
    }
}

/// Create, list, describe, delete, and the errors of each.
async fn admin_round_trip(b: Backend) {
    let log = &*b.log;
    let name = fresh_name("admin");
    let info = log.create(&name, 3, None).await.expect("create");
    assert_eq!(info.name, name);
    assert_eq!(info.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(matches!(log.create(&name, 1, None).await, Err(Error::AlreadyExists { .. })));
    assert!(log.list().await.expect("list").contains(&name));
    let described = log.describe(&name).await.expect("describe");
    assert_eq!(described.partitions.len(), 3);
    assert!(described.partitions.iter().all(|p| p.start <= p.end));

    log.delete(&name).await.expect("delete");
    // Deletion may take a moment to show on a remote service.
    let mut gone = false;
    for _ in 0..50 {
        if !log.list().await.expect("list").contains(&name) {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "{name} still listed after delete");
    assert!(matches!(log.describe(&name).await, Err(Error::NotFound { .. })));
    let missing = fresh_name("missing");
    assert!(matches!(log.append(&missing, vec![NewRecord::value("x")]).await, Err(Error::NotFound { .. })));
    assert!(matches!(log.read(&missing, 0, 0, 1).await, Err(Error::NotFound { .. })));
    assert!(matches!(log.delete(&missing).await, Err(Error::NotFound { .. })));
    assert!(matches!(log.create("bad name", 1, None).await, Err(Error::InvalidName { .. })));
}

async fn run<F, Fut>(backend: Option<Backend>, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(b) = backend {
        test(b).await;
    }
}

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn round_trip_is_byte_identical() {
                run(super::$backend().await, super::round_trip_is_byte_identical).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn one_key_keeps_one_partition_in_order() {
                run(super::$backend().await, super::one_key_keeps_one_partition_in_order).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn explicit_partition_is_honoured() {
                run(super::$backend().await, super::explicit_partition_is_honoured).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_appenders_lose_nothing() {
                run(super::$backend().await, super::concurrent_appenders_lose_nothing).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn read_starts_at_the_given_offset() {
                run(super::$backend().await, super::read_starts_at_the_given_offset).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn admin_round_trip() {
                run(super::$backend().await, super::admin_round_trip).await;
            }
        }
    };
}

conformance!(embedded);
conformance!(kafka);
conformance!(kinesis);
