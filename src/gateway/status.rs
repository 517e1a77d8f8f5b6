//! The live status page: `GET /` (an HTML page with inline style and script) and
//! `GET /status.json` (what the page polls), plus `GET /report.html` (the last batch report).
//!
//! Fed by the gateway's own counters ([`super::metrics`]: records appended per log, requests
//! answered with an error), the two event logs (`describe`: end positions), the lake (where the
//! sink and the stream job stand, [`crate::lag`]) and the results folder (`run.json` of the last batch run, [`crate::report`]). Read by a person's
//! browser. Records per second are computed by the page from two polls of the counters.
//!
//! These routes sit at the root beside `/healthz` and `/metrics` and, like them, need no API key:
//! they only read, and an operator opening the page in a browser cannot send `x-api-key`. Keep
//! the gateway's port private if the counts themselves are sensitive. Nothing on the page is a
//! user's record.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{AppState, reply, to_json};
use crate::eventlog::{EventLog, Namespace};
use crate::lag::{self, LagProbe, PartitionLag};
use crate::lake::Lake;
use crate::observe::ErrorChain;
use crate::report::{self, RunMeta};

/// Where the status page looks besides the logs: given by `pinpipe gateway`.
pub struct Sources {
    /// Pipeline id: maps `streaming-<id>-pin` to the Delta table `<id>_pin_table`.
    pub id: String,
    /// Reads the sink's and the stream job's positions from the lake; `None`: lag not shown.
    pub probe: Option<LagProbe>,
    /// The batch job's results folder (for the last run); `None`: not shown.
    pub results: Option<PathBuf>,
}

impl Sources {
    /// Status sources for pipeline `id`.
    pub fn new(id: impl Into<String>, lake: Option<Lake>, results: Option<PathBuf>) -> Self {
        let id = id.into();
        Sources { probe: lake.map(|lake| LagProbe::new(id.clone(), lake)), id, results }
    }
}

/// `/status.json`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Milliseconds since the Unix epoch when the status was taken (the page's clock for rates).
    pub now_ms: u64,
    /// Pipeline id, when the gateway knows it.
    pub id: Option<String>,
    /// Every topic, then every stream.
    pub logs: Vec<LogStatus>,
    /// Requests answered with an error status since the gateway started, by route family.
    pub rejected_requests: RejectedRequests,
    /// Whether each log takes appends now: `null`, or why it answers 503 (backpressure).
    pub intake: Intake,
    /// The last batch run, if the results folder holds one.
    pub batch: Option<RunMeta>,
    /// Why something could not be read (the rest of the status is still given).
    pub problems: Vec<String>,
}

/// One topic or stream.
#[derive(Debug, Serialize)]
pub struct LogStatus {
    /// `topic` or `stream`.
    pub kind: &'static str,
    pub name: String,
    /// Records appended through this gateway since it started (the page turns it into a rate).
    pub appended: u64,
    /// The log end summed over partitions (the next offset of each).
    pub end: u64,
    /// Who reads it into the lake: `sink` (topics) or `stream job` (streams).
    pub reader: &'static str,
    /// Records in the log that the reader has not written yet, summed over partitions; `None`
    /// when unknown (no lake given, or the Delta table does not exist yet).
    pub lag: Option<u64>,
    pub partitions: Vec<PartitionLag>,
}

/// Whether each log takes appends: `None`, or why not.
#[derive(Debug, Serialize)]
pub struct Intake {
    pub topics: Option<String>,
    pub streams: Option<String>,
}

/// Requests answered with an error, by route family.
#[derive(Debug, Serialize)]
pub struct RejectedRequests {
    pub topics: u64,
    pub streams: u64,
    pub admin: u64,
}

/// `GET /`: the page.
pub async fn page() -> Response {
    reply(StatusCode::OK, "text/html; charset=utf-8", PAGE.as_bytes().to_vec())
}

/// `GET /status.json`.
pub(crate) async fn status_json(State(state): State<AppState>) -> Response {
    let status = collect(&state).await;
    match to_json(&status) {
        Ok(body) => {
            let mut r = reply(StatusCode::OK, "application/json", body);
            r.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the status");
            reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", b"internal error\n".to_vec())
        }
    }
}

