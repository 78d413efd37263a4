//! Mock providers: deterministic per run, and recorded in a ledger (a
//! database table in the orchestrator) that counts every call, so tests can
//! prove that a clip, a render or a publish was requested exactly once even
//! across crashes. The mock kie.ai answers the way the real one does: it
//! returns a task id and later posts a callback signed with kie.ai's scheme.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    ClipRequest, ClipState, ProviderError, PublishRequest, PublishState, Publisher, Recovered, RenderRequest,
    RenderState, Renderer, VideoGenerator,
};

/// One recorded call.
#[derive(Debug, Clone, PartialEq)]
pub struct MockCall {
    pub provider: String,
    pub operation: String,
    pub key: String,
    pub run_id: String,
    pub request: Value,
    pub response: Value,
}

/// Where mocks record their calls.
#[async_trait]
pub trait MockLedger: Send + Sync {
    async fn record(&self, call: &MockCall) -> Result<(), String>;
    /// The first call of `operation` with `key`.
    async fn find(&self, provider: &str, operation: &str, key: &str) -> Result<Option<MockCall>, String>;
}

/// One mock's calls of one operation, in the ledger.
struct Calls {
    ledger: Arc<dyn MockLedger>,
    provider: &'static str,
    operation: &'static str,
}

impl Calls {
    fn new(ledger: Arc<dyn MockLedger>, provider: &'static str, operation: &'static str) -> Calls {
        Calls {
            ledger,
            provider,
            operation,
        }
    }

    fn failed(&self, message: String) -> ProviderError {
        ProviderError::Ledger {
            provider: self.provider,
            message,
        }
    }

    async fn record(&self, key: &str, run_id: &str, request: Value, response: Value) -> Result<(), ProviderError> {
        let call = MockCall {
            provider: self.provider.into(),
            operation: self.operation.into(),
            key: key.into(),
            run_id: run_id.into(),
            request,
            response,
        };
        self.ledger.record(&call).await.map_err(|message| self.failed(message))
    }

    /// What the first call with `key` answered, if there was one.
    async fn response(&self, key: &str) -> Result<Option<Value>, ProviderError> {
        let call = self
            .ledger
            .find(self.provider, self.operation, key)
            .await
            .map_err(|message| self.failed(message))?;
        Ok(call.map(|c| c.response))
    }
}

/// Settings of the mock kie.ai.
#[derive(Debug, Clone)]
pub struct MockKieSettings {
    /// Delay before the callback is posted.
    pub delay: Duration,
    /// Share of clips that fail (0.0 to 1.0), chosen deterministically per task.
    pub failure_rate: f64,
    /// Key of the callback signature.
    pub signing_key: Vec<u8>,
}

pub struct MockKie {
    submits: Calls,
    settings: MockKieSettings,
    http: reqwest::Client,
}

impl MockKie {
    pub fn new(ledger: Arc<dyn MockLedger>, settings: MockKieSettings) -> MockKie {
        MockKie {
            submits: Calls::new(ledger, "kieai", "submit"),
            settings,
            http: reqwest::Client::new(),
        }
    }

    /// Whether the mock fails this task (the same answer every time).
    fn fails(&self, task_id: &str) -> bool {
        let digest = Sha256::digest(task_id.as_bytes());
        let bucket = u16::from_be_bytes([digest[0], digest[1]]) as f64 / f64::from(u16::MAX);
        bucket < self.settings.failure_rate
    }

    fn outcome(&self, task_id: &str) -> ClipState {
        if self.fails(task_id) {
            ClipState::Failed {
                code: 501,
                message: "mock kie.ai: generation failed (simulated)".into(),
            }
        } else {
            ClipState::Succeeded {
                url: format!("https://mock.kie.ai/clips/{task_id}.mp4"),
            }
        }
    }

