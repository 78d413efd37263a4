//! The audit of operator actions: every gate decision attempt (refused
//! ones included) and approval-page view, every cancel, retry, dead-letter
//! replay and proposal edit, with who (the credential), when, from where, and
//! what came of it. Written once per request, never changed; read newest
//! first, filtered and paged.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::common::text_enum;

text_enum! {
    /// What was done. A new audited action is one line here (and its
    /// `audit` call where it happens).
    pub enum AuditAction {
        Approve = "approve",
        Reject = "reject",
        /// Changes requested at a gate.
        Revise = "revise",
        /// An approval page (or its JSON description) opened with a link.
        View = "view",
        Cancel = "cancel",
        Retry = "retry",
        Replay = "replay",
        /// A proposal's project, input or options changed before approval.
        EditProposal = "edit_proposal",
        /// A console sign-in with an API key.
        SignIn = "sign_in",
    }
}

/// One action to record, whatever came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// The credential: `key:<name>`, `token:<fingerprint>`,
    /// `telegram:<chat id>`, `system:gate-timeout`, or `none`; never a secret.
    pub actor: String,
    pub action: AuditAction,
    /// `None` for a replay of a dead letter that names no run.
    pub run_id: Option<String>,
    pub gate: Option<String>,
    /// Whether it was done (or had already been: a repeated decision).
    pub accepted: bool,
    /// How it went (`approved`, `cancelled`, …) or why it was refused.
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What the action carried (a reason, a note, a dead letter's seq).
    pub detail: Option<Value>,
}

/// An entry as stored. `action` stays text, so an action added by a newer
/// release still reads.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRecord {
    /// Insertion order; the list cursor.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub run_id: Option<String>,
    pub gate: Option<String>,
    pub accepted: bool,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[sqlx(json(nullable))]
    pub detail: Option<Value>,
}

/// Filters of the audit; newest first, `before` is an exclusive cursor.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub run_id: Option<String>,
    pub actor: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: u32,
}

pub(super) const AUDIT_COLUMNS: &str =
    "seq, at, actor, action, run_id, gate, accepted, outcome, ip, user_agent, detail";

/// The [`ApiStore`](super::ApiStore) methods of the audit, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! audit_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO audit (at, actor, action, run_id, gate, accepted, outcome, ip, user_agent, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(entry.at)
                .bind(&entry.actor)
                .bind(entry.action.as_str())
                .bind(&entry.run_id)
                .bind(&entry.gate)
                .bind(entry.accepted)
                .bind(&entry.outcome)
                .bind(&entry.ip)
                .bind(&entry.user_agent)
                .bind(entry.detail.as_ref().map(Json))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
                let records: Vec<AuditRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit \
                     WHERE ($1 IS NULL OR run_id = $1) AND ($2 IS NULL OR actor = $2) \
                       AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR seq < $4) \
                     ORDER BY seq DESC LIMIT $5"
                )))
                .bind(&query.run_id)
                .bind(&query.actor)
                .bind(query.since)
                .bind(query.before)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(records)
            }

            async fn list_audit(&self, run_id: &str) -> StoreResult<Vec<AuditRecord>> {
                let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE run_id = $1 ORDER BY seq");
                Ok(rows_for(&self.pool, sqlx::AssertSqlSafe(sql), run_id).await?)
            }
        }
    };
}
pub(super) use audit_methods;
