//! The mock providers' ledger: every call a mock provider answered.

use super::*;

#[derive(sqlx::FromRow)]
pub(super) struct MockCallRow {
    pub(super) provider: String,
    pub(super) operation: String,
    pub(super) key: String,
    pub(super) run_id: String,
    pub(super) request: Json<Value>,
    pub(super) response: Json<Value>,
}

impl From<MockCallRow> for MockCall {
    fn from(r: MockCallRow) -> MockCall {
        MockCall {
            provider: r.provider,
            operation: r.operation,
            key: r.key,
            run_id: r.run_id,
            request: r.request.0,
            response: r.response.0,
        }
    }
}

/// `LedgerStore` for one backend (see `sql_orchestrator_store!`).
macro_rules! ledger_store {
    ($store:ident, $db:ty, $begin:expr, $search:expr, $match:expr, $claim:expr, $lock_execution:expr) => {
        #[async_trait]
        impl LedgerStore for $store {
            async fn record_mock_call(&self, call: &MockCall) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO mock_provider_calls (provider, operation, key, run_id, request, response, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&call.provider)
                .bind(&call.operation)
                .bind(&call.key)
                .bind(&call.run_id)
                .bind(Json(&call.request))
                .bind(Json(&call.response))
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_mock_call(
                &self,
                provider: &str,
                operation: &str,
                key: &str,
            ) -> StoreResult<Option<MockCall>> {
                let row: Option<MockCallRow> = sqlx::query_as(
                    "SELECT provider, operation, key, run_id, request, response FROM mock_provider_calls \
                     WHERE provider = $1 AND key = $2 AND operation = $3 ORDER BY seq LIMIT 1",
                )
                .bind(provider)
                .bind(key)
                .bind(operation)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(MockCall::from))
            }

            async fn mock_calls(&self, run_id: &str) -> StoreResult<Vec<MockCall>> {
                let sql = "SELECT provider, operation, key, run_id, request, response FROM mock_provider_calls \
                           WHERE run_id = $1 ORDER BY seq";
                let rows: Vec<MockCallRow> = rows_for(&self.pool, sql, run_id).await?;
                Ok(rows.into_iter().map(MockCall::from).collect())
            }
        }
    };
}
