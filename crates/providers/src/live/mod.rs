//! Live HTTP clients of the paid providers (kie.ai, Shotstack, Upload-Post),
//! following `design/PROVIDERS.md`. Each client is given a base URL (scheme
//! and host only) and appends the documented paths. Every request has a
//! timeout; transient failures (connect errors, timeouts, HTTP 429 and 5xx,
//! and kie.ai's 429/5xx `code` in a 200 answer) are retried a bounded number
//! of times with exponential backoff and jitter; other refusals are never
//! retried. API keys only ever go into request headers: they are not logged
//! and never appear in errors. Redirects are not followed, so a key cannot be
//! forwarded to another host.
//!
//! One file per provider ([`kieai`], [`shotstack`], [`upload_post`]) and
//! the HTTP bits they share ([`client`]: base URLs, the retry loop, error
//! excerpts).

use std::sync::Arc;
use std::time::Duration;

use myloware_core::config::{Config, Environment};
use myloware_core::providers::{Provider, is_loopback_host};
use secrecy::SecretString;
use url::Url;

use crate::{ProviderError, Providers, Publisher, Renderer};

mod client;
pub mod kieai;
pub mod shotstack;
pub mod upload_post;

pub use kieai::KieAi;
pub use shotstack::Shotstack;
pub use upload_post::UploadPost;

/// Timeout and retry policy of the live clients.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// Timeout of each request (connect, send and read the answer).
    pub timeout: Duration,
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// Base of the exponential backoff between attempts.
    pub backoff: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Builds the three live clients from the configuration (used only in live
/// mode). Names the missing variable when a key is not set.
pub fn live_providers(config: &Config) -> Result<Providers, String> {
    live_providers_with(config, LiveSettings::default())
}

/// [`live_providers`] with explicit timeout and retry settings.
pub fn live_providers_with(config: &Config, settings: LiveSettings) -> Result<Providers, String> {
    Ok(Providers {
        video: Arc::new(kieai(config, settings.clone())?),
        render: Arc::new(shotstack(config, settings.clone())?),
        publish: Arc::new(upload_post(config, settings)?),
    })
}

fn kieai(config: &Config, settings: LiveSettings) -> Result<KieAi, String> {
    let (base, key) = base_and_key(config, Provider::KieAi)?;
    KieAi::new(base, key, settings)
}

fn shotstack(config: &Config, settings: LiveSettings) -> Result<Shotstack, String> {
    let (base, key) = base_and_key(config, Provider::Shotstack)?;
    Shotstack::new(base, config.providers.shotstack_stage.clone(), key, settings)
}

fn upload_post(config: &Config, settings: LiveSettings) -> Result<UploadPost, String> {
    let (base, key) = base_and_key(config, Provider::UploadPost)?;
    UploadPost::new(base, key, settings)
}

/// What each client is built from: the provider's checked base URL, and
/// its key (naming the variable when it is not set).
fn base_and_key(config: &Config, provider: Provider) -> Result<(Url, SecretString), String> {
    let base = checked_base(config, provider)?;
    let key = config
        .providers
        .endpoint(provider)
        .api_key
        .clone()
        .ok_or_else(|| format!("{} is not set", provider.secret_vars()[0]))?;
    Ok((base, key))
}

/// The provider's base URL, checked against its allowlist again (loopback
/// hosts only outside production).
fn checked_base(config: &Config, provider: Provider) -> Result<Url, String> {
    let base = &config.providers.endpoint(provider).base_url;
    let host = base.host_str().unwrap_or_default();
    let loopback = is_loopback_host(host);
    if host != provider.allowed_host() && !(loopback && config.environment != Environment::Production) {
        return Err(format!(
            "{}: host {host:?} is not allowed; use {}",
            provider.base_url_var(),
            provider.allowed_host()
        ));
    }
    if base.scheme() != "https" && !loopback {
        return Err(format!("{}: must use https", provider.base_url_var()));
    }
    Ok(base.clone())
}

/// What `mw validate env --online` asks each provider: requests that cost
/// nothing and show the host answers and accepts the key (kie.ai's credit
/// balance, a Shotstack render lookup, an Upload-Post status lookup).
pub async fn probe(config: &Config) -> Vec<(Provider, Result<String, String>)> {
    let settings = LiveSettings {
        max_attempts: 2,
        timeout: Duration::from_secs(10),
        ..LiveSettings::default()
    };
    let mut out = Vec::new();
    let kie = async {
        kieai(config, settings.clone())?
            .credits()
            .await
            .map(|n| format!("key accepted, {n} credits left"))
            .map_err(|e| e.to_string())
    };
    out.push((Provider::KieAi, kie.await));
    let render = async {
        let client = shotstack(config, settings.clone())?;
        // A render that does not exist: 404 means the key was accepted.
        match client.status("00000000-0000-0000-0000-000000000000").await {
            Ok(_) => Ok("key accepted".to_string()),
            Err(ProviderError::Refused { code: 404, .. }) => Ok("key accepted".to_string()),
            Err(err) => Err(err.to_string()),
        }
    };
    out.push((Provider::Shotstack, render.await));
    let upload = async {
        upload_post(config, settings)?
            .status("mw-validate-env-probe")
            .await
            .map(|_| "key accepted".to_string())
            .map_err(|e| e.to_string())
    };
    out.push((Provider::UploadPost, upload.await));
    out
}
