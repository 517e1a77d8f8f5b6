//! The ingest API against hostile and broken clients (SPEC §3): connections that send nothing, a
//! header a byte at a time, or a body too slowly are closed or answered 408; past the connection
//! cap the longest-idle connection makes room, so real clients keep getting answers (also under a
//! small open-file limit, against the real binary); and every malformed request — a body of the
//! wrong form, bytes that are not UTF-8, nesting too deep, an unknown path or method, a bad
//! percent-encoding or `Content-Length` — gets its documented status and whole body, in the
//! route family's shape, and stores nothing.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use pinpipe::eventlog::{self, Namespace};
use pinpipe::gateway::{self, AppState, GatewayConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use common::{GatewayEnv as Env, gateway_env as env_with};

const KAFKA_JSON: &str = "application/vnd.kafka.json.v2+json";
const PIN: &str = "pinterest.pin";
const STREAM_PIN: &str = "streaming-pinterest-pin";

/// A gateway with short timeouts and a small cap, serving on a loopback port.
async fn serve(config: GatewayConfig) -> (Env, SocketAddr, CancellationToken) {
    let e = env_with(config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(gateway::serve(listener, e.state.clone(), stop.clone()));
    (e, addr, stop)
}

fn short_timeouts() -> GatewayConfig {
    GatewayConfig {
        header_read_timeout: Duration::from_millis(1000),
        idle_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        ..Default::default()
    }
}

/// Every record end offset of the six default logs, to show a refused request stored nothing.
async fn ends(e: &Env) -> Vec<u64> {
    let mut out = Vec::new();
    for (log, ns) in [(&e.topics, Namespace::Topics), (&e.streams, Namespace::Streams)] {
        for name in ns.default_names("pinterest") {
            out.extend(log.describe(&name).await.unwrap().partitions.iter().map(|p| p.end));
        }
    }
    out
}

/// Waits until the peer closes `conn` (reading and dropping whatever it sends); the time it took.
async fn time_to_close(conn: &mut TcpStream, started: Instant) -> Duration {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the connection was still open after 10 s"),
        }
    }
}

/// Sends raw bytes on a new connection and reads the whole answer (until the server closes).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await.unwrap().unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status line and the body of a raw answer, the `date` header left out.
fn status_and_body(answer: &str) -> (String, String) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

#[tokio::test]
async fn connections_that_send_nothing_or_go_idle_are_closed_after_the_idle_timeout() {
    let (_e, addr, stop) = serve(short_timeouts()).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let took = time_to_close(&mut silent, started).await;
    assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(1500), "closed after {took:?}");

    // A keep-alive connection: one request answered, then idle.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    let took = time_to_close(&mut conn, answered).await;
    assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(1500), "closed after {took:?}");
    stop.cancel();
}

#[tokio::test]
async fn a_header_sent_a_byte_at_a_time_is_cut_off_at_the_header_read_timeout() {
    let (e, addr, stop) = serve(short_timeouts()).await;
    let started = Instant::now();
    let conn = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = conn.into_split();
    let head = format!("POST /topics/{PIN} HTTP/1.1\r\nHost: x\r\nContent-Type: {KAFKA_JSON}\r\n");
    let drip = tokio::spawn(async move {
        for b in head.bytes() {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut sink)).await;
    let took = started.elapsed();
    assert!(read.is_ok(), "still open after 10 s");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2500), "closed after {took:?}");
    drip.abort();
    let text = e.state.metrics().render();
    assert!(text.contains("pinpipe_gateway_connections_total{event=\"header_timeout\"} 1\n"), "{text}");
    stop.cancel();
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_gets_408_in_the_family_shape_and_stores_nothing() {
    let (e, addr, stop) = serve(short_timeouts()).await;
    let before = ends(&e).await;
    for (path, content_type, expected) in [
        (
            format!("/topics/{PIN}"),
            KAFKA_JSON,
            r#"{"error_code":408,"message":"the request body did not arrive within 500ms"}"#,
        ),
        (
            format!("/streams/{STREAM_PIN}/record"),
            "application/json",
            r#"{"__type":"RequestTimeoutException","message":"the request body did not arrive within 500ms"}"#,
        ),
    ] {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: 100\r\n\r\n{{\"records\""
        );
        let head = if path.starts_with("/streams") { head.replacen("POST", "PUT", 1) } else { head };
        conn.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut answer)).await.unwrap().unwrap();
        let (status, body) = status_and_body(&String::from_utf8_lossy(&answer[..n]));
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 408 Request Timeout", expected));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    assert_eq!(ends(&e).await, before);
    stop.cancel();
}

