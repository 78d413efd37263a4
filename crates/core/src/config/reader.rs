//! Reading variables: a [`Reader`] collects every [`Problem`] instead of
//! stopping at the first; [`ConfigError`] answers them all.

use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;
use url::Url;

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
pub(super) struct Reader<F> {
    pub(super) lookup: F,
    pub(super) problems: Vec<Problem>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    /// The variable's value; empty or blank counts as unset.
    pub(super) fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn problem(&mut self, var: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            var,
            message: message.into(),
        });
    }

    pub(super) fn secret(&self, var: &str) -> Option<SecretString> {
        self.get(var).map(SecretString::from)
    }

    pub(super) fn parse<T: FromStr>(&mut self, var: &'static str, default: T) -> T
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

    pub(super) fn bool(&mut self, var: &'static str) -> Option<bool> {
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

    pub(super) fn url(&mut self, var: &'static str, default: &str) -> Url {
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
