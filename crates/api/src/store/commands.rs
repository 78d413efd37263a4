//! The command queue: what the API asks of the orchestrator, stored with
//! the state change that caused it and delivered in order per run until
//! acknowledged (`crate::commands` delivers).

use chrono::{DateTime, Utc};
use myloware_core::wire::{CommandKind, ExecutionCommand};
use serde_json::Value;
use sqlx::types::Json;

use super::common::{StoreError, StoreResult};

/// A command to the orchestrator, to enqueue. Commands of one run are
/// delivered in order and retried until acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCommand {
    pub run_id: String,
    pub body: ExecutionCommand,
}

impl NewCommand {
    pub fn new(run_id: &str, body: ExecutionCommand) -> NewCommand {
        NewCommand {
            run_id: run_id.to_string(),
            body,
        }
    }
}

/// A command as stored: its body (the kind is stored beside it, and read
/// back into the body's variant), and how its delivery goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub seq: i64,
    pub run_id: String,
    pub body: ExecutionCommand,
    pub attempts: i64,
    /// When it was enqueued (with the decision or change that caused it).
    pub created_at: DateTime<Utc>,
    pub acked_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        self.body.kind()
    }
}

/// The outcome of one attempt to deliver a command.
#[derive(Debug, Clone)]
pub enum DeliveryAttempt {
    Acked,
    /// Delivered but refused for good (recorded, never retried).
    Refused {
        error: String,
    },
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
    },
}

pub(super) const COMMAND_COLUMNS: &str =
    "seq, run_id, kind, body, attempts, created_at, acked_at, last_error, next_attempt_at";

#[derive(sqlx::FromRow)]
pub(super) struct CommandRow {
    pub(super) seq: i64,
    pub(super) run_id: String,
    pub(super) kind: String,
    pub(super) body: Json<Value>,
    pub(super) attempts: i64,
    pub(super) created_at: DateTime<Utc>,
    pub(super) acked_at: Option<DateTime<Utc>>,
    pub(super) last_error: Option<String>,
    pub(super) next_attempt_at: DateTime<Utc>,
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
            created_at: row.created_at,
            acked_at: row.acked_at,
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
        })
    }
}

pub(super) fn commands(rows: Vec<CommandRow>) -> StoreResult<Vec<Command>> {
    rows.into_iter().map(Command::try_from).collect()
}

/// Enqueues a command, due at once (created now, or at `$at`); evaluates
/// to its seq.
macro_rules! insert_command {
    ($command:expr, $executor:expr) => {
        insert_command!($command, $executor, now())
    };
    ($command:expr, $executor:expr, $at:expr) => {{
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO commands (run_id, kind, body, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING seq",
        )
        .bind(&$command.run_id)
        .bind($command.body.kind().as_str())
        .bind(Json(&$command.body))
        .bind($at)
        .fetch_one($executor)
        .await?;
        seq
    }};
}
pub(super) use insert_command;

/// The [`ApiStore`](super::ApiStore) methods of commands, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! command_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
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

            async fn record_deliveries(&self, seqs: &[i64], attempt: &DeliveryAttempt) -> StoreResult<()> {
                let at = now();
                let (acked_at, error, retry_at) = match attempt {
                    DeliveryAttempt::Acked => (Some(at), None, at),
                    DeliveryAttempt::Refused { error } => (Some(at), Some(error.as_str()), at),
                    DeliveryAttempt::Failed { error, retry_at } => (None, Some(error.as_str()), *retry_at),
                };
                for chunk in seqs.chunks(500) {
                    let mut update = sqlx::QueryBuilder::new("UPDATE commands SET attempts = attempts + 1, acked_at = ");
                    update
                        .push_bind(acked_at)
                        .push(", last_error = ")
                        .push_bind(error)
                        .push(", next_attempt_at = ")
                        .push_bind(retry_at)
                        .push(" WHERE acked_at IS NULL AND seq IN ");
                    myloware_db::push_list(&mut update, chunk);
                    update.build().execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn list_commands(&self, run_id: &str) -> StoreResult<Vec<Command>> {
                let sql = format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = $1 ORDER BY seq");
                commands(rows_for(&self.pool, sqlx::AssertSqlSafe(sql), run_id).await?)
            }

            async fn enqueue_command(&self, command: &NewCommand) -> StoreResult<()> {
                insert_command!(command, &self.pool);
                Ok(())
            }
        }
    };
}
pub(super) use command_methods;
