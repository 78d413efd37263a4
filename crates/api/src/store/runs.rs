//! Runs: inserted with their first command (and the workflow gate of a
//! proposed run), moved between statuses by conditional updates, listed,
//! and read with their gates, artifacts and costs in one statement.

use chrono::{DateTime, Utc};
use myloware_core::RunStatus;
use serde_json::Value;
use sqlx::types::Json;

use super::artifacts::RawArtifact;
use super::common::{RawJson, StoreError};
use super::gates::{GateRecord, NewGate};
use super::gates::{GateRow, gates};
use super::{Artifact, ChatMessage};

/// A run as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Run {
    pub id: String,
    pub project: String,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    pub current_persona: Option<String>,
    pub user_id: Option<String>,
    #[sqlx(json)]
    pub payload: Value,
    #[sqlx(json)]
    pub result: Value,
    /// seq of the last orchestrator event applied.
    pub last_event_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Insertion order; the list cursor.
    pub seq: i64,
}

/// A run to insert.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Opened with the run (the workflow gate of a proposed run).
    pub gate: Option<NewGate>,
    pub id: String,
    pub project: String,
    pub status: RunStatus,
    pub user_id: Option<String>,
    pub payload: Value,
    pub result: Value,
    pub created_at: DateTime<Utc>,
    /// What the run is expected to cost (`PriceTable::estimate`), in
    /// micro-dollars; known when it is created.
    pub estimated_usd_micros: Option<i64>,
    /// `MAX_ACTIVE_RUNS`: inserted only while fewer runs than this have not
    /// ended (counted and inserted under one lock, so concurrent starts
    /// never exceed it); else [`StoreError::AtCapacity`].
    pub max_active: Option<u32>,
    /// Written with the run (a proposal's workflow link, `crate::notify`).
    pub notice: Option<ChatMessage>,
}

/// A proposal's new content (see `ApiStore::edit_proposal`).
#[derive(Debug, Clone)]
pub struct ProposalEdit {
    pub run_id: String,
    pub project: String,
    pub payload: Value,
    pub result: Value,
    pub estimated_usd_micros: i64,
    /// The workflow gate's new preview: the proposal.
    pub preview: Value,
    pub artifact: Artifact,
}

/// Filters of `GET /v1/runs`; newest first, `before` is an exclusive cursor.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub status: Option<RunStatus>,
    pub project: Option<String>,
    pub before: Option<i64>,
    pub user_id: Option<String>,
    /// Words the run's input contains (case-insensitive).
    pub search: Option<String>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    pub limit: u32,
}

