//! Executions: created once per run, claimed under a lease by a worker,
//! committed step by step, cancelled on request.

use super::*;

pub(super) const EXECUTION_COLUMNS: &str = "run_id, project, request, status, node, state, wait, wake_at, cancel_requested, \
     lease_owner, lease_until, event_seq, steps, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(super) struct ExecutionRow {
    pub(super) run_id: String,
    pub(super) project: String,
    pub(super) request: Json<Value>,
    pub(super) status: String,
    pub(super) node: i64,
    pub(super) state: Json<Value>,
    pub(super) wait: Option<Json<Value>>,
    pub(super) wake_at: Option<DateTime<Utc>>,
    pub(super) cancel_requested: bool,
    pub(super) lease_owner: Option<String>,
    pub(super) lease_until: Option<DateTime<Utc>>,
    pub(super) event_seq: i64,
    pub(super) steps: i64,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    /// Only a claim reads it ([`PENDING`]).
    #[sqlx(default)]
    pub(super) pending: Option<Json<Vec<StoredSignal>>>,
}

impl TryFrom<ExecutionRow> for Execution {
    type Error = sqlx::Error;
    fn try_from(row: ExecutionRow) -> Result<Execution, sqlx::Error> {
        Ok(Execution {
            status: row.status.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            run_id: row.run_id,
            project: row.project,
            request: row.request.0,
            node: row.node,
            state: row.state.0,
            wait: row.wait.map(|w| w.0),
            wake_at: row.wake_at,
            cancel_requested: row.cancel_requested,
            lease_owner: row.lease_owner,
            lease_until: row.lease_until,
            event_seq: row.event_seq,
            steps: row.steps,
            created_at: row.created_at,
            updated_at: row.updated_at,
            pending_signals: row.pending.map(|pending| pending.0),
        })
    }
}

/// The oldest runnable execution and the earliest due waiting one whose
/// lease is free, each found by an index walk that stops at the first hit.
/// Between them the older run goes first (by `created_at`, not by when it
/// became runnable): runs finish in about the order they started.
pub(super) const READY: &str = "SELECT run_id, created_at FROM executions WHERE status = 'runnable' \
     AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_at LIMIT 1";

pub(super) const DUE: &str = "SELECT run_id, created_at FROM executions WHERE status = 'waiting' AND wake_at <= $3 \
     AND (lease_until IS NULL OR lease_until < $3) ORDER BY wake_at LIMIT 1";

/// A claimed execution's unconsumed signals, in seq order, as a JSON array
/// of [`StoredSignal`]s (`[]` when none): the claim returns the step's
/// inputs with the execution. A signal committed after the claim keeps the
/// execution runnable when the step commits (docs/engine.md, "Graph and
/// steps").
const PENDING: [&str; 2] = [
    // SQLite (3.44 or later: ORDER BY inside an aggregate): one writer at
    // a time, so the statement reads the signals as the row stands.
    "(SELECT json_group_array(json_object('seq', s.seq, 'signal_id', s.signal_id, 'body', json(s.body)) \
      ORDER BY s.seq) FROM signals s WHERE s.run_id = executions.run_id AND s.consumed_at IS NULL) AS pending",
    // Postgres: the subqueries read the statement's snapshot, which can
    // predate the row the claim locked (an earlier holder whose lease
    // expired committed a step, consuming signals, after the snapshot and
    // before the lock). Only a step commit consumes signals, and it counts
    // `steps`: when the snapshot's count differs from the locked row's,
    // the claim answers NULL and the engine reads the signals afresh.
    "CASE WHEN executions.steps = (SELECT e.steps FROM executions e WHERE e.run_id = executions.run_id) \
      THEN COALESCE((SELECT json_agg(json_build_object('seq', s.seq, 'signal_id', s.signal_id, 'body', s.body) \
      ORDER BY s.seq) FROM signals s WHERE s.run_id = executions.run_id AND s.consumed_at IS NULL), '[]') END \
      AS pending",
];

/// SQLite serializes writers, so the sub-select and the update are atomic.
pub(super) const SQLITE_CLAIM: &str = "UPDATE executions SET lease_owner = $1, lease_until = $2 WHERE run_id = \
     (SELECT run_id FROM (SELECT * FROM ({READY}) UNION ALL SELECT * FROM ({DUE})) ORDER BY created_at LIMIT 1) \
     RETURNING {EXECUTION_COLUMNS}, {SQLITE_PENDING}";

/// Postgres: workers skip rows another worker is claiming.
pub(super) const POSTGRES_CLAIM: &str = "WITH {UNFLUSHED}, ready AS ({READY} FOR UPDATE SKIP LOCKED), \
     due AS ({DUE} FOR UPDATE SKIP LOCKED) \
     UPDATE executions SET lease_owner = $1, lease_until = $2 WHERE run_id = \
     (SELECT run_id FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) c, unflushed ORDER BY created_at LIMIT 1) \
     RETURNING {EXECUTION_COLUMNS}, {POSTGRES_PENDING}";

