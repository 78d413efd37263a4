//! Durable assets: the rendered videos, copied out of the provider's
//! temporary storage (Shotstack deletes its output after 24 h) into the
//! project's own, through the `object_store` crate: a local folder
//! (`ASSET_DIR`) by default, an S3-compatible bucket when
//! `ASSET_BUCKET_URL` is set. Both services use one [`AssetStore`]: the
//! orchestrator copies a render in ([`AssetStore::put_from_url`], or
//! [`AssetStore::put_bytes`] for the mock render) and checks that it is
//! still there before publishing ([`AssetStore::head`]); the API serves a
//! folder's assets ([`AssetStore::get`]) under the signed URLs
//! [`AssetStore::url_for`] mints (a bucket's assets get the bucket's
//! presigned URLs instead). See docs/operations.md, "Storage".
//!
//! Crate graph: `myloware-assets` imports `myloware-core` only; the API
//! and the orchestrator import it.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use myloware_core::config::{BucketConfig, Config};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutOptions, RetryConfig,
};
use secrecy::ExposeSecret;
use url::Url;

mod copy;
pub mod key;
pub mod range;
pub mod signed;

pub use key::AssetKey;
pub use range::{Ranged, resolve as resolve_range};
use signed::UrlKeys;

/// What every stored asset is.
pub const CONTENT_TYPE: &str = "video/mp4";

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// The source could not be copied: unreachable, refused, not an MP4,
    /// or larger than `ASSET_MAX_BYTES`.
    #[error("cannot copy the render from its source: {0}")]
    Source(String),
    /// The storage failed (or is not usable: the reason).
    #[error("asset storage: {0}")]
    Storage(String),
}

impl From<object_store::Error> for AssetError {
    fn from(err: object_store::Error) -> Self {
        AssetError::Storage(err.to_string())
    }
}

/// Bytes of a stored asset, as read.
pub struct Fetched {
    /// The asset's whole size.
    pub size: u64,
    /// The bytes `body` holds.
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, object_store::Error>>,
}

enum Backend {
    /// `ASSET_DIR`; the folder is created on first use, so a service that
    /// never stores an asset leaves none behind.
    Local {
        dir: PathBuf,
        store: tokio::sync::OnceCell<Arc<LocalFileSystem>>,
    },
    S3 {
        store: Arc<object_store::aws::AmazonS3>,
        prefix: String,
    },
    /// The storage could not be set up (the reason): every use fails.
    Unusable(String),
}

/// The project's asset storage; cheap to share (`Arc`).
pub struct AssetStore {
    backend: Backend,
    /// Signed API URLs: `{PUBLIC_BASE_URL}/v1/assets/{key}`.
    public_base: Url,
    keys: UrlKeys,
    ttl: Duration,
    max_bytes: u64,
    http: reqwest::Client,
}

