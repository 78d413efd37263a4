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
//! - ([`Deadlines`], installed by each service's router) the body must
//!   arrive within `body_timeout` of the headers (one
//!   deadline, not per chunk, so a byte every few seconds does not keep it
//!   alive): the request is answered `408 {"detail": ...}` and the
//!   connection closed;
//! - a request not answered within `request_timeout` is answered
//!   `503 {"detail": ...}` (its handler is dropped);
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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use myloware_core::ErrorBody;
use myloware_core::config::HttpLimits;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::{Layer, Service, ServiceExt};
use tower_http::timeout::{DeadlineBody, TimeoutError};

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

/// The body deadline and the request timeout, answered in the services'
/// error shape. The services install it as a route layer inside their
/// request-id and HTTP-metrics layers, so a 408 or 503 carries its
/// `X-Request-ID` and is counted like any other answer. A plain tower
/// layer rather than `from_fn`: no boxed future and no service clone per
/// request (`from_fn` cost the API's `GET /health` 13 % of its throughput).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines(pub HttpLimits);

impl<S> Layer<S> for Deadlines {
    type Service = DeadlinesService<S>;

    fn layer(&self, inner: S) -> DeadlinesService<S> {
        DeadlinesService { inner, limits: self.0 }
    }
}

/// See [`Deadlines`].
#[derive(Debug, Clone)]
pub struct DeadlinesService<S> {
    inner: S,
    limits: HttpLimits,
}

impl<S> Service<Request> for DeadlinesService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = DeadlinesFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let limits = self.limits;
        // A request without a body (most GETs) has nothing to be late with:
        // no deadline timer and no flag for it.
        let body_late = (request.body().size_hint().exact() != Some(0)).then(|| Arc::new(AtomicBool::new(false)));
        let request = match &body_late {
            None => request,
            Some(late) => {
                let flag = late.clone();
                request.map(|body| {
                    Body::new(DeadlineBody::new(limits.body_timeout, body).map_err(move |err| {
                        if err.is::<TimeoutError>() {
                            flag.store(true, Ordering::Relaxed);
                        }
                        err
                    }))
                })
            }
        };
        DeadlinesFuture {
            inner: tokio::time::timeout(limits.request_timeout, self.inner.call(request)),
            body_late,
            limits,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`DeadlinesService`].
    pub struct DeadlinesFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        body_late: Option<Arc<AtomicBool>>,
        limits: HttpLimits,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for DeadlinesFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = match std::task::ready!(this.inner.poll(cx)) {
            // Whatever the handler made of the failed read, the client was late.
            Ok(_) if this.body_late.as_ref().is_some_and(|late| late.load(Ordering::Relaxed)) => closing(error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body was not received within {} s",
                    this.limits.body_timeout.as_secs()
                ),
            )),
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "the request was not answered within {} s",
                    this.limits.request_timeout.as_secs()
                ),
            ),
        };
        Poll::Ready(Ok(answer))
    }
}

fn error(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(ErrorBody::new(detail))).into_response()
}

/// The rest of an unread body cannot be trusted to arrive: close after this.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
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
            answer.ends_with(r#"{"detail":"the request was not answered within 1 s"}"#),
            "{answer}"
        );
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
