//! Provider webhook deliveries: each recorded (never its whole body), an
//! accepted one with its command, its idempotency key used once.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::common::{now, text_enum};

/// A provider webhook delivery, as recorded: never its whole body (a
/// refused delivery is anybody's bytes), but its size, its SHA-256 and its
/// first [`WEBHOOK_BODY_EXCERPT_BYTES`] (see [`WebhookDelivery::of_body`]).
/// Nothing reads a delivery's body back: an accepted delivery's effect is
/// its command (or dead letter), and its idempotency key deduplicates it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WebhookDelivery {
    pub provider: String,
    /// `None` for deliveries that must not consume a key (rejected, duplicate).
    pub idempotency_key: Option<String>,
    pub run_id: Option<String>,
    #[sqlx(json)]
    pub headers: Value,
    /// The body's first [`WEBHOOK_BODY_EXCERPT_BYTES`], cut at a UTF-8
    /// boundary (invalid UTF-8 shown as U+FFFD).
    pub body: String,
    /// The body's length in bytes.
    pub body_size: i64,
    /// Hex SHA-256 of the whole body (empty for rows stored before it was kept).
    pub body_sha256: String,
    #[sqlx(try_from = "String")]
    pub signature_status: SignatureStatus,
    #[sqlx(try_from = "String")]
    pub outcome: WebhookOutcome,
    pub received_at: DateTime<Utc>,
}

text_enum! {
    /// What the sender's signature proved.
    pub enum SignatureStatus {
        Verified = "verified",
        /// None was sent.
        Missing = "missing",
        /// One was sent and did not verify.
        Rejected = "rejected",
        /// The provider signs nothing (Upload-Post).
        Unsigned = "unsigned",
    }
}

text_enum! {
    /// What became of a delivery.
    pub enum WebhookOutcome {
        Accepted = "accepted",
        /// Its idempotency key was used before.
        Duplicate = "duplicate",
        Rejected = "rejected",
        /// Verified, but for no run known here: kept for replay.
        DeadLettered = "dead_lettered",
        /// An event nothing acts on.
        Ignored = "ignored",
    }
}

/// What became of one callback of a group ([`super::ApiStore::record_callbacks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackRecorded {
    /// Recorded with its command.
    New,
    /// Its idempotency key was used before: recorded as a duplicate, no command.
    Repeated,
    /// Its run is not known here: nothing recorded (the caller dead-letters it).
    UnknownRun,
}

/// The start of a multi-row insert of deliveries (see `push_delivery!`).
pub(super) const INSERT_DELIVERIES: &str = "INSERT INTO webhook_deliveries \
     (provider, idempotency_key, run_id, headers, body, body_size, body_sha256, signature_status, outcome, received_at) ";

/// How much of a webhook body is stored.
pub const WEBHOOK_BODY_EXCERPT_BYTES: usize = 1024;

impl WebhookDelivery {
    /// A delivery of `body`, not yet verified (`missing`, `rejected`),
    /// received now: its size, hash and excerpt. The caller sets the rest.
    pub fn of_body(body: &[u8]) -> WebhookDelivery {
        use sha2::Digest;
        WebhookDelivery {
            provider: String::new(),
            idempotency_key: None,
            run_id: None,
            headers: Value::Object(Default::default()),
            body: excerpt(body, WEBHOOK_BODY_EXCERPT_BYTES),
            body_size: i64::try_from(body.len()).unwrap_or(i64::MAX),
            body_sha256: hex::encode(sha2::Sha256::digest(body)),
            signature_status: SignatureStatus::Missing,
            outcome: WebhookOutcome::Rejected,
            received_at: now(),
        }
    }
}

/// At most `max` bytes of text from the start of `bytes`, never splitting a
/// character (invalid UTF-8 becomes U+FFFD, which counts its 3 bytes).
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut end = 0;
    for (at, c) in text.char_indices() {
        if at + c.len_utf8() > max {
            break;
        }
        end = at + c.len_utf8();
    }
    text[..end].to_string()
}

/// One row of a multi-row `webhook_deliveries` insert: `delivery` with
/// `key` and `outcome`.
macro_rules! push_delivery {
    ($row:expr, $delivery:expr, $key:expr, $outcome:expr) => {
        $row.push_bind(&$delivery.provider)
            .push_bind($key)
            .push_bind(&$delivery.run_id)
            .push_bind(Json(&$delivery.headers))
            .push_bind(&$delivery.body)
            .push_bind($delivery.body_size)
            .push_bind(&$delivery.body_sha256)
            .push_bind($delivery.signature_status.as_str())
            .push_bind($outcome.as_str())
            .push_bind($delivery.received_at)
    };
}
pub(super) use push_delivery;

