//! Shotstack's Edit API: submit a render, ask for it, recover it.

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::LiveSettings;
use super::client::{Connection, KeyHeader, endpoint, non_empty_str, refused, success_json, unexpected};
use crate::{ProviderError, Recovered, RenderRequest, RenderState, Renderer};

const SHOTSTACK: &str = "shotstack";

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
            conn: Connection::new(SHOTSTACK, base, api_key, KeyHeader::Named("x-api-key"), settings)?,
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
        self.conn
            .post_json(&url, &body, |status, bytes| {
                let value = success_json(SHOTSTACK, status, bytes)?;
                if value.get("success").and_then(Value::as_bool) != Some(true) {
                    return Err(refused(SHOTSTACK, status, bytes));
                }
                non_empty_str(value.pointer("/response/id"))
                    .ok_or_else(|| unexpected(SHOTSTACK, status, bytes, "no response.id"))
            })
            .await
    }

    async fn recover(&self, _key: &str) -> Result<Recovered<String>, ProviderError> {
        Ok(Recovered::Unknown)
    }

    async fn status(&self, render_id: &str) -> Result<RenderState, ProviderError> {
        let url = endpoint(&self.conn.base, &["edit", &self.stage, "render", render_id]);
        self.conn
            .get(&url, |status, bytes| {
                let value = success_json(SHOTSTACK, status, bytes)?;
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
            })
            .await
    }
}
