//! `mw dlq list|replay`: the API's dead-letter queue, for operators.

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
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let Some(key) = &self.api_key else {
            bail!("no API key: set API_KEY or pass --api-key");
        };
        let response = request
            .header("x-api-key", key)
            .send()
            .await
            .with_context(|| format!("cannot reach the API at {}; is it running (MW_API_URL)?", self.api_url))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.as_u16() == 401 {
            bail!("the API refused the key (401): set API_KEY to a key of that API");
        }
        if !status.is_success() {
            bail!(
                "the API answered {status}: {}",
                body["detail"].as_str().unwrap_or("no detail")
            );
        }
        Ok(body)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url.trim_end_matches('/'))
    }
}

pub async fn list(target: &ApiTarget, all: bool, json: bool) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let body = target.send(http.get(target.url(&format!("/v1/dlq?all={all}")))).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body["deadLetters"])?);
        return Ok(());
    }
    let letters = body["deadLetters"].as_array().cloned().unwrap_or_default();
    if letters.is_empty() {
        println!("no dead letters");
        return Ok(());
    }
    println!(
        "{:>6}  {:<8} {:<18} {:>8}  {:<10} error",
        "seq", "kind", "run", "attempts", "state"
    );
    for letter in letters {
        println!(
            "{:>6}  {:<8} {:<18} {:>8}  {:<10} {}",
            letter["seq"],
            letter["kind"].as_str().unwrap_or(""),
            letter["runId"].as_str().unwrap_or("-"),
            letter["attempts"],
            if letter["resolvedAt"].is_null() {
                "open"
            } else {
                "replayed"
            },
            letter["error"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// Replays the given entries (or every open one); fails if any stays open.
pub async fn replay(target: &ApiTarget, seqs: &[i64], all: bool) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let seqs: Vec<i64> = if all {
        let body = target.send(http.get(target.url("/v1/dlq"))).await?;
        body["deadLetters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["seq"].as_i64())
            .collect()
    } else {
        seqs.to_vec()
    };
    if seqs.is_empty() {
        bail!("nothing to replay: name entries (mw dlq replay 12 13) or pass --all");
    }
    let mut still_open = 0;
    for seq in seqs {
        let answer = target
            .send(http.post(target.url(&format!("/v1/dlq/{seq}/replay"))))
            .await?;
        if answer["resolved"] == true {
            println!("{seq}: replayed");
        } else {
            still_open += 1;
            println!(
                "{seq}: still failing: {}",
                answer["error"].as_str().unwrap_or("unknown error")
            );
        }
    }
    if still_open > 0 {
        bail!(
            "{still_open} entr{} still failing; fix the cause and replay again",
            if still_open == 1 { "y is" } else { "ies are" }
        );
    }
    Ok(())
}
