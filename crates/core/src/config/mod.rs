//! Typed configuration, read from a variable lookup (the process
//! environment, plus `.env.<environment>` or `--env-file`: the CLI merges
//! them, the environment winning). Everything is checked in one pass so an operator sees every
//! problem at once, each naming its variable. Secrets are `SecretString`s:
//! their `Debug` prints `[REDACTED]`.
//!
//! One module per concern: [`secrets`] (keys, secrets, the database URL),
//! [`providers`] (the live providers' endpoints and the providers mode),
//! [`channels`] (the LLM and the chat channels), [`server`] (HTTP limits
//! and rate limits), `prices` (`PRICES_FILE`, the price table), [`assets`]
//! (where rendered videos are kept), [`reader`] (reading a variable,
//! collecting problems) and [`validate`] (the one pass over every
//! variable). Every type is
//! re-exported here: `myloware_core::config::Config` and the rest keep
//! their paths.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::auth::NamedKey;
use crate::internal::InternalKeys;
use crate::project::ProjectsSource;
use crate::providers::ProviderMode;
use crate::redact::Redactor;

pub mod assets;
pub mod channels;
pub use budget::BudgetConfig;
mod budget;
mod prices;
pub mod providers;
pub mod reader;
pub mod secrets;
pub mod server;
pub mod validate;

pub use assets::{AssetsConfig, BucketConfig};
pub use channels::{ChatConfig, LlmConfig};
pub use providers::{MOCK_KIEAI_SIGNING_SECRET, ProviderEndpoint, ProvidersConfig};
pub use reader::{ConfigError, Problem};
pub use secrets::{
    DEFAULT_DATABASE_URL, DEV_API_KEY, DEV_HITL_SECRET, DEV_INTERNAL_SECRET, MAX_HITL_TOKEN_EXPIRY_HOURS,
    MIN_SECRET_LEN,
};
pub use server::{HttpLimits, RateLimitConfig};

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
    /// `TRACE_CONTENT` (default: on in development, off elsewhere): LLM and
    /// tool spans carry the prompts, completions, tool arguments and results,
    /// redacted ([`Config::redactor`]).
    pub trace_content: bool,
}

/// The operators' console (`/console` on the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// A session unused this long signs out (`CONSOLE_IDLE_MINUTES`, 30).
    pub idle: chrono::TimeDelta,
    /// A session ends this long after its sign-in, used or not
    /// (`CONSOLE_SESSION_HOURS`, 12).
    pub lifetime: chrono::TimeDelta,
    /// The tracing UI's page of a trace, `{traceId}` replaced
    /// (`TRACE_UI_URL`, e.g. a Grafana Tempo or Jaeger URL); unset: the
    /// console shows the trace id as text.
    pub trace_url: Option<String>,
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
    /// A gate waiting this long gets a reminder in chat
    /// (`GATE_REMIND_AFTER_HOURS`; unset: none).
    pub gate_remind_after: Option<chrono::TimeDelta>,
    /// A gate waiting this long expires (`GATE_TIMEOUT_HOURS`, 72 by
    /// default): the run ends `expired`, unless its project names a
    /// `gateTimeoutDecision`.
    pub gate_timeout: chrono::TimeDelta,
    pub database_url: SecretString,
    pub public_base_url: Url,
    pub orchestrator_url: Url,
    pub api_url: Url,
    pub bind_host: IpAddr,
    pub api_port: u16,
    pub orchestrator_port: u16,
    /// The catalog: shipped in the binary unless `PROJECTS_DIR` names a
    /// folder, which replaces it entirely.
    pub projects: ProjectsSource,
    pub providers: ProvidersConfig,
    pub llm: LlmConfig,
    pub chat: ChatConfig,
    pub telemetry: TelemetryConfig,
    pub rate_limit: RateLimitConfig,
    /// Body limit for JSON routes and webhooks.
    pub max_body_bytes: usize,
    pub engine: EngineConfig,
    pub http: HttpLimits,
    /// `PRICES_FILE`, when set.
    pub prices_file: Option<PathBuf>,
    /// What each paid call costs: the defaults, or `PRICES_FILE`'s.
    pub prices: crate::costs::PriceTable,
    /// Spending limits and the cap on active runs.
    pub budget: BudgetConfig,
    /// Where rendered videos are kept (`ASSET_*`).
    pub assets: AssetsConfig,
    /// How often the API looks for due schedules (`SCHEDULE_TICK_MS`, 50
    /// to 60,000; default 1,000).
    pub schedule_tick: std::time::Duration,
    pub console: ConsoleConfig,
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
    /// A run held by a spending limit looks again this often
    /// (`BUDGET_RECHECK_SECS`), and when the limit's period ends.
    pub budget_recheck_secs: u64,
}

impl Config {
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
        if self.llm.api_key.is_some() && !self.prices.knows_llm(&self.llm.model) {
            warnings.push(format!(
                "LLM_MODEL {:?} has no price in the price table: its tokens are priced as [openai.other] (set its price in PRICES_FILE)",
                self.llm.model
            ));
        }
        if self.chat.telegram_bot_token.is_some() && self.chat.telegram_allowed_chat_ids.is_empty() {
            warnings.push(
                "TELEGRAM_ALLOWED_CHAT_IDS is empty: the Telegram bot refuses every chat (list the chat ids that may talk to Brendan)"
                    .into(),
            );
        }
        warnings.extend(self.assets.warning(self.environment));
        warnings
    }

    /// How long an approval link lives. `HITL_TOKEN_EXPIRY_HOURS` is checked
    /// to be 1 to 720; the clamp keeps a hand-built `Config` from overflowing.
    pub fn hitl_token_lifetime(&self) -> chrono::TimeDelta {
        let hours = self.hitl_token_expiry_hours.clamp(1, MAX_HITL_TOKEN_EXPIRY_HOURS);
        chrono::TimeDelta::hours(hours as i64)
    }

    /// The redactor of every secret value configured, for content that
    /// leaves for a trace backend (`TRACE_CONTENT`).
    pub fn redactor(&self) -> Redactor {
        Redactor::new(secrets::secret_values(self))
    }

    /// The database URL with any password replaced by `***`, for logs.
    pub fn database_url_redacted(&self) -> String {
        secrets::redact_url_password(self.database_url.expose_secret())
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose_secret().starts_with("sqlite:")
    }
}

#[cfg(test)]
mod tests;