/// `%words%`, lowercased, with LIKE's `%`, `_` and the escape `\` in
/// `words` escaped (matched as themselves: `ESCAPE '\'`).
pub(super) fn like_pattern(words: &str) -> String {
    let mut pattern = String::from("%");
    for c in words.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A run with its gates and artifacts, as `GET /v1/runs/{id}` shows it.
/// Its JSON documents (payload, result, artifact data) stay the stored
/// text: they go into the answer as they are, instead of being parsed into
/// values and written out again (most of that request's work otherwise).
#[derive(Debug)]
pub struct RunDetails {
    pub id: String,
    pub project: String,
    pub status: RunStatus,
    pub current_persona: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub payload: RawJson,
    pub result: RawJson,
    pub gates: Vec<GateRecord>,
    pub artifacts: Vec<RawArtifact>,
    /// Micro-dollars; `None` for a run created before costs were kept.
    pub estimated_usd_micros: Option<i64>,
    /// The run's providers mode (`payload.metadata.providers.mode`).
    pub mode: Option<String>,
    /// What its paid calls cost so far, per provider (micro-dollars).
    pub spent: Vec<(String, i64)>,
}

pub(super) const RUN_COLUMNS: &str =
    "seq, id, project, status, current_persona, user_id, payload, result, last_event_seq, created_at, updated_at";

pub(super) fn run_status(run_id: &str, status: &str) -> Result<RunStatus, StoreError> {
    status
        .parse()
        .map_err(|err| StoreError::Corrupt(format!("run {run_id}: {err}")))
}

/// A run with its gates and artifacts in one statement (`GET /v1/runs/{id}`
/// reads it under load: one round trip instead of three). The gates come
/// as a JSON array of the columns of [`GATE_COLUMNS`], the artifacts as one
/// of the fields of [`RawArtifact`], in the orders of `list_gates` and
/// `list_artifacts`; each backend spells the aggregation its own way.
pub(super) const SQLITE_RUN_VIEW: &str = "SELECT r.id, r.project, r.status, r.current_persona, r.payload, r.result, \
       r.created_at, r.updated_at, \
       (SELECT json_group_array(json_object('run_id', g.run_id, 'gate', g.gate, 'status', g.status, \
                 'preview', json(g.preview), 'requested_at', g.requested_at, 'resolved_at', g.resolved_at, \
                 'decision', g.decision, 'approver', g.approver, 'note', g.note, 'reason', g.reason, \
                 'command_seq', g.command_seq, 'acked_at', c.acked_at, 'revisions', g.revisions, \
                 'approvals', json(g.approvals)) ORDER BY g.requested_at) \
          FROM gates g LEFT JOIN commands c ON c.seq = g.command_seq WHERE g.run_id = r.id) AS gates, \
       (SELECT json_group_array(json_object('id', a.id, 'kind', a.kind, \
                 'persona', a.persona, 'data', json(a.data), 'created_at', a.created_at) ORDER BY a.seq) \
          FROM artifacts a WHERE a.run_id = r.id) AS artifacts, \
       r.estimated_usd_micros, json_extract(r.payload, '$.metadata.providers.mode') AS mode, \
       (SELECT json_group_array(json_array(c.provider, c.usd_micros)) FROM \
          (SELECT provider, SUM(usd_micros) AS usd_micros FROM run_costs WHERE run_id = r.id GROUP BY provider) c) \
          AS spent \
     FROM runs r WHERE r.id = $1";
pub(super) const POSTGRES_RUN_VIEW: &str = "SELECT r.id, r.project, r.status, r.current_persona, r.payload, r.result, \
       r.created_at, r.updated_at, \
       COALESCE((SELECT json_agg(json_build_object('run_id', g.run_id, 'gate', g.gate, 'status', g.status, \
                 'preview', g.preview, 'requested_at', g.requested_at, 'resolved_at', g.resolved_at, \
                 'decision', g.decision, 'approver', g.approver, 'note', g.note, 'reason', g.reason, \
                 'command_seq', g.command_seq, 'acked_at', c.acked_at, 'revisions', g.revisions, \
                 'approvals', g.approvals) ORDER BY g.requested_at) \
          FROM gates g LEFT JOIN commands c ON c.seq = g.command_seq WHERE g.run_id = r.id), '[]') AS gates, \
       COALESCE((SELECT json_agg(json_build_object('id', a.id, 'kind', a.kind, \
                 'persona', a.persona, 'data', a.data, 'created_at', a.created_at) ORDER BY a.seq) \
          FROM artifacts a WHERE a.run_id = r.id), '[]') AS artifacts, \
       r.estimated_usd_micros, r.payload #>> '{metadata,providers,mode}' AS mode, \
       COALESCE((SELECT json_agg(json_build_array(c.provider, c.usd_micros)) FROM \
          (SELECT provider, SUM(usd_micros) AS usd_micros FROM run_costs WHERE run_id = r.id GROUP BY provider) c), \
          '[]') AS spent \
     FROM runs r WHERE r.id = $1";

#[derive(sqlx::FromRow)]
pub(super) struct RunViewRow {
    pub(super) id: String,
    pub(super) project: String,
    pub(super) status: String,
    pub(super) current_persona: Option<String>,
    pub(super) payload: Json<RawJson>,
    pub(super) result: Json<RawJson>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) gates: Json<Vec<GateRow>>,
    pub(super) artifacts: Json<Vec<RawArtifact>>,
    pub(super) estimated_usd_micros: Option<i64>,
    pub(super) mode: Option<String>,
    pub(super) spent: Json<Vec<(String, i64)>>,
}

