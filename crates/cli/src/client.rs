//! The operator commands' client of a running API: where it is, the key,
//! and errors that say what to do next.

use anyhow::{Context, bail};
use serde_json::Value;

/// Where the API is and how to authenticate (from flags or the environment).
#[derive(clap::Args, Debug)]
pub struct ApiTarget {
    /// The API's base URL.
    #[arg(long, env = "MW_API_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub api_url: String,
    /// The API key.
    #[arg(long, env = "API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
}

impl ApiTarget {
    /// Sends `request` with the key; the JSON body of a 2xx.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let Some(key) = &self.api_key else {
            bail!("no API key: set API_KEY or pass --api-key");
        };
        let api = self.api_url.trim_end_matches('/');
        let response = request.header("x-api-key", key).send().await.with_context(|| {
            format!("cannot reach the API at {api}; is the API running? start it with `mw dev` (or set MW_API_URL)")
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status.as_u16() {
            200..=299 => Ok(body),
            401 => bail!("the API refused the key (401): set API_KEY to a key of that API"),
            422 => bail!("the API refused the request: {}", detail(&body)),
            429 => bail!("{}; wait a minute and try again", detail(&body)),
            502 => bail!(
                "{}; check the orchestrator (`mw dev` runs both services) and try again",
                detail(&body)
            ),
            _ => bail!("the API answered {status}: {}", detail(&body)),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url.trim_end_matches('/'))
    }
}

/// The API's `{"detail"}`: a sentence, or the list of field errors of a 422.
pub fn detail(body: &Value) -> String {
    match &body["detail"] {
        Value::String(detail) => detail.clone(),
        Value::Array(errors) => errors
            .iter()
            .map(|e| {
                let field = e["loc"].as_array().and_then(|loc| loc.last()).and_then(Value::as_str);
                let msg = e["msg"].as_str().unwrap_or("invalid");
                match field {
                    Some(field) => format!("{field}: {msg}"),
                    None => msg.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => "no detail".into(),
    }
}