/// `GET /report.html`: the last batch report from the results folder, or 404.
pub(crate) async fn report_page(State(state): State<AppState>) -> Response {
    let Some(results) = state.status().and_then(|s| s.results.as_ref()) else {
        return reply(StatusCode::NOT_FOUND, "text/plain", b"this gateway does not know the results folder\n".to_vec());
    };
    match tokio::fs::read(results.join(report::REPORT_FILE)).await {
        Ok(page) => reply(StatusCode::OK, "text/html; charset=utf-8", page),
        Err(_) => reply(StatusCode::NOT_FOUND, "text/plain", b"no batch report yet: run `pinpipe batch`\n".to_vec()),
    }
}

/// Takes the status now; what cannot be read goes to `problems`.
pub async fn collect(state: &AppState) -> Status {
    let sources = state.status();
    let mut problems = Vec::new();
    let mut logs = Vec::new();
    for log in [state.topics(), state.streams()] {
        logs.extend(log_status(state, log.as_ref(), sources, &mut problems).await);
    }
    let batch = match sources.and_then(|s| s.results.as_ref()) {
        Some(results) if results.join(report::RUN_FILE).exists() => match report::read_meta(results) {
            Ok(meta) => Some(meta),
            Err(e) => {
                problems.push(format!("last batch run: {}", ErrorChain(&e)));
                None
            }
        },
        _ => None,
    };
    let m = state.metrics();
    let rejected_requests = RejectedRequests {
        topics: m.rejected(super::metrics::Route::Topics),
        streams: m.rejected(super::metrics::Route::Streams),
        admin: m.rejected(super::metrics::Route::Admin),
    };
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let intake = Intake {
        topics: state.topics().pressure().map(|p| p.to_string()),
        streams: state.streams().pressure().map(|p| p.to_string()),
    };
    Status { now_ms, id: sources.map(|s| s.id.clone()), logs, rejected_requests, intake, batch, problems }
}

async fn log_status(
    state: &AppState,
    log: &dyn EventLog,
    sources: Option<&Sources>,
    problems: &mut Vec<String>,
) -> Vec<LogStatus> {
    let (kind, reader) = match log.namespace() {
        Namespace::Topics => ("topic", "sink"),
        Namespace::Streams => ("stream", "stream job"),
    };
    let lags = lag::logs(log, sources.and_then(|s| s.probe.as_ref()), problems).await;
    lags.into_iter()
        .map(|l| LogStatus {
            kind,
            appended: state.metrics().records(&l.name),
            end: l.end(),
            reader,
            lag: l.lag(),
            name: l.name,
            partitions: l.partitions,
        })
        .collect()
}

