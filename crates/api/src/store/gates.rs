//! HITL gates: a gate opens awaiting and takes one decision (one
//! transaction on the locked gate row, with its run move, artifact and
//! command): approved (once enough distinct approvers approved), rejected,
//! or revised (sent back for changes: the gate opens again, awaiting, when
//! the orchestrator reaches it again). Every attempt is audited
//! ([`super::audit`]).

use chrono::{DateTime, Utc};
use myloware_core::wire::Decision as Verdict;
use myloware_core::{Gate, RunStatus};
use serde_json::Value;
use sqlx::types::Json;

use super::artifacts::Artifact;
use super::chat::ChatMessage;
use super::commands::NewCommand;
use super::common::{StoreError, StoreResult, text_enum};

/// A HITL gate to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGate {
    pub run_id: String,
    pub gate: Gate,
    pub preview: Value,
}

text_enum! {
    pub enum GateStatus {
        Awaiting = "awaiting",
        Approved = "approved",
        Rejected = "rejected",
        Expired = "expired",
        /// Sent back for changes; awaiting again once its persona is done.
        Revised = "revised",
    }
}

impl GateStatus {
    /// The decision a decided gate took.
    pub fn decided(self) -> Option<Verdict> {
        match self {
            GateStatus::Approved => Some(Verdict::Approve),
            GateStatus::Rejected => Some(Verdict::Reject),
            GateStatus::Revised => Some(Verdict::Revise),
            GateStatus::Awaiting | GateStatus::Expired => None,
        }
    }
}

/// One approval of a gate that needs several.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The credential, as [`GateRecord::approver`] names it, or `link` for
    /// every link token together.
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A gate instance, with whether the orchestrator has its decision.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRecord {
    pub run_id: String,
    pub gate: Gate,
    pub status: GateStatus,
    pub preview: Value,
    pub requested_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub decision: Option<String>,
    /// The credential that decided: `key:<name>`, `token:<fingerprint>`,
    /// `telegram:<chat id>`.
    pub approver: Option<String>,
    /// The name the decider gave (free text; not an identity).
    pub note: Option<String>,
    pub reason: Option<String>,
    /// `None` before a decision or when none had to be delivered.
    pub delivered: Option<bool>,
    /// Times the gate was sent back for changes.
    pub revisions: u32,
    /// The approvals of this wait so far (a gate needing several).
    pub approvals: Vec<Approval>,
}

/// A gate that waited too long, with what its expiry changes.
#[derive(Debug, Clone)]
pub struct GateExpiry {
    pub run_id: String,
    pub gate: Gate,
    /// The run's status while the gate waits.
    pub run_from: RunStatus,
    pub artifact: Artifact,
    /// Stops the execution (none for a proposal's workflow gate).
    pub command: Option<NewCommand>,
    pub notice: ChatMessage,
}

/// One decision, with what it changes beside the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub run_id: String,
    pub gate: Gate,
    pub verdict: Verdict,
    /// Distinct approvals the gate needs before an approval decides it.
    pub required: u32,
    /// The gate's revisions when the decider saw it: a decision about an
    /// earlier wait finds nothing awaiting.
    pub round: u32,
    /// Who the approval counts as ([`Approval::by`]).
    pub counted_as: String,
    pub approver: Option<String>,
    pub note: Option<String>,
    pub reason: Option<String>,
    /// The run status move the decision makes, if any (`from`, `to`).
    pub run_move: Option<(RunStatus, RunStatus)>,
    pub artifact: Option<Artifact>,
    /// What the orchestrator must be told.
    pub command: Option<NewCommand>,
}

/// What [`ApiStore::decide`](super::ApiStore::decide) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// The gate is approved, rejected or revised, with the rest of the decision.
    Decided,
    /// The approval is counted (this many so far); the gate waits for more.
    Counted(u32),
    /// This approver had approved this wait already (this many so far).
    AlreadyCounted(u32),
    /// The gate was not awaiting a decision (any more).
    NotAwaiting,
}

pub(super) const GATE_COLUMNS: &str = "g.run_id, g.gate, g.status, g.preview, g.requested_at, g.resolved_at, g.decision, \
     g.approver, g.note, g.reason, g.command_seq, c.acked_at, g.revisions, g.approvals";

