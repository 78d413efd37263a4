//! Where rendered videos are kept (`ASSET_*`): a local folder by default,
//! an S3-compatible bucket when `ASSET_BUCKET_URL` is set; how long the
//! URLs handed out for them live, and how large a copy may be. See
//! docs/operations.md, "Storage".

use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

use super::Environment;
use super::reader::Reader;
use crate::providers::is_loopback_host;

/// `ASSET_URL_TTL_HOURS` bounds: at least a day (Upload-Post fetches the
/// video some time after the publish), at most 7 days, the longest an S3
/// presigned URL (SigV4) may live.
pub const MIN_ASSET_URL_TTL_HOURS: u64 = 24;
pub const MAX_ASSET_URL_TTL_HOURS: u64 = 168;

#[derive(Debug, Clone)]
pub struct AssetsConfig {
    /// `ASSET_DIR` (default `data/assets`): the local folder, used when no
    /// bucket is set. The API and the orchestrator must both reach it.
    pub dir: PathBuf,
    /// `ASSET_BUCKET_URL` and the S3 settings, when set.
    pub bucket: Option<BucketConfig>,
    /// `ASSET_URL_TTL_HOURS` (default 168): how long a URL handed out for
    /// an asset (signed API URL or presigned bucket URL) stays valid.
    pub url_ttl_hours: u64,
    /// `ASSET_MAX_BYTES` (default 512 MiB): a render larger than this is
    /// not copied (the copy fails).
    pub max_bytes: u64,
}

