//! The costs of paid calls: written with the journal's success (provider
//! calls, once per journal key) or with the step (LLM requests).

use myloware_core::costs::Charge;

use super::*;

#[derive(sqlx::FromRow)]
pub(super) struct SpendRow {
    pub(super) run_id: String,
    pub(super) project: String,
    pub(super) provider: String,
    pub(super) operation: String,
    pub(super) model: Option<String>,
    pub(super) units: f64,
    pub(super) usd_micros: i64,
    pub(super) mode: String,
    pub(super) journal_key: Option<String>,
    pub(super) at: DateTime<Utc>,
}

impl TryFrom<SpendRow> for Spend {
    type Error = sqlx::Error;
    fn try_from(r: SpendRow) -> Result<Spend, sqlx::Error> {
        Ok(Spend {
            mode: r.mode.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            run_id: r.run_id,
            project: r.project,
            charge: Charge {
                provider: r.provider,
                operation: r.operation,
                model: r.model,
                units: r.units,
                usd_micros: r.usd_micros,
            },
            journal_key: r.journal_key,
            at: r.at,
        })
    }
}

/// Inserts `$spend` (`&[Spend]`) in transaction `$tx`; a journal key
/// recorded before is left alone. The rows inserted.
macro_rules! insert_spend {
    ($tx:expr, $spend:expr) => {{
        let mut inserted = 0u64;
        for spend in $spend {
            inserted += sqlx::query(
                "INSERT INTO spend (run_id, project, provider, operation, model, units, usd_micros, mode, journal_key, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (run_id, journal_key) DO NOTHING",
            )
            .bind(&spend.run_id)
            .bind(&spend.project)
            .bind(&spend.charge.provider)
            .bind(&spend.charge.operation)
            .bind(&spend.charge.model)
            .bind(spend.charge.units)
            .bind(spend.charge.usd_micros)
            .bind(spend.mode.as_str())
            .bind(&spend.journal_key)
            .bind(spend.at)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        }
        inserted
    }};
}

