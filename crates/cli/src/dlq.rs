//! `mw dlq list|replay`: the API's dead-letter queue, for operators.

use anyhow::bail;

use crate::client::{self, ApiTarget};

pub async fn list(target: &ApiTarget, all: bool, json: bool) -> anyhow::Result<()> {
    let http = client::http();
    let body = target.send(http.get(target.url(&format!("/v1/dlq?all={all}")))).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body["deadLetters"])?);
        return Ok(());
    }
    let header = format!(
        "{:>6}  {:<8} {:<18} {:>8}  {:<10} error",
        "seq", "kind", "run", "attempts", "state"
    );
    client::print_table(&body, "deadLetters", "no dead letters", &header, |letter| {
        format!(
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
        )
    });
    Ok(())
}

/// Replays the given entries (or every open one); fails if any stays open.
pub async fn replay(target: &ApiTarget, seqs: &[i64], all: bool) -> anyhow::Result<()> {
    let http = client::http();
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
