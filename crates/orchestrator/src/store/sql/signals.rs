//! Signals: what a waiting execution waits for, each stored once.

use super::*;

impl PgOrchestratorStore {
    /// [`SignalStore::add_signals`] as one call of `mw_add_signals`
    /// (migration 20261230000003): the same statements, in the same order,
    /// without a round trip each.
    pub(super) async fn add_signals_in_one_call(
        &self,
        run_id: &str,
        signals: &[(String, Value)],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Option<Vec<bool>>>> {
        let list: Vec<Value> = signals
            .iter()
            .map(|(id, body)| serde_json::json!({"id": id, "body": body}))
            .collect();
        let inserted: Option<Vec<String>> = sqlx::query_scalar("SELECT mw_add_signals($1, $2, $3)")
            .bind(run_id)
            .bind(Json(list))
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(inserted.map(|inserted| first_of_each(signals, &inserted))))
    }
}

impl SqliteOrchestratorStore {
    /// SQLite runs in process (a round trip costs nothing): the
    /// transaction of [`SignalStore::add_signals`] does it.
    pub(super) async fn add_signals_in_one_call(
        &self,
        _: &str,
        _: &[(String, Value)],
        _: DateTime<Utc>,
    ) -> StoreResult<Option<Option<Vec<bool>>>> {
        Ok(None)
    }
}

/// For each signal of the list, whether it is new: inserted now, and the
/// first of its id in the list.
pub(super) fn first_of_each(signals: &[(String, Value)], inserted: &[String]) -> Vec<bool> {
    let mut fresh: std::collections::HashSet<&str> = inserted.iter().map(String::as_str).collect();
    signals.iter().map(|(id, _)| fresh.remove(id.as_str())).collect()
}

/// `SignalStore` for one backend (see `sql_orchestrator_store!`).
macro_rules! signals_store {
    ($store:ident, $db:ty, $begin:expr, $search:expr, $match:expr, $claim:expr, $lock_execution:expr) => {
        #[async_trait]
        impl SignalStore for $store {
            async fn add_signals(&self, run_id: &str, signals: &[(String, Value)]) -> StoreResult<Option<Vec<bool>>> {
                let now = Utc::now();
                // Postgres: one round trip (a server-side function).
                if let Some(added) = self.add_signals_in_one_call(run_id, signals, now).await? {
                    return Ok(added);
                }
                // The execution's row before the signals: holding it orders a
                // run's signals (seq order is commit order, which
                // `consumed_through` relies on), and commit_step takes the
                // row first too (one lock order: no deadlock). Locked, not
                // written, unless the execution waits: a new version of the
                // wide, indexed row per signal cost more than the signal.
                let mut tx = self.begin().await?;
                let postgres: Option<&str> = $lock_execution;
                let row_lock = match postgres {
                    // Postgres: a row lock. SQLite: its write transaction.
                    Some(_) => "SELECT status FROM executions WHERE run_id = $1 FOR UPDATE",
                    None => "SELECT status FROM executions WHERE run_id = $1",
                };
                let status: Option<String> = sqlx::query_scalar(row_lock)
                    .bind(run_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(status) = status else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                if signals.is_empty() {
                    tx.rollback().await?;
                    return Ok(Some(Vec::new()));
                }
                // One multi-row INSERT; seqs follow the list's order.
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO signals (run_id, signal_id, body, received_at) ");
                insert.push_values(signals, |mut row, (signal_id, body)| {
                    row.push_bind(run_id)
                        .push_bind(signal_id)
                        .push_bind(Json(body))
                        .push_bind(now);
                });
                insert.push(" ON CONFLICT (run_id, signal_id) DO NOTHING RETURNING signal_id");
                let inserted: Vec<String> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
                if inserted.is_empty() {
                    tx.rollback().await?;
                    return Ok(Some(vec![false; signals.len()]));
                }
                if status == ExecStatus::Waiting.as_str() {
                    sqlx::query("UPDATE executions SET status = 'runnable', updated_at = $2 WHERE run_id = $1")
                        .bind(run_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(first_of_each(signals, &inserted)))
            }

            async fn pending_signals(&self, run_id: &str) -> StoreResult<Vec<StoredSignal>> {
                let sql = "SELECT seq, signal_id, body FROM signals \
                           WHERE run_id = $1 AND consumed_at IS NULL ORDER BY seq";
                let rows: Vec<(i64, String, Json<Value>)> = rows_for(&self.pool, sql, run_id).await?;
                Ok(rows
                    .into_iter()
                    .map(|(seq, signal_id, body)| StoredSignal {
                        seq,
                        signal_id,
                        body: body.0,
                    })
                    .collect())
            }

            async fn step_inputs(&self, run_id: &str) -> StoreResult<(bool, Vec<StoredSignal>)> {
                let sql = "SELECT e.cancel_requested, s.seq, s.signal_id, s.body FROM executions e \
                           LEFT JOIN signals s ON s.run_id = e.run_id AND s.consumed_at IS NULL \
                           WHERE e.run_id = $1 ORDER BY s.seq";
                let rows: Vec<(bool, Option<i64>, Option<String>, Option<Json<Value>>)> =
                    rows_for(&self.pool, sql, run_id).await?;
                let cancel = rows.first().is_some_and(|row| row.0);
                let signals = rows
                    .into_iter()
                    .filter_map(|(_, seq, signal_id, body)| {
                        Some(StoredSignal {
                            seq: seq?,
                            signal_id: signal_id?,
                            body: body?.0,
                        })
                    })
                    .collect();
                Ok((cancel, signals))
            }

            async fn find_signal(&self, run_id: &str, signal_id: &str) -> StoreResult<Option<Value>> {
                let row: Option<(Json<Value>,)> =
                    sqlx::query_as("SELECT body FROM signals WHERE run_id = $1 AND signal_id = $2")
                        .bind(run_id)
                        .bind(signal_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(body,)| body.0))
            }
        }
    };
}
