//! The paid providers behind traits — video generation (kie.ai), render
//! (Shotstack), publish (Upload-Post) — each with a mock (this crate) and a
//! live HTTP client (with the live-providers work). The engine calls them
//! only through the journal, with an idempotency key per call, so a step
//! re-run after a crash asks `recover` instead of submitting again.
//!
//! Crate graph: `myloware-providers` may import `myloware-core` only;
//! `myloware-orchestrator` (which calls the providers) and `myloware-cli`
//! import it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod live;
pub mod mock;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered and refused (a reason a person can act on).
    #[error("{provider} refused the request ({code}): {message}")]
    Refused {
        provider: &'static str,
        code: i64,
        message: String,
    },
    /// Could not get an answer (after the client's own retries).
    #[error("{provider} unavailable: {message}")]
    Unavailable { provider: &'static str, message: String },
    /// A call that creates work (a clip, a render, a post) was sent but not
    /// answered in time: the provider may have received it, so it is not
    /// sent again; the caller asks the provider (or waits) instead.
    #[error("{provider} did not answer in time and may have received the request: {message}")]
    Unanswered { provider: &'static str, message: String },
    /// The mocks' call ledger (our own database) failed: nothing is known
    /// about the call; the step is run again, not failed.
    #[error("{provider} mock ledger: {message}")]
    Ledger { provider: &'static str, message: String },
    /// Live mode without what the provider needs.
    #[error("{0}")]
    NotConfigured(String),
}

/// What a provider knows of a call whose answer was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered<T> {
    /// It received the call: here is what it answered.
    Found(T),
    /// It never received the call: making it now pays once.
    NotFound,
    /// It cannot tell (no lookup by our key): do not call again.
    Unknown,
}

/// One clip to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRequest {
    pub run_id: String,
    pub index: u32,
    pub prompt: String,
    pub duration_seconds: f64,
    pub aspect_ratio: String,
    /// Where the provider posts the result (carries the run, clip and token).
    pub callback_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClipState {
    Generating,
    Succeeded { url: String },
    Failed { code: i64, message: String },
}

#[async_trait]
pub trait VideoGenerator: Send + Sync {
    /// Submits a clip; returns the provider's task id.
    async fn submit(&self, key: &str, request: &ClipRequest) -> Result<String, ProviderError>;
    /// The task id of a submission whose answer was lost. kie.ai cannot
    /// look up by our key (`Unknown`): the callback, whose URL names the run
    /// and clip, is then the only way to learn it.
    async fn recover(&self, key: &str) -> Result<Recovered<String>, ProviderError>;
    /// kie.ai's `record-info`: for clips whose callback never came.
    async fn status(&self, task_id: &str) -> Result<ClipState, ProviderError>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderRequest {
    pub run_id: String,
    /// Shotstack's `{timeline, output}` body.
    pub edit: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenderState {
    Rendering,
    Done { url: String },
    Failed { message: String },
}

#[async_trait]
pub trait Renderer: Send + Sync {
    /// Starts a render; returns the render id.
    async fn render(&self, key: &str, request: &RenderRequest) -> Result<String, ProviderError>;
    async fn recover(&self, key: &str) -> Result<Recovered<String>, ProviderError>;
    async fn status(&self, render_id: &str) -> Result<RenderState, ProviderError>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishRequest {
    pub run_id: String,
    pub video_url: String,
    pub caption: String,
    pub platforms: Vec<String>,
    /// The Upload-Post profile (`user`).
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublishState {
    Pending,
    Published { urls: Vec<String> },
    Failed { message: String },
}

#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes with our own request id (`key`), so a lost answer is
    /// resolved by `status`, never by posting again.
    async fn publish(&self, key: &str, request: &PublishRequest) -> Result<PublishState, ProviderError>;
    /// `None` when the provider has no publish with this request id.
    async fn status(&self, key: &str) -> Result<Option<PublishState>, ProviderError>;
}

/// The three providers a run uses.
#[derive(Clone)]
pub struct Providers {
    pub video: Arc<dyn VideoGenerator>,
    pub render: Arc<dyn Renderer>,
    pub publish: Arc<dyn Publisher>,
}
