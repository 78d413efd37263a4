//! A closed-loop HTTP/1.1 load generator: N connections, each sending its
//! next request as soon as the previous answer is read, with keep-alive.
//!
//! The client is a minimal HTTP/1.1 client on a tokio `TcpStream`
//! (requests written as prepared bytes, answers framed by
//! `Content-Length`), because on a 2-core machine the load generator
//! shares the CPUs with the server: the less CPU it takes, the more the
//! numbers say about the server. It is not a general client: no chunked
//! answers (axum frames JSON answers with `Content-Length`), no pipelining,
//! no TLS. [`closed_loop_reqwest`] runs the same loop with reqwest, to
//! compare (`--client reqwest`).

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the connections send, and what counts as a success.
pub trait Workload: Send + Sync + 'static {
    /// Writes the `i`-th request (whole, headers and body) into `buf`,
    /// which is empty; `false` when there is no `i`-th request (the end of
    /// a counted workload).
    fn request(&self, i: u64, buf: &mut Vec<u8>) -> bool;

    /// Sees the answer to the `i`-th request; `true` counts it as a success.
    fn response(&self, _i: u64, status: u16, _body: &[u8]) -> bool {
        (200..300).contains(&status)
    }
}

/// When the load stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// Load for `warmup + measure`; only requests sent and answered within
    /// the `measure` window count.
    Timed { warmup: Duration, measure: Duration },
    /// Until the workload has no next request; every request counts.
    Exhausted,
}

/// What a load run measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Answers the workload accepted.
    pub ok: u64,
    /// Answers it refused (e.g. a 5xx).
    pub refused: u64,
    /// Connection or protocol errors.
    pub errors: u64,
    pub first_error: Option<String>,
    /// The window the counts cover.
    pub elapsed: Duration,
    /// Latency of every counted request, in microseconds.
    pub latencies_us: Vec<f64>,
}

impl LoadResult {
    /// Answered requests per second (accepted or not).
    pub fn rate(&self) -> f64 {
        (self.ok + self.refused) as f64 / self.elapsed.as_secs_f64()
    }

