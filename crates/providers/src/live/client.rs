//! What the live clients share: the checked base URL and the HTTP client
//! of each ([`Connection`]), the retry loop ([`call`]) and how a refusal or
//! an unexpected answer becomes an error without leaking the key.

use std::time::Duration;

use rand::Rng;
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::LiveSettings;
use crate::ProviderError;

/// The longest wait between two attempts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an unexpected answer's body goes into an error.
pub(super) const BODY_EXCERPT_CHARS: usize = 300;

/// Checks that `base` is an http(s) URL made of scheme and host (and port) only.
pub(super) fn base_url(provider: &str, base: Url) -> Result<Url, String> {
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(format!("{provider}: base URL must be an http(s) URL with a host"));
    }
    if !matches!(base.path(), "" | "/")
        || base.query().is_some()
        || base.fragment().is_some()
        || !base.username().is_empty()
        || base.password().is_some()
    {
        return Err(format!(
            "{provider}: base URL must be scheme and host only (the client appends the documented paths)"
        ));
    }
    Ok(base)
}

pub(super) fn http_client(settings: &LiveSettings) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("myloware/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

/// `base` with its path replaced by `segments` (each percent-encoded).
pub(super) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("checked: http(s) base URL")
        .clear()
        .extend(segments);
    url
}

/// Why an attempt did not produce a result.
pub(super) enum Failure {
    /// Worth another attempt.
    Transient(String),
    /// Final.
    Fatal(ProviderError),
}

/// Sends one call with the retry policy: `build` adds headers and body to
/// each attempt, `interpret` reads an answer that is neither 429 nor 5xx.
async fn call<T>(
    provider: &'static str,
    http: &reqwest::Client,
    settings: &LiveSettings,
    method: Method,
    url: &Url,
    build: impl Fn(RequestBuilder) -> RequestBuilder + Send + Sync,
    interpret: impl Fn(StatusCode, &[u8]) -> Result<T, Failure> + Send + Sync,
) -> Result<T, ProviderError> {
    let attempts = settings.max_attempts.max(1);
    // A GET can be repeated; a POST that creates paid work must not be sent
    // again once it may have reached the provider (a timeout after sending).
    let repeatable = method == Method::GET;
    let unanswered = |message: String| ProviderError::Unanswered { provider, message };
    let host = url.host_str().unwrap_or_default();
    let mut last = String::from("no attempt made");
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(backoff_delay(settings.backoff, attempt - 1)).await;
        }
        tracing::debug!(provider, method = %method, host, path = url.path(), attempt, "provider request");
        let request = build(http.request(method.clone(), url.clone()).timeout(settings.timeout));
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) if err.is_timeout() && !err.is_connect() && !repeatable => {
                return Err(unanswered(describe(&err)));
            }
            Err(err) if err.is_connect() || err.is_timeout() => {
                last = describe(&err);
                tracing::debug!(provider, attempt, error = %last, "provider request failed; transient");
                continue;
            }
            Err(err) => {
                return Err(ProviderError::Unavailable {
                    provider,
                    message: describe(&err),
                });
            }
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) if err.is_timeout() && !repeatable => return Err(unanswered(describe(&err))),
            Err(err) if err.is_timeout() => {
                last = describe(&err);
                continue;
            }
            Err(err) => {
                return Err(ProviderError::Unavailable {
                    provider,
                    message: describe(&err),
                });
            }
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            last = format!("HTTP {}: {}", status.as_u16(), excerpt(&body));
            tracing::debug!(
                provider,
                attempt,
                status = status.as_u16(),
                "provider answered a transient error"
            );
            continue;
        }
        match interpret(status, &body) {
            Ok(value) => return Ok(value),
            Err(Failure::Transient(message)) => {
                tracing::debug!(provider, attempt, error = %message, "provider answered a transient error");
                last = message;
            }
            Err(Failure::Fatal(err)) => return Err(err),
        }
    }
    Err(ProviderError::Unavailable {
        provider,
        message: format!("{last} (gave up after {attempts} attempt(s))"),
    })
}

/// Exponential backoff with jitter: a random wait between half and all of
/// `base * 2^(retry - 1)`, capped at [`MAX_BACKOFF`].
pub(super) fn backoff_delay(base: Duration, retry: u32) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(16);
    let full = base.saturating_mul(factor).min(MAX_BACKOFF);
    let half = full / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
}

