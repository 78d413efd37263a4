//! The API's client of the orchestrator. Every call is idempotent on the
//! orchestrator's side, so a failed one is simply retried (`crate::commands`).

use std::time::Duration;

use async_trait::async_trait;
use myloware_core::internal::InternalKeys;
use url::Url;

use myloware_core::wire::{ChatReply, ChatTurn, ExecutionCommand, PruneCounts, PruneRequest, SignalBatch};

#[derive(Debug, Clone, thiserror::Error)]
pub enum OrchestratorError {
    #[error("orchestrator unreachable: {0}")]
    Unreachable(String),
    #[error("orchestrator answered {status}: {body}")]
    Refused { status: u16, body: String },
}

#[async_trait]
pub trait OrchestratorClient: Send + Sync + 'static {
    /// Sends one command to its path ([`ExecutionCommand::path`]): a start
    /// to `POST /v1/executions`, a signal, resume or cancel to
    /// `POST /v1/executions/{runId}/signals`, `/resume` or `/cancel`. `Ok`
    /// once acknowledged.
    async fn send(&self, run_id: &str, command: &ExecutionCommand) -> Result<(), OrchestratorError>;

    /// Sends several signals of a run in one request
    /// (`POST /v1/executions/{runId}/signals/batch`). `Ok` once all are
    /// acknowledged (each taken now or before).
    async fn send_signals(&self, run_id: &str, batch: &SignalBatch) -> Result<(), OrchestratorError>;

    /// `GET /health`, for the API's readiness.
    async fn health(&self) -> Result<(), OrchestratorError>;

    /// `POST /v1/chat/brendan`: one of Brendan's turns.
    async fn chat(&self, turn: &ChatTurn) -> Result<ChatReply, OrchestratorError>;

    /// `POST /v1/retention/prune`: the orchestrator's share of a prune.
    async fn prune(&self, request: &PruneRequest) -> Result<PruneCounts, OrchestratorError>;
}

/// How long a chat turn may take (LLM calls and tools included).
const CHAT_TIMEOUT_SECS: u64 = 90;
/// How long the orchestrator's share of a retention prune may take: a
/// first prune of a large database deletes many rows (below the services'
/// default 120 s request timeout, which bounds the whole prune).
const PRUNE_TIMEOUT_SECS: u64 = 100;

/// The orchestrator over HTTP, every request signed with the internal
/// credential (never an operator key).
pub struct HttpOrchestrator {
    base: Url,
    internal: InternalKeys,
    http: reqwest::Client,
}

impl HttpOrchestrator {
    pub fn new(base: Url, internal: InternalKeys) -> HttpOrchestrator {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("the HTTP client builds");
        HttpOrchestrator { base, internal, http }
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("orchestrator paths are valid")
    }

    async fn send_request(&self, request: reqwest::RequestBuilder) -> Result<(), OrchestratorError> {
        self.call(request).await.map(drop)
    }

    /// Sends `request`; the response when it is a 2xx.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, OrchestratorError> {
        let mut request = request
            .build()
            .map_err(|err| OrchestratorError::Unreachable(without_url(&err)))?;
        myloware_http::internal::sign(&self.internal, &mut request);
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|err| OrchestratorError::Unreachable(without_url(&err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
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
    async fn send(&self, run_id: &str, command: &ExecutionCommand) -> Result<(), OrchestratorError> {
        let url = self.url(&command.path(run_id));
        self.send_request(self.http.post(url).json(command)).await
    }

    async fn send_signals(&self, run_id: &str, batch: &SignalBatch) -> Result<(), OrchestratorError> {
        let url = self.url(&format!("/v1/executions/{run_id}/signals/batch"));
        self.send_request(self.http.post(url).json(batch)).await
    }

    async fn health(&self) -> Result<(), OrchestratorError> {
        self.send_request(self.http.get(self.url("/health")).timeout(Duration::from_secs(2)))
            .await
    }

    async fn chat(&self, turn: &ChatTurn) -> Result<ChatReply, OrchestratorError> {
        // An LLM turn may call several tools: a longer budget than commands.
        let mut request = self
            .http
            .post(self.url("/v1/chat/brendan"))
            .timeout(Duration::from_secs(CHAT_TIMEOUT_SECS))
            .json(turn);
        // Brendan's spans join the turn's trace.
        if let Some(traceparent) = myloware_telemetry::trace::current_traceparent() {
            request = request.header("traceparent", traceparent);
        }
        let response = self.call(request).await?;
        response.json().await.map_err(|err| OrchestratorError::Refused {
            status: 200,
            body: format!("unreadable chat reply: {}", without_url(&err)),
        })
    }

    async fn prune(&self, request: &PruneRequest) -> Result<PruneCounts, OrchestratorError> {
        let response = self
            .call(
                self.http
                    .post(self.url("/v1/retention/prune"))
                    .timeout(Duration::from_secs(PRUNE_TIMEOUT_SECS))
                    .json(request),
            )
            .await?;
        response.json().await.map_err(|err| OrchestratorError::Refused {
            status: 200,
            body: format!("unreadable prune report: {}", without_url(&err)),
        })
    }
}