#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct GateRow {
    pub(super) run_id: String,
    pub(super) gate: String,
    pub(super) status: String,
    pub(super) preview: Json<Value>,
    pub(super) requested_at: DateTime<Utc>,
    pub(super) resolved_at: Option<DateTime<Utc>>,
    pub(super) decision: Option<String>,
    pub(super) approver: Option<String>,
    pub(super) note: Option<String>,
    pub(super) reason: Option<String>,
    pub(super) command_seq: Option<i64>,
    pub(super) acked_at: Option<DateTime<Utc>>,
    pub(super) revisions: i32,
    pub(super) approvals: Json<Vec<Approval>>,
}

impl TryFrom<GateRow> for GateRecord {
    type Error = StoreError;
    fn try_from(row: GateRow) -> Result<GateRecord, StoreError> {
        Ok(GateRecord {
            gate: row.gate.parse().map_err(StoreError::Corrupt)?,
            status: row.status.parse().map_err(StoreError::Corrupt)?,
            run_id: row.run_id,
            preview: row.preview.0,
            requested_at: row.requested_at,
            resolved_at: row.resolved_at,
            decision: row.decision,
            approver: row.approver,
            note: row.note,
            reason: row.reason,
            delivered: row.command_seq.map(|_| row.acked_at.is_some()),
            revisions: u32::try_from(row.revisions).unwrap_or_default(),
            approvals: row.approvals.0,
        })
    }
}

pub(super) fn gates(rows: Vec<GateRow>) -> StoreResult<Vec<GateRecord>> {
    rows.into_iter().map(GateRecord::try_from).collect()
}

macro_rules! insert_gate {
    ($gate:expr, $executor:expr) => {{
        let gate: &NewGate = $gate;
        // A gate sent back for changes opens again with the new preview.
        sqlx::query(
            "INSERT INTO gates (run_id, gate, status, preview, requested_at) VALUES ($1, $2, 'awaiting', $3, $4) \
             ON CONFLICT (run_id, gate) DO UPDATE SET status = 'awaiting', preview = excluded.preview, \
             requested_at = excluded.requested_at, resolved_at = NULL, decision = NULL, approver = NULL, \
             note = NULL, reason = NULL, command_seq = NULL, reminded_at = NULL, approvals = '[]' \
             WHERE gates.status = 'revised'",
        )
        .bind(&gate.run_id)
        .bind(gate.gate.as_str())
        .bind(Json(&gate.preview))
        .bind(now())
        .execute($executor)
        .await?
    }};
}
pub(super) use insert_gate;

