//! A real S3-compatible server: moto's server (`moto_server`) on a free
//! loopback port, one per test, killed when dropped. `scripts/moto-venv`
//! installs it into `target/moto-venv` (`.ci/run` does; `MOTO_SERVER`
//! names another binary). Without it a test is skipped, except under CI.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::process::{Process, Scratch};

/// The bucket's credentials (moto takes any).
pub const ACCESS_KEY_ID: &str = "moto-test-key-id";
pub const SECRET_ACCESS_KEY: &str = "moto-test-secret-key";

pub struct Moto {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    http: reqwest::Client,
    _process: Process,
    _dir: Scratch,
}

fn binary() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo().join("target/moto-venv/bin/moto_server"))
}

impl Moto {
    /// A fresh server, or `None` (the test skips) when moto is not
    /// installed outside CI.
    pub async fn start() -> Option<Moto> {
        let bin = binary();
        if !bin.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing: .ci/run installs it with scripts/moto-venv",
                bin.display()
            );
            eprintln!(
                "{} missing (run scripts/moto-venv): skipping the S3 test",
                bin.display()
            );
            return None;
        }
        let port = crate::free_port();
        let dir = Scratch::new("moto");
        let env = vec![("PATH".to_string(), std::env::var("PATH").unwrap_or_default())];
        let process = Process::spawn(
            "moto",
            &bin,
            &["-H", "127.0.0.1", "-p", &port.to_string()],
            &env,
            dir.path(),
        )
        .expect("moto_server starts");
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _process: process,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while moto
            .http
            .get(format!("{}/moto-api/", moto.endpoint))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "moto_server did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(moto)
    }

    /// Creates `bucket` (moto takes an unsigned request).
    pub async fn create_bucket(&self, bucket: &str) {
        let response = self
            .http
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "creating {bucket}: {}",
            response.status()
        );
    }

    /// Deletes the object `key` of `bucket` (a signed request, as an
    /// operator's or a lifecycle rule's would be).
    pub async fn delete(&self, bucket: &str, key: &str) {
        use object_store::ObjectStoreExt;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_access_key_id(ACCESS_KEY_ID)
            .with_secret_access_key(SECRET_ACCESS_KEY)
            .build()
            .unwrap();
        store.delete(&object_store::path::Path::from(key)).await.unwrap();
    }

    /// The variables of services whose asset store is `bucket/prefix` here.
    pub fn vars(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        [
            ("ASSET_BUCKET_URL", format!("s3://{bucket}/{prefix}")),
            ("ASSET_S3_ENDPOINT", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