/// The claim of several (`$4`): the same walks, each stopping after `$4`
/// rows; every row gets its own owner (`$1` and its run id).
pub(super) const SQLITE_CLAIM_MANY: &str = "UPDATE executions SET lease_owner = $1 || run_id, lease_until = $2 \
     WHERE run_id IN (SELECT run_id FROM (SELECT * FROM ({READY}) UNION ALL SELECT * FROM ({DUE})) \
     ORDER BY created_at LIMIT $4) RETURNING {EXECUTION_COLUMNS}, {SQLITE_PENDING}";

pub(super) const POSTGRES_CLAIM_MANY: &str = "WITH {UNFLUSHED}, ready AS ({READY} FOR UPDATE SKIP LOCKED), \
     due AS ({DUE} FOR UPDATE SKIP LOCKED) \
     UPDATE executions SET lease_owner = $1 || run_id, lease_until = $2 WHERE run_id IN \
     (SELECT run_id FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) c, unflushed ORDER BY created_at LIMIT $4) \
     RETURNING {EXECUTION_COLUMNS}, {POSTGRES_PENDING}";

/// A claim's commit does not wait for its WAL flush (Postgres): the
/// setting lasts until the end of the claim's own transaction. See
/// docs/engine.md, "Leases": a claim lost in a crash of Postgres cannot
/// let a paid call or a commit through.
const UNFLUSHED: &str =
    "unflushed AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS synchronous_commit)";

/// How `commit_step` takes the execution's row before anything else, on
/// Postgres. Read committed gives each statement the snapshot of its start,
/// and a statement that waited for a row lock still reads other tables as
/// of then: a park that waited for `add_signal`'s transaction in the UPDATE
/// that decides "runnable if a signal is pending" did not see the signal
/// that transaction committed, and the run slept for good (caught in CI: a
/// live run stuck at `generating` with all twelve callbacks accepted).
/// Holding the row first, the statements after it see every signal. It
/// also puts the row before the signal rows, the order `add_signal` takes
/// them in. Answers a row only while `$2` holds the lease.
pub(super) const POSTGRES_LOCK_EXECUTION: &str =
    "SELECT 1 FROM executions WHERE run_id = $1 AND lease_owner = $2 FOR UPDATE";

/// A step's commit on Postgres, in one call (see the migration that
/// creates `mw_commit_step`).
pub(super) const POSTGRES_COMMIT_STEP: &str =
    "SELECT mw_commit_step($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

impl PgOrchestratorStore {
    /// [`ExecutionStore::commit_step`] as one call of `mw_commit_step`
    /// (migration 20261228000002): the same statements, in the same order,
    /// without a round trip each. Whether the lease was held.
    pub(super) async fn commit_step_in_one_call(
        &self,
        commit: &StepCommit,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<bool>> {
        let last_seq: Option<i64> = sqlx::query_scalar(POSTGRES_COMMIT_STEP)
            .bind(&commit.run_id)
            .bind(&commit.worker)
            .bind(commit.consumed_through)
            .bind(commit.node)
            .bind(commit.status.as_str())
            .bind(Json(&commit.state))
            .bind(commit.wait.as_ref().map(Json))
            .bind(commit.wake_at)
            .bind(commit.keep_lease_until)
            .bind(now)
            .bind(Json(events_json(&commit.events)))
            .bind(Json(spend_json(&commit.spend)))
            .bind(commit.release_jobs)
            .bind(&commit.jobs_ended)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(last_seq.is_some()))
    }
}

impl SqliteOrchestratorStore {
    /// SQLite runs in process (a round trip costs nothing): the
    /// transaction of [`ExecutionStore::commit_step`] does it.
    pub(super) async fn commit_step_in_one_call(&self, _: &StepCommit, _: DateTime<Utc>) -> StoreResult<Option<bool>> {
        Ok(None)
    }
}

/// A step's events as `mw_commit_step` takes them, each with a new id.
pub(super) fn events_json(events: &[NewEvent]) -> Value {
    events
        .iter()
        .map(|event| {
            serde_json::json!({
                "id": uuid::Uuid::now_v7().to_string(),
                "kind": event.kind.as_str(),
                "data": event.data,
            })
        })
        .collect()
}

/// A step's costs as `mw_commit_step` takes them: `spend` rows by column.
pub(super) fn spend_json(spend: &[Spend]) -> Value {
    spend
        .iter()
        .map(|spend| {
            serde_json::json!({
                "run_id": spend.run_id,
                "project": spend.project,
                "provider": spend.charge.provider,
                "operation": spend.charge.operation,
                "model": spend.charge.model,
                "units": spend.charge.units,
                "usd_micros": spend.charge.usd_micros,
                "mode": spend.mode.as_str(),
                "journal_key": spend.journal_key,
                "at": spend.at,
            })
        })
        .collect()
}

