//! The outbox: events for the API, appended with each step and delivered
//! in order per run.

macro_rules! insert_events {
    ($tx:expr, $run_id:expr, $first_seq:expr, $events:expr) => {{
        let at = Utc::now();
        let events = $events;
        if !events.is_empty() {
            // One multi-row INSERT: one round trip however many events.
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO outbox (event_id, run_id, run_seq, kind, data, created_at, next_attempt_at) ",
            );
            insert.push_values(events.iter().enumerate(), |mut row, (i, event)| {
                row.push_bind(uuid::Uuid::now_v7().to_string())
                    .push_bind($run_id)
                    .push_bind($first_seq + i as i64)
                    .push_bind(event.kind.as_str())
                    .push_bind(Json(&event.data))
                    .push_bind(at)
                    .push_bind(at);
            });
            insert.build().execute(&mut *$tx).await?;
        }
    }};
}

/// `OutboxStore` for one backend (see `sql_orchestrator_store!`).
macro_rules! outbox_store {
    ($store:ident, $db:ty, $begin:expr, $search:expr, $match:expr, $claim:expr, $lock_execution:expr) => {
        #[async_trait]
        impl OutboxStore for $store {
            async fn outbox_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
                let events: Vec<OutboxEvent> = sqlx::query_as(
                    "SELECT event_id, run_id, run_seq, kind, data, created_at, attempts, delivered_at FROM outbox o \
                     WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $1 \
                       AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.run_id = o.run_id AND p.delivered_at IS NULL \
                                       AND p.run_seq < o.run_seq AND p.next_attempt_at > $1) \
                     ORDER BY o.seq LIMIT $2",
                )
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(events)
            }

            async fn outbox_delivered(&self, event_ids: &[String]) -> StoreResult<()> {
                // One statement per chunk (a dispatch delivers up to 200), not
                // one per event; chunks keep the bind count small on both backends.
                let now = Utc::now();
                for chunk in event_ids.chunks(500) {
                    let mut update = sqlx::QueryBuilder::new("UPDATE outbox SET delivered_at = ");
                    update.push_bind(now).push(", attempts = attempts + 1 WHERE delivered_at IS NULL AND event_id IN ");
                    myloware_db::push_list(&mut update, chunk);
                    update.build().execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn outbox_retry(&self, run_id: &str, error: &str, retry_at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 \
                     WHERE run_id = $1 AND delivered_at IS NULL",
                )
                .bind(run_id)
                .bind(error)
                .bind(retry_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn outbox(&self, run_id: &str) -> StoreResult<Vec<OutboxEvent>> {
                let sql = "SELECT event_id, run_id, run_seq, kind, data, created_at, attempts, delivered_at \
                           FROM outbox WHERE run_id = $1 ORDER BY run_seq";
                rows_for(&self.pool, sql, run_id).await
            }
        }
    };
}
