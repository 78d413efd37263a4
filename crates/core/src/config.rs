//! Typed configuration, read from a variable lookup (the process
//! environment, plus `.env.development` in development: the CLI merges
//! them). Everything is checked in one pass so an operator sees every
//! problem at once, each naming its variable. Secrets are `SecretString`s:
//! their `Debug` prints `[REDACTED]`.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::providers::{Provider, ProviderMode, is_loopback_host};

/// The development API key, accepted only in development.
pub const DEV_API_KEY: &str = "dev-api-key-not-for-production";
/// The development HITL secret, accepted only in development.
pub const DEV_HITL_SECRET: &str = "dev-hitl-secret-not-for-production";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/myloware.db";
/// The shortest API key or HITL secret accepted outside development.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" | "local" | "test" => Ok(Self::Development),
            "staging" => Ok(Self::Staging),
            "production" | "prod" => Ok(Self::Production),
            other => Err(format!("expected development, staging or production, got {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

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

#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub api_key: Option<SecretString>,
    pub base_url: Url,
    pub model: String,
}

/// Where chat messages go besides the transcript: Telegram and a
/// Slack-compatible incoming webhook. Both optional.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// `TELEGRAM_BOT_TOKEN`: send messages as this bot.
    pub telegram_bot_token: Option<SecretString>,
    /// `TELEGRAM_WEBHOOK_SECRET`: the secret token Telegram sends with each
    /// update (`setWebhook ... secret_token`); without it the Telegram front
    /// door refuses every update.
    pub telegram_webhook_secret: Option<SecretString>,
    /// `TELEGRAM_CHAT_ID`: where gate links of users who did not come from
    /// Telegram go (users from Telegram get them in their own chat).
    pub telegram_chat_id: Option<String>,
    /// `TELEGRAM_API_BASE_URL` (`https://api.telegram.org`).
    pub telegram_base_url: Url,
    /// `CHAT_WEBHOOK_URL`: every gate notification is posted here as
    /// `{"text": ...}` (Slack, Mattermost, Discord's `/slack` endpoint).
    pub webhook_url: Option<Url>,
}

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    pub otlp_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`; may hold credentials).
    pub otlp_headers: Option<SecretString>,
    pub langsmith_api_key: Option<SecretString>,
    pub langsmith_project: Option<String>,
    pub langsmith_endpoint: Option<String>,
    /// `METRICS_RUN_SERIES_TTL` (seconds, default 3600): how long a finished
    /// run's metric series stay in the services' registries.
    pub run_series_ttl: std::time::Duration,
}

/// Requests per minute and burst for each client on the rate-limited routes
/// (run start, chat, HITL decisions). `per_minute == 0` disables limiting.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitConfig {
    pub per_minute: u32,
    pub burst: u32,
    /// Take the client address from `Fly-Client-IP` / `X-Forwarded-For`
    /// (only behind a proxy that sets them).
    pub trust_proxy_headers: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub providers_mode: ProviderMode,
    /// `API_KEY` first, then every key of `API_KEYS`.
    pub api_keys: Vec<SecretString>,
    pub hitl_secret: SecretString,
    pub hitl_secret_previous: Option<SecretString>,
    pub hitl_token_expiry_hours: u64,
    pub database_url: SecretString,
    pub public_base_url: Url,
    pub orchestrator_url: Url,
    pub api_url: Url,
    pub bind_host: IpAddr,
    pub api_port: u16,
    pub orchestrator_port: u16,
    pub projects_dir: PathBuf,
    pub providers: ProvidersConfig,
    pub llm: LlmConfig,
    pub chat: ChatConfig,
    pub telemetry: TelemetryConfig,
    pub rate_limit: RateLimitConfig,
    /// Body limit for JSON routes and webhooks.
    pub max_body_bytes: usize,
    pub engine: EngineConfig,
}

/// The orchestrator's engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Concurrent step workers per orchestrator process (`ORCHESTRATOR_WORKERS`).
    pub workers: usize,
    /// How long a claimed execution stays leased without a heartbeat.
    pub lease_secs: u64,
    /// Idle workers look for due work this often (`ENGINE_POLL_MS`).
    pub poll_ms: u64,
    /// Ask kie.ai for clips whose callback has not come after this long
    /// (`CLIP_POLL_AFTER_SECS`; mock runs use a few times the mock delay).
    pub clip_poll_after_secs: u64,
    /// Give up on clips after this long (`CLIP_TIMEOUT_SECS`).
    pub clip_timeout_secs: u64,
    /// Share of mock kie.ai clips that fail (`MOCK_KIEAI_FAILURE_RATE`, 0 to 1).
    pub mock_failure_rate: f64,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub var: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

/// Every problem found, in the order the variables were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.problems.len())?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads variables and collects problems instead of stopping at the first.
struct Reader<F> {
    lookup: F,
    problems: Vec<Problem>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    /// The variable's value; empty or blank counts as unset.
    fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn problem(&mut self, var: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            var,
            message: message.into(),
        });
    }

    fn secret(&self, var: &str) -> Option<SecretString> {
        self.get(var).map(SecretString::from)
    }

    fn parse<T: FromStr>(&mut self, var: &'static str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.get(var) {
            None => default,
            Some(raw) => match raw.parse() {
                Ok(value) => value,
                Err(err) => {
                    self.problem(var, format!("cannot parse {raw:?}: {err}"));
                    default
                }
            },
        }
    }

    fn bool(&mut self, var: &'static str) -> Option<bool> {
        let raw = self.get(var)?;
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => {
                self.problem(var, format!("expected true or false, got {raw:?}"));
                None
            }
        }
    }

    fn url(&mut self, var: &'static str, default: &str) -> Url {
        let raw = self.get(var).unwrap_or_else(|| default.to_string());
        match Url::parse(&raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => url,
            Ok(_) => {
                self.problem(var, format!("{raw:?} is not an http(s) URL with a host"));
                Url::parse(default).expect("default URLs are valid")
            }
            Err(err) => {
                self.problem(var, format!("{raw:?} is not a URL: {err}"));
                Url::parse(default).expect("default URLs are valid")
            }
        }
    }
}

impl Config {
    /// Reads the process environment as it is (the CLI merges
    /// `.env.development` into it first in development).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads and checks the configuration from `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
        };

        let environment = match r.get("ENVIRONMENT").or_else(|| r.get("APP_ENV")) {
            None => Environment::Development,
            Some(raw) => raw.parse().unwrap_or_else(|err| {
                r.problem("ENVIRONMENT", err);
                Environment::Production
            }),
        };
        let providers_mode = providers_mode(&mut r);
        let (api_keys, hitl_secret) = service_secrets(&mut r, environment);
        let hitl_secret_previous = r.secret("HITL_SECRET_PREVIOUS");
        let hitl_token_expiry_hours = r.parse("HITL_TOKEN_EXPIRY_HOURS", 24u64);
        if hitl_token_expiry_hours == 0 {
            r.problem("HITL_TOKEN_EXPIRY_HOURS", "must be at least 1");
        }

        let database_url = r
            .get("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            r.problem(
                "DATABASE_URL",
                "must start with sqlite:// or postgres:// (the value is not shown: it may hold a password)",
            );
        }

        let api_port = r.parse("API_PORT", 8080u16);
        let orchestrator_port = r.parse("ORCHESTRATOR_PORT", 8090u16);
        let public_base_url = r.url("PUBLIC_BASE_URL", &format!("http://localhost:{api_port}"));
        let orchestrator_url = r.url("ORCHESTRATOR_URL", &format!("http://127.0.0.1:{orchestrator_port}"));
        let api_url = r.url("API_URL", &format!("http://127.0.0.1:{api_port}"));
        let bind_host = r.parse("BIND_HOST", IpAddr::from([0, 0, 0, 0]));

        let providers = ProvidersConfig {
            kieai: provider_endpoint(&mut r, Provider::KieAi, environment),
            shotstack: provider_endpoint(&mut r, Provider::Shotstack, environment),
            shotstack_stage: r.get("SHOTSTACK_STAGE").unwrap_or_else(|| "stage".into()),
            upload_post: provider_endpoint(&mut r, Provider::UploadPost, environment),
            mock_delay_ms: r.parse("MOCK_PROVIDER_DELAY_MS", 20u64),
        };
        if !matches!(providers.shotstack_stage.as_str(), "stage" | "v1") {
            r.problem("SHOTSTACK_STAGE", "must be stage (sandbox) or v1 (production)");
        }
        if providers_mode == ProviderMode::Live {
            for provider in Provider::ALL {
                for var in provider.secret_vars() {
                    if r.get(var).is_none() {
                        r.problem(var, "required in live mode (USE_MOCK_PROVIDERS=false)");
                    }
                }
            }
        }

        let llm = LlmConfig {
            api_key: r.secret("OPENAI_API_KEY"),
            base_url: r.url("OPENAI_BASE_URL", "https://api.openai.com/v1"),
            model: r.get("LLM_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
        };
        let chat = chat_config(&mut r, environment);
        let log_format = match r.get("LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            None if environment == Environment::Development => LogFormat::Pretty,
            None => LogFormat::Json,
            Some(other) => {
                r.problem("LOG_FORMAT", format!("expected json or pretty, got {other:?}"));
                LogFormat::Json
            }
        };
        let telemetry = TelemetryConfig {
            log_format,
            otlp_endpoint: r.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            otlp_headers: r.secret("OTEL_EXPORTER_OTLP_HEADERS"),
            langsmith_api_key: r.secret("LANGSMITH_API_KEY"),
            langsmith_project: r.get("LANGSMITH_PROJECT"),
            langsmith_endpoint: r.get("LANGSMITH_ENDPOINT"),
            run_series_ttl: std::time::Duration::from_secs(r.parse("METRICS_RUN_SERIES_TTL", 3600u64)),
        };
        let rate_limit = RateLimitConfig {
            per_minute: r.parse("RATE_LIMIT_PER_MINUTE", 120u32),
            burst: r.parse("RATE_LIMIT_BURST", 30u32),
            trust_proxy_headers: r.bool("TRUST_PROXY_HEADERS").unwrap_or(false),
        };
        let max_body_bytes = r.parse("MAX_BODY_BYTES", 1024 * 1024usize);
        let projects_dir = PathBuf::from(r.get("PROJECTS_DIR").unwrap_or_else(|| "projects".into()));
        let engine = EngineConfig {
            workers: r.parse("ORCHESTRATOR_WORKERS", 4usize),
            lease_secs: r.parse("ENGINE_LEASE_SECS", 30u64),
            poll_ms: r.parse("ENGINE_POLL_MS", 250u64),
            clip_poll_after_secs: r.parse("CLIP_POLL_AFTER_SECS", 120u64),
            clip_timeout_secs: r.parse("CLIP_TIMEOUT_SECS", 1800u64),
            mock_failure_rate: r.parse("MOCK_KIEAI_FAILURE_RATE", 0.0f64),
        };
        if engine.workers == 0 {
            r.problem("ORCHESTRATOR_WORKERS", "must be at least 1");
        }
        if engine.lease_secs < 3 {
            r.problem("ENGINE_LEASE_SECS", "must be at least 3");
        }
        if !(0.0..=1.0).contains(&engine.mock_failure_rate) {
            r.problem("MOCK_KIEAI_FAILURE_RATE", "must be between 0 and 1");
        }

        if !r.problems.is_empty() {
            return Err(ConfigError { problems: r.problems });
        }
        Ok(Config {
            environment,
            providers_mode,
            api_keys,
            hitl_secret,
            hitl_secret_previous,
            hitl_token_expiry_hours,
            database_url: SecretString::from(database_url),
            public_base_url,
            orchestrator_url,
            api_url,
            bind_host,
            api_port,
            orchestrator_port,
            projects_dir,
            providers,
            llm,
            chat,
            telemetry,
            rate_limit,
            max_body_bytes,
            engine,
        })
    }

    /// The HITL secret's bytes (also the key of per-run callback tokens).
    pub fn hitl_secret_bytes(&self) -> &[u8] {
        self.hitl_secret.expose_secret().as_bytes()
    }

    /// The database URL with any password replaced by `***`, for logs.
    pub fn database_url_redacted(&self) -> String {
        redact_url_password(self.database_url.expose_secret())
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose_secret().starts_with("sqlite:")
    }
}

