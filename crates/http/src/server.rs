//! The HTTP server loop both services run: `axum::serve` without limits
//! let a client hold a connection forever (half a request line kept a
//! connection open and was still served after 45 s), so this one is built
//! on hyper's HTTP/1 connection with [`HttpLimits`]:
//!
//! - request headers must be complete within `header_timeout`, counted
//!   from the moment the connection is ready for a request: on a new
//!   connection and between requests on a kept-alive one (hyper starts the
//!   timer whenever it waits for a request head), so idle keep-alive
//!   connections are closed after the same time;
//! - (the `Deadlines` layer, in the shared layer stack) the body
//!   must arrive within `body_timeout` of the headers, and a request must be
//!   answered within `request_timeout`;
//! - at most `max_connections` connections at once: the loop stops
//!   accepting at the cap, so further connections wait in the kernel's
//!   listen backlog and are served, in order, as soon as one closes
//!   (waiting rather than closing: a burst of honest clients is served
//!   late rather than refused; a slot held by a client that never sends a
//!   request head is freed after `header_timeout`; there is no write
//!   timeout: a client that stops reading its answer keeps its slot until
//!   the kernel gives up on the connection);
//! - on shutdown it stops accepting, lets every in-flight request finish
//!   (bounded by `request_timeout`), closes idle connections and returns.
//!
//! Only HTTP/1.1 is offered: hyper's header timeout does not apply to
//! HTTP/2, and nothing in front of the services speaks cleartext HTTP/2
//! (Fly's proxy and the services' own clients use HTTP/1.1).
//!
//! Every request carries `ConnectInfo<SocketAddr>` (the peer address) for
//! the rate limiter and the audit, as `into_make_service_with_connect_info`
//! gave it.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use myloware_core::config::{Config, HttpLimits};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// A service the generic [`Server`] runs: where it listens, its router
/// (with the shared layer stack around it) and the background tasks
/// that live as long as it serves.
pub trait Service: Clone + Send + Sync + 'static {
    /// For the log line (`"api"`, `"orchestrator"`).
    const NAME: &'static str;

    /// The configuration both services share.
    fn config(&self) -> &Config;

    /// The port [`Server::bind`] binds on `BIND_HOST` (0 picks a free one).
    fn port(&self) -> u16;

    /// The host and port [`Server::bind`] binds.
    fn address(&self) -> (IpAddr, u16) {
        (self.config().bind_host, self.port())
    }

    /// The router with every layer.
    fn router(&self) -> Router;

    /// Tasks started before the first request and awaited after the last;
    /// each stops when `stop` turns true.
    fn background(&self, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>>;
}

/// A bound, not yet serving, service.
pub struct Server<S> {
    listener: TcpListener,
    service: S,
}

impl<S: Service> Server<S> {
    /// Binds the service's [`Service::address`].
    pub async fn bind(service: S) -> std::io::Result<Server<S>> {
        let listener = TcpListener::bind(service.address()).await?;
        Ok(Server { listener, service })
    }

    /// Serves on a listener bound elsewhere (tests, `mw dev`).
    pub fn with_listener(listener: TcpListener, service: S) -> Server<S> {
        Server { listener, service }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves, with the background tasks beside it, until `shutdown`
    /// completes; then drains in-flight requests, stops the tasks and
    /// waits for them.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let tasks = self.service.background(stop_rx);
        tracing::info!(addr = %self.local_addr(), "{} listening", S::NAME);
        let limits = self.service.config().http;
        let served = serve(self.listener, self.service.router(), &limits, shutdown).await;
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        served
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes,
/// then drains: in-flight requests finish, idle connections close.
pub fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    run(listener, router, *limits, shutdown)
}

async fn run(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Finished connections' results, so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let mut drain = drain_rx.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(request.map(Body::new))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = async { let _ = drain.wait_for(|drain| *drain).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = drain_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// After a failed accept: a peer that gave up is nothing; anything else
/// (out of file descriptors) is logged and retried after a pause, as axum does.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %err, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::deadlines::Deadlines;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            // Longer than the body's: which fires first is then certain.
            request_timeout: Duration::from_secs(2),
            max_connections: 4,
        }
    }

    async fn start(
        router: Router,
    ) -> (
        SocketAddr,
        watch::Sender<bool>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = watch::channel(false);
        let router = router.layer(Deadlines(limits()));
        let task = tokio::spawn(serve(listener, router, &limits(), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        (addr, stop, task)
    }

    async fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn handlers_see_the_peer_address() {
        let router = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let (addr, stop, task) = start(router).await;
        let answer = exchange(addr, "GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("127.0.0.1"), "{answer}");
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_slow_handler_is_answered_503_in_json() {
        let router = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
        let (addr, stop, task) = start(router).await;
        let answer = exchange(addr, "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            answer.ends_with(r#"{"detail":"the request was not answered within 2 s"}"#),
            "{answer}"
        );
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
    }

    /// A route whose handler takes `for_ms` and then says it finished.
    fn finishing(for_ms: u64) -> (Router, tokio::sync::oneshot::Receiver<()>) {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let done = Arc::new(std::sync::Mutex::new(Some(done_tx)));
        let router = Router::new().route(
            "/work",
            get(move || {
                let done = done.lock().unwrap().take();
                async move {
                    tokio::time::sleep(Duration::from_millis(for_ms)).await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    "done"
                }
            }),
        );
        (router, done_rx)
    }

    /// Cut short, a handler could leave half-done work behind (a
    /// transaction begun on a pooled connection): it runs to its end.
    #[tokio::test]
    async fn a_handler_runs_to_its_end_when_its_client_leaves_or_it_times_out() {
        let (router, done) = finishing(300);
        let (addr, stop, task) = start(router).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stream);
        tokio::time::timeout(Duration::from_secs(5), done)
            .await
            .expect("the handler went on after its client left")
            .unwrap();
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();

        // Longer than the request timeout (2 s): answered 503, finished anyway.
        let (router, done) = finishing(2_500);
        let (addr, stop, task) = start(router).await;
        let answer = exchange(addr, "GET /work HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        tokio::time::timeout(Duration::from_secs(5), done)
            .await
            .expect("the handler went on after its 503")
            .unwrap();
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_late_body_is_answered_408_and_the_connection_closed() {
        let router = Router::new().route("/echo", post(|body: String| async move { body }));
        let (addr, stop, task) = start(router).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        let mut answer = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await;
        assert!(read.is_ok(), "the connection stayed open");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
        assert!(answer.contains("was not received within 1 s"), "{answer}");
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_lets_an_in_flight_request_finish() {
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let entered = Arc::new(std::sync::Mutex::new(Some(entered_tx)));
        let router = Router::new().route(
            "/work",
            get(move || {
                let entered = entered.lock().unwrap().take();
                async move {
                    if let Some(entered) = entered {
                        let _ = entered.send(());
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }
            }),
        );
        let (addr, stop, task) = start(router).await;
        let request = tokio::spawn(exchange(addr, "GET /work HTTP/1.1\r\nHost: x\r\n\r\n"));
        entered_rx.await.unwrap();
        stop.send(true).unwrap();
        let answer = request.await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "{answer}"
        );
        task.await.unwrap().unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still accepting after shutdown"
        );
    }
}
