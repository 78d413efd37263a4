//! The SQL behind [`ApiStore`], written once and compiled for each backend:
//! both speak `$n` placeholders, `RETURNING` and `ON CONFLICT`, and the
//! column types map to the same Rust types (TEXT/JSONB -> `Json`,
//! TEXT/TIMESTAMPTZ -> `DateTime<Utc>`; SQLite keeps UTC RFC 3339 text,
//! whose byte order is time order).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use myloware_core::RunStatus;
use myloware_db::is_unique_violation;
use serde_json::Value;
use sqlx::types::Json;

use super::{
    ApiGauges, ApiStore, AppliedEvent, Artifact, AuditEntry, ChatDelivery, ChatMessage, Command, DeadLetter,
    DeadLetterKind, Decision, DeliveryAttempt, GateRecord, NewCommand, NewGate, NewRun, Pruned, PushOutcome,
    RawArtifact, RawJson, Run, RunDetails, RunQuery, RunUpdate, StoreError, StoreResult, WebhookDelivery, now,
};
use myloware_core::Gate;
use myloware_core::wire::ExecutionCommand;

const RUN_COLUMNS: &str =
    "seq, id, project, status, current_persona, user_id, payload, result, last_event_seq, created_at, updated_at";
const COMMAND_COLUMNS: &str = "seq, run_id, kind, body, attempts, acked_at, last_error, next_attempt_at";