impl AssetStore {
    /// The storage `config` names (`ASSET_*`); one that cannot be set up
    /// is logged and fails every use with the reason.
    pub fn from_config(config: &Config) -> AssetStore {
        let assets = &config.assets;
        let backend = match &assets.bucket {
            None => Backend::Local {
                dir: assets.dir.clone(),
                store: tokio::sync::OnceCell::new(),
            },
            Some(bucket) => match s3(bucket) {
                Ok(store) => Backend::S3 {
                    store: Arc::new(store),
                    prefix: bucket.prefix.clone(),
                },
                Err(err) => {
                    tracing::error!(error = %err, bucket = %bucket.bucket, "the asset bucket cannot be used");
                    Backend::Unusable(format!("bucket {:?}: {err}", bucket.bucket))
                }
            },
        };
        AssetStore {
            backend,
            public_base: config.public_base_url.clone(),
            keys: UrlKeys::derive(&config.hitl_secrets()),
            ttl: assets.url_ttl(),
            max_bytes: assets.max_bytes,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(30))
                .timeout(Duration::from_secs(600))
                .build()
                .expect("the HTTP client builds"),
        }
    }

    /// Where the assets are, for logs and `mw validate env`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local { dir, .. } => format!("local folder {}", dir.display()),
            Backend::S3 { store, prefix } => format!("bucket {store} (prefix {prefix:?})"),
            Backend::Unusable(why) => format!("unusable: {why}"),
        }
    }

    /// How long the URLs handed out live by default (`ASSET_URL_TTL_HOURS`).
    pub fn url_ttl(&self) -> Duration {
        self.ttl
    }

    async fn store(&self) -> Result<Arc<dyn ObjectStore>, AssetError> {
        match &self.backend {
            Backend::Local { dir, store } => {
                let store = store
                    .get_or_try_init(|| async {
                        std::fs::create_dir_all(dir)
                            .map_err(|err| AssetError::Storage(format!("cannot create {}: {err}", dir.display())))?;
                        Ok::<_, AssetError>(Arc::new(LocalFileSystem::new_with_prefix(dir)?))
                    })
                    .await?;
                Ok(store.clone())
            }
            Backend::S3 { store, .. } => Ok(store.clone()),
            Backend::Unusable(why) => Err(AssetError::Storage(why.clone())),
        }
    }

    fn path(&self, key: &AssetKey) -> Path {
        match &self.backend {
            Backend::S3 { prefix, .. } if !prefix.is_empty() => Path::from(format!("{prefix}/{key}")),
            _ => Path::from(key.as_str()),
        }
    }

    /// What a put sets on the object: the content type, where the store
    /// keeps one (a bucket serves it with its presigned URLs).
    fn put_options(&self) -> PutOptions {
        let mut attributes = Attributes::new();
        if matches!(self.backend, Backend::S3 { .. }) {
            attributes.insert(Attribute::ContentType, CONTENT_TYPE.into());
        }
        PutOptions {
            attributes,
            ..PutOptions::default()
        }
    }

    /// Stores `bytes` under `key` (the same key again replaces it whole).
    pub async fn put_bytes(&self, key: &AssetKey, bytes: Bytes) -> Result<(), AssetError> {
        let store = self.store().await?;
        store
            .put_opts(&self.path(key), bytes.into(), self.put_options())
            .await?;
        Ok(())
    }

    /// Copies the MP4 at `url` under `key`, streamed (never held whole in
    /// memory) and bounded by `ASSET_MAX_BYTES`: the answer must be a
    /// success whose content type is `video/mp4` (or a generic binary
    /// one) and whose body starts like an MP4. The object appears only once
    /// complete. The bytes copied.
    pub async fn put_from_url(&self, key: &AssetKey, url: &str) -> Result<u64, AssetError> {
        let store = self.store().await?;
        copy::from_url(self, store, key, url).await
    }

    /// A local folder not created yet holds nothing (reading never
    /// creates it).
    fn nothing_stored(&self) -> bool {
        matches!(&self.backend, Backend::Local { dir, store } if store.get().is_none() && !dir.is_dir())
    }

    /// The size of the asset under `key`, or `None` when there is none.
    pub async fn head(&self, key: &AssetKey) -> Result<Option<u64>, AssetError> {
        if self.nothing_stored() {
            return Ok(None);
        }
        let store = self.store().await?;
        match store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// `range` of the asset under `key` (all of it when `None`), streamed;
    /// `None` when there is no such asset.
    pub async fn get(&self, key: &AssetKey, range: Option<Range<u64>>) -> Result<Option<Fetched>, AssetError> {
        if self.nothing_stored() {
            return Ok(None);
        }
        let store = self.store().await?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        match store.get_opts(&self.path(key), options).await {
            Ok(result) => Ok(Some(Fetched {
                size: result.meta.size,
                range: result.range.clone(),
                body: result.into_stream(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// A URL anyone may GET the asset at for `ttl`: the bucket's presigned
    /// URL, or the API's signed one under `PUBLIC_BASE_URL`.
    pub async fn url_for(&self, key: &AssetKey, ttl: Duration) -> Result<String, AssetError> {
        match &self.backend {
            Backend::S3 { store, .. } => {
                let url = store.signed_url(http::Method::GET, &self.path(key), ttl).await?;
                Ok(url.to_string())
            }
            Backend::Unusable(why) => Err(AssetError::Storage(why.clone())),
            Backend::Local { .. } => {
                let expires = chrono::Utc::now().timestamp() + ttl.as_secs() as i64;
                Ok(self.api_url(key, expires))
            }
        }
    }

    /// The API's signed URL of `key` until `expires` (Unix seconds).
    pub fn api_url(&self, key: &AssetKey, expires: i64) -> String {
        let mut url = self.public_base.clone();
        url.set_path(&format!("/v1/assets/{key}"));
        url.query_pairs_mut()
            .append_pair("expires", &expires.to_string())
            .append_pair("sig", &self.keys.sign(key, expires));
        url.to_string()
    }

    /// Whether `expires` and `sig` (an API URL's query) open `key` at `now`.
    pub fn verify(&self, key: &AssetKey, expires: &str, sig: &str, now: i64) -> bool {
        self.keys.verify(key, expires, sig, now)
    }
}

/// A bucket client with short retries: a step or a request waits seconds
/// on a failing bucket, not minutes.
fn s3(bucket: &BucketConfig) -> Result<object_store::aws::AmazonS3, object_store::Error> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&bucket.bucket)
        .with_region(&bucket.region)
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(60)),
        );
    if let Some(endpoint) = &bucket.endpoint {
        builder = builder
            .with_endpoint(endpoint.as_str().trim_end_matches('/'))
            .with_allow_http(endpoint.scheme() == "http")
            .with_virtual_hosted_style_request(false);
    }
    if let (Some(id), Some(secret)) = (&bucket.access_key_id, &bucket.secret_access_key) {
        builder = builder
            .with_access_key_id(id.expose_secret())
            .with_secret_access_key(secret.expose_secret());
    }
    builder.build()
}
