//! Helpers shared by the integration tests: temporary pipelines, a gateway on a free port, and
//! whole-log reads.
#![allow(dead_code)]

pub mod chromium;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use pinpipe::eventlog::{self, EventLog, Namespace, Record};
use pinpipe::gateway;
use tokio_util::sync::CancellationToken;

/// The embedded topics and streams logs under `dir`, with the six default logs of `id`.
pub async fn open_logs(dir: &Path, id: &str) -> (Arc<dyn EventLog>, Arc<dyn EventLog>) {
    let url = format!("embedded://{}", dir.join("log").display());
    let topics = eventlog::open(&url, Namespace::Topics).await.expect("open topics log");
    let streams = eventlog::open(&url, Namespace::Streams).await.expect("open streams log");
    eventlog::ensure_defaults(&*topics, id).await.expect("default topics");
    eventlog::ensure_defaults(&*streams, id).await.expect("default streams");
    (topics, streams)
}

/// A gateway over `topics`/`streams` on a free loopback port; cancel the token to stop it.
pub async fn spawn_gateway(
    config: gateway::GatewayConfig,
    topics: Arc<dyn EventLog>,
    streams: Arc<dyn EventLog>,
) -> (SocketAddr, CancellationToken) {
    let state = gateway::AppState::new(config, topics, streams).expect("gateway state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let stop = CancellationToken::new();
    tokio::spawn(gateway::serve(listener, state, stop.clone()));
    (addr, stop)
}

/// Every record of every partition of `name`, partition by partition in offset order.
pub async fn read_all(log: &dyn EventLog, name: &str) -> Vec<Record> {
    let info = log.describe(name).await.expect("describe");
    let mut all = Vec::new();
    for p in info.partitions {
        let mut from = p.start;
        loop {
            let batch = log.read(name, p.partition, from, 10_000).await.expect("read");
            let Some(last) = batch.last() else { break };
            from = last.position.offset + 1;
            all.extend(batch);
        }
    }
    all
}

/// The values of `records` as UTF-8 strings.
pub fn values(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8(r.value.clone()).expect("utf-8 value")).collect()
}