/// The page: static HTML; the script fills it from `/status.json` every two seconds, with DOM
/// text nodes only (no HTML is built from data, so nothing needs escaping).
const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>pinpipe status</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 10px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:16px 18px;margin:16px 0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e6e9ed;padding:3px 10px;text-align:left}th{background:#f0f2f5}
td.num{text-align:right}.muted{color:#5b6470}.bad{color:#b00020}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}dt{color:#5b6470}dd{margin:0}
</style></head>
<body data-state="loading"><main>
<h1>pinpipe status <span id="pipeline" class="muted"></span></h1>
<p class="muted">Live from this gateway; updates every 2 s. <span id="updated">Loading…</span></p>
<section><h2>Topics and streams</h2>
<table id="logs"><thead><tr><th>kind</th><th>name</th><th>records/s</th><th>appended here</th>
<th>log end</th><th>written by</th><th>lag</th></tr></thead><tbody></tbody></table></section>
<section><h2>Event log intake</h2><dl id="intake"></dl></section>
<section><h2>Rejected requests</h2><dl id="rejects"></dl></section>
<section><h2>Last batch run</h2><div id="batch" class="muted">none yet</div></section>
<section id="problems-section" hidden><h2>Problems</h2><ul id="problems" class="bad"></ul></section>
</main>
<script>
"use strict";
let previous = null;
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}
function pair(list, name, value) {
  const dt = document.createElement("dt"); dt.textContent = name;
  const dd = document.createElement("dd"); dd.textContent = value;
  list.append(dt, dd);
  return dd;
}
function rate(log, now) {
  if (!previous) return "…";
  const before = previous.appended[log.kind + "/" + log.name];
  const seconds = (now - previous.now_ms) / 1000;
  if (before === undefined || seconds <= 0) return "…";
  return ((log.appended - before) / seconds).toFixed(1);
}
function render(s) {
  document.getElementById("pipeline").textContent = s.id ? "(" + s.id + ")" : "";
  const body = document.querySelector("#logs tbody");
  body.replaceChildren();
  for (const log of s.logs) {
    const row = document.createElement("tr");
    row.dataset.log = log.name;
    cell(row, log.kind);
    cell(row, log.name);
    cell(row, rate(log, s.now_ms), "num").dataset.field = "rate";
    cell(row, String(log.appended), "num").dataset.field = "appended";
    cell(row, String(log.end), "num").dataset.field = "end";
    cell(row, log.reader);
    cell(row, log.lag === null ? "unknown" : String(log.lag), "num").dataset.field = "lag";
    body.appendChild(row);
  }
  const intake = document.getElementById("intake");
  intake.replaceChildren();
  for (const [kind, why] of [["topics", s.intake.topics], ["streams", s.intake.streams]]) {
    const dd = pair(intake, kind, why === null ? "accepting" : "refusing (503): " + why);
    dd.dataset.field = "intake-" + kind;
    if (why !== null) dd.className = "bad";
  }
  const rejects = document.getElementById("rejects");
  rejects.replaceChildren();
  pair(rejects, "topics (Kafka REST)", String(s.rejected_requests.topics)).dataset.field = "rejected-topics";
  pair(rejects, "streams (Kinesis)", String(s.rejected_requests.streams)).dataset.field = "rejected-streams";
  pair(rejects, "admin", String(s.rejected_requests.admin)).dataset.field = "rejected-admin";
  const batch = document.getElementById("batch");
  batch.replaceChildren();
  if (s.batch) {
    const list = document.createElement("dl");
    const b = s.batch;
    let read = 0, rejected = 0, kept = 0;
    for (const t of b.tables) {
      read += t.records; kept += t.kept;
      for (const n of Object.values(t.rejected)) rejected += n;
    }
    pair(list, "finished", b.finished_at).dataset.field = "batch-finished";
    pair(list, "took", b.duration_seconds.toFixed(3) + " s");
    pair(list, "records read", String(read)).dataset.field = "batch-read";
    pair(list, "rejected", String(rejected)).dataset.field = "batch-rejected";
    pair(list, "rows kept", String(kept));
    const link = document.createElement("a");
    link.href = "report.html"; link.textContent = "the report";
    const dd = pair(list, "answers", b.answers.join(", ") + " — ");
    dd.appendChild(link);
    batch.className = "";
    batch.appendChild(list);
  }
  const problems = document.getElementById("problems");
  problems.replaceChildren();
  for (const p of s.problems) {
    const li = document.createElement("li"); li.textContent = p; problems.appendChild(li);
  }
  document.getElementById("problems-section").hidden = s.problems.length === 0;
  const appended = {};
  for (const log of s.logs) appended[log.kind + "/" + log.name] = log.appended;
  previous = { now_ms: s.now_ms, appended };
  document.getElementById("updated").textContent = "Updated " + new Date(s.now_ms).toISOString() + ".";
  document.body.dataset.state = "live";
}
async function poll() {
  try {
    const response = await fetch("status.json", { cache: "no-store" });
    if (!response.ok) throw new Error("status.json answered " + response.status);
    render(await response.json());
  } catch (e) {
    document.getElementById("updated").textContent = "Cannot reach the gateway: " + e.message;
    document.body.dataset.state = "offline";
  }
  setTimeout(poll, 2000);
}
poll();
</script>
</body></html>
"##;
