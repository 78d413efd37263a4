//! HITL gates: a gate opens awaiting and takes one decision (one
//! conditional update, with its run move, artifact and command). Every
//! attempt is audited ([`super::audit`]).

use chrono::{DateTime, Utc};
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
    }
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
    pub approve: bool,
    pub approver: Option<String>,
    pub note: Option<String>,
    pub reason: Option<String>,
    /// The run status move the decision makes, if any (`from`, `to`).
    pub run_move: Option<(RunStatus, RunStatus)>,
    pub artifact: Option<Artifact>,
    /// What the orchestrator must be told.
    pub command: Option<NewCommand>,
}

pub(super) const GATE_COLUMNS: &str = "g.run_id, g.gate, g.status, g.preview, g.requested_at, g.resolved_at, g.decision, \
     g.approver, g.note, g.reason, g.command_seq, c.acked_at";

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
        })
    }
}

pub(super) fn gates(rows: Vec<GateRow>) -> StoreResult<Vec<GateRecord>> {
    rows.into_iter().map(GateRecord::try_from).collect()
}

macro_rules! insert_gate {
    ($gate:expr, $executor:expr) => {{
        let gate: &NewGate = $gate;
        sqlx::query(
            "INSERT INTO gates (run_id, gate, status, preview, requested_at) VALUES ($1, $2, 'awaiting', $3, $4) \
             ON CONFLICT (run_id, gate) DO NOTHING",
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
            async fn decide(&self, decision: &Decision) -> StoreResult<bool> {
                let at = now();
                let decide = sqlx::query(
                    "UPDATE gates SET status = $3, resolved_at = $4, decision = $5, approver = $6, reason = $7, \
                     note = $8 WHERE run_id = $1 AND gate = $2 AND status = 'awaiting'",
                )
                .bind(&decision.run_id)
                .bind(decision.gate.as_str())
                .bind(if decision.approve { "approved" } else { "rejected" })
                .bind(at)
                .bind(if decision.approve { "approve" } else { "reject" })
                .bind(&decision.approver)
                .bind(&decision.reason)
                .bind(&decision.note);
                let Some(mut tx) = guarded(self.begin().await?, decide).await? else {
                    return Ok(false);
                };
                if let Some((from, to)) = decision.run_move {
                    let Some(moved) = guarded(tx, move_run!(&decision.run_id, from, to, at)).await? else {
                        return Ok(false);
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
                Ok(true)
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
