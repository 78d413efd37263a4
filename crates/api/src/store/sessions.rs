//! Console sessions: one row per sign-in, found by the SHA-256 of its id,
//! touched as it is used, deleted on sign-out and once expired.

use chrono::{DateTime, Utc};

/// A console sign-in.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConsoleSession {
    /// SHA-256 (hex) of the cookie's session id.
    pub id_hash: String,
    /// The API key's name (its role comes from the configured keys).
    pub key_name: String,
    /// The key's SHA-256, hex: the key must still be configured as it was.
    pub key_digest: String,
    /// The form token every POST of this session must carry.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// The [`ApiStore`](super::ApiStore) methods of console sessions, handed on
/// to `$next` with the methods gathered so far (`sql.rs` chains every
/// aggregate's).
macro_rules! session_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn create_session(&self, session: &ConsoleSession) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO console_sessions (id_hash, key_name, key_digest, csrf, created_at, last_seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&session.id_hash)
                .bind(&session.key_name)
                .bind(&session.key_digest)
                .bind(&session.csrf)
                .bind(session.created_at)
                .bind(session.last_seen_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>> {
                let session: Option<ConsoleSession> = sqlx::query_as(
                    "SELECT id_hash, key_name, key_digest, csrf, created_at, last_seen_at FROM console_sessions \
                     WHERE id_hash = $1",
                )
                .bind(id_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(session)
            }

            async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query("UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1")
                    .bind(id_hash)
                    .bind(at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn prune_sessions(&self, seen_before: DateTime<Utc>, created_before: DateTime<Utc>) -> StoreResult<u64> {
                let pruned = sqlx::query(
                    "DELETE FROM console_sessions WHERE last_seen_at < $1 OR created_at < $2",
                )
                .bind(seen_before)
                .bind(created_before)
                .execute(&self.pool)
                .await?;
                Ok(pruned.rows_affected())
            }
        }
    };
}
pub(super) use session_methods;
