//! kie.ai (Veo 3): submit a clip, ask for it, recover it after a crash,
//! and the credit balance for `mw validate env --online`.

use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::LiveSettings;
use super::client::{Connection, Failure, KeyHeader, endpoint, message_of, non_empty_str, success_json, unexpected};
use crate::{ClipRequest, ClipState, ProviderError, Recovered, VideoGenerator};

const KIEAI: &str = "kieai";

/// kie.ai's Veo 3 API.
#[derive(Debug)]
pub struct KieAi {
    conn: Connection,
}

impl KieAi {
    pub fn new(base: Url, api_key: SecretString, settings: LiveSettings) -> Result<KieAi, String> {
        Ok(KieAi {
            conn: Connection::new(KIEAI, base, api_key, KeyHeader::Authorization("Bearer"), settings)?,
        })
    }

    /// kie.ai's envelope `{code, msg, data}`: `data` when `code` is 200.
    fn envelope(status: StatusCode, body: &[u8]) -> Result<Value, Failure> {
        let value = success_json(KIEAI, status, body)?;
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
        self.conn
            .post_json(&url, &body, |status, bytes| {
                let data = Self::envelope(status, bytes)?;
                non_empty_str(data.get("taskId")).ok_or_else(|| unexpected(KIEAI, status, bytes, "no data.taskId"))
            })
            .await
    }

    async fn recover(&self, _key: &str) -> Result<Recovered<String>, ProviderError> {
        Ok(Recovered::Unknown)
    }

    async fn status(&self, task_id: &str) -> Result<ClipState, ProviderError> {
        let mut url = endpoint(&self.conn.base, &["api", "v1", "veo", "record-info"]);
        url.query_pairs_mut().append_pair("taskId", task_id);
        self.conn
            .get(&url, |status, bytes| {
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
            })
            .await
    }
}

impl KieAi {
    /// `GET /api/v1/chat/credit`: the account's remaining credits.
    pub async fn credits(&self) -> Result<i64, ProviderError> {
        let url = endpoint(&self.conn.base, &["api", "v1", "chat", "credit"]);
        self.conn
            .get(&url, |status, bytes| {
                let value = success_json(KIEAI, status, bytes)?;
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
            })
            .await
    }
}
