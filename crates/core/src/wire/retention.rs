//! `POST /v1/retention/prune`, on the API (from `mw retention prune`) and on
//! the orchestrator (from the API's prune).

use serde::{Deserialize, Serialize};

/// The longest retention a prune accepts (about ten years).
pub const MAX_PRUNE_DAYS: i64 = 3650;

/// `POST /v1/retention/prune`, on the API (from `mw retention prune`) and
/// on the orchestrator (from the API's prune).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PruneRequest {
    /// Rows older than this many days (1 to 3650) are pruned.
    pub older_than_days: i64,
    /// Count what would be deleted without deleting it.
    #[serde(default)]
    pub dry_run: bool,
}

impl PruneRequest {
    /// `Err` says what is wrong with `olderThanDays`.
    pub fn check(&self) -> Result<(), String> {
        if (1..=MAX_PRUNE_DAYS).contains(&self.older_than_days) {
            Ok(())
        } else {
            Err(format!("must be between 1 and {MAX_PRUNE_DAYS} days"))
        }
    }
}

/// What a service's prune deleted (or, for a dry run, would delete): rows
/// by table name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneCounts {
    pub dry_run: bool,
    /// Now minus `olderThanDays`.
    pub cutoff: chrono::DateTime<chrono::Utc>,
    pub tables: std::collections::BTreeMap<String, u64>,
}
