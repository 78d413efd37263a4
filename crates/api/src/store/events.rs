//! The orchestrator's events as applied: each once and in order per run,
//! in one transaction with what it changes (status, result, artifacts, a
//! gate, chat lines); the runs of one delivery in one transaction.

use chrono::{DateTime, Utc};
use myloware_core::RunStatus;
use serde_json::Value;

use super::artifacts::Artifact;
use super::chat::ChatMessage;
use super::costs::AppliedCost;
use super::gates::NewGate;

/// How an applied event changes its run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    /// `Some(None)` clears the current persona.
    pub current_persona: Option<Option<String>>,
    pub result: Option<Value>,
    pub artifacts: Vec<Artifact>,
    /// A gate the event opens.
    pub gate: Option<NewGate>,
    /// Messages for the run owner's chat transcript.
    pub messages: Vec<ChatMessage>,
    /// The paid call a `cost.recorded` event tells of.
    pub cost: Option<AppliedCost>,
}

/// An orchestrator event, as recorded when applied.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AppliedEvent {
    pub event_id: String,
    pub run_id: String,
    pub seq: i64,
    pub kind: String,
    #[sqlx(json)]
    pub data: Value,
    pub at: DateTime<Utc>,
}

/// One run's events to apply, if the run is still as read.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvents {
    /// The run's last applied seq, as read.
    pub expected_last_seq: i64,
    /// The run's status, as read.
    pub expected_status: RunStatus,
    /// Its consecutive events from `expected_last_seq + 1`, each with what
    /// it changes.
    pub events: Vec<(AppliedEvent, RunUpdate)>,
}

/// The [`ApiStore`](super::ApiStore) methods of applied events, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! event_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn apply_runs_events(&self, runs: &[&RunEvents]) -> StoreResult<Vec<bool>> {
                // A run without events holds trivially: nothing to write.
                let mut held: Vec<bool> = runs.iter().map(|run| run.events.is_empty()).collect();
                if held.iter().all(|h| *h) {
                    return Ok(held);
                }
                // Runs' rows in one order (their ids'), so that two deliveries
                // sharing runs cannot each hold one the other waits for.
                let mut order: Vec<usize> = (0..runs.len()).filter(|at| !held[*at]).collect();
                order.sort_by_key(|at| &runs[*at].events[0].0.run_id);
                let at = now();
                let mut tx = self.begin().await?;
                for index in order {
                    let run = &runs[index];
                    let last = &run.events[run.events.len() - 1].0;
                    // The run as the last event leaves it: each field as the
                    // last update that sets it.
                    let updates = || run.events.iter().rev().map(|(_, u)| u);
                    let status = updates().find_map(|u| u.status);
                    let result = updates().find_map(|u| u.result.as_ref());
                    let persona = updates().find_map(|u| u.current_persona.as_ref());
                    let advanced = sqlx::query(
                        "UPDATE runs SET last_event_seq = $3, updated_at = $4, \
                           status = COALESCE($5, status), \
                           result = COALESCE($6, result), \
                           current_persona = CASE WHEN $7 THEN $8 ELSE current_persona END \
                         WHERE id = $1 AND last_event_seq = $2 AND status = $9",
                    )
                    .bind(&last.run_id)
                    .bind(run.expected_last_seq)
                    .bind(last.seq)
                    .bind(at)
                    .bind(status.map(|s| s.as_str()))
                    .bind(result.map(Json))
                    .bind(persona.is_some())
                    .bind(persona.cloned().flatten())
                    .bind(run.expected_status.as_str())
                    .execute(&mut *tx)
                    .await?;
                    held[index] = advanced.rows_affected() > 0;
                }
                let events: Vec<&(AppliedEvent, RunUpdate)> =
                    runs.iter().zip(&held).filter(|(_, h)| **h).flat_map(|(run, _)| &run.events).collect();
                if events.is_empty() {
                    tx.rollback().await?;
                    return Ok(held);
                }
                // The events, then their artifacts, each in one multi-row
                // INSERT (a delivery brings up to 200 events).
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO run_events (event_id, run_id, seq, kind, data, at, applied_at) ",
                );
                insert.push_values(&events, |mut row, (event, _)| {
                    row.push_bind(&event.event_id)
                        .push_bind(&event.run_id)
                        .push_bind(event.seq)
                        .push_bind(&event.kind)
                        .push_bind(Json(&event.data))
                        .push_bind(event.at)
                        .push_bind(at);
                });
                insert.build().execute(&mut *tx).await?;
                let artifacts: Vec<&Artifact> = events.iter().flat_map(|(_, u)| &u.artifacts).collect();
                if !artifacts.is_empty() {
                    let mut insert =
                        sqlx::QueryBuilder::new("INSERT INTO artifacts (id, run_id, kind, persona, data, created_at) ");
                    insert.push_values(artifacts, |mut row, artifact| {
                        row.push_bind(&artifact.id)
                            .push_bind(&artifact.run_id)
                            .push_bind(&artifact.kind)
                            .push_bind(&artifact.persona)
                            .push_bind(Json(&artifact.data))
                            .push_bind(artifact.created_at);
                    });
                    insert.build().execute(&mut *tx).await?;
                }
                for (_, update) in &events {
                    if let Some(gate) = &update.gate {
                        insert_gate!(gate, &mut *tx);
                    }
                    for message in &update.messages {
                        insert_chat!(message, tx);
                    }
                }
                let costs: Vec<&AppliedCost> = events.iter().filter_map(|(_, u)| u.cost.as_ref()).collect();
                if !costs.is_empty() {
                    insert_run_costs!(costs, &mut *tx);
                }
                tx.commit().await?;
                Ok(held)
            }

            async fn list_events(&self, run_id: &str) -> StoreResult<Vec<AppliedEvent>> {
                let sql = "SELECT event_id, run_id, seq, kind, data, at FROM run_events WHERE run_id = $1 ORDER BY seq";
                Ok(rows_for(&self.pool, sql, run_id).await?)
            }
        }
    };
}
pub(super) use event_methods;