impl TryFrom<RunViewRow> for RunDetails {
    type Error = StoreError;
    fn try_from(row: RunViewRow) -> Result<RunDetails, StoreError> {
        Ok(RunDetails {
            status: run_status(&row.id, &row.status)?,
            id: row.id,
            project: row.project,
            current_persona: row.current_persona,
            created_at: row.created_at,
            updated_at: row.updated_at,
            payload: row.payload.0,
            result: row.result.0,
            gates: gates(row.gates.0)?,
            artifacts: row.artifacts.0,
            estimated_usd_micros: row.estimated_usd_micros,
            mode: row.mode,
            spent: row.spent.0,
        })
    }
}

/// The update that moves run `$id` from status `$from` to `$to` at `$at`
/// if it is still in `$from` (so two concurrent writers cannot both move
/// it): a transition's, and a decision's run move. A query to run as a
/// transaction's guard (`myloware_db::guarded`).
macro_rules! move_run {
    ($id:expr, $from:expr, $to:expr, $at:expr) => {
        sqlx::query("UPDATE runs SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2")
            .bind($id)
            .bind($from.as_str())
            .bind($to.as_str())
            .bind($at)
    };
}
pub(super) use move_run;

/// The terminal statuses as SQL literals (`'published', 'failed', …`).
pub(super) fn ended_statuses() -> String {
    RunStatus::ALL
        .iter()
        .filter(|status| status.is_terminal())
        .map(|status| format!("'{}'", status.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `MAX_ACTIVE_RUNS`: `Some(StoreError::AtCapacity)` when `$run` may not
/// be inserted in the transaction `$tx` because that many runs have not
/// ended; counted under the runs lock (the store's `RUNS_LOCK`; SQLite's
/// write transactions already take turns), so the count cannot go stale
/// before the insert.
macro_rules! run_cap_reached {
    ($run:expr, $tx:expr) => {{
        let mut full = None;
        if let Some(cap) = $run.max_active {
            if let Some(lock) = Self::RUNS_LOCK {
                sqlx::query(lock).execute(&mut **$tx).await?;
            }
            let active: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM runs WHERE status NOT IN ({})",
                ended_statuses()
            )))
            .fetch_one(&mut **$tx)
            .await?;
            if active >= i64::from(cap) {
                full = Some(StoreError::AtCapacity { active, cap });
            }
        }
        full
    }};
}
pub(super) use run_cap_reached;

/// Inserts `$run` with its first `$command` (and its gate and notice) in the
/// transaction `$tx`; evaluates to the [`Run`] stored (`?` passes a
/// duplicate id up as [`StoreError::DuplicateRun`]).
macro_rules! insert_run {
    ($run:expr, $command:expr, $tx:expr) => {{
        let run: &NewRun = $run;
        let inserted: Run = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO runs (id, project, status, user_id, payload, result, created_at, updated_at, \
             estimated_usd_micros) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) RETURNING {RUN_COLUMNS}"
        )))
        .bind(&run.id)
        .bind(&run.project)
        .bind(run.status.as_str())
        .bind(&run.user_id)
        .bind(Json(&run.payload))
        .bind(Json(&run.result))
        .bind(run.created_at)
        .bind(run.estimated_usd_micros)
        .fetch_one(&mut **$tx)
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                StoreError::DuplicateRun(run.id.clone())
            } else {
                err.into()
            }
        })?;
        if let Some(command) = $command {
            insert_command!(command, &mut **$tx);
        }
        if let Some(gate) = &run.gate {
            insert_gate!(gate, &mut **$tx);
        }
        if let Some(notice) = &run.notice {
            insert_chat!(notice, *$tx);
        }
        inserted
    }};
}
pub(super) use insert_run;

