//! `mw costs`: what paid calls cost per day, project and mode
//! (`GET /v1/costs`), as a table or the API's JSON.

use chrono::NaiveDate;
use serde_json::Value;

use crate::client::{self, ApiTarget};

/// The longest range the API answers (both ends included).
const MAX_DAYS: i64 = 366;

/// A `--from`/`--to` day (clap's parser: a bad one is a usage error).
pub fn day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%Y-%m-%d").to_string() == text)
        .ok_or_else(|| format!("{text:?} is not a day: write YYYY-MM-DD"))
}

/// A range the API would answer otherwise than asked (reversed, or over
/// 366 days) is a usage error here: say it rather than show other days.
pub fn check_range(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<(), String> {
    let (Some(from), Some(to)) = (from, to) else {
        return Ok(());
    };
    if from > to {
        return Err(format!("--from {from} is after --to {to}"));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_DAYS {
        return Err(format!(
            "{days} days from {from} to {to}: at most {MAX_DAYS} at once; ask for one year at a time"
        ));
    }
    Ok(())
}

pub async fn show(
    target: &ApiTarget,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    project: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    query.extend(from.map(|d| ("from", d.to_string())));
    query.extend(to.map(|d| ("to", d.to_string())));
    query.extend(project.map(|p| ("project", p.to_string())));
    let http = client::http();
    let report = target.send(http.get(target.url("/v1/costs")).query(&query)).await?;
    if json {
        return client::print_json(&report, false);
    }
    print!("{}", table(&report));
    Ok(())
}

/// The report as text: one line per day, project and mode, then totals.
fn table(report: &Value) -> String {
    let (from, to) = (client::text(&report["from"]), client::text(&report["to"]));
    let days = report["days"].as_array().cloned().unwrap_or_default();
    if days.is_empty() {
        return format!("no costs from {from} to {to} (UTC)\n");
    }
    let usd = |value: &Value| format!("{:.6}", value.as_f64().unwrap_or(0.0));
    let mut out = format!(
        "costs from {from} to {to} (UTC), in USD\n{:<10}  {:<16} {:<4} {:>11} {:>11} {:>11} {:>11} {:>11}\n",
        "day", "project", "mode", "kieai", "shotstack", "upload_post", "openai", "total"
    );
    let mut by_mode = [("live", 0.0), ("mock", 0.0)];
    for day in &days {
        let by = &day["byProvider"];
        out.push_str(&format!(
            "{:<10}  {:<16} {:<4} {:>11} {:>11} {:>11} {:>11} {:>11}\n",
            client::text(&day["day"]),
            client::text(&day["project"]),
            client::text(&day["mode"]),
            usd(&by["kieai"]),
            usd(&by["shotstack"]),
            usd(&by["upload_post"]),
            usd(&by["openai"]),
            usd(&day["spentUsd"]),
        ));
        if let Some((_, total)) = by_mode.iter_mut().find(|(mode, _)| day["mode"] == *mode) {
            *total += day["spentUsd"].as_f64().unwrap_or(0.0);
        }
    }
    let [(_, live), (_, mock)] = by_mode;
    out.push_str(&format!(
        "total {}: live {live:.6} (paid), mock {mock:.6} (what mock runs would have cost)\n",
        usd(&report["totalUsd"])
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_ranges_are_checked_before_asking() {
        assert_eq!(day("2026-01-05").unwrap().to_string(), "2026-01-05");
        for bad in ["2026-1-05", "2026-02-30", "today", "2026-01-05T00:00:00Z"] {
            assert!(day(bad).unwrap_err().contains("YYYY-MM-DD"), "{bad}");
        }
        let d = |text| Some(day(text).unwrap());
        assert!(check_range(d("2026-01-01"), d("2026-12-31")).is_ok());
        assert!(check_range(d("2026-01-01"), None).is_ok());
        assert!(
            check_range(d("2026-02-01"), d("2026-01-01"))
                .unwrap_err()
                .contains("after")
        );
        assert!(check_range(d("2025-01-01"), d("2026-01-01")).is_ok(), "366 days");
        assert!(
            check_range(d("2024-12-31"), d("2026-01-01"))
                .unwrap_err()
                .contains("367 days")
        );
    }
}
