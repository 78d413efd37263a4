//! The journal: one row per provider call, begun before the call and
//! finished with its answer.

use super::*;

#[derive(sqlx::FromRow)]
pub(super) struct JournalRow {
    pub(super) key: String,
    pub(super) provider: String,
    pub(super) operation: String,
    pub(super) status: String,
    pub(super) request: Json<Value>,
    pub(super) response: Option<Json<Value>>,
}

impl TryFrom<JournalRow> for JournalEntry {
    type Error = sqlx::Error;
    fn try_from(r: JournalRow) -> Result<JournalEntry, sqlx::Error> {
        Ok(JournalEntry {
            key: r.key,
            provider: r.provider,
            operation: r.operation,
            status: r.status.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            request: r.request.0,
            response: r.response.map(|j| j.0),
        })
    }
}

/// Whether a cancel of execution `$1` was requested, answered only while
/// `$2` holds its lease (SQLite: inside a write transaction, which no other
/// writer can interleave with).
pub(super) const LEASE_AND_CANCEL: &str =
    "SELECT cancel_requested FROM executions WHERE run_id = $1 AND lease_owner = $2";

pub(super) const JOURNAL_ENTRY: &str =
    "SELECT key, provider, operation, status, request, response FROM journal WHERE run_id = $1 AND key = $2";

impl PgOrchestratorStore {
    /// [`JournalStore::journal_begin`] as one call of `mw_journal_begin`
    /// (migration 20261229000001): the same statements, in the same order.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn journal_begin_in_one_call(
        &self,
        run_id: &str,
        worker: &str,
        key: &str,
        provider: &str,
        operation: &str,
        request: &Value,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<JournalBegin>> {
        let outcome: String = sqlx::query_scalar("SELECT mw_journal_begin($1, $2, $3, $4, $5, $6, $7)")
            .bind(run_id)
            .bind(worker)
            .bind(key)
            .bind(provider)
            .bind(operation)
            .bind(Json(request))
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(self.journal_begin_outcome(run_id, key, &outcome).await?))
    }

    /// What `mw_journal_begin` answered, as a [`JournalBegin`]: an existing
    /// entry is read.
    pub(super) async fn journal_begin_outcome(
        &self,
        run_id: &str,
        key: &str,
        outcome: &str,
    ) -> StoreResult<JournalBegin> {
        Ok(match outcome {
            "begun" => JournalBegin::Begun,
            "lease_lost" => JournalBegin::LeaseLost,
            "cancelled" => JournalBegin::Cancelled,
            "exists" => {
                // Written by an earlier attempt of this run's steps; only the
                // lease holder changes it.
                let row: JournalRow = sqlx::query_as(JOURNAL_ENTRY)
                    .bind(run_id)
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await?;
                JournalBegin::Existing(row.try_into()?)
            }
            other => {
                let unknown = format!("mw_journal_begin answered {other:?}");
                return Err(sqlx::Error::Decode(unknown.into()));
            }
        })
    }
}

impl SqliteOrchestratorStore {
    /// SQLite runs in process: the transaction of
    /// [`JournalStore::journal_begin`] does it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn journal_begin_in_one_call(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
        _: &Value,
        _: DateTime<Utc>,
    ) -> StoreResult<Option<JournalBegin>> {
        Ok(None)
    }
}

/// Begins a provider call's journal entry in transaction `$tx`
/// ([`JournalStore::journal_begin`]; `$lock_execution` as in
/// `sql_orchestrator_store!`): the [`JournalBegin`]. Only a begun entry is
/// written; the caller commits.
macro_rules! journal_begin_in {
    ($tx:expr, $lock_execution:expr, $run_id:expr, $worker:expr, $key:expr, $provider:expr, $operation:expr, $request:expr, $now:expr) => {{
        // Only while the lease is held, and holding the execution's row
        // (Postgres; SQLite's write transactions take turns) without
        // writing it: a new version of the wide, indexed row for every
        // provider call cost more than the call's journal.
        let lock: Option<&str> = $lock_execution;
        let lease = match lock {
            Some(_) => format!("{LEASE_AND_CANCEL} FOR UPDATE"),
            None => LEASE_AND_CANCEL.to_string(),
        };
        let cancel_requested: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(lease))
            .bind($run_id)
            .bind($worker)
            .fetch_optional(&mut *$tx)
            .await?;
        match cancel_requested {
            None => JournalBegin::LeaseLost,
            Some(true) => JournalBegin::Cancelled,
            Some(false) => {
                let inserted = sqlx::query(
                    "INSERT INTO journal (run_id, key, provider, operation, status, request, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'started', $5, $6, $6) ON CONFLICT (run_id, key) DO NOTHING",
                )
                .bind($run_id)
                .bind($key)
                .bind($provider)
                .bind($operation)
                .bind(Json($request))
                .bind($now)
                .execute(&mut *$tx)
                .await?;
                if inserted.rows_affected() == 1 {
                    JournalBegin::Begun
                } else {
                    let row: JournalRow = sqlx::query_as(JOURNAL_ENTRY)
                        .bind($run_id)
                        .bind($key)
                        .fetch_one(&mut *$tx)
                        .await?;
                    JournalBegin::Existing(row.try_into()?)
                }
            }
        }
    }};
}

/// `JournalStore` for one backend (see `sql_orchestrator_store!`).
macro_rules! journal_store {
    ($store:ident, $db:ty, $begin:expr, $search:expr, $match:expr, $claim:expr, $lock_execution:expr) => {
        #[async_trait]
        impl JournalStore for $store {
            async fn journal_begin(
                &self,
                run_id: &str,
                worker: &str,
                key: &str,
                provider: &str,
                operation: &str,
                request: &Value,
            ) -> StoreResult<JournalBegin> {
                let now = Utc::now();
                // Postgres: one round trip (a server-side function).
                if let Some(begin) = self
                    .journal_begin_in_one_call(run_id, worker, key, provider, operation, request, now)
                    .await?
                {
                    return Ok(begin);
                }
                let mut tx = self.begin().await?;
                let begin = journal_begin_in!(
                    tx,
                    $lock_execution,
                    run_id,
                    worker,
                    key,
                    provider,
                    operation,
                    request,
                    now
                );
                // Nothing but a begun entry is written: committing the
                // other outcomes' transactions is the same as rolling back.
                tx.commit().await?;
                Ok(begin)
            }

            async fn journal_finish(
                &self,
                run_id: &str,
                key: &str,
                succeeded: bool,
                response: &Value,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE journal SET status = $3, response = $4, updated_at = $5 WHERE run_id = $1 AND key = $2",
                )
                .bind(run_id)
                .bind(key)
                .bind(
                    if succeeded {
                        JournalStatus::Succeeded
                    } else {
                        JournalStatus::Failed
                    }
                    .as_str(),
                )
                .bind(Json(response))
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn journal(&self, run_id: &str) -> StoreResult<Vec<JournalEntry>> {
                let sql = "SELECT key, provider, operation, status, request, response FROM journal \
                           WHERE run_id = $1 ORDER BY created_at, key";
                let rows: Vec<JournalRow> = rows_for(&self.pool, sql, run_id).await?;
                rows.into_iter().map(JournalEntry::try_from).collect()
            }
        }
    };
}
