//! Emulator → gateway → embedded log, end to end: what lands in each topic and stream is exactly
//! the source rows the emulator picked, once each.

mod common;

use std::sync::Arc;

use pinpipe::emulator::{self, EmulatorConfig, Mode, Pace};
use pinpipe::eventlog::EventLog;
use pinpipe::gateway::GatewayConfig;
use pinpipe::source::Source;
use tokio_util::sync::CancellationToken;

const ITERATIONS: u64 = 1000;
const ROWS: u64 = 300;
const SEED: u64 = 7;

async fn run_mode(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let source = Source::connect(&format!("sqlite://{}", dir.path().join("source.db").display()).parse().unwrap())
        .await
        .unwrap();
    source.create_tables().await.unwrap();
    source.seed(ROWS, 42, &|_| {}).await.unwrap();
    let (topics, streams) = common::open_logs(dir.path(), "pinterest").await;
    let (addr, stop) = common::spawn_gateway(GatewayConfig::default(), topics.clone(), streams.clone()).await;

    let reader = source.reader().await.unwrap();
    let cfg = EmulatorConfig {
        api: format!("http://{addr}"),
        api_key: None,
        id: "pinterest".into(),
        mode,
        count: Some(ITERATIONS),
        pace: Pace::Rate(0.0),
        concurrency: 8,
        seed: SEED,
        retry: emulator::Retry::default(),
    };
    let summary = emulator::run(cfg, reader, CancellationToken::new(), Arc::new(|_| {})).await.unwrap();
    assert_eq!(summary, emulator::Summary { iterations: ITERATIONS, sent: 3 * ITERATIONS, failed: 0, retries: 0 });
    stop.cancel();

    // The expected records: for each iteration, the source row at the position the seed picks.
    let reader = source.reader().await.unwrap();
    let mut expected: [Vec<String>; 3] = Default::default();
    for i in 0..ITERATIONS {
        let post = reader.post_at(emulator::position_for(SEED, i, ROWS)).await.unwrap();
        expected[0].push(serde_json::to_string(&post.pin).unwrap());
        expected[1].push(serde_json::to_string(&post.geo).unwrap());
        expected[2].push(serde_json::to_string(&post.user).unwrap());
    }
    let (log, names): (&dyn EventLog, [String; 3]) = match mode {
        Mode::Batch => (&*topics, ["pin", "geo", "user"].map(|t| format!("pinterest.{t}"))),
        Mode::Stream => (&*streams, ["pin", "geo", "user"].map(|t| format!("streaming-pinterest-{t}"))),
    };
    for (name, mut want) in names.iter().zip(expected) {
        let mut got = common::values(&common::read_all(log, name).await);
        assert_eq!(got.len(), ITERATIONS as usize, "{name}");
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}: the records differ from the source rows");
    }
    // The other family got nothing.
    let other: &dyn EventLog = if mode == Mode::Batch { &*streams } else { &*topics };
    for name in other.list().await.unwrap() {
        assert!(common::read_all(other, &name).await.is_empty(), "{name} should be empty");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_mode_lands_each_picked_row_once_in_each_topic() {
    run_mode(Mode::Batch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_lands_each_picked_row_once_in_each_stream() {
    run_mode(Mode::Stream).await;
}