#[derive(sqlx::FromRow)]
struct RunRow {
    seq: i64,
    id: String,
    project: String,
    status: String,
    current_persona: Option<String>,
    user_id: Option<String>,
    payload: Json<Value>,
    result: Json<Value>,
    last_event_seq: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn run_status(run_id: &str, status: &str) -> Result<RunStatus, StoreError> {
    status
        .parse()
        .map_err(|err| StoreError::Corrupt(format!("run {run_id}: {err}")))
}

impl TryFrom<RunRow> for Run {
    type Error = StoreError;
    fn try_from(row: RunRow) -> Result<Run, StoreError> {
        Ok(Run {
            status: run_status(&row.id, &row.status)?,
            id: row.id,
            project: row.project,
            current_persona: row.current_persona,
            user_id: row.user_id,
            payload: row.payload.0,
            result: row.result.0,
            last_event_seq: row.last_event_seq,
            created_at: row.created_at,
            updated_at: row.updated_at,
            seq: row.seq,
        })
    }
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct ArtifactRow {
    id: String,
    run_id: String,
    kind: String,
    persona: Option<String>,
    data: Json<Value>,
    created_at: DateTime<Utc>,
}

impl From<ArtifactRow> for Artifact {
    fn from(row: ArtifactRow) -> Artifact {
        Artifact {
            id: row.id,
            run_id: row.run_id,
            kind: row.kind,
            persona: row.persona,
            data: row.data.0,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CommandRow {
    seq: i64,
    run_id: String,
    kind: String,
    body: Json<Value>,
    attempts: i64,
    acked_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    next_attempt_at: DateTime<Utc>,
}

impl TryFrom<CommandRow> for Command {
    type Error = StoreError;
    fn try_from(row: CommandRow) -> Result<Command, StoreError> {
        let kind = row.kind.parse().map_err(StoreError::Corrupt)?;
        let body = ExecutionCommand::from_body(kind, row.body.0)
            .map_err(|err| StoreError::Corrupt(format!("command {}: {err}", row.seq)))?;
        Ok(Command {
            body,
            seq: row.seq,
            run_id: row.run_id,
            attempts: row.attempts,
            acked_at: row.acked_at,
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    event_id: String,
    run_id: String,
    seq: i64,
    kind: String,
    data: Json<Value>,
    at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    provider: String,
    idempotency_key: Option<String>,
    run_id: Option<String>,
    headers: Json<Value>,
    body: String,
    body_size: i64,
    body_sha256: String,
    signature_status: String,
    outcome: String,
    received_at: DateTime<Utc>,
}

const GATE_COLUMNS: &str = "g.run_id, g.gate, g.status, g.preview, g.requested_at, g.resolved_at, g.decision, \
     g.approver, g.note, g.reason, g.command_seq, c.acked_at";

#[derive(sqlx::FromRow, serde::Deserialize)]
struct GateRow {
    run_id: String,
    gate: String,
    status: String,
    preview: Json<Value>,
    requested_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    decision: Option<String>,
    approver: Option<String>,
    note: Option<String>,
    reason: Option<String>,
    command_seq: Option<i64>,
    acked_at: Option<DateTime<Utc>>,
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

#[derive(sqlx::FromRow)]
struct AuditRow {
    run_id: String,
    gate: String,
    at: DateTime<Utc>,
    action: String,
    outcome: String,
    credential: String,
    ip: Option<String>,
    user_agent: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ChatRow {
    user_id: String,
    role: String,
    text: String,
    run_id: Option<String>,
    gate: Option<String>,
    link: Option<String>,
    created_at: DateTime<Utc>,
}

const DEAD_LETTER_COLUMNS: &str =
    "seq, kind, run_id, payload, error, attempts, created_at, last_attempt_at, resolved_at";

#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    seq: i64,
    kind: String,
    run_id: Option<String>,
    payload: Json<Value>,
    error: String,
    attempts: i64,
    created_at: DateTime<Utc>,
    last_attempt_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
}

impl TryFrom<DeadLetterRow> for DeadLetter {
    type Error = StoreError;
    fn try_from(r: DeadLetterRow) -> Result<DeadLetter, StoreError> {
        Ok(DeadLetter {
            seq: r.seq,
            kind: r.kind.parse().map_err(StoreError::Corrupt)?,
            run_id: r.run_id,
            payload: r.payload.0,
            error: r.error,
            attempts: r.attempts,
            created_at: r.created_at,
            last_attempt_at: r.last_attempt_at,
            resolved_at: r.resolved_at,
        })
    }
}

fn gates(rows: Vec<GateRow>) -> StoreResult<Vec<GateRecord>> {
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

const CHAT_DELIVERY_COLUMNS: &str =
    "id, message_seq, channel, target, text, status, attempts, next_attempt_at, last_error, delivered_at";

#[derive(sqlx::FromRow)]
struct ChatDeliveryRow {
    id: i64,
    message_seq: i64,
    channel: String,
    target: String,
    text: String,
    status: String,
    attempts: i64,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
}

impl From<ChatDeliveryRow> for ChatDelivery {
    fn from(r: ChatDeliveryRow) -> ChatDelivery {
        ChatDelivery {
            id: r.id,
            message_seq: r.message_seq,
            channel: r.channel,
            target: r.target,
            text: r.text,
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            delivered_at: r.delivered_at,
        }
    }
}

/// Inserts a chat message and queues its pushes; evaluates to its seq.
/// `$tx` is a transaction (used several times).
macro_rules! insert_chat {
    ($message:expr, $tx:expr) => {{
        let message: &ChatMessage = $message;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO chat_messages (user_id, role, text, run_id, gate, link, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
        )
        .bind(&message.user_id)
        .bind(&message.role)
        .bind(&message.text)
        .bind(&message.run_id)
        .bind(&message.gate)
        .bind(&message.link)
        .bind(message.created_at)
        .fetch_one(&mut *$tx)
        .await?;
        for push in &message.pushes {
            sqlx::query(
                "INSERT INTO chat_deliveries (message_seq, channel, target, text, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(seq)
            .bind(&push.channel)
            .bind(&push.target)
            .bind(&message.text)
            .bind(message.created_at)
            .execute(&mut *$tx)
            .await?;
        }
        seq
    }};
}

fn runs(rows: Vec<RunRow>) -> StoreResult<Vec<Run>> {
    rows.into_iter().map(Run::try_from).collect()
}

fn commands(rows: Vec<CommandRow>) -> StoreResult<Vec<Command>> {
    rows.into_iter().map(Command::try_from).collect()
}

macro_rules! insert_artifact {
    ($artifact:expr, $executor:expr) => {
        sqlx::query(
            "INSERT INTO artifacts (id, run_id, kind, persona, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&$artifact.id)
        .bind(&$artifact.run_id)
        .bind(&$artifact.kind)
        .bind(&$artifact.persona)
        .bind(Json(&$artifact.data))
        .bind($artifact.created_at)
        .execute($executor)
        .await?
    };
}

macro_rules! insert_command {
    ($command:expr, $executor:expr) => {{
        let at = now();
        sqlx::query(
            "INSERT INTO commands (run_id, kind, body, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&$command.run_id)
        .bind($command.body.kind().as_str())
        .bind(Json(&$command.body))
        .bind(at)
        .execute($executor)
        .await?
    }};
}

/// The rows retention removes, per table, as `WHERE` clauses (`$1` is the
/// cutoff), so a dry run counts exactly what a real prune deletes. A clause
/// never depends on what an earlier one deletes, except `chat_messages`,
/// which reads the deliveries the `chat_deliveries` clause deletes before
/// it (a message goes once every push of it is done). Runs and gates stay:
/// they are the record of what was made and decided. Statuses listed are
/// the terminal ones (`RunStatus::is_terminal`).
const PRUNABLE: [(&str, &str); 8] = [
    // Decision attempts, kept while their run is unfinished (attempts on
    // unknown runs go too).
    (
        "gate_audit",
        "at < $1 AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = gate_audit.run_id \
           AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected'))",
    ),
    // Events applied to runs that ended before the cutoff (their order is
    // kept by runs.last_event_seq; the orchestrator never resends them).
    (
        "run_events",
        "run_id IN (SELECT id FROM runs \
           WHERE status IN ('published', 'failed', 'cancelled', 'rejected') AND updated_at < $1)",
    ),
    // Acknowledged commands of runs that ended before the cutoff, except
    // the ones a gate shows as its decision's delivery.
    (
        "commands",
        "acked_at IS NOT NULL AND run_id IN (SELECT id FROM runs \
           WHERE status IN ('published', 'failed', 'cancelled', 'rejected') AND updated_at < $1) \
         AND NOT EXISTS (SELECT 1 FROM gates WHERE gates.command_seq = commands.seq)",
    ),
    // Deliveries whose run has ended or is unknown (refused ones have no
    // run): no unfinished run can receive their idempotency key again.
    (
        "webhook_deliveries",
        "received_at < $1 AND NOT EXISTS (SELECT 1 FROM runs \
           WHERE runs.id = webhook_deliveries.run_id AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected'))",
    ),
    // Artifacts of runs that ended before the cutoff (a late event on an
    // ended run moves its updated_at, which only keeps them longer).
    (
        "artifacts",
        "run_id IN (SELECT id FROM runs \
           WHERE status IN ('published', 'failed', 'cancelled', 'rejected') AND updated_at < $1)",
    ),
    // Dead letters replayed (resolved) before the cutoff; open ones stay,
    // and so do those of an unfinished run.
    (
        "dead_letters",
        "resolved_at IS NOT NULL AND resolved_at < $1 AND NOT EXISTS (SELECT 1 FROM runs \
           WHERE runs.id = dead_letters.run_id AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected'))",
    ),
    // Pushes that are done (delivered, or given up), unless of a line about
    // an unfinished run.
    (
        "chat_deliveries",
        "status IN ('delivered', 'failed') AND created_at < $1 AND NOT EXISTS (SELECT 1 FROM chat_messages m \
           JOIN runs ON runs.id = m.run_id WHERE m.seq = chat_deliveries.message_seq \
           AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected'))",
    ),
    // Chat lines before the cutoff, unless about an unfinished run or
    // still to be pushed somewhere.
    (
        "chat_messages",
        "created_at < $1 AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = chat_messages.run_id \
           AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected')) \
         AND NOT EXISTS (SELECT 1 FROM chat_deliveries d WHERE d.message_seq = chat_messages.seq \
           AND NOT (d.status IN ('delivered', 'failed') AND d.created_at < $1))",
    ),
];

/// A run with its gates and artifacts in one statement (`GET /v1/runs/{id}`
/// reads it under load: one round trip instead of three). The gates come
/// as a JSON array of the columns of [`GATE_COLUMNS`], the artifacts as one
/// of the fields of [`RawArtifact`], in the orders of `list_gates` and
/// `list_artifacts`; each backend spells the aggregation its own way.
const SQLITE_RUN_VIEW: &str = "SELECT r.id, r.project, r.status, r.current_persona, r.payload, r.result, \
       r.created_at, r.updated_at, \
       (SELECT json_group_array(json_object('run_id', g.run_id, 'gate', g.gate, 'status', g.status, \
                 'preview', json(g.preview), 'requested_at', g.requested_at, 'resolved_at', g.resolved_at, \
                 'decision', g.decision, 'approver', g.approver, 'note', g.note, 'reason', g.reason, \
                 'command_seq', g.command_seq, 'acked_at', c.acked_at) ORDER BY g.requested_at) \
          FROM gates g LEFT JOIN commands c ON c.seq = g.command_seq WHERE g.run_id = r.id) AS gates, \
       (SELECT json_group_array(json_object('id', a.id, 'kind', a.kind, \
                 'persona', a.persona, 'data', json(a.data), 'created_at', a.created_at) ORDER BY a.seq) \
          FROM artifacts a WHERE a.run_id = r.id) AS artifacts \
     FROM runs r WHERE r.id = $1";
const POSTGRES_RUN_VIEW: &str = "SELECT r.id, r.project, r.status, r.current_persona, r.payload, r.result, \
       r.created_at, r.updated_at, \
       COALESCE((SELECT json_agg(json_build_object('run_id', g.run_id, 'gate', g.gate, 'status', g.status, \
                 'preview', g.preview, 'requested_at', g.requested_at, 'resolved_at', g.resolved_at, \
                 'decision', g.decision, 'approver', g.approver, 'note', g.note, 'reason', g.reason, \
                 'command_seq', g.command_seq, 'acked_at', c.acked_at) ORDER BY g.requested_at) \
          FROM gates g LEFT JOIN commands c ON c.seq = g.command_seq WHERE g.run_id = r.id), '[]') AS gates, \
       COALESCE((SELECT json_agg(json_build_object('id', a.id, 'kind', a.kind, \
                 'persona', a.persona, 'data', a.data, 'created_at', a.created_at) ORDER BY a.seq) \
          FROM artifacts a WHERE a.run_id = r.id), '[]') AS artifacts \
     FROM runs r WHERE r.id = $1";

#[derive(sqlx::FromRow)]
struct RunViewRow {
    id: String,
    project: String,
    status: String,
    current_persona: Option<String>,
    payload: Json<RawJson>,
    result: Json<RawJson>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    gates: Json<Vec<GateRow>>,
    artifacts: Json<Vec<RawArtifact>>,
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
        })
    }
}

macro_rules! sql_api_store {
    ($store:ident, $db:ty, $begin:expr, $run_view:expr) => {
        #[derive(Clone)]
        pub struct $store {
            pool: sqlx::Pool<$db>,
        }

        impl $store {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { pool }
            }
        }

        #[async_trait]
        impl ApiStore for $store {
            async fn insert_run_with_command(&self, run: &NewRun, command: Option<&NewCommand>) -> StoreResult<Run> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let row: RunRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO runs (id, project, status, user_id, payload, result, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {RUN_COLUMNS}"
                )))
                .bind(&run.id)
                .bind(&run.project)
                .bind(run.status.as_str())
                .bind(&run.user_id)
                .bind(Json(&run.payload))
                .bind(Json(&run.result))
                .bind(run.created_at)
                .fetch_one(&mut *tx)
                .await
                .map_err(|err| {
                    if is_unique_violation(&err) {
                        StoreError::DuplicateRun(run.id.clone())
                    } else {
                        err.into()
                    }
                })?;
                if let Some(command) = command {
                    insert_command!(command, &mut *tx);
                }
                if let Some(gate) = &run.gate {
                    insert_gate!(gate, &mut *tx);
                }
                tx.commit().await?;
                row.try_into()
            }

            async fn get_run(&self, id: &str) -> StoreResult<Option<Run>> {
                let row: Option<RunRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1")))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(Run::try_from).transpose()
            }

            async fn get_run_details(&self, id: &str) -> StoreResult<Option<RunDetails>> {
                let row: Option<RunViewRow> = sqlx::query_as($run_view).bind(id).fetch_optional(&self.pool).await?;
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
                let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM runs \
                     WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR project = $2) \
                       AND ($3 IS NULL OR seq < $3) AND ($5 IS NULL OR user_id = $5) \
                     ORDER BY seq DESC LIMIT $4"
                )))
                .bind(query.status.map(|s| s.as_str()))
                .bind(&query.project)
                .bind(query.before)
                .bind(i64::from(query.limit))
                .bind(&query.user_id)
                .fetch_all(&self.pool)
                .await?;
                runs(rows)
            }

            async fn transition(
                &self,
                id: &str,
                from: RunStatus,
                to: RunStatus,
                artifact: Option<&Artifact>,
                command: Option<&NewCommand>,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let moved = sqlx::query("UPDATE runs SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2")
                    .bind(id)
                    .bind(from.as_str())
                    .bind(to.as_str())
                    .bind(now())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !moved {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if let Some(artifact) = artifact {
                    insert_artifact!(artifact, &mut *tx);
                }
                if let Some(command) = command {
                    insert_command!(command, &mut *tx);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn commands_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Command>> {
                let rows: Vec<CommandRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands c \
                     WHERE c.acked_at IS NULL AND c.next_attempt_at <= $1 \
                       AND NOT EXISTS (SELECT 1 FROM commands p \
                                       WHERE p.run_id = c.run_id AND p.acked_at IS NULL AND p.seq < c.seq) \
                     ORDER BY c.seq LIMIT $2"
                )))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                commands(rows)
            }

            async fn pending_commands(&self, run_id: &str, limit: u32) -> StoreResult<Vec<Command>> {
                let rows: Vec<CommandRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = $1 AND acked_at IS NULL ORDER BY seq LIMIT $2"
                )))
                .bind(run_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                commands(rows)
            }

