//! Loading the configuration: the process environment, plus
//! `.env.development` in development (the environment wins).

use anyhow::Context;
use myloware_core::config::{Config, Environment};
use myloware_core::project::Catalog;

pub const DEV_ENV_FILE: &str = ".env.development";

/// In development (ENVIRONMENT unset or development), fills unset variables
/// from `.env.development` in the current folder, if there is one.
pub fn load_development_file() {
    let environment = std::env::var("ENVIRONMENT")
        .or_else(|_| std::env::var("APP_ENV"))
        .ok()
        .map(|v| v.parse::<Environment>());
    if matches!(environment, None | Some(Ok(Environment::Development))) {
        // dotenvy never overrides a variable that is already set.
        let _ = dotenvy::from_filename(DEV_ENV_FILE);
    }
}

/// The checked configuration, or every problem with it.
pub fn config() -> anyhow::Result<Config> {
    Config::from_env().map_err(|err| anyhow::anyhow!("{err}"))
}

/// The configuration with `overrides` taking precedence over the environment.
pub fn config_with(overrides: &[(&str, &str)]) -> anyhow::Result<Config> {
    Config::from_lookup(|var| {
        overrides
            .iter()
            .find(|(name, _)| *name == var)
            .map(|(_, value)| value.to_string())
            .or_else(|| std::env::var(var).ok())
    })
    .map_err(|err| anyhow::anyhow!("{err}"))
}

pub fn catalog(config: &Config) -> anyhow::Result<Catalog> {
    Catalog::load(&config.projects_dir)
        .map_err(|err| anyhow::anyhow!("{err}"))
        .with_context(|| format!("loading projects from {}", config.projects_dir.display()))
}

/// Logs for a one-shot command (no trace export).
pub fn init_logging(config: &Config) {
    let json = matches!(config.telemetry.log_format, myloware_core::config::LogFormat::Json);
    myloware_telemetry::logging::init(json, None, "myloware-cli");
}

/// Logs and, when configured, trace export for a server named `service`;
/// shut the result down on exit to flush the last spans.
pub fn init_tracing(config: &Config, service: &str) -> Option<myloware_telemetry::trace::Tracing> {
    let json = matches!(config.telemetry.log_format, myloware_core::config::LogFormat::Json);
    let export = myloware_telemetry::trace::export(&config.telemetry);
    myloware_telemetry::logging::init(json, export.as_ref(), service)
}