/// Counting a provider's jobs and taking a slot take turns (Postgres; a
/// transaction-scoped advisory lock, key "mwjobs"; SQLite's write
/// transactions already take turns), so concurrent steps never exceed
/// `MAX_PROVIDER_JOBS`.
pub(super) const POSTGRES_LOCK_JOBS: &str = "SELECT pg_advisory_xact_lock(1836541802)";

pub(super) fn claim_sql(template: &str) -> String {
    template
        .replace("{UNFLUSHED}", UNFLUSHED)
        .replace("{READY}", READY)
        .replace("{DUE}", DUE)
        .replace("{EXECUTION_COLUMNS}", EXECUTION_COLUMNS)
        .replace("{SQLITE_PENDING}", PENDING[0])
        .replace("{POSTGRES_PENDING}", PENDING[1])
}

/// [`claim_sql`] of a claim of several: each walk stops after `$4` rows.
pub(super) fn claim_many_sql(template: &str) -> String {
    template
        .replace("{UNFLUSHED}", UNFLUSHED)
        .replace("{READY}", &READY.replace("LIMIT 1", "LIMIT $4"))
        .replace("{DUE}", &DUE.replace("LIMIT 1", "LIMIT $4"))
        .replace("{EXECUTION_COLUMNS}", EXECUTION_COLUMNS)
        .replace("{SQLITE_PENDING}", PENDING[0])
        .replace("{POSTGRES_PENDING}", PENDING[1])
}