/// `USE_MOCK_PROVIDERS` (true/false) or `PROVIDERS_MODE` (mock/live); mock
/// when neither is set. Both set and disagreeing is a problem.
fn providers_mode<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> ProviderMode {
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

/// `API_KEY` (+ `API_KEYS`) and `HITL_SECRET`: development defaults are
/// allowed only in development; elsewhere each must be set, not a default,
/// and at least [`MIN_SECRET_LEN`] characters.
fn service_secrets<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    environment: Environment,
) -> (Vec<SecretString>, SecretString) {
    let check = |r: &mut Reader<F>, var: &'static str, default: &str| -> String {
        match r.get(var) {
            None if environment == Environment::Development => default.to_string(),
            None => {
                r.problem(var, format!("missing; required in {}", environment.as_str()));
                String::new()
            }
            Some(value) => {
                if environment != Environment::Development {
                    if value == default || value.starts_with("dev-") {
                        r.problem(var, "is a development default; set a random value");
                    } else if value.chars().count() < MIN_SECRET_LEN {
                        r.problem(var, format!("too short; use at least {MIN_SECRET_LEN} characters"));
                    }
                }
                value
            }
        }
    };
    let api_key = check(r, "API_KEY", DEV_API_KEY);
    let hitl_secret = check(r, "HITL_SECRET", DEV_HITL_SECRET);
    let mut api_keys = vec![SecretString::from(api_key)];
    for extra in r
        .get("API_KEYS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        if environment != Environment::Development && extra.chars().count() < MIN_SECRET_LEN {
            r.problem(
                "API_KEYS",
                format!("every key needs at least {MIN_SECRET_LEN} characters"),
            );
        }
        api_keys.push(SecretString::from(extra.to_string()));
    }
    (api_keys, SecretString::from(hitl_secret))
}