/// The [`ApiStore`](super::ApiStore) methods of webhook deliveries, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! webhook_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn record_webhook(
                &self,
                delivery: &WebhookDelivery,
                command: Option<&NewCommand>,
            ) -> StoreResult<bool> {
                let insert = sqlx::query(
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
                .bind(delivery.signature_status.as_str())
                .bind(delivery.outcome.as_str())
                .bind(delivery.received_at);
                let Some(mut tx) = guarded(self.begin().await?, insert).await? else {
                    return Ok(false);
                };
                if let Some(command) = command {
                    insert_command!(command, &mut *tx);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn record_callbacks(
                &self,
                callbacks: &[(WebhookDelivery, NewCommand)],
            ) -> StoreResult<Vec<CallbackRecorded>> {
                if callbacks.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.begin().await?;
                // The runs known here, among the group's: one look for all.
                let mut runs: Vec<&str> = callbacks.iter().map(|(_, c)| c.run_id.as_str()).collect();
                runs.sort_unstable();
                runs.dedup();
                let mut known = sqlx::QueryBuilder::new("SELECT id FROM runs WHERE id IN ");
                myloware_db::push_list(&mut known, runs);
                let known: std::collections::HashSet<String> =
                    known.build_query_scalar().fetch_all(&mut *tx).await?.into_iter().collect();
                let ours: Vec<&(WebhookDelivery, NewCommand)> =
                    callbacks.iter().filter(|(_, c)| known.contains(&c.run_id)).collect();
                let mut fresh = std::collections::HashSet::new();
                if !ours.is_empty() {
                    let mut insert = sqlx::QueryBuilder::new(INSERT_DELIVERIES);
                    insert.push_values(&ours, |mut row, (delivery, _)| {
                        push_delivery!(row, delivery, delivery.idempotency_key.as_deref(), delivery.outcome);
                    });
                    insert.push(" ON CONFLICT DO NOTHING RETURNING provider, idempotency_key");
                    let inserted: Vec<(String, Option<String>)> =
                        insert.build_query_as().fetch_all(&mut *tx).await?;
                    fresh = inserted.into_iter().collect();
                }
                // New: inserted now, and the first of its key in the list.
                let recorded: Vec<CallbackRecorded> = callbacks
                    .iter()
                    .map(|(d, c)| {
                        if !known.contains(&c.run_id) {
                            CallbackRecorded::UnknownRun
                        } else if fresh.remove(&(d.provider.clone(), d.idempotency_key.clone())) {
                            CallbackRecorded::New
                        } else {
                            CallbackRecorded::Repeated
                        }
                    })
                    .collect();
                let of = |wanted: CallbackRecorded| {
                    callbacks
                        .iter()
                        .zip(&recorded)
                        .filter(move |(_, r)| **r == wanted)
                        .map(|(callback, _)| callback)
                        .collect::<Vec<_>>()
                };
                let (new, repeated) = (of(CallbackRecorded::New), of(CallbackRecorded::Repeated));
                if !new.is_empty() {
                    let mut insert =
                        sqlx::QueryBuilder::new("INSERT INTO commands (run_id, kind, body, created_at, next_attempt_at) ");
                    let at = now();
                    insert.push_values(&new, |mut row, (_, command)| {
                        row.push_bind(&command.run_id)
                            .push_bind(command.body.kind().as_str())
                            .push_bind(Json(&command.body))
                            .push_bind(at)
                            .push_bind(at);
                    });
                    insert.build().execute(&mut *tx).await?;
                }
                if !repeated.is_empty() {
                    let mut insert = sqlx::QueryBuilder::new(INSERT_DELIVERIES);
                    insert.push_values(&repeated, |mut row, (delivery, _)| {
                        push_delivery!(row, delivery, None::<&str>, WebhookOutcome::Duplicate);
                    });
                    insert.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(recorded)
            }

            async fn list_webhooks(&self, provider: &str) -> StoreResult<Vec<WebhookDelivery>> {
                let sql = "SELECT provider, idempotency_key, run_id, headers, body, body_size, body_sha256, \
                           signature_status, outcome, received_at \
                           FROM webhook_deliveries WHERE provider = $1 ORDER BY seq";
                Ok(rows_for(&self.pool, sql, provider).await?)
            }

            async fn recent_webhooks(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
                let rows: Vec<WebhookDelivery> = sqlx::query_as(
                    "SELECT provider, idempotency_key, run_id, headers, body, body_size, body_sha256, \
                     signature_status, outcome, received_at \
                     FROM webhook_deliveries ORDER BY seq DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows)
            }
        }
    };
}
pub(super) use webhook_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_and_cut_at_character_boundaries() {
        assert_eq!(excerpt(b"{\"a\":1}", 1024), "{\"a\":1}");
        assert_eq!(excerpt("ééé".as_bytes(), 5), "éé", "never half a character");
        let junk = excerpt(&[0xFF; 5000], 1024);
        assert!(junk.len() <= 1024 && junk.chars().all(|c| c == '\u{FFFD}'));
        let delivery = WebhookDelivery::of_body(&[0xFF; 5000]);
        assert_eq!(delivery.body_size, 5000);
        assert_eq!(delivery.body_sha256.len(), 64);
        assert!(delivery.body.len() <= WEBHOOK_BODY_EXCERPT_BYTES);
    }
}
