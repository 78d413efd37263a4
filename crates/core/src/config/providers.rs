//! The live providers' endpoints and keys, and the providers mode.

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::Environment;
use super::reader::Reader;
use crate::providers::{Provider, ProviderMode, is_loopback_host};

/// One live provider's endpoint and credentials.
#[derive(Debug, Clone)]
pub struct ProviderEndpoint {
    pub base_url: Url,
    pub api_key: Option<SecretString>,
    /// kie.ai: `KIEAI_SIGNING_SECRET` (Upload-Post signs nothing).
    pub signing_secret: Option<SecretString>,
}

impl ProviderEndpoint {
    pub fn host(&self) -> &str {
        self.base_url.host_str().unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    pub kieai: ProviderEndpoint,
    pub shotstack: ProviderEndpoint,
    /// `stage` (sandbox) or `v1` (production renders).
    pub shotstack_stage: String,
    pub upload_post: ProviderEndpoint,
    /// Delay before the mock kie.ai sends its callback.
    pub mock_delay_ms: u64,
}

/// The kie.ai callback signing key of mock runs when `KIEAI_SIGNING_SECRET`
/// is not set. It is public: it never verifies a live run's callback.
pub const MOCK_KIEAI_SIGNING_SECRET: &str = "mock-kieai-signing-secret";

impl ProvidersConfig {
    /// The key the mock kie.ai signs its callbacks with, and the only one
    /// that verifies callbacks of mock runs: `KIEAI_SIGNING_SECRET`, else
    /// the public [`MOCK_KIEAI_SIGNING_SECRET`].
    pub fn mock_kieai_signing_key(&self) -> Vec<u8> {
        self.live_kieai_signing_key()
            .unwrap_or_else(|| MOCK_KIEAI_SIGNING_SECRET.as_bytes().to_vec())
    }

    /// The only key that verifies callbacks of live runs:
    /// `KIEAI_SIGNING_SECRET` (unset: live callbacks are refused).
    pub fn live_kieai_signing_key(&self) -> Option<Vec<u8>> {
        self.kieai
            .signing_secret
            .as_ref()
            .map(|s| s.expose_secret().as_bytes().to_vec())
    }

    pub fn endpoint(&self, provider: Provider) -> &ProviderEndpoint {
        match provider {
            Provider::KieAi => &self.kieai,
            Provider::Shotstack => &self.shotstack,
            Provider::UploadPost => &self.upload_post,
        }
    }

    /// Whether every secret live mode needs for `provider` is set.
    pub fn is_configured(&self, provider: Provider) -> bool {
        let endpoint = self.endpoint(provider);
        endpoint.api_key.is_some() && (provider.secret_vars().len() < 2 || endpoint.signing_secret.is_some())
    }
}

/// `USE_MOCK_PROVIDERS` (true/false) or `PROVIDERS_MODE` (mock/live); mock
/// when neither is set. Both set and disagreeing is a problem.
pub(super) fn providers_mode<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> ProviderMode {
    let from_flag = r
        .bool("USE_MOCK_PROVIDERS")
        .map(|mock| if mock { ProviderMode::Mock } else { ProviderMode::Live });
    let from_mode = r.get("PROVIDERS_MODE").and_then(|raw| match raw.parse() {
        Ok(mode) => Some(mode),
        Err(err) => {
            r.problem("PROVIDERS_MODE", err);
            None
        }
    });
    match (from_flag, from_mode) {
        (Some(a), Some(b)) if a != b => {
            r.problem(
                "PROVIDERS_MODE",
                format!("says {b} but USE_MOCK_PROVIDERS says {a}; set only one"),
            );
            a
        }
        (Some(mode), _) | (None, Some(mode)) => mode,
        (None, None) => ProviderMode::Mock,
    }
}

pub(super) fn provider_endpoint<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    provider: Provider,
    environment: Environment,
) -> ProviderEndpoint {
    let var = provider.base_url_var();
    let base_url = r.url(var, provider.default_base_url());
    let host = base_url.host_str().unwrap_or_default().to_string();
    let loopback = is_loopback_host(&host);
    if host != provider.allowed_host() && !(loopback && environment != Environment::Production) {
        r.problem(
            var,
            format!(
                "host {host:?} is not allowed; use {} (loopback hosts are allowed outside production)",
                provider.allowed_host()
            ),
        );
    } else if base_url.scheme() != "https" && !loopback {
        r.problem(var, "must use https");
    }
    if !matches!(base_url.path(), "" | "/") || base_url.query().is_some() {
        r.problem(
            var,
            "must be scheme and host only (the client appends the documented paths)",
        );
    }
    let [key_var, rest @ ..] = provider.secret_vars() else {
        unreachable!("every provider has an API key variable")
    };
    ProviderEndpoint {
        base_url,
        api_key: r.secret(key_var),
        signing_secret: rest.first().and_then(|var| r.secret(var)),
    }
}