fn provider_endpoint<F: Fn(&str) -> Option<String>>(
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

fn chat_config<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, environment: Environment) -> ChatConfig {
    let telegram_base_url = r.url("TELEGRAM_API_BASE_URL", "https://api.telegram.org");
    let host = telegram_base_url.host_str().unwrap_or_default().to_string();
    let loopback = is_loopback_host(&host);
    if host != "api.telegram.org" && !(loopback && environment != Environment::Production) {
        r.problem(
            "TELEGRAM_API_BASE_URL",
            format!(
                "host {host:?} is not allowed; use api.telegram.org (loopback hosts are allowed outside production)"
            ),
        );
    }
    let webhook_url = r
        .get("CHAT_WEBHOOK_URL")
        .map(|_| r.url("CHAT_WEBHOOK_URL", "https://invalid.example"));
    if let Some(url) = &webhook_url {
        let loopback = is_loopback_host(url.host_str().unwrap_or_default());
        if url.scheme() != "https" && !(loopback && environment != Environment::Production) {
            r.problem(
                "CHAT_WEBHOOK_URL",
                "must use https (plain http to loopback hosts is allowed outside production)",
            );
        }
    }
    let telegram_webhook_secret = r.secret("TELEGRAM_WEBHOOK_SECRET");
    if let Some(secret) = &telegram_webhook_secret {
        let secret = secret.expose_secret();
        if secret.len() > 256
            || !secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            r.problem(
                "TELEGRAM_WEBHOOK_SECRET",
                "Telegram accepts 1 to 256 characters of A-Z, a-z, 0-9, _ and -",
            );
        }
    }
    ChatConfig {
        telegram_bot_token: r.secret("TELEGRAM_BOT_TOKEN"),
        telegram_webhook_secret,
        telegram_chat_id: r.get("TELEGRAM_CHAT_ID"),
        telegram_base_url,
        webhook_url,
    }
}