    /// Posts the callback like kie.ai: `{code, msg, data: {taskId, info}}`,
    /// signed with `X-Webhook-Timestamp` / `X-Webhook-Signature`, retried a
    /// few times on failure.
    async fn send_callback(http: reqwest::Client, url: String, key: Vec<u8>, task_id: String, outcome: ClipState) {
        let body = match &outcome {
            ClipState::Succeeded { url } => json!({
                "code": 200, "msg": "success",
                "data": {"taskId": task_id, "info": {"resultUrls": [url], "originUrls": [url], "resolution": "1080p"}, "fallbackFlag": false}
            }),
            ClipState::Failed { code, message } => json!({"code": code, "msg": message, "data": {"taskId": task_id}}),
            ClipState::Generating => return,
        };
        for attempt in 0..5u32 {
            let timestamp = chrono::Utc::now().timestamp().to_string();
            let signature = myloware_core::signing::kieai_signature(&key, &task_id, &timestamp);
            let sent = http
                .post(&url)
                .header("x-webhook-timestamp", &timestamp)
                .header("x-webhook-signature", signature)
                .json(&body)
                .timeout(Duration::from_secs(15))
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => tracing::warn!(%task_id, status = %response.status(), "mock kie.ai callback refused"),
                Err(err) => tracing::warn!(%task_id, error = %err, "mock kie.ai callback failed"),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
    }
}

/// The mocks' ledger knows every call they received: the id field `field`
/// of the recorded answer, or that there was no call.
fn found(response: Option<Value>, field: &str) -> Recovered<String> {
    match response.as_ref().and_then(|r| r[field].as_str()) {
        Some(value) => Recovered::Found(value.to_owned()),
        None => Recovered::NotFound,
    }
}

/// Deterministic mock ids: the same key always maps to the same id.
fn mock_id(prefix: &str, key: &str) -> String {
    format!("{prefix}_{}", &hex::encode(Sha256::digest(key.as_bytes()))[..20])
}

#[async_trait]
impl VideoGenerator for MockKie {
    async fn submit(&self, key: &str, request: &ClipRequest) -> Result<String, ProviderError> {
        let task_id = mock_id("mockkie", key);
        let sent = serde_json::to_value(request).expect("serializes");
        self.submits
            .record(key, &request.run_id, sent, json!({"taskId": task_id}))
            .await?;
        let (http, url, signing_key, outcome, delay) = (
            self.http.clone(),
            request.callback_url.clone(),
            self.settings.signing_key.clone(),
            self.outcome(&task_id),
            self.settings.delay,
        );
        let task = task_id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            MockKie::send_callback(http, url, signing_key, task, outcome).await;
        });
        Ok(task_id)
    }

    async fn recover(&self, key: &str) -> Result<Recovered<String>, ProviderError> {
        Ok(found(self.submits.response(key).await?, "taskId"))
    }

    async fn status(&self, task_id: &str) -> Result<ClipState, ProviderError> {
        Ok(self.outcome(task_id))
    }
}

/// The mock render: a real MP4 of a few KB (how it was made:
/// `crates/providers/assets/README.md`). The engine stores it as the
/// render's asset instead of downloading the mock URL.
pub const RENDER_MP4: &[u8] = include_bytes!("../assets/mock-render.mp4");

pub struct MockShotstack {
    renders: Calls,
}

impl MockShotstack {
    pub fn new(ledger: Arc<dyn MockLedger>) -> MockShotstack {
        MockShotstack {
            renders: Calls::new(ledger, "shotstack", "render"),
        }
    }
}

#[async_trait]
impl Renderer for MockShotstack {
    async fn render(&self, key: &str, request: &RenderRequest) -> Result<String, ProviderError> {
        let render_id = mock_id("mockrender", key);
        self.renders
            .record(key, &request.run_id, request.edit.clone(), json!({"id": render_id}))
            .await?;
        Ok(render_id)
    }

    async fn recover(&self, key: &str) -> Result<Recovered<String>, ProviderError> {
        Ok(found(self.renders.response(key).await?, "id"))
    }

    async fn status(&self, render_id: &str) -> Result<RenderState, ProviderError> {
        Ok(RenderState::Done {
            url: format!("https://mock.shotstack.io/renders/{render_id}.mp4"),
        })
    }
}

pub struct MockUploadPost {
    publishes: Calls,
}

impl MockUploadPost {
    pub fn new(ledger: Arc<dyn MockLedger>) -> MockUploadPost {
        MockUploadPost {
            publishes: Calls::new(ledger, "upload_post", "publish"),
        }
    }

    fn published(key: &str, request_profile: Option<&str>) -> PublishState {
        let profile = request_profile.unwrap_or("myloware");
        PublishState::Published {
            urls: vec![format!(
                "https://www.tiktok.com/@{profile}/video/{}",
                mock_id("mock", key)
            )],
        }
    }
}

#[async_trait]
impl Publisher for MockUploadPost {
    async fn publish(&self, key: &str, request: &PublishRequest) -> Result<PublishState, ProviderError> {
        let state = Self::published(key, request.profile.as_deref());
        let sent = serde_json::to_value(request).expect("serializes");
        let answered = serde_json::to_value(&state).expect("serializes");
        self.publishes.record(key, &request.run_id, sent, answered).await?;
        Ok(state)
    }

    async fn status(&self, key: &str) -> Result<Option<PublishState>, ProviderError> {
        let response = self.publishes.response(key).await?;
        Ok(response.and_then(|r| serde_json::from_value(r).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_ids_are_deterministic_per_key() {
        assert_eq!(mock_id("x", "run_a:clip:0"), mock_id("x", "run_a:clip:0"));
        assert_ne!(mock_id("x", "run_a:clip:0"), mock_id("x", "run_a:clip:1"));
    }

    #[test]
    fn the_mock_render_is_a_small_mp4() {
        assert_eq!(&RENDER_MP4[4..8], b"ftyp");
        assert!(RENDER_MP4.len() < 8 * 1024, "{} bytes", RENDER_MP4.len());
    }
}
