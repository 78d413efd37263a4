//! `mw audit`: the audit of operator actions (`GET /v1/audit`, or one
//! run's with `--run`: `GET /v1/runs/{runId}/audit`), newest first, as a
//! table or the API's JSON.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;

use crate::client::{self, ApiTarget, text, when};

/// Filters and page of `mw audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    /// Only this run's entries (run_…).
    #[arg(long = "run", value_name = "RUN_ID")]
    run_id: Option<String>,
    /// Only entries by this credential: `key:<name>`, `telegram:<chat id>`, `token:<fingerprint>`.
    #[arg(long)]
    actor: Option<String>,
    /// Only entries since this time: RFC 3339 (2026-12-22T09:00:00Z), or
    /// how long ago (90m, 24h, 7d).
    #[arg(long, value_parser = since)]
    since: Option<String>,
    /// How many (1 to 200).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: u32,
    /// The page after this cursor (printed under a full page).
    #[arg(long)]
    cursor: Option<String>,
    /// The API's JSON instead of text, for scripts.
    #[arg(long)]
    json: bool,
}

/// `--since`: an RFC 3339 time as given, or `<n>m|h|d` ago in UTC (clap's
/// parser: anything else is a usage error).
pub fn since(text: &str) -> Result<String, String> {
    if DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok(text.to_string());
    }
    let unit = text.chars().last().unwrap_or_default();
    let count = text[..text.len() - unit.len_utf8().min(text.len())].parse::<u32>().ok();
    let ago = count
        .and_then(|n| match unit {
            'm' => Some(Duration::minutes(n.into())),
            'h' => Some(Duration::hours(n.into())),
            'd' => Some(Duration::days(n.into())),
            _ => None,
        })
        .ok_or_else(|| format!("{text:?} is not a time: write 2026-12-22T09:00:00Z, or 90m, 24h, 7d"))?;
    Ok((Utc::now() - ago).to_rfc3339_opts(SecondsFormat::Secs, true))
}

pub async fn show(target: &ApiTarget, args: AuditArgs) -> anyhow::Result<()> {
    let mut query = vec![("limit", args.limit.to_string())];
    query.extend(client::present([
        ("actor", args.actor.clone()),
        ("since", args.since.clone()),
        ("cursor", args.cursor),
    ]));
    let http = client::http();
    let body = match &args.run_id {
        Some(run_id) => {
            let request = http.get(target.url(&format!("/v1/runs/{run_id}/audit"))).query(&query);
            target.send_about_run(run_id, request).await?
        }
        None => target.send(http.get(target.url("/v1/audit")).query(&query)).await?,
    };
    if args.json {
        return client::print_json(&body, false);
    }
    let header = format!(
        "{:<19}  {:<24} {:<8} {:<18} {:<10} {:<15} outcome",
        "at", "actor", "action", "run", "gate", "from"
    );
    let any = client::print_table(&body, "entries", "no audit entries", &header, |entry| {
        format!(
            "{:<19}  {:<24} {:<8} {:<18} {:<10} {:<15} {}",
            when(&entry["at"]),
            text(&entry["actor"]),
            text(&entry["action"]),
            text(&entry["runId"]),
            text(&entry["gate"]),
            text(&entry["ip"]),
            outcome(entry)
        )
    });
    if any && let Some(cursor) = body["nextCursor"].as_str() {
        let mut more = format!("mw audit --limit {}", args.limit);
        for (flag, value) in [("--run", args.run_id), ("--actor", args.actor), ("--since", args.since)] {
            if let Some(value) = value {
                more.push_str(&format!(" {flag} {value}"));
            }
        }
        println!("more: {more} --cursor {cursor}");
    }
    Ok(())
}

/// The outcome, `refused: …` when the action was not done, with what it
/// carried (a reason, a note, a dead letter).
fn outcome(entry: &Value) -> String {
    let mut line = match entry["accepted"].as_bool() {
        Some(true) => text(&entry["outcome"]).to_string(),
        _ => format!("refused: {}", text(&entry["outcome"])),
    };
    for (field, value) in entry["detail"].as_object().into_iter().flatten() {
        match value {
            Value::Null => {}
            Value::String(value) => line.push_str(&format!(" {field}={value:?}")),
            other => line.push_str(&format!(" {field}={other}")),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_how_long_ago() {
        assert_eq!(since("2026-12-22T09:00:00Z").unwrap(), "2026-12-22T09:00:00Z");
        assert_eq!(since("2026-12-22T10:00:00+01:00").unwrap(), "2026-12-22T10:00:00+01:00");
        let ago = DateTime::parse_from_rfc3339(&since("24h").unwrap()).unwrap();
        let expected = Utc::now() - Duration::hours(24);
        assert!((ago.with_timezone(&Utc) - expected).num_seconds().abs() <= 2);
        for bad in ["", "h", "24", "24w", "yesterday", "2026-12-22", "-3d", "5é"] {
            assert!(since(bad).is_err(), "{bad:?}");
        }
    }
}
