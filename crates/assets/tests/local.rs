//! The local folder: copies from a URL (streamed, bounded, checked), reads
//! with ranges, lookups, and the API URLs it signs. The bucket is tested
//! against a real S3-compatible server in `crates/system-tests/tests/engine`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::TryStreamExt;
use myloware_assets::{AssetError, AssetKey, AssetStore};
use myloware_core::config::Config;

/// An MP4's first bytes: a box size, then `ftyp`.
const MP4_HEAD: &[u8] = b"\0\0\0\x18ftypisom";

struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn store(vars: &[(&str, &str)]) -> (AssetStore, Folder) {
    let dir = std::env::temp_dir().join(format!("mw-assets-{}-{}", std::process::id(), uuid_like()));
    let dir_text = dir.join("nested/assets").display().to_string();
    let mut map: HashMap<&str, &str> = vars.iter().copied().collect();
    map.insert("ASSET_DIR", &dir_text);
    map.insert("PUBLIC_BASE_URL", "https://mw.example.com/ignored/path");
    let config = Config::from_lookup(|var| map.get(var).map(|v| v.to_string())).unwrap();
    (AssetStore::from_config(&config), Folder(dir))
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn key(file: &str) -> AssetKey {
    AssetKey::from_parts("aismr", "run_test", file).unwrap()
}

/// Serves `body` with `content_type` at `/video.mp4`; the URL.
async fn serve(content_type: &'static str, body: Vec<u8>) -> String {
    let body = Arc::new(body);
    let router = axum::Router::new()
        .route(
            "/video.mp4",
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, content_type)], body.to_vec()).into_response() }
            }),
        )
        .route(
            "/gone.mp4",
            axum::routing::get(|| async { axum::http::StatusCode::FORBIDDEN }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn video(len: usize) -> Vec<u8> {
    let mut body = MP4_HEAD.to_vec();
    body.extend((0..len.saturating_sub(MP4_HEAD.len())).map(|i| (i % 251) as u8));
    body
}

async fn read_all(assets: &AssetStore, key: &AssetKey, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let fetched = assets.get(key, range).await.unwrap().expect("stored");
    let chunks: Vec<Bytes> = fetched.body.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test]
async fn a_render_is_copied_whole_and_read_back_by_range() {
    let (assets, folder) = store(&[]);
    assert!(!folder.0.exists(), "nothing is created before the first use");
    let body = video(300_000);
    let url = serve("video/mp4", body.clone()).await;
    let key = key("render-0.mp4");
    assert_eq!(assets.head(&key).await.unwrap(), None);
    assert!(assets.get(&key, None).await.unwrap().is_none());
    assert!(!folder.0.exists(), "reading creates nothing");
    assert_eq!(
        assets.put_from_url(&key, &format!("{url}/video.mp4")).await.unwrap(),
        300_000
    );
    assert_eq!(assets.head(&key).await.unwrap(), Some(300_000));
    assert_eq!(read_all(&assets, &key, None).await, body);
    assert_eq!(read_all(&assets, &key, Some(1000..1010)).await, body[1000..1010]);
    // The same key again replaces it (the copy is idempotent).
    assets.put_from_url(&key, &format!("{url}/video.mp4")).await.unwrap();
    assert_eq!(assets.head(&key).await.unwrap(), Some(300_000));
    assert!(folder.0.join("nested/assets/aismr/run_test/render-0.mp4").is_file());
}

#[tokio::test]
async fn only_an_mp4_within_the_limit_is_copied() {
    let (assets, _folder) = store(&[("ASSET_MAX_BYTES", "1000")]);
    let cases: [(&'static str, Vec<u8>, &str); 5] = [
        ("text/html", video(100), "text/html"),
        ("video/mp4", b"<html>not a video</html>".to_vec(), "not an MP4"),
        ("video/mp4", b"tiny".to_vec(), "not an MP4"),
        ("video/mp4", video(1001), "over ASSET_MAX_BYTES"),
        ("application/octet-stream", video(1000), ""),
    ];
    for (i, (content_type, body, refused)) in cases.into_iter().enumerate() {
        let url = serve(content_type, body).await;
        let key = key(&format!("render-{i}.mp4"));
        let copied = assets.put_from_url(&key, &format!("{url}/video.mp4")).await;
        if refused.is_empty() {
            assert_eq!(copied.unwrap(), 1000);
            continue;
        }
        match copied {
            Err(AssetError::Source(message)) => assert!(message.contains(refused), "{i}: {message}"),
            other => panic!("{i}: {other:?}"),
        }
        assert_eq!(
            assets.head(&key).await.unwrap(),
            None,
            "{i}: nothing half-written stays"
        );
    }
    let url = serve("video/mp4", video(10)).await;
    let gone = assets.put_from_url(&key("gone.mp4"), &format!("{url}/gone.mp4")).await;
    assert!(matches!(gone, Err(AssetError::Source(m)) if m.contains("403")));
    let closed = assets
        .put_from_url(&key("closed.mp4"), "http://127.0.0.1:9/x.mp4")
        .await;
    assert!(matches!(closed, Err(AssetError::Source(_))), "{closed:?}");
}

#[tokio::test]
async fn bytes_are_stored_and_missing_assets_are_none() {
    let (assets, _folder) = store(&[]);
    let key = key("render-3.mp4");
    assets.put_bytes(&key, Bytes::from_static(MP4_HEAD)).await.unwrap();
    assert_eq!(assets.head(&key).await.unwrap(), Some(MP4_HEAD.len() as u64));
    assert!(assets.get(&other_key(), None).await.unwrap().is_none());
}

fn other_key() -> AssetKey {
    AssetKey::from_parts("aismr", "run_other", "render-0.mp4").unwrap()
}

#[tokio::test]
async fn the_api_url_is_signed_under_the_public_base_and_expires() {
    let (assets, _folder) = store(&[]);
    let key = key("render-0.mp4");
    let url = assets.url_for(&key, assets.url_ttl()).await.unwrap();
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!(parsed.host_str(), Some("mw.example.com"));
    assert_eq!(parsed.path(), "/v1/assets/aismr/run_test/render-0.mp4");
    let query: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    let expires: i64 = query["expires"].parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((expires - now - 7 * 24 * 3600).abs() < 5, "a week by default");
    assert!(assets.verify(&key, &query["expires"], &query["sig"], now));
    assert!(!assets.verify(&key, &query["expires"], &query["sig"], expires + 1));
    assert!(!assets.verify(&other_key(), &query["expires"], &query["sig"], now));
}
