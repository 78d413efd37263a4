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

use crate::auth::NamedKey;
use crate::internal::InternalKeys;
use crate::providers::{Provider, ProviderMode, is_loopback_host};

/// The development API key, accepted only in development.
pub const DEV_API_KEY: &str = "dev-api-key-not-for-production";
/// The development HITL secret, accepted only in development.
pub const DEV_HITL_SECRET: &str = "dev-hitl-secret-not-for-production";
/// The development internal secret (API <-> orchestrator), accepted only in
/// development when `INTERNAL_SECRET` is unset (`mw dev` generates one).
pub const DEV_INTERNAL_SECRET: &str = "dev-internal-secret-not-for-production";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/myloware.db";
/// The shortest API key or HITL secret accepted outside development.
pub const MIN_SECRET_LEN: usize = 32;
/// The longest accepted `HITL_TOKEN_EXPIRY_HOURS` (30 days).
pub const MAX_HITL_TOKEN_EXPIRY_HOURS: u64 = 720;

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
    /// `TELEGRAM_ALLOWED_CHAT_IDS`: the only chats whose updates are
    /// handled; every other chat is answered `ignored` (nothing run, stored
    /// or replied). Empty: every chat is refused.
    pub telegram_allowed_chat_ids: Vec<String>,
    /// `TELEGRAM_APPROVER_CHAT_IDS` (default: the allowed list): the chats
    /// whose "approve"/"reject" decide gates.
    pub telegram_approver_chat_ids: Vec<String>,
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
    /// `METRICS_MAX_RUN_SERIES` (default 10,000, at most 100,000): runs with
    /// HTTP metric series at once; requests of further runs are counted
    /// without their run (`myloware_metrics_labels_dropped_total`).
    pub max_run_series: usize,
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

