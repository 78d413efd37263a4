//! The operator commands' client of a running API: where it is, the key,
//! and errors that say what to do next.

use std::time::Duration;

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

/// A non-2xx answer of the API; its message says what to do next.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

/// The HTTP client of the operator commands: a request that hangs fails
/// instead of hanging the terminal; the audit sees `mw/<version>` as the
/// user agent.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("mw/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("the HTTP client builds")
}

impl ApiTarget {
    /// `GET /v1/runs/{run_id}`.
    pub async fn run(&self, http: &reqwest::Client, run_id: &str) -> anyhow::Result<Value> {
        self.send_about_run(run_id, http.get(self.url(&format!("/v1/runs/{run_id}"))))
            .await
    }

    /// Sends `request` with the key; the JSON body of a 2xx.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        self.send_about(None, request).await
    }

    /// [`Self::send`] for a request about one run: a 404 for the run says
    /// there is no such run.
    pub async fn send_about_run(&self, run_id: &str, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        self.send_about(Some(run_id), request).await
    }

    async fn send_about(&self, run_id: Option<&str>, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let Some(key) = &self.api_key else {
            bail!("no API key: set API_KEY or pass --api-key");
        };
        let api = self.api_url.trim_end_matches('/');
        let response = request.header("x-api-key", key).send().await.with_context(|| {
            format!("cannot reach the API at {api}; is the API running? start it with `mw dev` or set MW_API_URL")
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let detail = detail(&body);
        let message = match status.as_u16() {
            200..=299 => return Ok(body),
            401 => "the API refused the key (401): set API_KEY (or --api-key) to a key of that API".into(),
            404 => match run_id {
                Some(run_id) if detail == "run not found" => format!("no run {run_id}; `mw runs list` shows the runs"),
                _ => format!("not found: {detail}"),
            },
            409 => detail,
            422 => format!("the API refused the request: {detail}"),
            429 => format!("{detail}; wait a minute and try again"),
            502 => format!("{detail}; check the orchestrator (`mw dev` runs both services) and try again"),
            _ => format!("the API answered {status}: {detail}"),
        };
        Err(Refused {
            status: status.as_u16(),
            message,
        }
        .into())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url.trim_end_matches('/'))
    }
}

/// The HTTP status of a refusal, `None` for anything else (unreachable).
pub fn refused_status(err: &anyhow::Error) -> Option<u16> {
    err.downcast_ref::<Refused>().map(|r| r.status)
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

/// Prints `value` for scripts: indented, or on one line (`compact`) for
/// streams of answers.
pub fn print_json(value: &Value, compact: bool) -> anyhow::Result<()> {
    if compact {
        println!("{}", serde_json::to_string(value)?);
    } else {
        println!("{}", serde_json::to_string_pretty(value)?);
    }
    Ok(())
}

/// Prints the array `field` of an API answer as a table: `header`, then
/// `row` of each item, or `none` when there is no item. Whether there was.
pub fn print_table(body: &Value, field: &str, none: &str, header: &str, row: impl Fn(&Value) -> String) -> bool {
    let items = body[field].as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        println!("{none}");
        return false;
    }
    println!("{header}");
    for item in items {
        println!("{}", row(item));
    }
    true
}

/// The fields that are set, in order (for a body or a query).
pub fn present<const N: usize>(
    fields: [(&'static str, Option<String>); N],
) -> impl Iterator<Item = (&'static str, String)> {
    fields.into_iter().filter_map(|(name, value)| Some((name, value?)))
}

/// Who decided a gate: ` by <approver>` (the credential that decided),
/// then ` ("<note>")` (the name it gave); empty while undecided.
pub fn decided_by(gate: &Value) -> String {
    let Some(approver) = gate["approver"].as_str() else {
        return String::new();
    };
    match gate["note"].as_str() {
        Some(note) => format!(" by {approver} (\"{note}\")"),
        None => format!(" by {approver}"),
    }
}

/// `2026-11-29T17:09:50.723Z` as `2026-11-29 17:09:50`; `-` when absent.
pub fn when(value: &Value) -> String {
    match value.as_str() {
        Some(at) if at.len() >= 19 => at[..19].replace('T', " "),
        Some(at) => at.to_string(),
        None => "-".into(),
    }
}

/// A string field, or `-`.
pub fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}
