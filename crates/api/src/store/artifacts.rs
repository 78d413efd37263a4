//! Artifacts: what a run produced or what happened to it (outputs, clips,
//! the reason it was rejected or cancelled), in creation order.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::common::{RawJson, now};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Artifact {
    pub id: String,
    pub run_id: String,
    pub kind: String,
    pub persona: Option<String>,
    #[sqlx(json)]
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

impl Artifact {
    pub fn new(run_id: &str, kind: &str, persona: Option<&str>, data: Value) -> Artifact {
        Artifact {
            id: uuid::Uuid::now_v7().to_string(),
            run_id: run_id.to_string(),
            kind: kind.to_string(),
            persona: persona.map(str::to_string),
            data,
            created_at: now(),
        }
    }
}

/// An artifact of [`RunDetails`], its data as stored.
#[derive(Debug, serde::Deserialize)]
pub struct RawArtifact {
    pub id: String,
    pub kind: String,
    pub persona: Option<String>,
    pub data: RawJson,
    pub created_at: DateTime<Utc>,
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
pub(super) use insert_artifact;

/// The [`ApiStore`](super::ApiStore) methods of artifacts, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! artifact_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn insert_artifact(&self, artifact: &Artifact) -> StoreResult<()> {
                insert_artifact!(artifact, &self.pool);
                Ok(())
            }

            async fn list_artifacts(&self, run_id: &str) -> StoreResult<Vec<Artifact>> {
                let sql = "SELECT id, run_id, kind, persona, data, created_at FROM artifacts \
                           WHERE run_id = $1 ORDER BY seq";
                Ok(rows_for(&self.pool, sql, run_id).await?)
            }
        }
    };
}
pub(super) use artifact_methods;
