//! The dead-letter queue: what could not be processed, kept with its error
//! for replay (`crate::dlq`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::common::text_enum;

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
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    pub seq: i64,
    #[sqlx(try_from = "String")]
    pub kind: DeadLetterKind,
    pub run_id: Option<String>,
    #[sqlx(json)]
    pub payload: Value,
    pub error: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

pub(super) const DEAD_LETTER_COLUMNS: &str =
    "seq, kind, run_id, payload, error, attempts, created_at, last_attempt_at, resolved_at";

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
                let letters: Vec<DeadLetter> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE ($1 OR resolved_at IS NULL) ORDER BY seq LIMIT $2"
                )))
                .bind(include_resolved)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(letters)
            }

            async fn get_dead_letter(&self, seq: i64) -> StoreResult<Option<DeadLetter>> {
                let letter: Option<DeadLetter> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE seq = $1"
                )))
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?;
                Ok(letter)
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
