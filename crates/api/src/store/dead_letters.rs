//! The dead-letter queue: what could not be processed, kept with its error
//! for replay (`crate::dlq`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::common::{StoreError, text_enum};

text_enum! {
    /// What a dead letter holds.
    pub enum DeadLetterKind {
        /// A signal the orchestrator refused (its [`SignalDelivery`](myloware_core::wire::SignalDelivery)).
        Signal = "signal",
        /// A verified webhook that could not be processed (`{provider, signal}`).
        Webhook = "webhook",
    }
}

/// Something that could not be processed, kept for replay.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub seq: i64,
    pub kind: DeadLetterKind,
    pub run_id: Option<String>,
    pub payload: Value,
    pub error: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

pub(super) const DEAD_LETTER_COLUMNS: &str =
    "seq, kind, run_id, payload, error, attempts, created_at, last_attempt_at, resolved_at";

#[derive(sqlx::FromRow)]
pub(super) struct DeadLetterRow {
    pub(super) seq: i64,
    pub(super) kind: String,
    pub(super) run_id: Option<String>,
    pub(super) payload: Json<Value>,
    pub(super) error: String,
    pub(super) attempts: i64,
    pub(super) created_at: DateTime<Utc>,
    pub(super) last_attempt_at: Option<DateTime<Utc>>,
    pub(super) resolved_at: Option<DateTime<Utc>>,
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

/// The [`ApiStore`](super::ApiStore) methods of dead letters, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! dead_letter_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
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
        }
    };
}
pub(super) use dead_letter_methods;
