//! The SQL behind [`ApiStore`], written once and compiled for each backend:
//! both speak `$n` placeholders, `RETURNING` and `ON CONFLICT`, and the
//! column types map to the same Rust types (TEXT/JSONB -> `Json`,
//! TEXT/TIMESTAMPTZ -> `DateTime<Utc>`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use myloware_db::is_unique_violation;
use serde_json::Value;
use sqlx::types::Json;

use super::{
    ApiStore, Artifact, NewRun, Run, RunQuery, StartAttempt, StartDelivery, StoreError,
    StoreResult, now,
};

const RUN_COLUMNS: &str = "seq, id, project, status, current_persona, user_id, payload, result, \
     start_acked_at, start_attempts, start_error, next_start_at, created_at, updated_at";

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
    start_acked_at: Option<DateTime<Utc>>,
    start_attempts: i64,
    start_error: Option<String>,
    next_start_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<RunRow> for Run {
    type Error = StoreError;
    fn try_from(row: RunRow) -> Result<Run, StoreError> {
        Ok(Run {
            status: row
                .status
                .parse()
                .map_err(|err| StoreError::Corrupt(format!("run {}: {err}", row.id)))?,
            id: row.id,
            project: row.project,
            current_persona: row.current_persona,
            user_id: row.user_id,
            payload: row.payload.0,
            result: row.result.0,
            start: StartDelivery {
                acked_at: row.start_acked_at,
                attempts: row.start_attempts,
                last_error: row.start_error,
                next_attempt_at: row.next_start_at,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
            seq: row.seq,
        })
    }
}

#[derive(sqlx::FromRow)]
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

fn runs(rows: Vec<RunRow>) -> StoreResult<Vec<Run>> {
    rows.into_iter().map(Run::try_from).collect()
}

macro_rules! sql_api_store {
    ($store:ident, $db:ty) => {
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
            async fn insert_run(&self, run: &NewRun) -> StoreResult<Run> {
                let row: RunRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO runs (id, project, status, user_id, payload, result, \
                     next_start_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7) RETURNING {RUN_COLUMNS}"
                )))
                .bind(&run.id)
                .bind(&run.project)
                .bind(run.status.as_str())
                .bind(&run.user_id)
                .bind(Json(&run.payload))
                .bind(Json(&run.result))
                .bind(run.created_at)
                .fetch_one(&self.pool)
                .await
                .map_err(|err| {
                    if is_unique_violation(&err) {
                        StoreError::DuplicateRun(run.id.clone())
                    } else {
                        err.into()
                    }
                })?;
                row.try_into()
            }

            async fn get_run(&self, id: &str) -> StoreResult<Option<Run>> {
                let row: Option<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(Run::try_from).transpose()
            }

            async fn list_runs(&self, query: &RunQuery) -> StoreResult<Vec<Run>> {
                let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM runs \
                     WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR project = $2) \
                       AND ($3 IS NULL OR seq < $3) \
                     ORDER BY seq DESC LIMIT $4"
                )))
                .bind(query.status.map(|s| s.as_str()))
                .bind(&query.project)
                .bind(query.before)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await?;
                runs(rows)
            }

            async fn transition(
                &self,
                id: &str,
                from: myloware_core::RunStatus,
                to: myloware_core::RunStatus,
                artifact: Option<&Artifact>,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let moved = sqlx::query(
                    "UPDATE runs SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
                )
                .bind(id)
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(now())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !moved {
                    return Ok(false);
                }
                if let Some(artifact) = artifact {
                    insert_artifact!(artifact, &mut *tx);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn record_start_attempt(&self, id: &str, attempt: &StartAttempt) -> StoreResult<()> {
                let (acked_at, error, retry_at) = match attempt {
                    StartAttempt::Acked => (Some(now()), None, None),
                    StartAttempt::Failed { error, retry_at } => (None, Some(error.as_str()), Some(*retry_at)),
                };
                sqlx::query(
                    "UPDATE runs SET start_attempts = start_attempts + 1, start_acked_at = $2, \
                     start_error = $3, next_start_at = $4 \
                     WHERE id = $1 AND start_acked_at IS NULL",
                )
                .bind(id)
                .bind(acked_at)
                .bind(error)
                .bind(retry_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn starts_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Run>> {
                let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM runs \
                     WHERE start_acked_at IS NULL AND status = 'pending' AND next_start_at <= $1 \
                     ORDER BY next_start_at LIMIT $2"
                )))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                runs(rows)
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

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
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

sql_api_store!(SqliteApiStore, sqlx::Sqlite);
sql_api_store!(PgApiStore, sqlx::Postgres);
