//! The one pass over the variables: [`Config::from_lookup`] reads every
//! variable through a [`Reader`] that collects problems instead of
//! stopping at the first, checks them, and answers all of them in a
//! [`ConfigError`].

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};

use super::assets::assets_config;
use super::channels::chat_config;
use super::providers::{provider_endpoint, providers_mode};
use super::reader::Reader;
use super::secrets::{database_url, internal_secrets, service_secrets, weak_secret};
use super::server::http_limits;
use super::*;
use crate::providers::{Provider, ProviderMode};

impl Config {
    /// Reads the process environment as it is (the CLI merges
    /// `.env.<environment>` or `--env-file` into it first).
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

        let (gate_remind_after, gate_timeout) = gate_lifetime(&mut r);
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
            // Prompts hold users' words: recorded by default only in development.
            trace_content: r
                .bool("TRACE_CONTENT")
                .unwrap_or(environment == Environment::Development),
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
        let projects = r
            .get("PROJECTS_DIR")
            .map_or(ProjectsSource::Shipped, |dir| ProjectsSource::Folder(dir.into()));
        let engine = EngineConfig {
            workers: r.parse("ORCHESTRATOR_WORKERS", 4usize),
            lease_secs: r.parse("ENGINE_LEASE_SECS", 30u64),
            poll_ms: r.parse("ENGINE_POLL_MS", 250u64),
            clip_poll_after_secs: r.parse("CLIP_POLL_AFTER_SECS", 120u64),
            clip_timeout_secs: r.parse("CLIP_TIMEOUT_SECS", 1800u64),
            mock_failure_rate: r.parse("MOCK_KIEAI_FAILURE_RATE", 0.0f64),
            budget_recheck_secs: r.parse("BUDGET_RECHECK_SECS", 60u64),
        };
        if engine.workers == 0 {
            r.problem("ORCHESTRATOR_WORKERS", "must be at least 1");
        }
        if engine.budget_recheck_secs == 0 {
            r.problem("BUDGET_RECHECK_SECS", "must be at least 1");
        }
        if engine.lease_secs < 3 {
            r.problem("ENGINE_LEASE_SECS", "must be at least 3");
        }
        if !(0.0..=1.0).contains(&engine.mock_failure_rate) {
            r.problem("MOCK_KIEAI_FAILURE_RATE", "must be between 0 and 1");
        }
        let console = console_config(&mut r);
        let schedule_tick_ms = r.parse("SCHEDULE_TICK_MS", 1000u64);
        if !(50..=60_000).contains(&schedule_tick_ms) {
            r.problem("SCHEDULE_TICK_MS", "must be between 50 and 60000 milliseconds");
        }
        let http = http_limits(&mut r);
        let (prices_file, prices) = super::prices::prices(&mut r);
        let budget = super::budget::budget(&mut r);
        let assets = assets_config(&mut r, environment);

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
            gate_remind_after,
            gate_timeout,
            database_url: SecretString::from(database_url),
            public_base_url,
            orchestrator_url,
            api_url,
            bind_host,
            api_port,
            orchestrator_port,
            projects,
            providers,
            llm,
            chat,
            telemetry,
            rate_limit,
            max_body_bytes,
            engine,
            http,
            prices_file,
            prices,
            budget,
            assets,
            schedule_tick: std::time::Duration::from_millis(schedule_tick_ms),
            console,
        })
    }
}

/// `CONSOLE_IDLE_MINUTES` (1 to 1440), `CONSOLE_SESSION_HOURS` (1 to 720)
/// and `TRACE_UI_URL` (an http(s) URL with `{traceId}`).
fn console_config<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> ConsoleConfig {
    let idle = r.parse("CONSOLE_IDLE_MINUTES", 30i64);
    if !(1..=1440).contains(&idle) {
        r.problem("CONSOLE_IDLE_MINUTES", "must be between 1 and 1440 minutes");
    }
    let lifetime = r.parse("CONSOLE_SESSION_HOURS", 12i64);
    if !(1..=720).contains(&lifetime) {
        r.problem("CONSOLE_SESSION_HOURS", "must be between 1 and 720 hours");
    }
    let trace_url = r.get("TRACE_UI_URL");
    if let Some(url) = &trace_url
        && (!url.contains("{traceId}") || !(url.starts_with("https://") || url.starts_with("http://")))
    {
        r.problem(
            "TRACE_UI_URL",
            "must be an http(s) URL with {traceId} where the trace id goes",
        );
    }
    ConsoleConfig {
        idle: chrono::TimeDelta::minutes(idle),
        lifetime: chrono::TimeDelta::hours(lifetime),
        trace_url,
    }
}

/// `GATE_REMIND_AFTER_HOURS` and `GATE_TIMEOUT_HOURS`: hours, fractions
/// allowed, more than 0; a reminder comes before the timeout.
fn gate_lifetime<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> (Option<chrono::TimeDelta>, chrono::TimeDelta) {
    let mut hours = |var: &'static str, default: Option<f64>| -> Option<f64> {
        let value = r.get(var).map(|_| r.parse(var, -1.0f64)).or(default)?;
        if value.is_finite() && value > 0.0 && value <= 24.0 * 365.0 {
            Some(value)
        } else {
            if r.problems.iter().all(|p| p.var != var) {
                r.problem(
                    var,
                    "must be a number of hours, more than 0 and at most 8760 (fractions allowed)",
                );
            }
            None
        }
    };
    let remind = hours("GATE_REMIND_AFTER_HOURS", None);
    let timeout = hours("GATE_TIMEOUT_HOURS", Some(72.0)).unwrap_or(72.0);
    if remind.is_some_and(|remind| remind >= timeout) {
        r.problem("GATE_REMIND_AFTER_HOURS", "must be less than GATE_TIMEOUT_HOURS");
    }
    let delta = |hours: f64| chrono::TimeDelta::milliseconds((hours * 3_600_000.0).round() as i64);
    (remind.map(delta), delta(timeout))
}