/// How long a client may take and how many connections it may hold, on
/// both services (`HTTP_*`; see docs/operations.md, "HTTP limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// `HTTP_HEADER_TIMEOUT_SECS` (10): a connection must finish its
    /// request headers within this long, also after an earlier request on a
    /// kept-alive connection, or it is closed.
    pub header_timeout: std::time::Duration,
    /// `HTTP_BODY_TIMEOUT_SECS` (30): the whole body must arrive within this
    /// long after the headers, or the request is answered 408.
    pub body_timeout: std::time::Duration,
    /// `HTTP_REQUEST_TIMEOUT_SECS` (120): a request not answered within this
    /// long is answered 503. Above the API's 90 s wait for a chat turn.
    pub request_timeout: std::time::Duration,
    /// `HTTP_MAX_CONNECTIONS` (1024): open connections per service; beyond
    /// it new ones wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            request_timeout: std::time::Duration::from_secs(120),
            max_connections: 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub providers_mode: ProviderMode,
    /// `API_KEY` first, then every key of `API_KEYS` (`name:role:key` or a
    /// bare key, which is an `admin`).
    pub api_keys: Vec<NamedKey>,
    /// `INTERNAL_SECRET` (and `INTERNAL_SECRET_PREVIOUS` during a rotation):
    /// the API and the orchestrator sign their requests to each other with it.
    /// `None` in development when unset: `mw dev` generates one, a service on
    /// its own uses [`DEV_INTERNAL_SECRET`].
    pub internal_secret: Option<SecretString>,
    pub internal_secret_previous: Option<SecretString>,
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
    pub http: HttpLimits,
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
        let (internal_secret, internal_secret_previous) =
            internal_secrets(&mut r, environment, &hitl_secret, &api_keys);
        let hitl_secret_previous = r.secret("HITL_SECRET_PREVIOUS");
        if let Some(problem) = hitl_secret_previous
            .as_ref()
            .and_then(|value| weak_secret(environment, value.expose_secret(), DEV_HITL_SECRET))
        {
            r.problem("HITL_SECRET_PREVIOUS", problem);
        }
        let hitl_token_expiry_hours = r.parse("HITL_TOKEN_EXPIRY_HOURS", 24u64);
        if !(1..=MAX_HITL_TOKEN_EXPIRY_HOURS).contains(&hitl_token_expiry_hours) {
            r.problem(
                "HITL_TOKEN_EXPIRY_HOURS",
                format!("must be between 1 and {MAX_HITL_TOKEN_EXPIRY_HOURS} hours, got {hitl_token_expiry_hours}"),
            );
        }

        let database_url = database_url(&mut r, environment);

        let api_port = r.parse("API_PORT", 8080u16);
        let orchestrator_port = r.parse("ORCHESTRATOR_PORT", 8090u16);
        let public_base_url = r.url("PUBLIC_BASE_URL", &format!("http://localhost:{api_port}"));
        if environment != Environment::Development && public_base_url.scheme() != "https" {
            r.problem(
                "PUBLIC_BASE_URL",
                format!(
                    "must be an https URL in {} (approval links carry tokens); set it explicitly",
                    environment.as_str()
                ),
            );
        }
        let orchestrator_url = r.url("ORCHESTRATOR_URL", &format!("http://127.0.0.1:{orchestrator_port}"));
        let api_url = r.url("API_URL", &format!("http://127.0.0.1:{api_port}"));
        // Loopback unless told otherwise: the images and fly.toml set BIND_HOST.
        let bind_host = r.parse("BIND_HOST", IpAddr::from([127, 0, 0, 1]));

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
            max_run_series: r.parse("METRICS_MAX_RUN_SERIES", 10_000usize),
        };
        if telemetry.max_run_series > 100_000 {
            r.problem(
                "METRICS_MAX_RUN_SERIES",
                "at most 100000 (each run's series take memory in both services)",
            );
        }
        let rate_limit = RateLimitConfig {
            per_minute: r.parse("RATE_LIMIT_PER_MINUTE", 120u32),
            burst: r.parse("RATE_LIMIT_BURST", 30u32),
            trust_proxy_headers: r.bool("TRUST_PROXY_HEADERS").unwrap_or(false),
        };
        if rate_limit.per_minute == 0 && environment == Environment::Production {
            r.problem(
                "RATE_LIMIT_PER_MINUTE",
                "0 turns every rate limit off, including the limits on refused requests; not allowed in production",
            );
        }
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
        let http = http_limits(&mut r);

        if !r.problems.is_empty() {
            return Err(ConfigError { problems: r.problems });
        }
        Ok(Config {
            environment,
            providers_mode,
            api_keys,
            internal_secret,
            internal_secret_previous,
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
            http,
        })
    }

    /// The internal credential's keys (see [`crate::internal`]).
    pub fn internal_keys(&self) -> InternalKeys {
        InternalKeys::new(
            self.internal_secret
                .clone()
                .unwrap_or_else(|| SecretString::from(DEV_INTERNAL_SECRET)),
            self.internal_secret_previous.clone(),
        )
    }

    /// The HITL secrets a token may be signed with: the current one and,
    /// during a rotation, `HITL_SECRET_PREVIOUS` (minting uses the first).
    pub fn hitl_secrets(&self) -> Vec<&[u8]> {
        std::iter::once(self.hitl_secret_bytes())
            .chain(self.hitl_secret_previous.as_ref().map(|s| s.expose_secret().as_bytes()))
            .collect()
    }

    /// The HITL secret's bytes (also the key of per-run callback tokens).
    pub fn hitl_secret_bytes(&self) -> &[u8] {
        self.hitl_secret.expose_secret().as_bytes()
    }

    /// What works but probably not as meant (`mw validate env` prints
    /// these; the services log them at startup).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.chat.telegram_bot_token.is_some() && self.chat.telegram_allowed_chat_ids.is_empty() {
            warnings.push(
                "TELEGRAM_ALLOWED_CHAT_IDS is empty: the Telegram bot refuses every chat (list the chat ids that may talk to Brendan)"
                    .into(),
            );
        }
        warnings
    }

    /// How long an approval link lives. `HITL_TOKEN_EXPIRY_HOURS` is checked
    /// to be 1 to 720; the clamp keeps a hand-built `Config` from overflowing.
    pub fn hitl_token_lifetime(&self) -> chrono::TimeDelta {
        let hours = self.hitl_token_expiry_hours.clamp(1, MAX_HITL_TOKEN_EXPIRY_HOURS);
        chrono::TimeDelta::hours(hours as i64)
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
/// and at least [`MIN_SECRET_LEN`] characters. Each key entry is
/// `name:role:key` or a bare key (an `admin`); names are unique.
fn service_secrets<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    environment: Environment,
) -> (Vec<NamedKey>, SecretString) {
    let mut entries: Vec<(&'static str, String)> = Vec::new();
    match r.get("API_KEY") {
        None if environment == Environment::Development => entries.push(("API_KEY", DEV_API_KEY.to_string())),
        None => r.problem("API_KEY", format!("missing; required in {}", environment.as_str())),
        Some(value) => entries.push(("API_KEY", value)),
    }
    for extra in r.get("API_KEYS").unwrap_or_default().split(',').map(str::trim) {
        if !extra.is_empty() {
            entries.push(("API_KEYS", extra.to_string()));
        }
    }
    let mut api_keys: Vec<NamedKey> = Vec::new();
    for (var, entry) in entries {
        match NamedKey::parse(&entry, None) {
            Err(problem) => r.problem(var, problem),
            Ok(key) => {
                if let Some(problem) = weak_secret(environment, key.key.expose_secret(), DEV_API_KEY) {
                    if entry.starts_with(&format!("{}:", key.name)) {
                        r.problem(var, format!("the key named {:?} {problem}", key.name));
                    } else {
                        r.problem(var, problem);
                    }
                } else if api_keys.iter().any(|k| k.name == key.name) {
                    r.problem(var, format!("two keys are named {:?}; names must be unique", key.name));
                } else if let Some(twin) = api_keys
                    .iter()
                    .find(|k| k.key.expose_secret() == key.key.expose_secret())
                {
                    r.problem(
                        var,
                        format!("the keys named {:?} and {:?} are the same secret", twin.name, key.name),
                    );
                }
                api_keys.push(key);
            }
        }
    }
    let hitl_secret = match r.get("HITL_SECRET") {
        None if environment == Environment::Development => DEV_HITL_SECRET.to_string(),
        None => {
            r.problem("HITL_SECRET", format!("missing; required in {}", environment.as_str()));
            String::new()
        }
        Some(value) => {
            if let Some(problem) = weak_secret(environment, &value, DEV_HITL_SECRET) {
                r.problem("HITL_SECRET", problem);
            }
            value
        }
    };
    (api_keys, SecretString::from(hitl_secret))
}

/// Why `value` may not be used as a secret in `environment`, if it may not.
fn weak_secret(environment: Environment, value: &str, default: &str) -> Option<String> {
    if environment == Environment::Development {
        None
    } else if value == default || value.starts_with("dev-") {
        Some("is a development default; set a random value".into())
    } else if value.chars().count() < MIN_SECRET_LEN {
        Some(format!("too short; use at least {MIN_SECRET_LEN} characters"))
    } else {
        None
    }
}

/// `INTERNAL_SECRET` (+ `INTERNAL_SECRET_PREVIOUS`): required outside
/// development, strong, and used for nothing else (not an API key, not the
/// HITL secret).
fn internal_secrets<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    environment: Environment,
    hitl_secret: &SecretString,
    api_keys: &[NamedKey],
) -> (Option<SecretString>, Option<SecretString>) {
    let current = r.get("INTERNAL_SECRET");
    let previous = r.get("INTERNAL_SECRET_PREVIOUS");
    if let Some(problem) = previous
        .as_deref()
        .and_then(|value| weak_secret(environment, value, DEV_INTERNAL_SECRET))
    {
        r.problem("INTERNAL_SECRET_PREVIOUS", problem);
    }
    match &current {
        None if environment != Environment::Development => r.problem(
            "INTERNAL_SECRET",
            format!(
                "missing; required in {} (the API and the orchestrator sign their requests to each other with it)",
                environment.as_str()
            ),
        ),
        None => {}
        Some(value) => {
            if let Some(problem) = weak_secret(environment, value, DEV_INTERNAL_SECRET) {
                r.problem("INTERNAL_SECRET", problem);
            } else if value == hitl_secret.expose_secret() || api_keys.iter().any(|k| k.key.expose_secret() == value) {
                r.problem(
                    "INTERNAL_SECRET",
                    "must differ from every API key and from HITL_SECRET (one secret per purpose)",
                );
            }
        }
    }
    (current.map(SecretString::from), previous.map(SecretString::from))
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
    let telegram_allowed_chat_ids = chat_ids(r, "TELEGRAM_ALLOWED_CHAT_IDS").unwrap_or_default();
    let telegram_approver_chat_ids =
        chat_ids(r, "TELEGRAM_APPROVER_CHAT_IDS").unwrap_or_else(|| telegram_allowed_chat_ids.clone());
    if let Some(stray) = telegram_approver_chat_ids
        .iter()
        .find(|id| !telegram_allowed_chat_ids.contains(id))
    {
        r.problem(
            "TELEGRAM_APPROVER_CHAT_IDS",
            format!("chat {stray} is not in TELEGRAM_ALLOWED_CHAT_IDS; an approver chat must be allowed to chat"),
        );
    }
    ChatConfig {
        telegram_bot_token: r.secret("TELEGRAM_BOT_TOKEN"),
        telegram_webhook_secret,
        telegram_allowed_chat_ids,
        telegram_approver_chat_ids,
        telegram_chat_id: r.get("TELEGRAM_CHAT_ID"),
        telegram_base_url,
        webhook_url,
    }
}