            async fn record_delivery(&self, seq: i64, attempt: &DeliveryAttempt) -> StoreResult<()> {
                let at = now();
                let (acked_at, error, retry_at) = match attempt {
                    DeliveryAttempt::Acked => (Some(at), None, at),
                    DeliveryAttempt::Refused { error } => (Some(at), Some(error.as_str()), at),
                    DeliveryAttempt::Failed { error, retry_at } => (None, Some(error.as_str()), *retry_at),
                };
                sqlx::query(
                    "UPDATE commands SET attempts = attempts + 1, acked_at = $2, last_error = $3, next_attempt_at = $4 \
                     WHERE seq = $1 AND acked_at IS NULL",
                )
                .bind(seq)
                .bind(acked_at)
                .bind(error)
                .bind(retry_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_commands(&self, run_id: &str) -> StoreResult<Vec<Command>> {
                let rows: Vec<CommandRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = $1 ORDER BY seq"
                )))
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                commands(rows)
            }

            async fn apply_event(
                &self,
                event: &AppliedEvent,
                expected_last_seq: i64,
                update: &RunUpdate,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let (persona_set, persona) = match &update.current_persona {
                    Some(persona) => (true, persona.clone()),
                    None => (false, None),
                };
                let moved = sqlx::query(
                    "UPDATE runs SET last_event_seq = $3, updated_at = $4, \
                       status = COALESCE($5, status), \
                       result = COALESCE($6, result), \
                       current_persona = CASE WHEN $7 THEN $8 ELSE current_persona END \
                     WHERE id = $1 AND last_event_seq = $2",
                )
                .bind(&event.run_id)
                .bind(expected_last_seq)
                .bind(event.seq)
                .bind(now())
                .bind(update.status.map(|s| s.as_str()))
                .bind(update.result.as_ref().map(Json))
                .bind(persona_set)
                .bind(persona)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !moved {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO run_events (event_id, run_id, seq, kind, data, at, applied_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&event.event_id)
                .bind(&event.run_id)
                .bind(event.seq)
                .bind(&event.kind)
                .bind(Json(&event.data))
                .bind(event.at)
                .bind(now())
                .execute(&mut *tx)
                .await?;
                for artifact in &update.artifacts {
                    insert_artifact!(artifact, &mut *tx);
                }
                if let Some(gate) = &update.gate {
                    insert_gate!(gate, &mut *tx);
                }
                for message in &update.messages {
                    insert_chat!(message, tx);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn decide(&self, decision: &Decision) -> StoreResult<bool> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let at = now();
                let decided = sqlx::query(
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
                .bind(&decision.note)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !decided {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if let Some((from, to)) = decision.run_move {
                    let moved = sqlx::query("UPDATE runs SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2")
                        .bind(&decision.run_id)
                        .bind(from.as_str())
                        .bind(to.as_str())
                        .bind(at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if !moved {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                if let Some(artifact) = &decision.artifact {
                    insert_artifact!(artifact, &mut *tx);
                }
                if let Some(command) = &decision.command {
                    let (seq,): (i64,) = sqlx::query_as(
                        "INSERT INTO commands (run_id, kind, body, created_at, next_attempt_at) \
                         VALUES ($1, $2, $3, $4, $4) RETURNING seq",
                    )
                    .bind(&command.run_id)
                    .bind(command.body.kind().as_str())
                    .bind(Json(&command.body))
                    .bind(at)
                    .fetch_one(&mut *tx)
                    .await?;
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
                let rows: Vec<GateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {GATE_COLUMNS} FROM gates g LEFT JOIN commands c ON c.seq = g.command_seq \
                     WHERE g.run_id = $1 ORDER BY g.requested_at"
                )))
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                gates(rows)
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

            async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO gate_audit (run_id, gate, at, action, outcome, credential, ip, user_agent) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&entry.run_id)
                .bind(&entry.gate)
                .bind(entry.at)
                .bind(&entry.action)
                .bind(&entry.outcome)
                .bind(&entry.credential)
                .bind(&entry.ip)
                .bind(&entry.user_agent)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_audit(&self, run_id: &str) -> StoreResult<Vec<AuditEntry>> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT run_id, gate, at, action, outcome, credential, ip, user_agent FROM gate_audit \
                     WHERE run_id = $1 ORDER BY seq",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| AuditEntry {
                        run_id: r.run_id,
                        gate: r.gate,
                        at: r.at,
                        action: r.action,
                        outcome: r.outcome,
                        credential: r.credential,
                        ip: r.ip,
                        user_agent: r.user_agent,
                    })
                    .collect())
            }

            async fn enqueue_command(&self, command: &NewCommand) -> StoreResult<()> {
                insert_command!(command, &self.pool);
                Ok(())
            }

            async fn add_dead_letter(
                &self,
                kind: DeadLetterKind,
                run_id: Option<&str>,
                payload: &Value,
                error: &str,
            ) -> StoreResult<i64> {
                let (seq,): (i64,) = sqlx::query_as(
                    "INSERT INTO dead_letters (kind, run_id, payload, error, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                )
                .bind(kind.as_str())
                .bind(run_id)
                .bind(Json(payload))
                .bind(error)
                .bind(now())
                .fetch_one(&self.pool)
                .await?;
                Ok(seq)
            }

            async fn dead_letters(&self, include_resolved: bool, limit: u32) -> StoreResult<Vec<DeadLetter>> {
                let rows: Vec<DeadLetterRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE ($1 OR resolved_at IS NULL) ORDER BY seq LIMIT $2"
                )))
                .bind(include_resolved)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(DeadLetter::try_from).collect()
            }