    /// Fails unless all `count` requests were accepted (`what`: "starts
    /// accepted").
    pub fn expect_all(&self, count: usize, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.ok == count as u64,
            "{} of {count} {what} ({} refused, {} errors, first: {:?})",
            self.ok,
            self.refused,
            self.errors,
            self.first_error
        );
        Ok(())
    }

    /// Counts an answer, accepted or not, to a request `sent` and
    /// `answered` within the window.
    fn count(&mut self, accepted: bool, sent: Instant, answered: Instant) {
        if accepted {
            self.ok += 1;
        } else {
            self.refused += 1;
        }
        self.latencies_us.push((answered - sent).as_secs_f64() * 1e6);
    }

    /// Counts a request that got no answer.
    fn failed(&mut self, error: impl FnOnce() -> String) {
        self.errors += 1;
        self.first_error.get_or_insert_with(error);
    }

    fn merge(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

/// `GET path` with `headers`, as raw HTTP/1.1 bytes.
pub fn get_request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// `POST path` with `headers` and a JSON `body`, as raw HTTP/1.1 bytes.
pub fn post_json(buf: &mut Vec<u8>, addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) {
    use std::io::Write;
    let _ = write!(
        buf,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(buf, "{name}: {value}\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(body);
}

/// One keep-alive connection of the raw client.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// An answer: status, where its body is in the connection's buffer, and
/// whether the server will close the connection.
struct Answer {
    status: u16,
    body: Range<usize>,
    close: bool,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    async fn round_trip(&mut self, request: &[u8]) -> anyhow::Result<Answer> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let mut scanned = 0;
        let head_end = loop {
            if let Some(at) = find(&self.buf[scanned..], b"\r\n\r\n") {
                break scanned + at + 4;
            }
            scanned = self.buf.len().saturating_sub(3);
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("answer head is not UTF-8")?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line: {:?}", head.lines().next()))?;
        let (mut length, mut close) = (0usize, false);
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().context("bad content-length")?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("chunked answers are not supported by the load generator ({value})");
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        if self.buf.len() > head_end + length {
            bail!("more bytes than one answer (the server pipelined?)");
        }
        Ok(Answer {
            status,
            body: head_end..head_end + length,
            close,
        })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let read = self.stream.read_buf(&mut self.buf).await?;
        if read == 0 {
            bail!("connection closed by the server");
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The clock of one load run.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Option<Instant>,
}

impl Window {
    fn new(stop: Stop) -> Window {
        let now = Instant::now();
        match stop {
            Stop::Timed { warmup, measure } => Window {
                start: now + warmup,
                end: Some(now + warmup + measure),
            },
            Stop::Exhausted => Window { start: now, end: None },
        }
    }

    fn over(&self, now: Instant) -> bool {
        self.end.is_some_and(|end| now >= end)
    }

    fn counts(&self, sent: Instant, answered: Instant) -> bool {
        sent >= self.start && self.end.is_none_or(|end| answered <= end)
    }

    fn elapsed(&self) -> Duration {
        match self.end {
            Some(end) => end - self.start,
            None => self.start.elapsed(),
        }
    }
}

/// Runs `workload` over `connections` connections to `addr`.
pub async fn closed_loop<W: Workload>(
    addr: SocketAddr,
    connections: usize,
    stop: Stop,
    workload: Arc<W>,
) -> anyhow::Result<LoadResult> {
    on_connections(connections, stop, |next, window| {
        let workload = workload.clone();
        async move {
            let mut result = LoadResult::default();
            let mut conn: Option<Conn> = None;
            let mut request = Vec::with_capacity(2048);
            loop {
                if window.over(Instant::now()) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                request.clear();
                if !workload.request(i, &mut request) {
                    break;
                }
                let sent = Instant::now();
                let answer = match conn.as_mut() {
                    Some(c) => c.round_trip(&request).await,
                    None => match Conn::connect(addr).await {
                        Ok(c) => conn.insert(c).round_trip(&request).await,
                        Err(err) => Err(err.into()),
                    },
                };
                let answered = Instant::now();
                match answer {
                    Ok(answer) => {
                        let c = conn.as_ref().expect("connected");
                        let accepted = workload.response(i, answer.status, &c.buf[answer.body.clone()]);
                        if window.counts(sent, answered) {
                            result.count(accepted, sent, answered);
                        }
                        if answer.close {
                            conn = None;
                        }
                    }
                    Err(err) => {
                        result.failed(|| format!("{err:#}"));
                        conn = None;
                        // A refused connection would otherwise spin.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            result
        }
    })
    .await
}

/// Runs `connection` on `connections` tasks at once, each given the
/// counter that numbers the requests and the load's window; their results
/// added up.
async fn on_connections<F, Fut>(connections: usize, stop: Stop, connection: F) -> anyhow::Result<LoadResult>
where
    F: Fn(Arc<AtomicU64>, Window) -> Fut,
    Fut: Future<Output = LoadResult> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let window = Window::new(stop);
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(next.clone(), window)))
        .collect();
    let mut total = LoadResult::default();
    for task in tasks {
        total.merge(task.await?);
    }
    total.elapsed = window.elapsed();
    Ok(total)
}

/// Runs a counted workload to its end over `connections` connections to
/// `addr`: each of its `count` requests must be accepted (`what`: "starts
/// accepted"). How long it took.
pub async fn all_accepted<W: Workload>(
    addr: SocketAddr,
    connections: usize,
    workload: Arc<W>,
    count: usize,
    what: &str,
) -> anyhow::Result<Duration> {
    let began = Instant::now();
    let result = closed_loop(addr, connections, Stop::Exhausted, workload).await?;
    let took = began.elapsed();
    result.expect_all(count, what)?;
    Ok(took)
}

/// The same closed loop of `GET`s, through one reqwest client whose pool
/// keeps a connection per task.
pub async fn closed_loop_reqwest(
    urls: Arc<Vec<String>>,
    headers: &[(&str, &str)],
    connections: usize,
    stop: Stop,
) -> anyhow::Result<LoadResult> {
    let mut header_map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        header_map.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
            reqwest::header::HeaderValue::from_str(value)?,
        );
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .default_headers(header_map)
        .build()?;
    on_connections(connections, stop, |next, window| {
        let (urls, client) = (urls.clone(), client.clone());
        async move {
            let mut result = LoadResult::default();
            while !window.over(Instant::now()) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let url = &urls[i as usize % urls.len()];
                let sent = Instant::now();
                let answer = match client.get(url).send().await {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.map(|_| status)
                    }
                    Err(err) => Err(err),
                };
                let answered = Instant::now();
                match answer {
                    Ok(status) if window.counts(sent, answered) => result.count(status.is_success(), sent, answered),
                    Ok(_) => {}
                    Err(err) => result.failed(|| err.to_string()),
                }
            }
            result
        }
    })
    .await
}

/// A workload of fixed requests, taken round-robin.
pub struct RoundRobin(pub Vec<Vec<u8>>);

impl Workload for RoundRobin {
    fn request(&self, i: u64, buf: &mut Vec<u8>) -> bool {
        buf.extend_from_slice(&self.0[i as usize % self.0.len()]);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_well_formed() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let get = String::from_utf8(get_request(addr, "/health", &[("x-api-key", "k")])).unwrap();
        assert_eq!(
            get,
            "GET /health HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-api-key: k\r\n\r\n"
        );
        let mut post = Vec::new();
        post_json(&mut post, addr, "/p", &[], b"{}");
        assert!(
            String::from_utf8(post)
                .unwrap()
                .ends_with("content-length: 2\r\n\r\n{}")
        );
        assert_eq!(find(b"abc\r\n\r\nx", b"\r\n\r\n"), Some(3));
    }
}
