//! Upload-Post (publishing to TikTok): publish, ask for the status,
//! recover after a crash.

use async_trait::async_trait;
use rand::Rng;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use super::LiveSettings;
use super::client::{Connection, KeyHeader, endpoint, message_of, non_empty_str, refused, success_json};
use crate::{ProviderError, PublishRequest, PublishState, Publisher};

const UPLOAD_POST: &str = "upload-post";

/// Upload-Post's API (publishing to TikTok).
#[derive(Debug)]
pub struct UploadPost {
    conn: Connection,
}

impl UploadPost {
    pub fn new(base: Url, api_key: SecretString, settings: LiveSettings) -> Result<UploadPost, String> {
        Ok(UploadPost {
            conn: Connection::new(UPLOAD_POST, base, api_key, KeyHeader::Authorization("Apikey"), settings)?,
        })
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
        self.conn
            .call(
                Method::POST,
                &url,
                |builder| {
                    builder
                        .header("x-request-id", key)
                        .header(reqwest::header::CONTENT_TYPE, &content_type)
                        .body(body.clone())
                },
                |status, bytes| {
                    let value = success_json(UPLOAD_POST, status, bytes)?;
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
        self.conn
            .get(&url, |status, bytes| {
                if status == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let value = success_json(UPLOAD_POST, status, bytes)?;
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
            })
            .await
    }
}
