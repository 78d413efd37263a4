//! `mw retention prune`: deletes (or counts, with `--dry-run`) rows older
//! than a cutoff that no unfinished run needs, in both services, through
//! the API (which asks the orchestrator for its share).

use serde_json::{Value, json};

use crate::client::{self, ApiTarget, when};

pub async fn prune(target: &ApiTarget, older_than_days: i64, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let body = json!({"olderThanDays": older_than_days, "dryRun": dry_run});
    let report = target
        .send(client::http().post(target.url("/v1/retention/prune")).json(&body))
        .await?;
    if json {
        return client::print_json(&report, false);
    }
    let cutoff = when(&report["cutoff"]);
    if dry_run {
        println!("dry run: would delete, from before {cutoff} UTC ({older_than_days} days):");
    } else {
        println!("deleted, from before {cutoff} UTC ({older_than_days} days):");
    }
    for service in ["api", "orchestrator"] {
        println!("  {service}");
        for (table, count) in report[service].as_object().into_iter().flatten() {
            println!("    {table:<20} {}", count_of(count));
        }
    }
    if dry_run {
        println!("delete them: mw retention prune --older-than-days {older_than_days}");
    }
    Ok(())
}

fn count_of(value: &Value) -> String {
    value.as_u64().map_or_else(|| value.to_string(), |n| n.to_string())
}
