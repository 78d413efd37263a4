//! Chat transcripts and their pushes: a message is written with the pushes
//! to its channels, which `crate::chat::push_loop` claims and finishes.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub user_id: String,
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
    pub run_id: Option<String>,
    pub gate: Option<String>,
    pub link: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Channels to push the message to besides the transcript (written
    /// with the message, sent by `crate::chat::push_loop`). Empty when read.
    pub pushes: Vec<Push>,
}

/// Where a chat message is to be pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `telegram` or `webhook`.
    pub channel: String,
    /// The Telegram chat id, or the webhook URL.
    pub target: String,
}

/// A push of a chat message to a channel, as queued.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatDelivery {
    pub id: i64,
    pub message_seq: i64,
    pub channel: String,
    pub target: String,
    pub text: String,
    /// `pending`, `delivered` or `failed` (gave up).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// How a delivery attempt of a chat push ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome {
    Delivered,
    Retry { error: String, at: DateTime<Utc> },
    GaveUp { error: String },
}

#[derive(sqlx::FromRow)]
pub(super) struct ChatRow {
    pub(super) user_id: String,
    pub(super) role: String,
    pub(super) text: String,
    pub(super) run_id: Option<String>,
    pub(super) gate: Option<String>,
    pub(super) link: Option<String>,
    pub(super) created_at: DateTime<Utc>,
}

pub(super) const CHAT_DELIVERY_COLUMNS: &str =
    "id, message_seq, channel, target, text, status, attempts, next_attempt_at, last_error, delivered_at";

#[derive(sqlx::FromRow)]
pub(super) struct ChatDeliveryRow {
    pub(super) id: i64,
    pub(super) message_seq: i64,
    pub(super) channel: String,
    pub(super) target: String,
    pub(super) text: String,
    pub(super) status: String,
    pub(super) attempts: i64,
    pub(super) next_attempt_at: DateTime<Utc>,
    pub(super) last_error: Option<String>,
    pub(super) delivered_at: Option<DateTime<Utc>>,
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
pub(super) use insert_chat;

/// The [`ApiStore`](super::ApiStore) methods of chat, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! chat_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn append_chat(&self, message: &ChatMessage) -> StoreResult<i64> {
                let mut tx = self.begin().await?;
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
        }
    };
}
pub(super) use chat_methods;