fn redact_url_password(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|var| map.get(var).cloned())
    }

    fn vars_named(err: &ConfigError) -> Vec<&'static str> {
        err.problems.iter().map(|p| p.var).collect()
    }

    const LIVE_SECRETS: &[(&str, &str)] = &[
        ("KIEAI_API_KEY", "k"),
        ("KIEAI_SIGNING_SECRET", "s"),
        ("SHOTSTACK_API_KEY", "k"),
        ("UPLOAD_POST_API_KEY", "k"),
    ];

    #[test]
    fn development_defaults_need_no_variables() {
        let config = config(&[]).unwrap();
        assert_eq!(config.environment, Environment::Development);
        assert_eq!(config.providers_mode, ProviderMode::Mock);
        assert_eq!(config.api_keys[0].expose_secret(), DEV_API_KEY);
        assert_eq!(config.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(config.api_port, 8080);
        assert_eq!(config.orchestrator_port, 8090);
        assert_eq!(config.orchestrator_url.as_str(), "http://127.0.0.1:8090/");
    }

    #[test]
    fn live_mode_without_secrets_names_every_missing_variable() {
        let err = config(&[("USE_MOCK_PROVIDERS", "false")]).unwrap_err();
        assert_eq!(
            vars_named(&err),
            [
                "KIEAI_API_KEY",
                "KIEAI_SIGNING_SECRET",
                "SHOTSTACK_API_KEY",
                "UPLOAD_POST_API_KEY",
            ]
        );
        assert!(err.to_string().contains("KIEAI_SIGNING_SECRET: required in live mode"));
    }

    #[test]
    fn live_mode_with_every_secret_starts_in_development() {
        let mut vars = LIVE_SECRETS.to_vec();
        vars.push(("USE_MOCK_PROVIDERS", "false"));
        let config = config(&vars).unwrap();
        assert_eq!(config.providers_mode, ProviderMode::Live);
        assert!(Provider::ALL.iter().all(|p| config.providers.is_configured(*p)));
    }

    /// Upload-Post's webhooks are unsigned: live mode needs no signing
    /// secret for it, and live callbacks of kie.ai never fall back to the
    /// public mock key.
    #[test]
    fn upload_post_needs_no_signing_secret_and_kieai_has_no_mock_fallback() {
        let mut vars = LIVE_SECRETS.to_vec();
        vars.push(("USE_MOCK_PROVIDERS", "false"));
        assert!(!vars.iter().any(|(var, _)| *var == "UPLOAD_POST_SIGNING_SECRET"));
        let config = config(&vars).unwrap();
        assert!(config.providers.is_configured(Provider::UploadPost));
        assert_eq!(config.providers.live_kieai_signing_key().as_deref(), Some(&b"s"[..]));

        let mock = super::Config::from_lookup(|_| None).unwrap();
        assert_eq!(mock.providers.live_kieai_signing_key(), None);
        assert_eq!(
            mock.providers.mock_kieai_signing_key(),
            MOCK_KIEAI_SIGNING_SECRET.as_bytes()
        );
    }

    #[test]
    fn providers_mode_is_an_alias_and_conflicts_are_refused() {
        assert_eq!(
            config(&[("PROVIDERS_MODE", "mock")]).unwrap().providers_mode,
            ProviderMode::Mock
        );
        let err = config(&[("PROVIDERS_MODE", "live"), ("USE_MOCK_PROVIDERS", "true")]).unwrap_err();
        assert_eq!(vars_named(&err), ["PROVIDERS_MODE"]);
        let err = config(&[("USE_MOCK_PROVIDERS", "maybe")]).unwrap_err();
        assert_eq!(vars_named(&err), ["USE_MOCK_PROVIDERS"]);
    }

    #[test]
    fn outside_development_default_or_short_keys_are_refused() {
        let err = config(&[("ENVIRONMENT", "production")]).unwrap_err();
        assert_eq!(vars_named(&err), ["API_KEY", "HITL_SECRET"]);

        let err = config(&[
            ("ENVIRONMENT", "production"),
            ("API_KEY", DEV_API_KEY),
            ("HITL_SECRET", "short"),
        ])
        .unwrap_err();
        assert_eq!(vars_named(&err), ["API_KEY", "HITL_SECRET"]);
        assert!(err.problems[0].message.contains("development default"));
        assert!(err.problems[1].message.contains("at least 32"));

        let strong = "x".repeat(40);
        let ok = config(&[
            ("ENVIRONMENT", "production"),
            ("API_KEY", &strong),
            ("HITL_SECRET", &strong),
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn problems_never_contain_secret_values() {
        let err = config(&[
            ("ENVIRONMENT", "production"),
            ("API_KEY", "sekrit-value"),
            ("HITL_SECRET", "other-sekrit"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("sekrit"), "{text}");
        let config = config(&[("API_KEY", "sekrit-value")]).unwrap();
        assert!(!format!("{config:?}").contains("sekrit"));
    }

    #[test]
    fn provider_hosts_are_checked_against_the_allowlist() {
        let err = config(&[("KIEAI_BASE_URL", "https://evil.example.com")]).unwrap_err();
        assert_eq!(vars_named(&err), ["KIEAI_BASE_URL"]);
        let ok = config(&[("KIEAI_BASE_URL", "http://127.0.0.1:9999")]).unwrap();
        assert_eq!(ok.providers.kieai.host(), "127.0.0.1");
        let strong = "x".repeat(40);
        let err = config(&[
            ("ENVIRONMENT", "production"),
            ("API_KEY", &strong),
            ("HITL_SECRET", &strong),
            ("KIEAI_BASE_URL", "http://127.0.0.1:9999"),
        ])
        .unwrap_err();
        assert_eq!(vars_named(&err), ["KIEAI_BASE_URL"]);
        let err = config(&[("SHOTSTACK_BASE_URL", "https://api.shotstack.io/edit/v1")]).unwrap_err();
        assert_eq!(vars_named(&err), ["SHOTSTACK_BASE_URL"]);
    }

    #[test]
    fn bad_values_are_reported_together() {
        let err = config(&[
            ("API_PORT", "eighty"),
            ("DATABASE_URL", "mysql://x"),
            ("LOG_FORMAT", "xml"),
        ])
        .unwrap_err();
        assert_eq!(vars_named(&err), ["DATABASE_URL", "API_PORT", "LOG_FORMAT"]);
    }

    #[test]
    fn database_passwords_are_redacted() {
        let config = config(&[("DATABASE_URL", "postgres://me:hunter2@db:5432/mw")]).unwrap();
        assert_eq!(config.database_url_redacted(), "postgres://me:***@db:5432/mw");
    }
}
