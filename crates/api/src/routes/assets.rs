//! `GET /v1/assets/{project}/{runId}/{file}?expires=…&sig=…`: a rendered
//! video from the project's asset store, for whoever holds a signed URL
//! (the approval page's player, Upload-Post fetching what it publishes).
//! No API key: the URL proves itself (`myloware_assets::signed`), and
//! expires. Ranges are served (206), so players seek. Unsigned, expired or
//! tampered: 403, before the store is touched; a signed URL of an asset
//! gone from the store: 404. Refusals are limited per address like the
//! other open routes, and accepted fetches per client
//! ([`LimitedRoute::AssetFetch`]).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use myloware_assets::{AssetError, AssetKey, Fetched, Ranged};
use myloware_core::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::middleware::{ClientId, LimitedRoute};
use crate::state::ApiState;

/// The asset route: open (the URL's signature is the credential).
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    super::open(state, OpenApiRouter::new().routes(routes!(get_asset)))
}

/// A rendered video, whole or a byte range.
#[utoipa::path(get, path = "/v1/assets/{project}/{runId}/{file}", tag = "assets",
    params(
        ("project" = String, Path, description = "The run's project"),
        ("runId" = String, Path),
        ("file" = String, Path, description = "e.g. `render-0.mp4`"),
        ("expires" = Option<String>, Query, description = "Unix time the URL expires (signed)"),
        ("sig" = Option<String>, Query, description = "The URL's signature"),
        ("Range" = Option<String>, Header, description = "One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`); other forms are ignored"),
    ),
    responses(
        (status = 200, description = "The whole video", content_type = "video/mp4"),
        (status = 206, description = "The requested bytes (`Content-Range`)", content_type = "video/mp4"),
        (status = 403, description = "Unsigned, expired or tampered URL", body = ErrorBody),
        (status = 404, description = "A signed URL of an asset that is no longer stored", body = ErrorBody),
        (status = 416, description = "The range is past the end (`Content-Range: bytes */size`)", body = ErrorBody),
        (status = 429, description = "Too many fetches from this client (see `Retry-After`)", body = ErrorBody),
        (status = 503, description = "The asset store cannot be read", body = ErrorBody),
    ))]
pub async fn get_asset(
    State(state): State<ApiState>,
    ClientId(client): ClientId,
    Path((project, run_id, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let forbidden = || ApiError::Forbidden("invalid or expired asset URL".into());
    // A key we would never sign is refused like a bad signature.
    let key = AssetKey::from_parts(&project, &run_id, &file).ok_or_else(forbidden)?;
    let (expires, sig) = signature(query.as_deref().unwrap_or_default());
    let now = chrono::Utc::now().timestamp();
    if !state.assets.verify(&key, &expires, &sig, now) {
        return Err(forbidden());
    }
    state.limiter.check(LimitedRoute::AssetFetch, &client)?;
    let size = state
        .assets
        .head(&key)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::not_found("asset"))?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, wanted) = match myloware_assets::resolve_range(range, size) {
        Ranged::Full => (StatusCode::OK, None),
        Ranged::Partial(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        Ranged::Unsatisfiable => {
            let mut response = (
                StatusCode::RANGE_NOT_SATISFIABLE,
                Json(ErrorBody::new(format!(
                    "the range is past the end of the {size}-byte asset"
                ))),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, value(format!("bytes */{size}")));
            return Ok(response);
        }
    };
    // Gone between the two reads: as if it had been gone before.
    let fetched = state
        .assets
        .get(&key, wanted)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::not_found("asset"))?;
    Ok(video(status, fetched))
}

/// The prepublish preview with a fresh URL of the render's copy (the one
/// in the gate's preview was minted at the copy, and may be near its end
/// when the page is opened days later). Unchanged without a copy, or when
/// the store cannot mint one.
pub(crate) async fn with_fresh_render_url(state: &ApiState, mut preview: serde_json::Value) -> serde_json::Value {
    let Some(key) = preview["renderAsset"].as_str().and_then(AssetKey::parse) else {
        return preview;
    };
    match state.assets.url_for(&key, state.assets.url_ttl()).await {
        Ok(url) => preview["renderUrl"] = url.into(),
        Err(err) => tracing::warn!(key = %key, error = %err, "cannot mint a fresh URL of the render"),
    }
    preview
}

/// `expires` and `sig` of the query (the first of each; absent is empty).
fn signature(query: &str) -> (String, String) {
    let (mut expires, mut sig) = (None, None);
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "expires" if expires.is_none() => expires = Some(value.into_owned()),
            "sig" if sig.is_none() => sig = Some(value.into_owned()),
            _ => {}
        }
    }
    (expires.unwrap_or_default(), sig.unwrap_or_default())
}

fn unavailable(err: AssetError) -> ApiError {
    tracing::error!(error = %err, "the asset store cannot be read");
    ApiError::Unavailable("the asset store cannot be read now; try again".into())
}

fn value(text: String) -> HeaderValue {
    HeaderValue::from_str(&text).expect("digits and ASCII")
}

/// The video's answer: its bytes streamed, with their length and, for a
/// range, where they sit in the whole.
fn video(status: StatusCode, fetched: Fetched) -> Response {
    let Fetched { size, range, body } = fetched;
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(myloware_assets::CONTENT_TYPE),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // The URL is the credential: kept by this browser only, sent to no one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(
            header::CONTENT_RANGE,
            value(format!("bytes {}-{}/{size}", range.start, range.end - 1)),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn the_first_expires_and_sig_are_read() {
        assert_eq!(
            signature("expires=12&sig=ab&expires=99&sig=cd&x=1"),
            ("12".to_string(), "ab".to_string())
        );
        assert_eq!(signature(""), (String::new(), String::new()));
        assert_eq!(signature("sig=%zz&expires"), (String::new(), "%zz".to_string()));
    }
}
