//! The memory a Delta log replay takes: pinpipe's table handles (`Lake::delta_table`) decode a
//! bounded number of commit files at once, where deltalake's default engine opens them all.
//!
//! A test binary of its own with one test, because it counts the process's heap with its own
//! global allocator: another test running beside it would be counted too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltalake::arrow::array::{Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{DataType as DeltaType, PrimitiveType, StructField};
use pinpipe::lake::Lake;

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most heap `load` had in use at once beyond what was in use before it.
async fn peak_of<F: Future<Output = deltalake::DeltaTable>>(load: F) -> (usize, deltalake::DeltaTable) {
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let table = load.await;
    (PEAK.load(Ordering::Relaxed) - before, table)
}

/// Commits replayed: twice the stream job's default checkpoint interval, as a table whose
/// checkpoint is behind (or that has none) needs.
const COMMITS: i64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_long_log_decodes_a_bounded_number_of_commit_files_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&format!("file://{}", dir.path().display()).parse().unwrap()).unwrap();
    let url = lake.delta_url("t");
    std::fs::create_dir_all(url.strip_prefix("file://").unwrap()).unwrap();
    let mut table = lake
        .delta_table("t")
        .unwrap()
        .create()
        .with_columns([StructField::new("n", DeltaType::Primitive(PrimitiveType::Long), false)])
        .await
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    for n in 1..=COMMITS {
        let rows = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![n]))]).unwrap();
        let no_checkpoint = CommitProperties::default().with_create_checkpoint(false);
        table = table.write([rows]).with_commit_properties(no_checkpoint).await.unwrap();
    }
    assert_eq!(table.version(), Some(COMMITS as u64));
    assert!(!dir.path().join("delta/t/_delta_log/_last_checkpoint").exists(), "the replay starts at version 0");

    let (unbounded, theirs) =
        peak_of(async { deltalake::open_table(url::Url::parse(&url).unwrap()).await.unwrap() }).await;
    let (bounded, ours) = peak_of(async {
        let mut table = lake.delta_table("t").unwrap();
        table.load().await.unwrap();
        table
    })
    .await;

    // The same table either way.
    assert_eq!(ours.version(), theirs.version());
    let files = |t: &deltalake::DeltaTable| {
        let mut files: Vec<String> = t.get_file_uris().unwrap().collect();
        files.sort();
        files
    };
    assert_eq!(files(&ours), files(&theirs));
    assert_eq!(files(&ours).len(), COMMITS as usize);
    // deltalake's engine reserves a decoder for every commit file at once (0.26 MB each for 99
    // commits, 0.53 MB for 200); the bounded one for at most 16 of them, a quarter of the size.
    let mib = |bytes: usize| bytes as f64 / f64::from(1 << 20);
    eprintln!(
        "log replay of {COMMITS} commits: deltalake's engine {:.1} MiB, pinpipe's {:.1} MiB",
        mib(unbounded),
        mib(bounded)
    );
    assert!(bounded < 12 << 20, "a replay took {:.1} MiB; the bound is 12 MiB", mib(bounded));
    assert!(bounded * 4 < unbounded, "bounded {:.1} MiB, unbounded {:.1} MiB", mib(bounded), mib(unbounded));
}
