//! The request deadlines (the connection-level limits are the server
//! loop's): the body must arrive within `body_timeout` of the headers (one
//! deadline, not per chunk, so a byte every few seconds does not keep it
//! alive), answered `408 {"detail": ...}` with the connection closed; a
//! request not answered within `request_timeout` is answered
//! `503 {"detail": ...}`.
//!
//! A handler is never cut short: it runs in a task of its own, which goes on
//! to its end when the client goes away or the request times out. Dropped
//! in the middle of `BEGIN`, sqlx (0.9) returned the connection to the pool
//! inside a transaction it did not know of; the next caller's statements
//! joined it, and its `ROLLBACK` took them away (seen: a mock provider's
//! ledger entry lost when the API was killed with requests in flight, and
//! execution rows locked for seconds meanwhile). Cancelling a handler can
//! leave any such half-done work; finishing it cannot.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use myloware_core::config::HttpLimits;
use tower::{Layer, Service};
use tower_http::timeout::{DeadlineBody, TimeoutError};

use crate::error::error;

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
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = DeadlinesFuture;

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
        let handler = tracing::Instrument::in_current_span(self.inner.call(request));
        DeadlinesFuture {
            inner: tokio::time::timeout(limits.request_timeout, tokio::spawn(handler)),
            body_late,
            limits,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`DeadlinesService`].
    pub struct DeadlinesFuture {
        #[pin]
        inner: tokio::time::Timeout<tokio::task::JoinHandle<Result<Response, Infallible>>>,
        body_late: Option<Arc<AtomicBool>>,
        limits: HttpLimits,
    }
}

impl Future for DeadlinesFuture {
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
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(never))) => match never {},
            // The panic goes on to the stack's panic layer, as it did
            // before the handler had a task of its own.
            Ok(Err(failed)) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            // Only when the runtime shuts down.
            Ok(Err(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "the service is shutting down"),
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

/// The rest of an unread body cannot be trusted to arrive: close after this.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
