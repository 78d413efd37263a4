//! Security: timeouts and the connection cap (issue 13, item 5). Before,
//! a connection holding half its headers for 45 s was still served, a body
//! could trickle forever and connections were unbounded. Raw TCP clients
//! on loopback against both services, as an attacker would hold them.

use std::time::{Duration, Instant};

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use myloware_testkit::system::{API_KEY, System, start};

fn addr(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// Reads until the server closes the connection (end of stream or a
/// reset) and returns what it sent; `Err` with what it sent if it is
/// still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(0) | Err(_)) => return Ok(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends a whole `GET /health` and reads one response: headers and the
/// JSON body (the services answer `/health` with a content length).
async fn health_on(stream: &mut TcpStream, close: bool) -> String {
    let connection = if close { "Connection: close\r\n" } else { "" };
    stream
        .write_all(format!("GET /health HTTP/1.1\r\nHost: localhost\r\n{connection}\r\n").as_bytes())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !received.ends_with(b"}") {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("no /health answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

async fn healthy(base: &str) {
    let health: Value = reqwest::get(format!("{base}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{base}");
}

/// Slowloris: half a request head is cut off after HTTP_HEADER_TIMEOUT_SECS
/// while other clients are served; a kept-alive connection left idle is
/// closed after the same time.
async fn half_a_request_head_is_cut_off_after_the_header_timeout(db: &Db) {
    let system = start(db, &[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    for base in [&system.api, &system.orchestrator] {
        let mut slow = TcpStream::connect(addr(base)).await.unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        let started = Instant::now();
        healthy(base).await;
        let answer = closed_within(&mut slow, Duration::from_secs(5))
            .await
            .unwrap_or_else(|sent| panic!("{base}: half a request head still open after 5 s (sent {sent:?})"));
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "{base}: closed at once, not by the timeout"
        );
        assert!(
            !answer.contains("200 OK"),
            "{base}: half a request was served: {answer}"
        );

        let mut idle = TcpStream::connect(addr(base)).await.unwrap();
        let answer = health_on(&mut idle, false).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{base}: {answer}");
        closed_within(&mut idle, Duration::from_secs(5))
            .await
            .unwrap_or_else(|_| panic!("{base}: an idle kept-alive connection still open after 5 s"));
    }
    system.stop_idle().await;
}

/// A body trickled a byte at a time is answered 408 in JSON once
/// HTTP_BODY_TIMEOUT_SECS has passed since its headers (one deadline, not
/// per chunk), the connection is closed and no run is created.
async fn a_trickled_body_is_cut_off_with_a_json_408(db: &Db) {
    let system = start(db, &[("HTTP_BODY_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(addr(&system.api)).await.unwrap();
    let head = format!(
        "POST /v1/runs/start HTTP/1.1\r\nHost: localhost\r\nx-api-key: {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The attacker's pace: a byte every 200 ms, well inside any per-chunk timeout.
    let trickle = tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(200));
        for byte in b"{\"project\":\"aismr\",\"prompt\":\"".iter().cycle().take(150) {
            pace.tick().await;
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Err(_) => panic!(
                "a trickled body was still being read after 5 s: {}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
    trickle.abort();
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body["detail"], "the request body was not received within 1 s",
        "{answer}"
    );
    // Answered inside the request-id and metrics layers, like any answer.
    assert!(answer.to_ascii_lowercase().contains("x-request-id: "), "{answer}");
    let metrics = system.http.get(format!("{}/metrics", system.api)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_requests_total{") && l.contains("status=\"408\"")),
        "the 408 is not counted"
    );
    let runs = system.get(&format!("{}/v1/runs", system.api)).await;
    assert_eq!(runs["runs"], Value::Array(vec![]), "a run was created: {runs}");
    system.stop_idle().await;
}

/// HTTP_MAX_CONNECTIONS: with two connections held open, a third waits
/// (it is not served) until one of them closes, then it is served.
async fn connections_beyond_the_cap_wait_for_a_free_slot(db: &Db) {
    let system = start(db, &[("HTTP_MAX_CONNECTIONS", "2"), ("HTTP_HEADER_TIMEOUT_SECS", "60")]).await;
    for base in [&system.api, &system.orchestrator] {
        let mut holders = vec![
            TcpStream::connect(addr(base)).await.unwrap(),
            TcpStream::connect(addr(base)).await.unwrap(),
        ];
        let mut third = TcpStream::connect(addr(base)).await.unwrap();
        third
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(800), third.read(&mut byte)).await;
        assert!(
            early.is_err(),
            "{base}: a third connection was answered beyond HTTP_MAX_CONNECTIONS=2: {early:?}"
        );
        drop(holders.pop());
        let answer = closed_within(&mut third, Duration::from_secs(5))
            .await
            .unwrap_or_else(|sent| panic!("{base}: not served after a slot freed (sent {sent:?})"));
        assert!(
            answer.contains("200 OK") && answer.contains("\"ok\""),
            "{base}: {answer}"
        );
        drop(holders);
        // Both slots free again: ordinary clients are served.
        let mut again = TcpStream::connect(addr(base)).await.unwrap();
        assert!(health_on(&mut again, true).await.starts_with("HTTP/1.1 200"));
    }
    system.stop_idle().await;
}

/// Every operation of the OpenAPI document lists the loop's 408 and 503.
async fn the_openapi_document_lists_the_timeout_answers(db: &Db) {
    let system: System = start(db, &[]).await;
    let doc = system.get(&format!("{}/openapi.json", system.api)).await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            operations += 1;
            for status in ["408", "503"] {
                assert!(responses.contains_key(status), "{method} {path} does not list {status}");
            }
        }
    }
    assert!(operations > 20, "{operations} operations");
    system.stop_idle().await;
}

conformance_tests!(
    half_a_request_head_is_cut_off_after_the_header_timeout,
    a_trickled_body_is_cut_off_with_a_json_408,
    connections_beyond_the_cap_wait_for_a_free_slot,
    the_openapi_document_lists_the_timeout_answers,
);
