//! Loading the configuration: the process environment, filled in from one
//! env file: `--env-file <path>` when given, otherwise `.env.<environment>`
//! in the current folder when there is one (`.env.development` when
//! ENVIRONMENT is unset, `.env.production` in production). A variable set
//! in the environment always wins over the file.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use myloware_core::config::{Config, Environment};
use myloware_core::project::Catalog;

/// The env file `mw` read, or looked for, before its configuration.
#[derive(Debug)]
pub struct EnvFile {
    pub path: PathBuf,
    /// What chose it: `--env-file` or `ENVIRONMENT=<environment>`.
    pub chosen_by: String,
    /// The variables it names (not their values); `None` when there is no
    /// such file.
    pub names: Option<Vec<String>>,
    /// Its variables the process environment had already set: they keep
    /// the environment's value.
    pub overridden: Vec<String>,
}

impl fmt::Display for EnvFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(names) = &self.names else {
            return write!(
                f,
                "none (no {} in the current folder; {})",
                self.path.display(),
                self.chosen_by
            );
        };
        write!(
            f,
            "{} ({}): {} variable(s)",
            self.path.display(),
            self.chosen_by,
            names.len()
        )?;
        if !self.overridden.is_empty() {
            write!(f, "; the environment overrides {}", self.overridden.join(", "))?;
        }
        Ok(())
    }
}

/// Fills unset variables from `given` (`--env-file`), which must be
/// readable, or else from `.env.<environment>` in the current folder, which
/// may be absent. `None` when ENVIRONMENT names no environment (the
/// configuration then says so). A file that cannot be parsed is an error
/// naming its line, never the line's text (it may hold a secret).
pub fn load_env_file(given: Option<&Path>) -> anyhow::Result<Option<EnvFile>> {
    let (path, chosen_by) = match given {
        Some(path) => (path.to_path_buf(), "--env-file".to_string()),
        None => {
            let environment = std::env::var("ENVIRONMENT")
                .or_else(|_| std::env::var("APP_ENV"))
                .map_or(Ok(Environment::Development), |v| v.parse::<Environment>());
            let Ok(environment) = environment else {
                return Ok(None);
            };
            let name = environment.as_str();
            (PathBuf::from(format!(".env.{name}")), format!("ENVIRONMENT={name}"))
        }
    };
    let names = match variable_names(&path) {
        Ok(names) => names,
        Err(err) if err.not_found() && given.is_none() => {
            return Ok(Some(EnvFile {
                path,
                chosen_by,
                names: None,
                overridden: Vec::new(),
            }));
        }
        Err(err) => return Err(unreadable(&path, &chosen_by, err)),
    };
    let overridden = names
        .iter()
        .filter(|name| std::env::var_os(name).is_some())
        .cloned()
        .collect();
    // dotenvy never overrides a variable that is already set.
    dotenvy::from_path(&path).map_err(|err| unreadable(&path, &chosen_by, err))?;
    Ok(Some(EnvFile {
        path,
        chosen_by,
        names: Some(names),
        overridden,
    }))
}

/// The names `path` sets, in order; nothing is set yet.
fn variable_names(path: &Path) -> Result<Vec<String>, dotenvy::Error> {
    let mut names: Vec<String> = Vec::new();
    for item in dotenvy::from_path_iter(path)? {
        let (name, _) = item?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Why the env file cannot be used: the I/O error, or the line that does
/// not parse (by number and variable name).
fn unreadable(path: &Path, chosen_by: &str, err: dotenvy::Error) -> anyhow::Error {
    let what = match &err {
        dotenvy::Error::LineParse(text, _) => {
            let first = text.lines().next().unwrap_or_default();
            let line = std::fs::read_to_string(path)
                .ok()
                .and_then(|file| file.lines().position(|l| l == first))
                .map_or(String::new(), |i| format!(" {}", i + 1));
            // The name only when it is one: a line without `=` may be a
            // pasted secret.
            let name = first
                .split_once('=')
                .map(|(name, _)| name.trim())
                .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .map_or(String::new(), |name| format!(" ({name})"));
            format!("line{line}{name} is not NAME=value")
        }
        other => format!("cannot read it: {other}"),
    };
    anyhow::anyhow!("env file {} ({chosen_by}): {what}", path.display())
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

/// The catalog: the shipped projects, or `PROJECTS_DIR`'s.
pub fn catalog(config: &Config) -> anyhow::Result<Catalog> {
    Catalog::load_from(&config.projects)
        .map_err(|err| anyhow::anyhow!("{err}"))
        .with_context(|| format!("loading the projects ({})", config.projects))
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
