//! Copying a render from the provider's URL into the store, streamed:
//! chunks go to the store's writer as they arrive (a bucket gets a
//! multipart upload for a large one), at most `ASSET_MAX_BYTES` of them.

use std::sync::Arc;

use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;

use crate::{AssetError, AssetKey, AssetStore, CONTENT_TYPE};

/// Content types a render may be served with: MP4, or a generic binary
/// type (some buckets serve their objects so). The body must start like
/// an MP4 either way.
const ACCEPTED: [&str; 3] = [CONTENT_TYPE, "application/octet-stream", "binary/octet-stream"];

pub(crate) async fn from_url(
    assets: &AssetStore,
    store: Arc<dyn ObjectStore>,
    key: &AssetKey,
    url: &str,
) -> Result<u64, AssetError> {
    let source = |message: String| AssetError::Source(message);
    let response = assets
        .http
        .get(url)
        .send()
        .await
        .map_err(|err| source(format!("GET failed: {err}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(source(format!("GET answered {status}")));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !ACCEPTED.contains(&content_type.as_str()) {
        return Err(source(format!("the answer is {content_type:?}, not {CONTENT_TYPE}")));
    }
    if let Some(length) = response.content_length()
        && length > assets.max_bytes
    {
        return Err(source(too_large(length, assets.max_bytes)));
    }
    let mut writer = BufWriter::new(store, assets.path(key)).with_attributes(assets.put_options().attributes);
    let copied = write_body(assets.max_bytes, response, &mut writer).await;
    match copied {
        Ok(total) => {
            shutdown(&mut writer)
                .await
                .map_err(|err| AssetError::Storage(err.to_string()))?;
            Ok(total)
        }
        Err(err) => {
            // Nothing half-written stays: the upload is abandoned.
            if let Err(abort) = writer.abort().await {
                tracing::warn!(key = %key, error = %abort, "abandoning a partial asset upload failed");
            }
            Err(err)
        }
    }
}

/// Streams the body into `writer`; the bytes written.
async fn write_body(max_bytes: u64, response: reqwest::Response, writer: &mut BufWriter) -> Result<u64, AssetError> {
    let mut body = response.bytes_stream();
    let mut total: u64 = 0;
    // The first bytes, until the MP4 signature can be checked.
    let mut head = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| AssetError::Source(format!("reading the body failed: {err}")))?;
        total += chunk.len() as u64;
        if total > max_bytes {
            return Err(AssetError::Source(too_large(total, max_bytes)));
        }
        if head.len() < 8 {
            head.extend_from_slice(&chunk[..chunk.len().min(8 - head.len())]);
            if head.len() == 8 && !is_mp4(&head) {
                return Err(AssetError::Source("the body is not an MP4 (no ftyp box)".into()));
            }
        }
        writer.put(chunk).await?;
    }
    if head.len() < 8 {
        return Err(AssetError::Source(format!("the body is {total} bytes: not an MP4")));
    }
    Ok(total)
}

/// An MP4 (ISO base media file) starts with its `ftyp` box: a 4-byte size,
/// then `ftyp`.
pub(crate) fn is_mp4(head: &[u8]) -> bool {
    head.get(4..8) == Some(b"ftyp")
}

fn too_large(size: u64, max: u64) -> String {
    format!("the render is over ASSET_MAX_BYTES ({size} > {max} bytes)")
}

/// Completes the upload (the object appears now).
async fn shutdown(writer: &mut BufWriter) -> std::io::Result<()> {
    use tokio::io::AsyncWrite;
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *writer).poll_shutdown(cx)).await
}