/// The [`ApiStore`](super::ApiStore) methods of gates, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! gate_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn decide(&self, decision: &Decision) -> StoreResult<Decided> {
                let at = now();
                // The waiting gate's row, locked for the transaction: its
                // approvals are counted by one decider at a time.
                let lock = sqlx::query(
                    "UPDATE gates SET status = status \
                     WHERE run_id = $1 AND gate = $2 AND status = 'awaiting' AND revisions = $3",
                )
                .bind(&decision.run_id)
                .bind(decision.gate.as_str())
                .bind(i32::try_from(decision.round).unwrap_or(i32::MAX));
                let Some(mut tx) = guarded(self.begin().await?, lock).await? else {
                    return Ok(Decided::NotAwaiting);
                };
                let Json(mut approvals): Json<Vec<Approval>> =
                    sqlx::query_scalar("SELECT approvals FROM gates WHERE run_id = $1 AND gate = $2")
                        .bind(&decision.run_id)
                        .bind(decision.gate.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                let (status, revised) = match decision.verdict {
                    Verdict::Approve => {
                        let by = decision.counted_as.clone();
                        let count = |approvals: &Vec<Approval>| approvals.len() as u32;
                        if approvals.iter().any(|a| a.by == by) {
                            tx.rollback().await?;
                            return Ok(Decided::AlreadyCounted(count(&approvals)));
                        }
                        approvals.push(Approval { by, at });
                        if count(&approvals) < decision.required {
                            sqlx::query("UPDATE gates SET approvals = $3 WHERE run_id = $1 AND gate = $2")
                                .bind(&decision.run_id)
                                .bind(decision.gate.as_str())
                                .bind(Json(&approvals))
                                .execute(&mut *tx)
                                .await?;
                            tx.commit().await?;
                            return Ok(Decided::Counted(count(&approvals)));
                        }
                        ("approved", 0)
                    }
                    Verdict::Reject => ("rejected", 0),
                    // The next wait gathers its own approvals.
                    Verdict::Revise => {
                        approvals.clear();
                        ("revised", 1)
                    }
                };
                sqlx::query(
                    "UPDATE gates SET status = $3, resolved_at = $4, decision = $5, approver = $6, reason = $7, \
                     note = $8, approvals = $9, revisions = revisions + $10 WHERE run_id = $1 AND gate = $2",
                )
                .bind(&decision.run_id)
                .bind(decision.gate.as_str())
                .bind(status)
                .bind(at)
                .bind(decision.verdict.as_str())
                .bind(&decision.approver)
                .bind(&decision.reason)
                .bind(&decision.note)
                .bind(Json(&approvals))
                .bind(revised)
                .execute(&mut *tx)
                .await?;
                if let Some((from, to)) = decision.run_move {
                    let Some(moved) = guarded(tx, move_run!(&decision.run_id, from, to, at)).await? else {
                        return Ok(Decided::NotAwaiting);
                    };
                    tx = moved;
                }
                if let Some(artifact) = &decision.artifact {
                    insert_artifact!(artifact, &mut *tx);
                }
                if let Some(command) = &decision.command {
                    let seq = insert_command!(command, &mut *tx, at);
                    sqlx::query("UPDATE gates SET command_seq = $3 WHERE run_id = $1 AND gate = $2")
                        .bind(&decision.run_id)
                        .bind(decision.gate.as_str())
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Decided::Decided)
            }

            async fn get_gate(&self, run_id: &str, gate: Gate) -> StoreResult<Option<GateRecord>> {
                let row: Option<GateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {GATE_COLUMNS} FROM gates g LEFT JOIN commands c ON c.seq = g.command_seq \
                     WHERE g.run_id = $1 AND g.gate = $2"
                )))
                .bind(run_id)
                .bind(gate.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map(GateRecord::try_from).transpose()
            }

            async fn list_gates(&self, run_id: &str) -> StoreResult<Vec<GateRecord>> {
                let sql = format!(
                    "SELECT {GATE_COLUMNS} FROM gates g LEFT JOIN commands c ON c.seq = g.command_seq \
                     WHERE g.run_id = $1 ORDER BY g.requested_at"
                );
                gates(rows_for(&self.pool, sqlx::AssertSqlSafe(sql), run_id).await?)
            }

            async fn awaiting_gates(&self, limit: u32) -> StoreResult<Vec<GateRecord>> {
                let rows: Vec<GateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {GATE_COLUMNS} FROM gates g LEFT JOIN commands c ON c.seq = g.command_seq \
                     WHERE g.status = 'awaiting' ORDER BY g.requested_at LIMIT $1"
                )))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                gates(rows)
            }

            async fn gates_waiting_since(
                &self,
                before: DateTime<Utc>,
                unreminded: bool,
                limit: u32,
            ) -> StoreResult<Vec<GateRecord>> {
                let rows: Vec<GateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {GATE_COLUMNS} FROM gates g LEFT JOIN commands c ON c.seq = g.command_seq \
                     WHERE g.status = 'awaiting' AND g.requested_at < $1 AND (NOT $2 OR g.reminded_at IS NULL) \
                     ORDER BY g.requested_at LIMIT $3"
                )))
                .bind(before)
                .bind(unreminded)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                gates(rows)
            }

            async fn remind_gate(&self, run_id: &str, gate: Gate, notice: &ChatMessage) -> StoreResult<bool> {
                let mark = sqlx::query(
                    "UPDATE gates SET reminded_at = $3 \
                     WHERE run_id = $1 AND gate = $2 AND status = 'awaiting' AND reminded_at IS NULL",
                )
                .bind(run_id)
                .bind(gate.as_str())
                .bind(now());
                let Some(mut tx) = guarded(self.begin().await?, mark).await? else {
                    return Ok(false);
                };
                insert_chat!(notice, tx);
                tx.commit().await?;
                Ok(true)
            }

            async fn expire_gate(&self, expiry: &GateExpiry) -> StoreResult<bool> {
                let at = now();
                let expire = sqlx::query(
                    "UPDATE gates SET status = 'expired', resolved_at = $3 \
                     WHERE run_id = $1 AND gate = $2 AND status = 'awaiting'",
                )
                .bind(&expiry.run_id)
                .bind(expiry.gate.as_str())
                .bind(at);
                let Some(tx) = guarded(self.begin().await?, expire).await? else {
                    return Ok(false);
                };
                let moved = move_run!(&expiry.run_id, expiry.run_from, RunStatus::Expired, at);
                let Some(mut tx) = guarded(tx, moved).await? else {
                    return Ok(false);
                };
                insert_artifact!(&expiry.artifact, &mut *tx);
                if let Some(command) = &expiry.command {
                    insert_command!(command, &mut *tx, at);
                }
                insert_chat!(&expiry.notice, tx);
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}
pub(super) use gate_methods;