/// An S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct BucketConfig {
    /// The bucket of `ASSET_BUCKET_URL` (`s3://bucket/prefix`).
    pub bucket: String,
    /// The key prefix (without slashes at either end; may be empty).
    pub prefix: String,
    /// `ASSET_S3_ENDPOINT`: MinIO, moto, R2… (path-style requests); AWS
    /// itself when unset.
    pub endpoint: Option<Url>,
    /// `AWS_REGION` (default `us-east-1`).
    pub region: String,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`; when both are unset the
    /// machine's own credentials (instance profile, web identity) are used.
    pub access_key_id: Option<SecretString>,
    pub secret_access_key: Option<SecretString>,
}

impl AssetsConfig {
    /// How long a URL handed out for an asset lives (clamped, so a
    /// hand-built `Config` stays within what S3 accepts).
    pub fn url_ttl(&self) -> std::time::Duration {
        let hours = self
            .url_ttl_hours
            .clamp(MIN_ASSET_URL_TTL_HOURS, MAX_ASSET_URL_TTL_HOURS);
        std::time::Duration::from_secs(hours * 3600)
    }

    /// Deployed with a local folder: both services must see the same one.
    pub fn warning(&self, environment: Environment) -> Option<String> {
        (self.bucket.is_none() && environment != Environment::Development).then(|| {
            format!(
                "ASSET_DIR ({}) is a local folder: the orchestrator writes the rendered videos there and the API \
                 serves them from there, so both must see the same folder (one machine or a shared volume); \
                 set ASSET_BUCKET_URL to keep them in a bucket",
                self.dir.display()
            )
        })
    }
}

/// Reads and checks the `ASSET_*` variables (and the AWS ones when a bucket
/// is set).
pub(super) fn assets_config<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    environment: Environment,
) -> AssetsConfig {
    let dir = PathBuf::from(r.get("ASSET_DIR").unwrap_or_else(|| "data/assets".into()));
    let url_ttl_hours = r.parse("ASSET_URL_TTL_HOURS", MAX_ASSET_URL_TTL_HOURS);
    if !(MIN_ASSET_URL_TTL_HOURS..=MAX_ASSET_URL_TTL_HOURS).contains(&url_ttl_hours) {
        r.problem(
            "ASSET_URL_TTL_HOURS",
            format!(
                "must be between {MIN_ASSET_URL_TTL_HOURS} and {MAX_ASSET_URL_TTL_HOURS} hours \
                 (S3 presigned URLs live at most 7 days), got {url_ttl_hours}"
            ),
        );
    }
    let max_bytes = r.parse("ASSET_MAX_BYTES", 512 * 1024 * 1024u64);
    if max_bytes == 0 {
        r.problem("ASSET_MAX_BYTES", "must be at least 1");
    }
    let bucket = r.get("ASSET_BUCKET_URL").and_then(|raw| bucket(r, &raw, environment));
    if bucket.is_none() && r.get("ASSET_S3_ENDPOINT").is_some() {
        r.problem("ASSET_S3_ENDPOINT", "set without ASSET_BUCKET_URL (s3://bucket/prefix)");
    }
    AssetsConfig {
        dir,
        bucket,
        url_ttl_hours,
        max_bytes,
    }
}

fn bucket<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    raw: &str,
    environment: Environment,
) -> Option<BucketConfig> {
    let Some((bucket, prefix)) = parse_bucket_url(raw) else {
        r.problem(
            "ASSET_BUCKET_URL",
            format!("{raw:?} is not s3://bucket or s3://bucket/prefix"),
        );
        return None;
    };
    let endpoint = r.get("ASSET_S3_ENDPOINT").and_then(|raw| match Url::parse(&raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            let loopback = is_loopback_host(url.host_str().unwrap_or_default());
            if url.scheme() != "https" && !loopback && environment == Environment::Production {
                r.problem("ASSET_S3_ENDPOINT", "must use https in production");
            }
            Some(url)
        }
        _ => {
            r.problem(
                "ASSET_S3_ENDPOINT",
                format!("{raw:?} is not an http(s) URL with a host"),
            );
            None
        }
    });
    let access_key_id = r.secret("AWS_ACCESS_KEY_ID");
    let secret_access_key = r.secret("AWS_SECRET_ACCESS_KEY");
    match (&access_key_id, &secret_access_key) {
        (Some(_), None) => r.problem("AWS_SECRET_ACCESS_KEY", "required with AWS_ACCESS_KEY_ID"),
        (None, Some(_)) => r.problem("AWS_ACCESS_KEY_ID", "required with AWS_SECRET_ACCESS_KEY"),
        _ => {}
    }
    Some(BucketConfig {
        bucket,
        prefix,
        endpoint,
        region: r.get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        access_key_id,
        secret_access_key,
    })
}

/// `s3://bucket` or `s3://bucket/some/prefix/`: the bucket and the prefix
/// (slashes trimmed). `None` for anything else.
pub fn parse_bucket_url(raw: &str) -> Option<(String, String)> {
    let rest = raw.trim().strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let prefix = prefix.trim_matches('/');
    let valid_prefix = prefix
        .split('/')
        .all(|part| prefix.is_empty() || !(part.is_empty() || part == "." || part == ".."));
    (valid_bucket && valid_prefix).then(|| (bucket.to_string(), prefix.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::{Config, ConfigError};
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        Config::from_lookup(|var| map.get(var).map(|v| v.to_string()))
    }

    fn problems(vars: &[(&str, &str)]) -> Vec<&'static str> {
        config(vars).unwrap_err().problems.iter().map(|p| p.var).collect()
    }

    #[test]
    fn a_local_folder_by_default_with_week_long_urls() {
        let assets = config(&[]).unwrap().assets;
        assert_eq!(assets.dir, PathBuf::from("data/assets"));
        assert!(assets.bucket.is_none());
        assert_eq!(assets.url_ttl(), std::time::Duration::from_secs(7 * 24 * 3600));
        assert_eq!(assets.max_bytes, 512 * 1024 * 1024);
    }

    #[test]
    fn a_bucket_url_names_the_bucket_and_prefix() {
        let assets = config(&[
            ("ASSET_BUCKET_URL", "s3://my-videos/prod/renders/"),
            ("ASSET_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap()
        .assets;
        let bucket = assets.bucket.unwrap();
        assert_eq!(
            (bucket.bucket.as_str(), bucket.prefix.as_str(), bucket.region.as_str()),
            ("my-videos", "prod/renders", "eu-west-1")
        );
        assert_eq!(bucket.endpoint.unwrap().as_str(), "http://127.0.0.1:9000/");
        assert_eq!(parse_bucket_url("s3://abc"), Some(("abc".into(), String::new())));
    }

    #[test]
    fn bad_asset_settings_are_named() {
        for bad in [
            "https://bucket/x",
            "s3://",
            "s3://UPPER",
            "s3://ok-bucket/a/../b",
            "s3://ok-bucket/a//b",
        ] {
            assert_eq!(problems(&[("ASSET_BUCKET_URL", bad)]), ["ASSET_BUCKET_URL"], "{bad}");
        }
        assert_eq!(problems(&[("ASSET_URL_TTL_HOURS", "23")]), ["ASSET_URL_TTL_HOURS"]);
        assert_eq!(problems(&[("ASSET_URL_TTL_HOURS", "169")]), ["ASSET_URL_TTL_HOURS"]);
        assert_eq!(problems(&[("ASSET_MAX_BYTES", "0")]), ["ASSET_MAX_BYTES"]);
        assert_eq!(
            problems(&[("ASSET_S3_ENDPOINT", "http://127.0.0.1:9000")]),
            ["ASSET_S3_ENDPOINT"]
        );
        assert_eq!(
            problems(&[("ASSET_BUCKET_URL", "s3://videos"), ("AWS_ACCESS_KEY_ID", "id")]),
            ["AWS_SECRET_ACCESS_KEY"]
        );
        assert_eq!(
            problems(&[("ASSET_BUCKET_URL", "s3://videos"), ("ASSET_S3_ENDPOINT", "minio:9000")]),
            ["ASSET_S3_ENDPOINT"]
        );
    }
}