            async fn get_dead_letter(&self, seq: i64) -> StoreResult<Option<DeadLetter>> {
                let row: Option<DeadLetterRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE seq = $1"
                )))
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?;
                row.map(DeadLetter::try_from).transpose()
            }

            async fn record_replay(&self, seq: i64, resolved: bool, error: Option<&str>) -> StoreResult<()> {
                let at = now();
                sqlx::query(
                    "UPDATE dead_letters SET attempts = attempts + 1, last_attempt_at = $2, \
                     resolved_at = CASE WHEN $3 THEN $2 ELSE NULL END, error = COALESCE($4, error) WHERE seq = $1",
                )
                .bind(seq)
                .bind(at)
                .bind(resolved)
                .bind(error)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn append_chat(&self, message: &ChatMessage) -> StoreResult<i64> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let seq = insert_chat!(message, tx);
                tx.commit().await?;
                Ok(seq)
            }

            async fn chat_deliveries_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<ChatDelivery>> {
                let rows: Vec<ChatDeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {CHAT_DELIVERY_COLUMNS} FROM chat_deliveries \
                     WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
                )))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(ChatDelivery::from).collect())
            }

            async fn claim_chat_delivery(&self, id: i64, attempts: i64, hold_until: DateTime<Utc>) -> StoreResult<bool> {
                let claimed = sqlx::query(
                    "UPDATE chat_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
                     WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                )
                .bind(id)
                .bind(attempts)
                .bind(hold_until)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(claimed == 1)
            }

            async fn finish_chat_delivery(&self, id: i64, outcome: &PushOutcome) -> StoreResult<()> {
                // A delivered push keeps no error of an earlier attempt.
                let (status, error, next, delivered) = match outcome {
                    PushOutcome::Delivered => ("delivered", None, None, Some(now())),
                    PushOutcome::Retry { error, at } => ("pending", Some(error.as_str()), Some(*at), None),
                    PushOutcome::GaveUp { error } => ("failed", Some(error.as_str()), None, None),
                };
                sqlx::query(
                    "UPDATE chat_deliveries SET status = $2, \
                     last_error = CASE WHEN $2 = 'delivered' THEN NULL ELSE COALESCE($3, last_error) END, \
                     next_attempt_at = COALESCE($4, next_attempt_at), delivered_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(status)
                .bind(error)
                .bind(next)
                .bind(delivered)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_chat_deliveries(&self, limit: u32) -> StoreResult<Vec<ChatDelivery>> {
                let rows: Vec<ChatDeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {CHAT_DELIVERY_COLUMNS} FROM chat_deliveries ORDER BY id DESC LIMIT $1"
                )))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(ChatDelivery::from).collect())
            }

            async fn chat_messages(&self, user_id: &str, limit: u32) -> StoreResult<Vec<ChatMessage>> {
                let rows: Vec<ChatRow> = sqlx::query_as(
                    "SELECT user_id, role, text, run_id, gate, link, created_at FROM \
                     (SELECT * FROM chat_messages WHERE user_id = $1 ORDER BY seq DESC LIMIT $2) recent ORDER BY seq",
                )
                .bind(user_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| ChatMessage {
                        user_id: r.user_id,
                        role: r.role,
                        text: r.text,
                        run_id: r.run_id,
                        gate: r.gate,
                        link: r.link,
                        created_at: r.created_at,
                        pushes: Vec::new(),
                    })
                    .collect())
            }

            async fn list_events(&self, run_id: &str) -> StoreResult<Vec<AppliedEvent>> {
                let rows: Vec<EventRow> = sqlx::query_as(
                    "SELECT event_id, run_id, seq, kind, data, at FROM run_events WHERE run_id = $1 ORDER BY seq",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| AppliedEvent {
                        event_id: r.event_id,
                        run_id: r.run_id,
                        seq: r.seq,
                        kind: r.kind,
                        data: r.data.0,
                        at: r.at,
                    })
                    .collect())
            }

            async fn record_webhook(
                &self,
                delivery: &WebhookDelivery,
                command: Option<&NewCommand>,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let inserted = sqlx::query(
                    "INSERT INTO webhook_deliveries \
                     (provider, idempotency_key, run_id, headers, body, body_size, body_sha256, \
                      signature_status, outcome, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                )
                .bind(&delivery.provider)
                .bind(&delivery.idempotency_key)
                .bind(&delivery.run_id)
                .bind(Json(&delivery.headers))
                .bind(&delivery.body)
                .bind(delivery.body_size)
                .bind(&delivery.body_sha256)
                .bind(&delivery.signature_status)
                .bind(&delivery.outcome)
                .bind(delivery.received_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !inserted {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if let Some(command) = command {
                    insert_command!(command, &mut *tx);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn list_webhooks(&self, provider: &str) -> StoreResult<Vec<WebhookDelivery>> {
                let rows: Vec<WebhookRow> = sqlx::query_as(
                    "SELECT provider, idempotency_key, run_id, headers, body, body_size, body_sha256, \
                     signature_status, outcome, received_at \
                     FROM webhook_deliveries WHERE provider = $1 ORDER BY seq",
                )
                .bind(provider)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| WebhookDelivery {
                        provider: r.provider,
                        idempotency_key: r.idempotency_key,
                        run_id: r.run_id,
                        headers: r.headers.0,
                        body: r.body,
                        body_size: r.body_size,
                        body_sha256: r.body_sha256,
                        signature_status: r.signature_status,
                        outcome: r.outcome,
                        received_at: r.received_at,
                    })
                    .collect())
            }

            async fn insert_artifact(&self, artifact: &Artifact) -> StoreResult<()> {
                insert_artifact!(artifact, &self.pool);
                Ok(())
            }

            async fn list_artifacts(&self, run_id: &str) -> StoreResult<Vec<Artifact>> {
                let rows: Vec<ArtifactRow> = sqlx::query_as(
                    "SELECT id, run_id, kind, persona, data, created_at FROM artifacts \
                     WHERE run_id = $1 ORDER BY seq",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Artifact::from).collect())
            }

            async fn prune(&self, cutoff: DateTime<Utc>, dry_run: bool) -> StoreResult<Pruned> {
                let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await?;
                let pruned = myloware_db::prune_tables!(tx, PRUNABLE, cutoff, dry_run);
                tx.commit().await?;
                Ok(pruned)
            }

            async fn gauges(&self) -> StoreResult<ApiGauges> {
                let active_runs: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT project, status, COUNT(*) FROM runs \
                     WHERE status NOT IN ('published', 'failed', 'cancelled', 'rejected') \
                     GROUP BY project, status ORDER BY project, status",
                )
                .fetch_all(&self.pool)
                .await?;
                let (dead_letters_open, commands_pending, chat_pushes_pending): (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM dead_letters WHERE resolved_at IS NULL), \
                            (SELECT COUNT(*) FROM commands WHERE acked_at IS NULL), \
                            (SELECT COUNT(*) FROM chat_deliveries WHERE status = 'pending')",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(ApiGauges {
                    active_runs,
                    dead_letters_open,
                    commands_pending,
                    chat_pushes_pending,
                })
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

sql_api_store!(SqliteApiStore, sqlx::Sqlite, myloware_db::SQLITE_BEGIN, SQLITE_RUN_VIEW);
sql_api_store!(
    PgApiStore,
    sqlx::Postgres,
    myloware_db::POSTGRES_BEGIN,
    POSTGRES_RUN_VIEW
);