impl PgOrchestratorStore {
    /// [`SpendStore::journal_succeeded_paid`] as one call of
    /// `mw_journal_paid` (migration 20261229000001): the same statements,
    /// in the same order.
    pub(super) async fn journal_paid_in_one_call(
        &self,
        run_id: &str,
        key: &str,
        response: &Value,
        spend: &Spend,
        event: &NewEvent,
    ) -> StoreResult<Option<bool>> {
        let recorded: bool = sqlx::query_scalar("SELECT mw_journal_paid($1, $2, $3, $4, $5, $6)")
            .bind(run_id)
            .bind(key)
            .bind(Json(response))
            .bind(Json(spend_json(std::slice::from_ref(spend))))
            .bind(Json(events_json(std::slice::from_ref(event))))
            .bind(Utc::now())
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(recorded))
    }

    /// [`SpendStore::journal_paid_then_begin`] as one call of
    /// `mw_journal_paid_then_begin` (migration 20261231000001): the two
    /// functions, in one transaction.
    pub(super) async fn journal_paid_then_begin_in_one_call(
        &self,
        run_id: &str,
        worker: &str,
        paid: &PaidAnswer,
        next: &NextCall<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(bool, JournalBegin)>> {
        let (recorded, outcome): (bool, String) =
            sqlx::query_as("SELECT * FROM mw_journal_paid_then_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(run_id)
                .bind(&paid.key)
                .bind(Json(&paid.response))
                .bind(Json(spend_json(std::slice::from_ref(&paid.spend))))
                .bind(Json(events_json(std::slice::from_ref(&paid.event))))
                .bind(worker)
                .bind(next.key)
                .bind(next.provider)
                .bind(next.operation)
                .bind(Json(next.request))
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
        let begin = self.journal_begin_outcome(run_id, next.key, &outcome).await?;
        Ok(Some((recorded, begin)))
    }
}

impl SqliteOrchestratorStore {
    /// SQLite runs in process: the transaction of
    /// [`SpendStore::journal_succeeded_paid`] does it.
    pub(super) async fn journal_paid_in_one_call(
        &self,
        _: &str,
        _: &str,
        _: &Value,
        _: &Spend,
        _: &NewEvent,
    ) -> StoreResult<Option<bool>> {
        Ok(None)
    }

    /// SQLite runs in process: the transaction of
    /// [`SpendStore::journal_paid_then_begin`] does it.
    pub(super) async fn journal_paid_then_begin_in_one_call(
        &self,
        _: &str,
        _: &str,
        _: &PaidAnswer,
        _: &NextCall<'_>,
        _: DateTime<Utc>,
    ) -> StoreResult<Option<(bool, JournalBegin)>> {
        Ok(None)
    }
}

/// Records a paid call's answer in transaction `$tx`
/// ([`SpendStore::journal_succeeded_paid`]): whether its cost was recorded
/// now. The caller commits.
macro_rules! journal_paid_in {
    ($tx:expr, $run_id:expr, $key:expr, $response:expr, $spend:expr, $event:expr) => {{
        // The cost first, then the execution's row (its event seq), then
        // the journal: executions before journal, as `journal_begin` takes
        // them.
        let recorded = insert_spend!($tx, std::slice::from_ref($spend)) == 1;
        if recorded {
            let seq: Option<(i64,)> =
                sqlx::query_as("UPDATE executions SET event_seq = event_seq + 1 WHERE run_id = $1 RETURNING event_seq")
                    .bind($run_id)
                    .fetch_optional(&mut *$tx)
                    .await?;
            if let Some((seq,)) = seq {
                insert_events!($tx, $run_id, seq, std::slice::from_ref($event));
            }
        }
        sqlx::query(
            "UPDATE journal SET status = 'succeeded', response = $3, updated_at = $4 WHERE run_id = $1 AND key = $2",
        )
        .bind($run_id)
        .bind($key)
        .bind(Json($response))
        .bind(Utc::now())
        .execute(&mut *$tx)
        .await?;
        recorded
    }};
}

/// `SpendStore` for one backend (see `sql_orchestrator_store!`).
macro_rules! spend_store {
    ($store:ident, $db:ty, $begin:expr, $search:expr, $match:expr, $claim:expr, $lock_execution:expr) => {
        #[async_trait]
        impl SpendStore for $store {
            async fn journal_succeeded_paid(
                &self,
                run_id: &str,
                key: &str,
                response: &Value,
                spend: &Spend,
                event: &NewEvent,
            ) -> StoreResult<bool> {
                // Postgres: one round trip (a server-side function).
                if let Some(recorded) = self
                    .journal_paid_in_one_call(run_id, key, response, spend, event)
                    .await?
                {
                    return Ok(recorded);
                }
                let mut tx = self.begin().await?;
                let recorded = journal_paid_in!(tx, run_id, key, response, spend, event);
                tx.commit().await?;
                Ok(recorded)
            }

            async fn journal_paid_then_begin(
                &self,
                run_id: &str,
                worker: &str,
                paid: &PaidAnswer,
                next: NextCall<'_>,
            ) -> StoreResult<(bool, JournalBegin)> {
                let now = Utc::now();
                // Postgres: one round trip (a server-side function).
                if let Some(both) = self
                    .journal_paid_then_begin_in_one_call(run_id, worker, paid, &next, now)
                    .await?
                {
                    return Ok(both);
                }
                // SQLite: `BEGIN IMMEDIATE` takes the database's one write
                // lock first, so the rows' order does not matter here.
                let mut tx = self.begin().await?;
                let recorded = journal_paid_in!(tx, run_id, &paid.key, &paid.response, &paid.spend, &paid.event);
                let begin = journal_begin_in!(
                    tx,
                    $lock_execution,
                    run_id,
                    worker,
                    next.key,
                    next.provider,
                    next.operation,
                    next.request,
                    now
                );
                // The answer is written whatever the begin found.
                tx.commit().await?;
                Ok((recorded, begin))
            }

            async fn spent_since(
                &self,
                project: Option<&str>,
                since: DateTime<Utc>,
                mode: ProviderMode,
            ) -> StoreResult<i64> {
                let (total,): (i64,) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(usd_micros), 0) AS BIGINT) FROM spend \
                     WHERE at >= $1 AND mode = $2 AND ($3 IS NULL OR project = $3)",
                )
                .bind(since)
                .bind(mode.as_str())
                .bind(project)
                .fetch_one(&self.pool)
                .await?;
                Ok(total)
            }

            async fn spend(&self, run_id: &str) -> StoreResult<Vec<Spend>> {
                let rows: Vec<SpendRow> = sqlx::query_as(
                    "SELECT run_id, project, provider, operation, model, units, usd_micros, mode, journal_key, at \
                     FROM spend WHERE run_id = $1 ORDER BY seq",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(Spend::try_from).collect()
            }
        }
    };
}
