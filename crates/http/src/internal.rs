//! The internal credential on the wire (see `myloware_core::internal`):
//! a middleware that admits only requests signed with `INTERNAL_SECRET`.
//! Callers sign with `InternalKeys::sign` over the URL and body they send.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use myloware_core::ErrorBody;
use myloware_core::internal::{HEADER, InternalKeys};

use crate::body::BodyLimit;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Middleware: refuses (401) a request whose `x-myloware-internal`
/// signature does not cover its method, path, body and time under the
/// internal secret. Operator API keys mean nothing here.
pub async fn require_internal(State(keys): State<Arc<InternalKeys>>, request: Request, next: Next) -> Response {
    match verified(&keys, request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal,
    }
}

/// The request, when its signature verifies (its body read, up to the
/// service's body limit, and handed on); else the refusal to answer (401,
/// or 413 for a body over the limit).
pub async fn verified(keys: &InternalKeys, request: Request) -> Result<Request, Response> {
    let refuse = |why: &str| (StatusCode::UNAUTHORIZED, axum::Json(ErrorBody::new(why))).into_response();
    let Some(header) = request.headers().get(HEADER).map(|v| v.to_str().map(str::to_owned)) else {
        return Err(refuse("this route takes the internal credential only"));
    };
    let Ok(header) = header else {
        return Err(refuse("internal credential malformed"));
    };
    let limit = request.extensions().get::<BodyLimit>().map_or(1024 * 1024, |l| l.0);
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(ErrorBody::new(format!("the body is over the {limit}-byte limit"))),
        )
            .into_response());
    };
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    if let Err(err) = keys.verify(parts.method.as_str(), path, Some(&header), &bytes, now()) {
        tracing::warn!(path = %parts.uri.path(), error = %err, "internal request refused");
        return Err(refuse(&err.to_string()));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Signs an outgoing internal request as built (method, path and query,
/// body): the header [`require_internal`] checks.
pub fn sign(keys: &InternalKeys, request: &mut reqwest::Request) {
    let url = request.url();
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let body = request.body().and_then(reqwest::Body::as_bytes).unwrap_or_default();
    let value = keys.sign(request.method().as_str(), &path, body, now());
    request.headers_mut().insert(
        HEADER,
        axum::http::HeaderValue::from_str(&value).expect("the signature header is visible ASCII"),
    );
}
