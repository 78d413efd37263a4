//! Live HTTP clients of the paid providers (kie.ai, Shotstack, Upload-Post),
//! following `design/PROVIDERS.md`. Each client is given a base URL (scheme
//! and host only) and appends the documented paths. Every request has a
//! timeout; transient failures (connect errors, timeouts, HTTP 429 and 5xx,
//! and kie.ai's 429/5xx `code` in a 200 answer) are retried a bounded number
//! of times with exponential backoff and jitter; other refusals are never
//! retried. API keys only ever go into request headers: they are not logged
//! and never appear in errors. Redirects are not followed, so a key cannot be
//! forwarded to another host.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use myloware_core::config::{Config, Environment};
use myloware_core::providers::{Provider, is_loopback_host};
use rand::Rng;
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use crate::{
    ClipRequest, ClipState, ProviderError, Providers, PublishRequest, PublishState, Publisher, Recovered,
    RenderRequest, RenderState, Renderer, VideoGenerator,
};

const KIEAI: &str = "kieai";
const SHOTSTACK: &str = "shotstack";
const UPLOAD_POST: &str = "upload-post";

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an unexpected answer's body goes into an error.
const BODY_EXCERPT_CHARS: usize = 300;

/// Timeout and retry policy of the live clients.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// Timeout of each request (connect, send and read the answer).
    pub timeout: Duration,
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// Base of the exponential backoff between attempts.
    pub backoff: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Builds the three live clients from the configuration (used only in live
/// mode). Names the missing variable when a key is not set.
pub fn live_providers(config: &Config) -> Result<Providers, String> {
    live_providers_with(config, LiveSettings::default())
}

/// [`live_providers`] with explicit timeout and retry settings.
pub fn live_providers_with(config: &Config, settings: LiveSettings) -> Result<Providers, String> {
    let kieai = KieAi::new(
        checked_base(config, Provider::KieAi)?,
        api_key(config, Provider::KieAi)?,
        settings.clone(),
    )?;
    let shotstack = Shotstack::new(
        checked_base(config, Provider::Shotstack)?,
        config.providers.shotstack_stage.clone(),
        api_key(config, Provider::Shotstack)?,
        settings.clone(),
    )?;
    let upload_post = UploadPost::new(
        checked_base(config, Provider::UploadPost)?,
        api_key(config, Provider::UploadPost)?,
        settings,
    )?;
    Ok(Providers {
        video: Arc::new(kieai),
        render: Arc::new(shotstack),
        publish: Arc::new(upload_post),
    })
}

fn api_key(config: &Config, provider: Provider) -> Result<SecretString, String> {
    config
        .providers
        .endpoint(provider)
        .api_key
        .clone()
        .ok_or_else(|| format!("{} is not set", provider.secret_vars()[0]))
}

/// The provider's base URL, checked against its allowlist again (loopback
/// hosts only outside production).
fn checked_base(config: &Config, provider: Provider) -> Result<Url, String> {
    let base = &config.providers.endpoint(provider).base_url;
    let host = base.host_str().unwrap_or_default();
    let loopback = is_loopback_host(host);
    if host != provider.allowed_host() && !(loopback && config.environment != Environment::Production) {
        return Err(format!(
            "{}: host {host:?} is not allowed; use {}",
            provider.base_url_var(),
            provider.allowed_host()
        ));
    }
    if base.scheme() != "https" && !loopback {
        return Err(format!("{}: must use https", provider.base_url_var()));
    }
    Ok(base.clone())
}

/// Checks that `base` is an http(s) URL made of scheme and host (and port) only.
fn base_url(provider: &str, base: Url) -> Result<Url, String> {
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

fn http_client(settings: &LiveSettings) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("myloware/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

/// `base` with its path replaced by `segments` (each percent-encoded).
fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("checked: http(s) base URL")
        .clear()
        .extend(segments);
    url
}

/// Why an attempt did not produce a result.
enum Failure {
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
fn backoff_delay(base: Duration, retry: u32) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(16);
    let full = base.saturating_mul(factor).min(MAX_BACKOFF);
    let half = full / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
}

/// A transport error with its causes (the URL holds no secret: keys are in headers).
fn describe(err: &reqwest::Error) -> String {
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
fn excerpt(body: &[u8]) -> String {
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

fn non_empty_str(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The provider's own explanation in a JSON answer.
fn message_of(value: &Value) -> Option<String> {
    non_empty_str(value.get("msg"))
        .or_else(|| non_empty_str(value.get("message")))
        .or_else(|| non_empty_str(value.get("error")))
        .or_else(|| non_empty_str(value.pointer("/error/message")))
        .or_else(|| non_empty_str(value.pointer("/response/error")))
}

/// A refusal with the HTTP status and the provider's message (or the body).
fn refused(provider: &'static str, status: StatusCode, body: &[u8]) -> Failure {
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

fn unexpected(provider: &'static str, status: StatusCode, body: &[u8], what: &str) -> Failure {
    Failure::Fatal(ProviderError::Unavailable {
        provider,
        message: format!(
            "unexpected answer (HTTP {}, {what}): {}",
            status.as_u16(),
            excerpt(body)
        ),
    })
}

fn parse_json(provider: &'static str, status: StatusCode, body: &[u8]) -> Result<Value, Failure> {
    serde_json::from_slice(body).map_err(|_| unexpected(provider, status, body, "not JSON"))
}

/// What every client holds: its checked base URL, key, HTTP client and
/// retry policy. `Debug` shows the base URL only, never the key.
struct Connection {
    base: Url,
    api_key: SecretString,
    http: reqwest::Client,
    settings: LiveSettings,
}

impl Connection {
    fn new(
        provider: &'static str,
        base: Url,
        api_key: SecretString,
        settings: LiveSettings,
    ) -> Result<Connection, String> {
        Ok(Connection {
            base: base_url(provider, base)?,
            http: http_client(&settings)?,
            api_key,
            settings,
        })
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------- kie.ai

/// kie.ai's Veo 3 API.
#[derive(Debug)]
pub struct KieAi {
    conn: Connection,
}

impl KieAi {
    pub fn new(base: Url, api_key: SecretString, settings: LiveSettings) -> Result<KieAi, String> {
        Ok(KieAi {
            conn: Connection::new(KIEAI, base, api_key, settings)?,
        })
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.conn.api_key.expose_secret())
    }

    /// kie.ai's envelope `{code, msg, data}`: `data` when `code` is 200.
    fn envelope(status: StatusCode, body: &[u8]) -> Result<Value, Failure> {
        if !status.is_success() {
            return Err(refused(KIEAI, status, body));
        }
        let value = parse_json(KIEAI, status, body)?;
        let Some(code) = value.get("code").and_then(Value::as_i64) else {
            return Err(unexpected(KIEAI, status, body, "no code"));
        };
        if code == 200 {
            return Ok(value.get("data").cloned().unwrap_or(Value::Null));
        }
        let message = message_of(&value).unwrap_or_else(|| "no message".into());
        if code == 429 || code >= 500 {
            Err(Failure::Transient(format!("code {code}: {message}")))
        } else {
            Err(Failure::Fatal(ProviderError::Refused {
                provider: KIEAI,
                code,
                message,
            }))
        }
    }
}

#[async_trait]
impl VideoGenerator for KieAi {
    async fn submit(&self, _key: &str, request: &ClipRequest) -> Result<String, ProviderError> {
        let url = endpoint(&self.conn.base, &["api", "v1", "veo", "generate"]);
        let body = json!({
            "prompt": request.prompt,
            "model": "veo3_fast",
            "aspectRatio": request.aspect_ratio,
            "callBackUrl": request.callback_url,
        });
        let auth = self.bearer();
        call(
            KIEAI,
            &self.conn.http,
            &self.conn.settings,
            Method::POST,
            &url,
            |builder| builder.header(reqwest::header::AUTHORIZATION, &auth).json(&body),
            |status, bytes| {
                let data = Self::envelope(status, bytes)?;
                non_empty_str(data.get("taskId")).ok_or_else(|| unexpected(KIEAI, status, bytes, "no data.taskId"))
            },
        )
        .await
    }

    async fn recover(&self, _key: &str) -> Result<Recovered<String>, ProviderError> {
        Ok(Recovered::Unknown)
    }

    async fn status(&self, task_id: &str) -> Result<ClipState, ProviderError> {
        let mut url = endpoint(&self.conn.base, &["api", "v1", "veo", "record-info"]);
        url.query_pairs_mut().append_pair("taskId", task_id);
        let auth = self.bearer();
        call(
            KIEAI,
            &self.conn.http,
            &self.conn.settings,
            Method::GET,
            &url,
            |builder| builder.header(reqwest::header::AUTHORIZATION, &auth),
            |status, bytes| {
                let data = Self::envelope(status, bytes)?;
                let flag = data.get("successFlag").and_then(Value::as_i64);
                Ok(match flag {
                    Some(1) => match non_empty_str(data.pointer("/response/resultUrls/0")) {
                        Some(url) => ClipState::Succeeded { url },
                        None => ClipState::Failed {
                            code: 1,
                            message: "kie.ai reported success without a result URL".into(),
                        },
                    },
                    Some(code @ (2 | 3)) => {
                        let message = non_empty_str(data.get("errorMessage"))
                            .or_else(|| serde_json::from_slice::<Value>(bytes).ok().and_then(|v| message_of(&v)))
                            .unwrap_or_else(|| "generation failed".into());
                        ClipState::Failed { code, message }
                    }
                    _ => ClipState::Generating,
                })
            },
        )
        .await
    }
}

// ---------------------------------------------------------------- Shotstack

/// Shotstack's Edit API (`stage` sandbox or `v1`).
#[derive(Debug)]
pub struct Shotstack {
    conn: Connection,
    stage: String,
}

impl Shotstack {
    pub fn new(
        base: Url,
        stage: impl Into<String>,
        api_key: SecretString,
        settings: LiveSettings,
    ) -> Result<Shotstack, String> {
        let stage = stage.into();
        if stage.is_empty() || stage.contains('/') {
            return Err(format!("shotstack: invalid stage {stage:?} (expected stage or v1)"));
        }
        Ok(Shotstack {
            conn: Connection::new(SHOTSTACK, base, api_key, settings)?,
            stage,
        })
    }
}

#[async_trait]
impl Renderer for Shotstack {
    async fn render(&self, _key: &str, request: &RenderRequest) -> Result<String, ProviderError> {
        let (Some(timeline), Some(output)) = (request.edit.get("timeline"), request.edit.get("output")) else {
            return Err(ProviderError::Refused {
                provider: SHOTSTACK,
                code: 0,
                message: "the render request needs a timeline and an output (nothing was sent)".into(),
            });
        };
        let body = json!({"timeline": timeline, "output": output});
        let url = endpoint(&self.conn.base, &["edit", &self.stage, "render"]);
        call(
            SHOTSTACK,
            &self.conn.http,
            &self.conn.settings,
            Method::POST,
            &url,
            |builder| {
                builder
                    .header("x-api-key", self.conn.api_key.expose_secret())
                    .json(&body)
            },
            |status, bytes| {
                if !status.is_success() {
                    return Err(refused(SHOTSTACK, status, bytes));
                }
                let value = parse_json(SHOTSTACK, status, bytes)?;
                if value.get("success").and_then(Value::as_bool) != Some(true) {
                    return Err(refused(SHOTSTACK, status, bytes));
                }
                non_empty_str(value.pointer("/response/id"))
                    .ok_or_else(|| unexpected(SHOTSTACK, status, bytes, "no response.id"))
            },
        )
        .await
    }

    async fn recover(&self, _key: &str) -> Result<Recovered<String>, ProviderError> {
        Ok(Recovered::Unknown)
    }

    async fn status(&self, render_id: &str) -> Result<RenderState, ProviderError> {
        let url = endpoint(&self.conn.base, &["edit", &self.stage, "render", render_id]);
        call(
            SHOTSTACK,
            &self.conn.http,
            &self.conn.settings,
            Method::GET,
            &url,
            |builder| builder.header("x-api-key", self.conn.api_key.expose_secret()),
            |status, bytes| {
                if !status.is_success() {
                    return Err(refused(SHOTSTACK, status, bytes));
                }
                let value = parse_json(SHOTSTACK, status, bytes)?;
                let Some(state) = non_empty_str(value.pointer("/response/status")) else {
                    return Err(unexpected(SHOTSTACK, status, bytes, "no response.status"));
                };
                Ok(match state.to_ascii_lowercase().as_str() {
                    "done" => match non_empty_str(value.pointer("/response/url")) {
                        Some(url) => RenderState::Done { url },
                        None => RenderState::Failed {
                            message: "Shotstack reported the render done without a URL".into(),
                        },
                    },
                    "failed" => RenderState::Failed {
                        message: non_empty_str(value.pointer("/response/error"))
                            .unwrap_or_else(|| "render failed".into()),
                    },
                    _ => RenderState::Rendering,
                })
            },
        )
        .await
    }
}

// ---------------------------------------------------------------- Upload-Post

/// Upload-Post's API (publishing to TikTok).
#[derive(Debug)]
pub struct UploadPost {
    conn: Connection,
}

impl UploadPost {
    pub fn new(base: Url, api_key: SecretString, settings: LiveSettings) -> Result<UploadPost, String> {
        Ok(UploadPost {
            conn: Connection::new(UPLOAD_POST, base, api_key, settings)?,
        })
    }

    fn auth(&self) -> String {
        format!("Apikey {}", self.conn.api_key.expose_secret())
    }
}

/// A `multipart/form-data` body of text fields: (content type, body).
fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = format!("----myloware{:032x}", rand::rng().random::<u128>());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Each platform's result: `{"tiktok": {"url": ..}}` or `[{"platform", "url"}]`.
fn platform_results(results: &Value) -> Vec<&Value> {
    match results {
        Value::Object(map) => map.values().collect(),
        Value::Array(items) => items.iter().collect(),
        _ => Vec::new(),
    }
}

fn result_urls(results: &Value) -> Vec<String> {
    platform_results(results)
        .into_iter()
        .filter_map(|r| non_empty_str(r.get("url")).or_else(|| non_empty_str(r.get("post_url"))))
        .collect()
}

fn result_errors(results: &Value) -> Vec<String> {
    platform_results(results)
        .into_iter()
        .filter(|r| r.get("success").and_then(Value::as_bool) == Some(false))
        .map(|r| message_of(r).unwrap_or_else(|| "failed".into()))
        .collect()
}

/// What a synchronous answer's `results` say.
fn results_state(results: &Value) -> PublishState {
    let urls = result_urls(results);
    if !urls.is_empty() {
        return PublishState::Published { urls };
    }
    let errors = result_errors(results);
    if errors.is_empty() {
        PublishState::Pending
    } else {
        PublishState::Failed {
            message: errors.join("; "),
        }
    }
}

#[async_trait]
impl Publisher for UploadPost {
    async fn publish(&self, key: &str, request: &PublishRequest) -> Result<PublishState, ProviderError> {
        let Some(profile) = request.profile.as_deref().filter(|p| !p.trim().is_empty()) else {
            return Err(ProviderError::NotConfigured(
                "no Upload-Post profile for this project; set publish.profile".into(),
            ));
        };
        let mut fields = vec![
            ("video", request.video_url.as_str()),
            ("title", request.caption.as_str()),
            ("user", profile),
        ];
        fields.extend(request.platforms.iter().map(|p| ("platform[]", p.as_str())));
        fields.push(("async_upload", "true"));
        fields.push(("request_id", key));
        let (content_type, body) = multipart(&fields);
        let url = endpoint(&self.conn.base, &["api", "upload"]);
        let auth = self.auth();
        call(
            UPLOAD_POST,
            &self.conn.http,
            &self.conn.settings,
            Method::POST,
            &url,
            |builder| {
                builder
                    .header(reqwest::header::AUTHORIZATION, &auth)
                    .header("x-request-id", key)
                    .header(reqwest::header::CONTENT_TYPE, &content_type)
                    .body(body.clone())
            },
            |status, bytes| {
                if !status.is_success() {
                    return Err(refused(UPLOAD_POST, status, bytes));
                }
                let value = parse_json(UPLOAD_POST, status, bytes)?;
                if value.get("success").and_then(Value::as_bool) == Some(false) {
                    return Err(refused(UPLOAD_POST, status, bytes));
                }
                Ok(match value.get("results") {
                    Some(results) => results_state(results),
                    None => PublishState::Pending,
                })
            },
        )
        .await
    }

    async fn status(&self, key: &str) -> Result<Option<PublishState>, ProviderError> {
        let mut url = endpoint(&self.conn.base, &["api", "uploadposts", "status"]);
        url.query_pairs_mut().append_pair("request_id", key);
        let auth = self.auth();
        call(
            UPLOAD_POST,
            &self.conn.http,
            &self.conn.settings,
            Method::GET,
            &url,
            |builder| builder.header(reqwest::header::AUTHORIZATION, &auth),
            |status, bytes| {
                if status == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !status.is_success() {
                    return Err(refused(UPLOAD_POST, status, bytes));
                }
                let value = parse_json(UPLOAD_POST, status, bytes)?;
                let results = value.get("results").unwrap_or(&Value::Null);
                let state = match non_empty_str(value.get("status")).map(|s| s.to_ascii_lowercase()) {
                    Some(s) if s == "success" || s == "completed" => PublishState::Published {
                        urls: result_urls(results),
                    },
                    Some(s) if s == "failed" || s == "error" => PublishState::Failed {
                        message: message_of(&value)
                            .or_else(|| result_errors(results).into_iter().next())
                            .unwrap_or_else(|| "Upload-Post reported the publish failed".into()),
                    },
                    Some(_) => PublishState::Pending,
                    None => results_state(results),
                };
                Ok(Some(state))
            },
        )
        .await
    }
}

// ---------------------------------------------------------------- probes

impl KieAi {
    /// `GET /api/v1/chat/credit`: the account's remaining credits.
    pub async fn credits(&self) -> Result<i64, ProviderError> {
        let url = endpoint(&self.conn.base, &["api", "v1", "chat", "credit"]);
        call(
            KIEAI,
            &self.conn.http,
            &self.conn.settings,
            Method::GET,
            &url,
            |builder| builder.header("authorization", self.bearer()),
            |status, bytes| {
                if !status.is_success() {
                    return Err(refused(KIEAI, status, bytes));
                }
                let value = parse_json(KIEAI, status, bytes)?;
                match value["code"].as_i64() {
                    Some(200) => value["data"]
                        .as_i64()
                        .ok_or_else(|| unexpected(KIEAI, status, bytes, "no credit count")),
                    code => Err(Failure::Fatal(ProviderError::Refused {
                        provider: KIEAI,
                        code: code.unwrap_or(0),
                        message: message_of(&value).unwrap_or_else(|| "no message".into()),
                    })),
                }
            },
        )
        .await
    }
}

/// What `mw validate env --online` asks each provider: requests that cost
/// nothing and show the host answers and accepts the key (kie.ai's credit
/// balance, a Shotstack render lookup, an Upload-Post status lookup).
pub async fn probe(config: &Config) -> Vec<(Provider, Result<String, String>)> {
    let settings = LiveSettings {
        max_attempts: 2,
        timeout: Duration::from_secs(10),
        ..LiveSettings::default()
    };
    let mut out = Vec::new();
    let kie = async {
        let client = KieAi::new(
            checked_base(config, Provider::KieAi)?,
            api_key(config, Provider::KieAi)?,
            settings.clone(),
        )?;
        client
            .credits()
            .await
            .map(|n| format!("key accepted, {n} credits left"))
            .map_err(|e| e.to_string())
    };
    out.push((Provider::KieAi, kie.await));
    let shotstack = async {
        let client = Shotstack::new(
            checked_base(config, Provider::Shotstack)?,
            config.providers.shotstack_stage.clone(),
            api_key(config, Provider::Shotstack)?,
            settings.clone(),
        )?;
        // A render that does not exist: 404 means the key was accepted.
        match client.status("00000000-0000-0000-0000-000000000000").await {
            Ok(_) => Ok("key accepted".to_string()),
            Err(ProviderError::Refused { code: 404, .. }) => Ok("key accepted".to_string()),
            Err(err) => Err(err.to_string()),
        }
    };
    out.push((Provider::Shotstack, shotstack.await));
    let upload = async {
        let client = UploadPost::new(
            checked_base(config, Provider::UploadPost)?,
            api_key(config, Provider::UploadPost)?,
            settings,
        )?;
        client
            .status("mw-validate-env-probe")
            .await
            .map(|_| "key accepted".to_string())
            .map_err(|e| e.to_string())
    };
    out.push((Provider::UploadPost, upload.await));
    out
}