#[tokio::test]
async fn past_the_connection_cap_the_longest_idle_connection_makes_room() {
    let config = GatewayConfig { max_connections: Some(20), ..Default::default() };
    let (e, addr, stop) = serve(config).await;
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let answer = raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_and_body(&answer), ("HTTP/1.1 200 OK".to_string(), "ok".to_string()));
    let body = r#"{"records":[{"value":{"a":1}}]}"#;
    let produce = format!(
        "POST /topics/{PIN} HTTP/1.1\r\nHost: x\r\nContent-Type: {KAFKA_JSON}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw(addr, produce.as_bytes()).await;
    assert_eq!(status_and_body(&answer).0, "HTTP/1.1 200 OK", "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let text = e.state.metrics().render();
    let shed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pinpipe_gateway_connections_total{event=\"shed\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(shed >= 40, "{text}");
    // The oldest idle connections were the ones closed.
    let mut buf = [0u8; 16];
    let first = tokio::time::timeout(Duration::from_secs(1), idle[0].read(&mut buf)).await.unwrap();
    assert!(matches!(first, Ok(0) | Err(_)), "the oldest idle connection is still open");
    stop.cancel();
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8_lossy(&body).into_owned())
}

fn request(method: Method, uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(body.into()).unwrap()
}

#[tokio::test]
async fn bodies_of_the_wrong_form_bad_utf8_and_deep_nesting_are_refused_in_the_family_shape() {
    let e = env_with(GatewayConfig::default()).await;
    let before = ends(&e).await;
    let topic = format!("/topics/{PIN}");
    let record = format!("/streams/{STREAM_PIN}/record");
    let records = format!("/streams/{STREAM_PIN}/records");
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let just_deep_enough = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let kafka = |code: u16, message: &str| format!(r#"{{"error_code":{code},"message":"{message}"}}"#);
    let kinesis = |kind: &str, message: &str| format!(r#"{{"__type":"{kind}","message":"{message}"}}"#);
    let not_utf8 = "malformed JSON: the request body is not UTF-8";
    // (method, path, content type, body, expected status, expected body)
    type Case<'a> = (Method, &'a str, &'a str, Vec<u8>, StatusCode, String);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            &topic,
            KAFKA_JSON,
            br#"[[[{"a":1}]]]"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            kafka(422, "invalid type: sequence, expected a JSON object at line 1 column 0"),
        ),
        (
            Method::POST,
            &topic,
            KAFKA_JSON,
            br#"{"records":[[{"a":1}]]}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            kafka(422, "invalid type: sequence, expected a JSON object at line 1 column 12"),
        ),
        (
            Method::PUT,
            &record,
            "application/json",
            br#"["s",{"a":1},"k"]"#.to_vec(),
            StatusCode::BAD_REQUEST,
            kinesis("ValidationException", "invalid type: sequence, expected a JSON object at line 1 column 0"),
        ),
        (
            Method::PUT,
            &records,
            "application/json",
            br#"{"records":[[{"a":1},"k"]]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            kinesis("ValidationException", "invalid type: sequence, expected a JSON object at line 1 column 12"),
        ),
        (
            Method::POST,
            &topic,
            KAFKA_JSON,
            b"{\"records\":[{\"value\":1}],\"x\":\"\xff\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            kafka(400, not_utf8),
        ),
        (
            Method::PUT,
            &record,
            "application/json",
            b"{\"Data\":1,\"PartitionKey\":\"k\",\"x\":\"\xff\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            kinesis("SerializationException", not_utf8),
        ),
        (
            Method::POST,
            "/streams/new-stream",
            "application/json",
            b"{\"ShardCount\":1,\"x\":\"\xfe\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            kinesis("SerializationException", not_utf8),
        ),
        (
            Method::POST,
            &topic,
            KAFKA_JSON,
            format!(r#"{{"records":[{{"value":1}},{{"value":{deep}}}]}}"#).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            kafka(422, "record 1 is nested 100000 levels deep, more than the limit of 100"),
        ),
        (
            Method::POST,
            &topic,
            KAFKA_JSON,
            format!(r#"{{"records":[{{"key":{deep},"value":1}}]}}"#).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            kafka(422, "record 0 is nested 100000 levels deep, more than the limit of 100"),
        ),
        (
            Method::PUT,
            &record,
            "application/json",
            format!(r#"{{"Data":{deep},"PartitionKey":"k"}}"#).into_bytes(),
            StatusCode::BAD_REQUEST,
            kinesis("ValidationException", "record 0 is nested 100000 levels deep, more than the limit of 100"),
        ),
    ];
    for (method, uri, content_type, body, status, expected) in cases {
        let (s, _, b) = call(&e.app, request(method.clone(), uri, Some(content_type), body)).await;
        assert_eq!((s, b.as_str()), (status, expected.as_str()), "{method} {uri}");
    }
    assert_eq!(ends(&e).await, before);
    assert!(e.streams.describe("new-stream").await.is_err());
    // 100 levels is still a value the jobs can read: accepted.
    let body = format!(r#"{{"records":[{{"value":{just_deep_enough}}}]}}"#);
    assert_eq!(call(&e.app, request(Method::POST, &topic, Some(KAFKA_JSON), body)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn unknown_paths_methods_and_bad_percent_encoding_answer_in_the_family_shape() {
    let e = env_with(GatewayConfig { base_path: Some("/dev".into()), ..Default::default() }).await;
    let kafka_404 = r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#;
    let kafka_405 = r#"{"error_code":405,"message":"HTTP 405 Method Not Allowed"}"#;
    let kafka = "application/vnd.kafka.v2+json";
    let json = "application/json";
    let cases = [
        (Method::GET, "/dev/topics/a/b", StatusCode::NOT_FOUND, kafka, kafka_404.to_string()),
        (Method::DELETE, "/dev/topics/pinterest.pin", StatusCode::METHOD_NOT_ALLOWED, kafka, kafka_405.to_string()),
        (Method::PUT, "/dev/topics", StatusCode::METHOD_NOT_ALLOWED, kafka, kafka_405.to_string()),
        (
            Method::GET,
            "/dev/streams/s/record",
            StatusCode::METHOD_NOT_ALLOWED,
            json,
            r#"{"__type":"UnknownOperationException","message":"GET is not allowed on /dev/streams/s/record"}"#.into(),
        ),
        (
            Method::GET,
            "/dev/streams/a/b/c",
            StatusCode::NOT_FOUND,
            json,
            r#"{"__type":"UnknownOperationException","message":"no route for /dev/streams/a/b/c"}"#.into(),
        ),
        (
            Method::POST,
            "/dev/topics/%FF",
            StatusCode::BAD_REQUEST,
            kafka,
            r#"{"error_code":400,"message":"invalid path: Invalid URL: Invalid UTF-8 in `topic`"}"#.into(),
        ),
        (Method::GET, "/nope", StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "no route for /nope\n".into()),
        (Method::GET, "/topics", StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "no route for /topics\n".into()),
    ];
    for (method, uri, status, ct, body) in cases {
        let req = request(method.clone(), uri, Some(KAFKA_JSON), Body::from("{}"));
        assert_eq!(call(&e.app, req).await, (status, ct.to_string(), body), "{method} {uri}");
    }
}

#[tokio::test]
async fn requests_that_are_not_valid_http_get_the_family_shape_too() {
    let (e, addr, stop) = serve(GatewayConfig::default()).await;
    let before = ends(&e).await;
    let bad_length = |path: &str, ct: &str, method: &str| {
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: abc\r\n\r\n{{}}")
    };
    let answer = raw(addr, bad_length(&format!("/topics/{PIN}"), KAFKA_JSON, "POST").as_bytes()).await;
    assert_eq!(
        status_and_body(&answer),
        (
            "HTTP/1.1 400 Bad Request".to_string(),
            r#"{"error_code":400,"message":"HTTP 400 Bad Request: the request is not valid HTTP/1.1"}"#.to_string()
        ),
        "{answer}"
    );
    assert!(answer.contains("content-type: application/vnd.kafka.v2+json\r\n"), "{answer}");
    let answer =
        raw(addr, bad_length(&format!("/streams/{STREAM_PIN}/record"), "application/json", "PUT").as_bytes()).await;
    assert_eq!(
        status_and_body(&answer),
        (
            "HTTP/1.1 400 Bad Request".to_string(),
            r#"{"__type":"SerializationException","message":"the request is not valid HTTP/1.1"}"#.to_string()
        ),
        "{answer}"
    );
    let answer = raw(
        addr,
        b"POST /topics/pinterest.pin HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    )
    .await;
    assert_eq!(status_and_body(&answer).0, "HTTP/1.1 400 Bad Request", "{answer}");
    assert!(answer.contains("\"error_code\":400"), "{answer}");
    // Off the API routes hyper's own answer stands.
    let answer = raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n").await;
    assert_eq!(status_and_body(&answer), ("HTTP/1.1 400 Bad Request".to_string(), String::new()), "{answer}");
    assert_eq!(ends(&e).await, before);
    // The server still serves.
    let answer = raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_and_body(&answer).1, "ok");
    stop.cancel();
}

/// The real binary under a small open-file limit: 300 idle and 5 slowloris connections do not
/// keep a health check and a produce from their answers.
#[test]
fn under_a_small_file_limit_idle_and_slow_connections_cannot_lock_clients_out() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut gateway = spawn_limited(dir.path(), &listen, 256);
    let addr: SocketAddr = listen.parse().unwrap();
    wait_for_health(addr, &mut gateway);

    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(std::net::TcpStream::connect(addr).unwrap());
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut drips = Vec::new();
    for _ in 0..5 {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        let stop = Arc::clone(&stop);
        drips.push(std::thread::spawn(move || {
            use std::io::Write;
            let head = b"POST /topics/pinterest.pin HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            for b in head.iter().cycle() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || conn.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));

    let started = Instant::now();
    let health = blocking_request(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let health_took = started.elapsed();
    let body = r#"{"records":[{"value":{"index":1}}]}"#;
    let produce = format!(
        "POST /topics/{PIN} HTTP/1.1\r\nHost: x\r\nContent-Type: {KAFKA_JSON}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    let produced = blocking_request(addr, &produce);
    let produce_took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    assert_eq!(status_and_body(&health), ("HTTP/1.1 200 OK".into(), "ok".into()), "{health}");
    assert_eq!(
        status_and_body(&produced),
        (
            "HTTP/1.1 200 OK".into(),
            r#"{"offsets":[{"partition":0,"offset":0,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#.into()
        ),
        "{produced}"
    );
    assert!(health_took < Duration::from_secs(2), "/healthz took {health_took:?}");
    assert!(produce_took < Duration::from_secs(2), "the produce took {produce_took:?}");
    assert!(gateway.try_wait().unwrap().is_none(), "the gateway exited");
    drop(held);
    for d in drips {
        d.join().unwrap();
    }
    let _ = gateway.kill();
    let output = gateway.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `pinpipe gateway` with its open-file limit (soft and hard) set to `files`.
fn spawn_limited(data: &Path, listen: &str, files: u32) -> Child {
    let bin = env!("CARGO_BIN_EXE_pinpipe");
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
        .arg(bin)
        .args(["gateway", "--listen", listen, "--data"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for_health(addr: SocketAddr, gateway: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut conn) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if conn.read_to_string(&mut answer).is_ok() && answer.ends_with("ok") {
                return;
            }
        }
        assert!(gateway.try_wait().unwrap().is_none(), "the gateway exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the gateway did not come up");
}

fn blocking_request(addr: SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(15)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn settings_the_gateway_cannot_honour_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("embedded://{}", dir.path().display());
    let topics = eventlog::open(&url.parse().unwrap(), Namespace::Topics).await.unwrap();
    let streams = eventlog::open(&url.parse().unwrap(), Namespace::Streams).await.unwrap();
    let config = GatewayConfig {
        header_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let e = AppState::new(config, topics, streams).err().unwrap().to_string();
    assert!(e.contains("idle timeout") && e.contains("header-read timeout"), "{e}");
}