/// The [`ApiStore`](super::ApiStore) methods of runs, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! run_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn insert_run_with_command(&self, run: &NewRun, command: Option<&NewCommand>) -> StoreResult<Run> {
                let mut tx = self.begin().await?;
                if let Some(full) = run_cap_reached!(run, &mut tx) {
                    tx.rollback().await?;
                    return Err(full);
                }
                let inserted = insert_run!(run, command, &mut tx);
                tx.commit().await?;
                Ok(inserted)
            }

            async fn get_run(&self, id: &str) -> StoreResult<Option<Run>> {
                let run: Option<Run> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1")))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(run)
            }

            async fn get_runs(&self, ids: &[&str]) -> StoreResult<Vec<Run>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut select = sqlx::QueryBuilder::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE id IN "));
                myloware_db::push_list(&mut select, ids);
                Ok(select.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn get_run_details(&self, id: &str) -> StoreResult<Option<RunDetails>> {
                let row: Option<RunViewRow> = sqlx::query_as(Self::RUN_VIEW).bind(id).fetch_optional(&self.pool).await?;
                row.map(RunDetails::try_from).transpose()
            }

            async fn run_exists(&self, id: &str) -> StoreResult<bool> {
                let found: Option<i64> = sqlx::query_scalar("SELECT seq FROM runs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(found.is_some())
            }

            async fn list_runs(&self, query: &RunQuery) -> StoreResult<Vec<Run>> {
                let runs: Vec<Run> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM runs \
                     WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR project = $2) \
                       AND ($3 IS NULL OR seq < $3) AND ($5 IS NULL OR user_id = $5) \
                       AND ($6 IS NULL OR LOWER({input}) LIKE $6 ESCAPE '\\') \
                       AND ($7 IS NULL OR created_at >= $7) AND ($8 IS NULL OR created_at < $8) \
                     ORDER BY seq DESC LIMIT $4",
                    input = Self::INPUT_TEXT
                )))
                .bind(query.status.map(|s| s.as_str()))
                .bind(&query.project)
                .bind(query.before)
                .bind(i64::from(query.limit))
                .bind(&query.user_id)
                .bind(query.search.as_deref().map(like_pattern))
                .bind(query.created_from)
                .bind(query.created_to)
                .fetch_all(&self.pool)
                .await?;
                Ok(runs)
            }

            async fn transition(
                &self,
                id: &str,
                from: RunStatus,
                to: RunStatus,
                artifact: Option<&Artifact>,
                command: Option<&NewCommand>,
                notice: Option<&ChatMessage>,
            ) -> StoreResult<bool> {
                let Some(mut tx) = guarded(self.begin().await?, move_run!(id, from, to, now())).await? else {
                    return Ok(false);
                };
                if let Some(artifact) = artifact {
                    insert_artifact!(artifact, &mut *tx);
                }
                if let Some(command) = command {
                    insert_command!(command, &mut *tx);
                }
                if let Some(notice) = notice {
                    insert_chat!(notice, tx);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn edit_proposal(&self, edit: &ProposalEdit) -> StoreResult<bool> {
                let replace = sqlx::query(
                    "UPDATE runs SET project = $2, payload = $3, result = $4, estimated_usd_micros = $5, updated_at = $6 \
                     WHERE id = $1 AND status = 'pending_workflow'",
                )
                .bind(&edit.run_id)
                .bind(&edit.project)
                .bind(Json(&edit.payload))
                .bind(Json(&edit.result))
                .bind(edit.estimated_usd_micros)
                .bind(now());
                let Some(mut tx) = guarded(self.begin().await?, replace).await? else {
                    return Ok(false);
                };
                sqlx::query(
                    "UPDATE gates SET preview = $2 WHERE run_id = $1 AND gate = 'workflow' AND status = 'awaiting'",
                )
                .bind(&edit.run_id)
                .bind(Json(&edit.preview))
                .execute(&mut *tx)
                .await?;
                insert_artifact!(&edit.artifact, &mut *tx);
                tx.commit().await?;
                Ok(true)
            }

            async fn retry_run(
                &self,
                id: &str,
                result: &Value,
                artifact: &Artifact,
                command: &NewCommand,
            ) -> StoreResult<bool> {
                let reopen = sqlx::query(
                    "UPDATE runs SET status = 'running', result = $2, updated_at = $3 WHERE id = $1 AND status = 'failed'",
                )
                .bind(id)
                .bind(Json(result))
                .bind(now());
                let Some(mut tx) = guarded(self.begin().await?, reopen).await? else {
                    return Ok(false);
                };
                insert_artifact!(artifact, &mut *tx);
                insert_command!(command, &mut *tx);
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}
pub(super) use run_methods;