/// A comma-separated list of Telegram chat ids (integers; groups are
/// negative), `None` when unset.
fn chat_ids<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, var: &'static str) -> Option<Vec<String>> {
    let raw = r.get(var)?;
    let mut ids = Vec::new();
    for id in raw.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        match id.parse::<i64>() {
            Ok(id) => ids.push(id.to_string()),
            Err(_) => r.problem(var, format!("{id:?} is not a Telegram chat id (an integer)")),
        }
    }
    Some(ids)
}

/// `DATABASE_URL`: SQLite or Postgres. Development falls back to a SQLite
/// file; staging must name its database; production must use Postgres (its
/// API and orchestrator run on separate machines that share one database:
/// a SQLite file would be a different, ephemeral database on each).
fn database_url<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, environment: Environment) -> String {
    let Some(url) = r.get("DATABASE_URL") else {
        if environment != Environment::Development {
            r.problem(
                "DATABASE_URL",
                format!("missing; required in {} (postgres://...)", environment.as_str()),
            );
        }
        return DEFAULT_DATABASE_URL.to_string();
    };
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !(postgres || url.starts_with("sqlite:")) {
        r.problem(
            "DATABASE_URL",
            "must start with sqlite:// or postgres:// (the value is not shown: it may hold a password)",
        );
    } else if !postgres && environment == Environment::Production {
        r.problem(
            "DATABASE_URL",
            "must be postgres:// in production (SQLite is one machine's file, not shared)",
        );
    }
    url
}