/// A transport error with its causes (the URL holds no secret: keys are in headers).
pub(super) fn describe(err: &reqwest::Error) -> String {
    let mut message = if err.is_timeout() {
        format!("timed out: {err}")
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The start of a body, for errors.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut short: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

pub(super) fn non_empty_str(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The provider's own explanation in a JSON answer.
pub(super) fn message_of(value: &Value) -> Option<String> {
    non_empty_str(value.get("msg"))
        .or_else(|| non_empty_str(value.get("message")))
        .or_else(|| non_empty_str(value.get("error")))
        .or_else(|| non_empty_str(value.pointer("/error/message")))
        .or_else(|| non_empty_str(value.pointer("/response/error")))
}

/// A refusal with the HTTP status and the provider's message (or the body).
pub(super) fn refused(provider: &'static str, status: StatusCode, body: &[u8]) -> Failure {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| message_of(&value))
        .unwrap_or_else(|| format!("HTTP {}: {}", status.as_u16(), excerpt(body)));
    Failure::Fatal(ProviderError::Refused {
        provider,
        code: i64::from(status.as_u16()),
        message,
    })
}

pub(super) fn unexpected(provider: &'static str, status: StatusCode, body: &[u8], what: &str) -> Failure {
    Failure::Fatal(ProviderError::Unavailable {
        provider,
        message: format!(
            "unexpected answer (HTTP {}, {what}): {}",
            status.as_u16(),
            excerpt(body)
        ),
    })
}

pub(super) fn parse_json(provider: &'static str, status: StatusCode, body: &[u8]) -> Result<Value, Failure> {
    serde_json::from_slice(body).map_err(|_| unexpected(provider, status, body, "not JSON"))
}

/// The JSON of a 2xx answer; any other status is a refusal.
pub(super) fn success_json(provider: &'static str, status: StatusCode, body: &[u8]) -> Result<Value, Failure> {
    if !status.is_success() {
        return Err(refused(provider, status, body));
    }
    parse_json(provider, status, body)
}

/// Where a provider takes its key.
#[derive(Debug, Clone, Copy)]
pub(super) enum KeyHeader {
    /// `Authorization: <scheme> <key>`.
    Authorization(&'static str),
    /// `<header>: <key>`.
    Named(&'static str),
}

/// What every client holds: its checked base URL, key (and where it goes),
/// HTTP client and retry policy. `Debug` shows the base URL only, never the
/// key.
pub(super) struct Connection {
    provider: &'static str,
    pub(super) base: Url,
    api_key: SecretString,
    key_header: KeyHeader,
    http: reqwest::Client,
    settings: LiveSettings,
}

impl Connection {
    pub(super) fn new(
        provider: &'static str,
        base: Url,
        api_key: SecretString,
        key_header: KeyHeader,
        settings: LiveSettings,
    ) -> Result<Connection, String> {
        Ok(Connection {
            provider,
            base: base_url(provider, base)?,
            http: http_client(&settings)?,
            api_key,
            key_header,
            settings,
        })
    }

    /// [`call`] with this connection's provider, key, HTTP client and retry
    /// policy: `build` adds the rest of the headers and the body.
    pub(super) async fn call<T>(
        &self,
        method: Method,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder + Send + Sync,
        interpret: impl Fn(StatusCode, &[u8]) -> Result<T, Failure> + Send + Sync,
    ) -> Result<T, ProviderError> {
        let key = self.api_key.expose_secret();
        let (name, value) = match self.key_header {
            KeyHeader::Authorization(scheme) => (reqwest::header::AUTHORIZATION.as_str(), format!("{scheme} {key}")),
            KeyHeader::Named(name) => (name, key.to_string()),
        };
        let build = |builder: RequestBuilder| build(builder.header(name, &value));
        call(self.provider, &self.http, &self.settings, method, url, build, interpret).await
    }

    /// A `POST` of the JSON `body` to `url`.
    pub(super) async fn post_json<T>(
        &self,
        url: &Url,
        body: &Value,
        interpret: impl Fn(StatusCode, &[u8]) -> Result<T, Failure> + Send + Sync,
    ) -> Result<T, ProviderError> {
        self.call(Method::POST, url, |builder| builder.json(body), interpret)
            .await
    }

    /// A `GET` of `url` with the key only.
    pub(super) async fn get<T>(
        &self,
        url: &Url,
        interpret: impl Fn(StatusCode, &[u8]) -> Result<T, Failure> + Send + Sync,
    ) -> Result<T, ProviderError> {
        self.call(Method::GET, url, |builder| builder, interpret).await
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}
