//! Keys and secrets (`API_KEY`/`API_KEYS`, `HITL_SECRET`,
//! `INTERNAL_SECRET`, their development defaults and strength rules) and
//! `DATABASE_URL`, which may hold a password.

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::reader::Reader;
use super::{Config, Environment};
use crate::auth::NamedKey;

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

/// `API_KEY` (+ `API_KEYS`) and `HITL_SECRET`: development defaults are
/// allowed only in development; elsewhere each must be set, not a default,
/// and at least [`MIN_SECRET_LEN`] characters. Each key entry is
/// `name:role:key` or a bare key (an `admin`); names are unique.
pub(super) fn service_secrets<F: Fn(&str) -> Option<String>>(
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
pub(super) fn weak_secret(environment: Environment, value: &str, default: &str) -> Option<String> {
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
pub(super) fn internal_secrets<F: Fn(&str) -> Option<String>>(
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

/// `DATABASE_URL`: SQLite or Postgres. Development falls back to a SQLite
/// file; staging must name its database; production must use Postgres (its
/// API and orchestrator run on separate machines that share one database:
/// a SQLite file would be a different, ephemeral database on each).
pub(super) fn database_url<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, environment: Environment) -> String {
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

pub(super) fn redact_url_password(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_string(),
    }
}

/// Every secret value of `config`: operator, internal and HITL keys (and
/// their previous ones), the LLM and provider credentials, the chat
/// channels' tokens, the trace export's credentials, the bucket's keys and
/// the database password.
pub(super) fn secret_values(config: &Config) -> Vec<String> {
    let telemetry = &config.telemetry;
    let bucket = config.assets.bucket.as_ref();
    let optional = [
        config.internal_secret_previous.as_ref(),
        config.hitl_secret_previous.as_ref(),
        config.llm.api_key.as_ref(),
        config.providers.kieai.api_key.as_ref(),
        config.providers.kieai.signing_secret.as_ref(),
        config.providers.shotstack.api_key.as_ref(),
        config.providers.upload_post.api_key.as_ref(),
        config.chat.telegram_bot_token.as_ref(),
        config.chat.telegram_webhook_secret.as_ref(),
        telemetry.langsmith_api_key.as_ref(),
        bucket.and_then(|b| b.access_key_id.as_ref()),
        bucket.and_then(|b| b.secret_access_key.as_ref()),
    ];
    let mut values: Vec<String> = config
        .api_keys
        .iter()
        .map(|k| &k.key)
        .chain(std::iter::once(&config.hitl_secret))
        .chain(optional.into_iter().flatten())
        .map(|s| s.expose_secret().to_string())
        .collect();
    // Unset in development: the services use the development one.
    values.push(
        config
            .internal_secret
            .as_ref()
            .map_or(DEV_INTERNAL_SECRET.to_string(), |s| s.expose_secret().to_string()),
    );
    // `k=v,k2=v2`: the values are the credentials.
    if let Some(headers) = &telemetry.otlp_headers {
        values.extend(
            headers
                .expose_secret()
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(_, value)| value.trim().to_string()),
        );
    }
    if let Some(password) = Url::parse(config.database_url.expose_secret())
        .ok()
        .and_then(|url| url.password().map(str::to_string))
    {
        values.push(password);
    }
    values
}