/// `ExecutionStore` for one backend (see `sql_orchestrator_store!`).
macro_rules! executions_store {
    ($store:ident, $db:ty, $begin:expr, $claim:expr, $lock_execution:expr, $lock_jobs:expr) => {
        #[async_trait]
        impl ExecutionStore for $store {
            async fn create_execution(&self, new: &NewExecution, first_event: &NewEvent) -> StoreResult<Created> {
                let mut tx = self.begin().await?;
                let now = Utc::now();
                let inserted = sqlx::query(
                    "INSERT INTO executions (run_id, project, request, status, state, event_seq, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'runnable', $4, 1, $5, $5) ON CONFLICT (run_id) DO NOTHING",
                )
                .bind(&new.run_id)
                .bind(&new.project)
                .bind(Json(&new.request))
                .bind(Json(&new.state))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !inserted {
                    let (existing,): (Json<Value>,) =
                        sqlx::query_as("SELECT request FROM executions WHERE run_id = $1")
                            .bind(&new.run_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    tx.rollback().await?;
                    return Ok(Created::Exists { same: existing.0 == new.request });
                }
                insert_events!(tx, &new.run_id, 1i64, std::slice::from_ref(first_event));
                tx.commit().await?;
                Ok(Created::Created)
            }

            async fn get_execution(&self, run_id: &str) -> StoreResult<Option<Execution>> {
                let row: Option<ExecutionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE run_id = $1"
                )))
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(Execution::try_from).transpose()
            }

            async fn claim(
                &self,
                worker: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> StoreResult<Option<Execution>> {
                let row: Option<ExecutionRow> = sqlx::query_as(sqlx::AssertSqlSafe(claim_sql($claim.0)))
                    .bind(worker)
                    .bind(lease_until)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(Execution::try_from).transpose()
            }

            async fn claim_many(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: u32,
            ) -> StoreResult<Vec<Execution>> {
                let rows: Vec<ExecutionRow> = sqlx::query_as(sqlx::AssertSqlSafe(claim_many_sql($claim.1)))
                    .bind(owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                let mut claimed = rows.into_iter().map(Execution::try_from).collect::<Result<Vec<_>, _>>()?;
                claimed.sort_by_key(|e| e.created_at);
                Ok(claimed)
            }

            async fn release_lease(&self, run_id: &str, worker: &str) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE executions SET lease_owner = NULL, lease_until = NULL WHERE run_id = $1 AND lease_owner = $2",
                )
                .bind(run_id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn extend_lease(&self, run_id: &str, worker: &str, until: DateTime<Utc>) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE executions SET lease_until = $3 WHERE run_id = $1 AND lease_owner = $2")
                    .bind(run_id)
                    .bind(worker)
                    .bind(until)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn commit_step(&self, commit: &StepCommit) -> StoreResult<bool> {
                let now = Utc::now();
                // Postgres: one round trip (a server-side function).
                if let Some(held) = self.commit_step_in_one_call(commit, now).await? {
                    return Ok(held);
                }
                let mut tx = self.begin().await?;
                // The execution's row first (Postgres; SQLite's write
                // transactions already take turns): see POSTGRES_LOCK_EXECUTION.
                let lock: Option<&str> = $lock_execution;
                if let Some(lock) = lock {
                    let held: Option<i32> = sqlx::query_scalar(lock)
                        .bind(&commit.run_id)
                        .bind(&commit.worker)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if held.is_none() {
                        // Lease lost: nothing to do (the signals stay unread).
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                if let Some(through) = commit.consumed_through {
                    sqlx::query(
                        "UPDATE signals SET consumed_at = $3 WHERE run_id = $1 AND seq <= $2 AND consumed_at IS NULL",
                    )
                    .bind(&commit.run_id)
                    .bind(through)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let keep = commit.keep_lease_until.is_some();
                let row: Option<(i64,)> = sqlx::query_as(
                    "UPDATE executions SET node = $3, \
                       status = CASE WHEN $4 = 'waiting' AND (cancel_requested OR EXISTS \
                         (SELECT 1 FROM signals s WHERE s.run_id = executions.run_id AND s.consumed_at IS NULL)) \
                         THEN 'runnable' ELSE $4 END, \
                       state = $5, wait = $6, wake_at = $7, \
                       lease_owner = CASE WHEN $8 THEN lease_owner ELSE NULL END, \
                       lease_until = CASE WHEN $8 THEN $9 ELSE NULL END, \
                       event_seq = event_seq + $10, steps = steps + 1, updated_at = $11 \
                     WHERE run_id = $1 AND lease_owner = $2 RETURNING event_seq",
                )
                .bind(&commit.run_id)
                .bind(&commit.worker)
                .bind(commit.node)
                .bind(commit.status.as_str())
                .bind(Json(&commit.state))
                .bind(commit.wait.as_ref().map(Json))
                .bind(commit.wake_at)
                .bind(keep)
                .bind(commit.keep_lease_until)
                .bind(commit.events.len() as i64)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((last_seq,)) = row else {
                    // Lease lost: roll back everything (the signals stay unread).
                    tx.rollback().await?;
                    return Ok(false);
                };
                let first_seq = last_seq - commit.events.len() as i64 + 1;
                insert_events!(tx, &commit.run_id, first_seq, &commit.events);
                insert_spend!(tx, &commit.spend);
                if commit.release_jobs {
                    sqlx::query("DELETE FROM provider_jobs WHERE run_id = $1")
                        .bind(&commit.run_id)
                        .execute(&mut *tx)
                        .await?;
                }
                for key in &commit.jobs_ended {
                    sqlx::query("DELETE FROM provider_jobs WHERE key = $1")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn take_job_slot(&self, run_id: &str, key: &str, provider: &str, cap: u32) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let lock: Option<&str> = $lock_jobs;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                let (held, in_flight): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM provider_jobs WHERE key = $1), \
                            (SELECT COUNT(*) FROM provider_jobs WHERE provider = $2)",
                )
                .bind(key)
                .bind(provider)
                .fetch_one(&mut *tx)
                .await?;
                if held == 0 && in_flight >= i64::from(cap) {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if held == 0 {
                    sqlx::query("INSERT INTO provider_jobs (key, run_id, provider, started_at) VALUES ($1, $2, $3, $4)")
                        .bind(key)
                        .bind(run_id)
                        .bind(provider)
                        .bind(Utc::now())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn provider_jobs(&self, provider: &str) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT key FROM provider_jobs WHERE provider = $1 ORDER BY key")
                    .bind(provider)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn request_cancel(&self, run_id: &str) -> StoreResult<Option<ExecStatus>> {
                let row: Option<(String,)> = sqlx::query_as(
                    "UPDATE executions SET cancel_requested = TRUE, \
                     status = CASE WHEN status = 'waiting' THEN 'runnable' ELSE status END, updated_at = $2 \
                     WHERE run_id = $1 RETURNING status",
                )
                .bind(run_id)
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await?;
                row.map(|(s,)| s.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))).transpose()
            }

            async fn retry_execution(&self, run_id: &str, attempt: u32, state: &Value) -> StoreResult<bool> {
                let reopen = sqlx::query(
                    "UPDATE executions SET status = 'runnable', state = $2, wait = NULL, wake_at = NULL, \
                       lease_owner = NULL, lease_until = NULL, updated_at = $3 \
                     WHERE run_id = $1 AND status = 'failed'",
                )
                .bind(run_id)
                .bind(Json(state))
                .bind(Utc::now());
                let Some(mut tx) = guarded(self.begin().await?, reopen).await? else {
                    return Ok(false);
                };
                // Entries set aside by an earlier retry keep their key.
                sqlx::query(
                    "UPDATE journal SET key = key || $2 \
                     WHERE run_id = $1 AND status = 'failed' AND key NOT LIKE '%:failed:%'",
                )
                    .bind(run_id)
                    .bind(format!(":failed:{attempt}"))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}
