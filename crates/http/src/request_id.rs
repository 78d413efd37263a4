//! Request ids: every request gets one (the caller's `X-Request-ID` if it
//! is a sane token, else a fresh UUID), every response carries it, errors
//! included, and every log line of the request is inside its span. The same
//! outermost layer keeps every error JSON: axum's own plain-text rejections
//! (a bad query or path parameter, a body over the limit) leave as
//! `{"detail": …}` with their status.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::stack::error as json_error;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, as stored in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware; install as the outermost layer.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let header = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    request.headers_mut().insert(REQUEST_ID.clone(), header.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = if has_encoded_nul(request.uri()) {
        // Postgres text cannot hold U+0000: refuse it before any handler.
        json_error(StatusCode::BAD_REQUEST, "the URL must not contain NUL characters (%00)")
    } else {
        let response = tracing::Instrument::instrument(next.run(request), span).await;
        as_json_error(response).await
    };
    response.headers_mut().insert(REQUEST_ID.clone(), header);
    response
}

/// A random (v4) UUID from the thread's user-space generator: `new_v4`
/// asks the kernel for every id, a system call per request.
fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

fn has_encoded_nul(uri: &axum::http::Uri) -> bool {
    // `%00` has no letters, so no case to fold.
    uri.path_and_query().is_some_and(|pq| pq.as_str().contains("%00"))
}

/// Longest plain-text error body carried into `detail`.
const MAX_DETAIL_BYTES: usize = 4096;

/// An error answered in plain text (axum's extractor rejections) becomes
/// `{"detail": "<the text>"}` with the same status.
async fn as_json_error(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_DETAIL_BYTES).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut json = json_error(status, &text);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

fn is_sane_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_callers_are_kept_only_when_sane() {
        assert!(is_sane_request_id("abc-123_x.y:z"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("has space"));
        assert!(!is_sane_request_id("new\nline"));
        assert!(!is_sane_request_id(&"a".repeat(129)));
    }

    #[test]
    fn fresh_request_ids_are_distinct_v4_uuids() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert!(is_sane_request_id(id));
        }
    }

    #[test]
    fn an_encoded_nul_is_found_in_the_path_or_the_query() {
        let nul = |uri: &str| has_encoded_nul(&uri.parse().unwrap());
        assert!(nul("/v1/runs/a%00b"));
        assert!(nul("/v1/runs?status=%00"));
        assert!(!nul("/v1/runs/run_abc?limit=100"));
    }
}
