//! The API's client of the orchestrator. Every call is idempotent on the
//! orchestrator's side, so a failed one is simply retried (by the start
//! reconciler, or by the caller).

use std::time::Duration;

use async_trait::async_trait;
use myloware_core::wire::StartExecution;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("orchestrator unreachable: {0}")]
    Unreachable(String),
    #[error("orchestrator answered {status}: {body}")]
    Refused { status: u16, body: String },
}

#[async_trait]
pub trait OrchestratorClient: Send + Sync + 'static {
    /// `POST /v1/executions`; `Ok` once the orchestrator has accepted the run.
    async fn start(&self, request: &StartExecution) -> Result<(), OrchestratorError>;

    /// `POST /v1/executions/{runId}/cancel`.
    async fn cancel(&self, run_id: &str, reason: Option<&str>) -> Result<(), OrchestratorError>;

    /// `GET /health`, for the API's readiness.
    async fn health(&self) -> Result<(), OrchestratorError>;
}

/// The orchestrator over HTTP, authenticated with the shared API key.
pub struct HttpOrchestrator {
    base: Url,
    api_key: SecretString,
    http: reqwest::Client,
}

impl HttpOrchestrator {
    pub fn new(base: Url, api_key: SecretString) -> HttpOrchestrator {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("the HTTP client builds");
        HttpOrchestrator {
            base,
            api_key,
            http,
        }
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("orchestrator paths are valid")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(), OrchestratorError> {
        let response = request
            .header("x-api-key", self.api_key.expose_secret())
            .send()
            .await
            .map_err(|err| OrchestratorError::Unreachable(without_url(&err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(OrchestratorError::Refused {
            status: status.as_u16(),
            body: body.chars().take(500).collect(),
        })
    }
}

/// reqwest's errors name the URL; the message is enough (and shorter).
fn without_url(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(err);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

#[async_trait]
impl OrchestratorClient for HttpOrchestrator {
    async fn start(&self, request: &StartExecution) -> Result<(), OrchestratorError> {
        match self
            .send(self.http.post(self.url("/v1/executions")).json(request))
            .await
        {
            // 409 means the orchestrator holds this run with another body:
            // it has it, so there is nothing to retry.
            Err(OrchestratorError::Refused { status, body })
                if status == StatusCode::CONFLICT.as_u16() =>
            {
                tracing::warn!(runId = %request.run_id, %body, "orchestrator holds this run with a different start");
                Ok(())
            }
            other => other,
        }
    }

    async fn cancel(&self, run_id: &str, reason: Option<&str>) -> Result<(), OrchestratorError> {
        let url = self.url(&format!("/v1/executions/{run_id}/cancel"));
        self.send(
            self.http
                .post(url)
                .json(&serde_json::json!({ "reason": reason })),
        )
        .await
    }

    async fn health(&self) -> Result<(), OrchestratorError> {
        self.send(
            self.http
                .get(self.url("/health"))
                .timeout(Duration::from_secs(2)),
        )
        .await
    }
}