/// `HTTP_*`: the servers' timeouts and connection cap, each within bounds
/// that keep the service usable (a zero timeout would refuse everyone).
fn http_limits<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> HttpLimits {
    let defaults = HttpLimits::default();
    let secs = |r: &mut Reader<F>, var: &'static str, default: std::time::Duration, max: u64| {
        let value = r.parse(var, default.as_secs());
        if (1..=max).contains(&value) {
            std::time::Duration::from_secs(value)
        } else {
            r.problem(var, format!("must be between 1 and {max} seconds, got {value}"));
            default
        }
    };
    let header_timeout = secs(r, "HTTP_HEADER_TIMEOUT_SECS", defaults.header_timeout, 300);
    let body_timeout = secs(r, "HTTP_BODY_TIMEOUT_SECS", defaults.body_timeout, 3600);
    let request_timeout = secs(r, "HTTP_REQUEST_TIMEOUT_SECS", defaults.request_timeout, 3600);
    let max_connections = r.parse("HTTP_MAX_CONNECTIONS", defaults.max_connections);
    if !(1..=65_536).contains(&max_connections) {
        r.problem(
            "HTTP_MAX_CONNECTIONS",
            format!("must be between 1 and 65536, got {max_connections}"),
        );
    }
    HttpLimits {
        header_timeout,
        body_timeout,
        request_timeout,
        max_connections: max_connections.clamp(1, 65_536),
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

    /// What production needs besides the keys: Postgres and an https base URL.
    const DEPLOYED: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://mw@db:5432/mw"),
        ("PUBLIC_BASE_URL", "https://mw.example.com"),
    ];

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
        assert_eq!(config.api_keys[0].key.expose_secret(), DEV_API_KEY);
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
        assert_eq!(
            vars_named(&err),
            [
                "API_KEY",
                "HITL_SECRET",
                "INTERNAL_SECRET",
                "DATABASE_URL",
                "PUBLIC_BASE_URL"
            ]
        );

        let err = config(&[
            ("ENVIRONMENT", "production"),
            DEPLOYED[0],
            DEPLOYED[1],
            ("API_KEY", DEV_API_KEY),
            ("HITL_SECRET", "short"),
            ("INTERNAL_SECRET", &"i".repeat(40)),
        ])
        .unwrap_err();
        assert_eq!(vars_named(&err), ["API_KEY", "HITL_SECRET"]);
        assert!(err.problems[0].message.contains("development default"));
        assert!(err.problems[1].message.contains("at least 32"));

        let strong = "x".repeat(40);
        let ok = config(&[
            ("ENVIRONMENT", "production"),
            DEPLOYED[0],
            DEPLOYED[1],
            ("API_KEY", &strong),
            ("HITL_SECRET", &strong),
            ("INTERNAL_SECRET", &"i".repeat(40)),
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn named_keys_with_roles_are_read_and_checked() {
        let strong = "k".repeat(40);
        let production = |keys: &str| {
            config(&[
                ("ENVIRONMENT", "production"),
                ("API_KEY", &strong),
                ("API_KEYS", keys),
                ("HITL_SECRET", &"h".repeat(40)),
                ("INTERNAL_SECRET", &"i".repeat(40)),
                DEPLOYED[0],
                DEPLOYED[1],
            ])
        };
        let ok = production(&format!(
            "ann:approver:{}, ci:viewer:{}",
            "a".repeat(40),
            "c".repeat(40)
        ))
        .unwrap();
        let roles: Vec<_> = ok.api_keys.iter().map(|k| (k.name.as_str(), k.role)).collect();
        assert_eq!(roles[0].1, crate::auth::Role::Admin, "a bare API_KEY is an admin");
        assert_eq!(
            &roles[1..],
            [("ann", crate::auth::Role::Approver), ("ci", crate::auth::Role::Viewer)]
        );

        let err = production("ann:approver:short").unwrap_err();
        assert_eq!(vars_named(&err), ["API_KEYS"]);
        assert!(err.problems[0].message.contains("\"ann\""), "{err}");
        let err = production(&format!("x:viewer:{0},x:admin:{0}b", "a".repeat(40))).unwrap_err();
        assert!(err.problems[0].message.contains("unique"), "{err}");
        let err = production(&format!("bad name:viewer:{}", "a".repeat(40))).unwrap_err();
        assert_eq!(vars_named(&err), ["API_KEYS"]);
    }

    #[test]
    fn previous_secrets_twin_keys_and_unlimited_rates_are_refused_in_production() {
        let (strong, hitl, internal) = ("k".repeat(40), "h".repeat(40), "i".repeat(40));
        let production = |extra: &[(&'static str, &str)]| {
            let mut vars = vec![
                ("ENVIRONMENT", "production"),
                ("API_KEY", strong.as_str()),
                ("HITL_SECRET", hitl.as_str()),
                ("INTERNAL_SECRET", internal.as_str()),
                DEPLOYED[0],
                DEPLOYED[1],
            ];
            vars.extend_from_slice(extra);
            config(&vars)
        };
        assert!(production(&[]).is_ok());
        for (var, value) in [
            ("INTERNAL_SECRET_PREVIOUS", DEV_INTERNAL_SECRET),
            ("INTERNAL_SECRET_PREVIOUS", "short"),
            ("HITL_SECRET_PREVIOUS", DEV_HITL_SECRET),
            ("RATE_LIMIT_PER_MINUTE", "0"),
        ] {
            assert_eq!(
                vars_named(&production(&[(var, value)]).unwrap_err()),
                [var],
                "{var}={value}"
            );
        }
        let twin = format!("ops:operator:{strong}");
        let err = production(&[("API_KEYS", twin.as_str())]).unwrap_err();
        assert!(err.problems[0].message.contains("same secret"), "{err}");
        let err = production(&[("API_KEYS", "ann:aprover:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]).unwrap_err();
        assert!(err.problems[0].message.contains("unknown role"), "{err}");
        // Development keeps its switch.
        assert!(config(&[("RATE_LIMIT_PER_MINUTE", "0")]).is_ok());
    }

    #[test]
    fn the_internal_secret_is_required_outside_development_and_used_for_nothing_else() {
        let strong = "k".repeat(40);
        let with_internal = |internal: &str| {
            config(&[
                ("ENVIRONMENT", "staging"),
                ("API_KEY", &strong),
                ("HITL_SECRET", &"h".repeat(40)),
                ("INTERNAL_SECRET", internal),
                DEPLOYED[0],
                DEPLOYED[1],
            ])
        };
        assert_eq!(vars_named(&with_internal(&strong).unwrap_err()), ["INTERNAL_SECRET"]);
        assert_eq!(
            vars_named(&with_internal(&"h".repeat(40)).unwrap_err()),
            ["INTERNAL_SECRET"]
        );
        assert_eq!(vars_named(&with_internal("short").unwrap_err()), ["INTERNAL_SECRET"]);
        assert!(with_internal(&"i".repeat(40)).is_ok());
        // Development: optional; the services fall back to the dev secret.
        let dev = config(&[]).unwrap();
        assert!(dev.internal_secret.is_none());
        let _ = dev.internal_keys();
    }

    #[test]
    fn telegram_chat_lists_are_integers_and_approvers_are_allowed_chats() {
        let ok = config(&[("TELEGRAM_ALLOWED_CHAT_IDS", "42, -100123")]).unwrap();
        assert_eq!(ok.chat.telegram_allowed_chat_ids, ["42", "-100123"]);
        assert_eq!(
            ok.chat.telegram_approver_chat_ids,
            ["42", "-100123"],
            "default: the allowed list"
        );
        let ok = config(&[
            ("TELEGRAM_ALLOWED_CHAT_IDS", "42,43"),
            ("TELEGRAM_APPROVER_CHAT_IDS", "43"),
        ])
        .unwrap();
        assert_eq!(ok.chat.telegram_approver_chat_ids, ["43"]);
        assert!(config(&[]).unwrap().chat.telegram_allowed_chat_ids.is_empty());
        let err = config(&[("TELEGRAM_ALLOWED_CHAT_IDS", "42,@me")]).unwrap_err();
        assert_eq!(vars_named(&err), ["TELEGRAM_ALLOWED_CHAT_IDS"]);
        let err = config(&[("TELEGRAM_ALLOWED_CHAT_IDS", "42"), ("TELEGRAM_APPROVER_CHAT_IDS", "7")]).unwrap_err();
        assert_eq!(vars_named(&err), ["TELEGRAM_APPROVER_CHAT_IDS"]);
    }

    #[test]
    fn problems_never_contain_secret_values() {
        let err = config(&[
            ("ENVIRONMENT", "production"),
            DEPLOYED[0],
            DEPLOYED[1],
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
            DEPLOYED[0],
            DEPLOYED[1],
            ("API_KEY", &strong),
            ("HITL_SECRET", &strong),
            ("INTERNAL_SECRET", &"i".repeat(40)),
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
