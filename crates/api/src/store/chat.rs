//! Chat transcripts and their pushes: a message is written with the pushes
//! to its channels, which `crate::chat::push_loop` claims and finishes.

use chrono::{DateTime, Utc};

use super::common::text_enum;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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
    #[sqlx(skip)]
    pub pushes: Vec<Push>,
}

text_enum! {
    /// Where a chat message can be pushed besides the transcript.
    pub enum Channel {
        /// A Telegram chat (the target is its chat id).
        Telegram = "telegram",
        /// An incoming webhook (the target is its URL).
        Webhook = "webhook",
    }
}

text_enum! {
    /// How a push stands.
    pub enum PushStatus {
        Pending = "pending",
        Delivered = "delivered",
        /// Given up.
        Failed = "failed",
    }
}

/// Where a chat message is to be pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub channel: Channel,
    /// The Telegram chat id, or the webhook URL.
    pub target: String,
}

/// A push of a chat message to a channel, as queued.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChatDelivery {
    pub id: i64,
    pub message_seq: i64,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    pub target: String,
    pub text: String,
    #[sqlx(try_from = "String")]
    pub status: PushStatus,
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

pub(super) const CHAT_DELIVERY_COLUMNS: &str =
    "id, message_seq, channel, target, text, status, attempts, next_attempt_at, last_error, delivered_at";

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
            .bind(push.channel.as_str())
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
                let deliveries: Vec<ChatDelivery> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {CHAT_DELIVERY_COLUMNS} FROM chat_deliveries \
                     WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
                )))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(deliveries)
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
                    PushOutcome::Delivered => (PushStatus::Delivered, None, None, Some(now())),
                    PushOutcome::Retry { error, at } => (PushStatus::Pending, Some(error.as_str()), Some(*at), None),
                    PushOutcome::GaveUp { error } => (PushStatus::Failed, Some(error.as_str()), None, None),
                };
                sqlx::query(
                    "UPDATE chat_deliveries SET status = $2, \
                     last_error = CASE WHEN $2 = 'delivered' THEN NULL ELSE COALESCE($3, last_error) END, \
                     next_attempt_at = COALESCE($4, next_attempt_at), delivered_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(status.as_str())
                .bind(error)
                .bind(next)
                .bind(delivered)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_chat_deliveries(&self, limit: u32) -> StoreResult<Vec<ChatDelivery>> {
                let deliveries: Vec<ChatDelivery> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {CHAT_DELIVERY_COLUMNS} FROM chat_deliveries ORDER BY id DESC LIMIT $1"
                )))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(deliveries)
            }

            async fn chat_messages(&self, user_id: &str, limit: u32) -> StoreResult<Vec<ChatMessage>> {
                let messages: Vec<ChatMessage> = sqlx::query_as(
                    "SELECT user_id, role, text, run_id, gate, link, created_at FROM \
                     (SELECT * FROM chat_messages WHERE user_id = $1 ORDER BY seq DESC LIMIT $2) recent ORDER BY seq",
                )
                .bind(user_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(messages)
            }
        }
    };
}
pub(super) use chat_methods;
