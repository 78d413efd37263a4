//! [`rows_for`]: the read of every row for one key (a run's artifacts,
//! events, journal, outbox), the most common read of both services'
//! stores, written once for both backends.

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, SqlSafeStr, Type};

/// Every row `sql` selects for `key` (its `$1`), in the statement's order,
/// read as `T`: a run's artifacts, events or journal, a provider's
/// deliveries.
pub async fn rows_for<'k, DB, T, K>(pool: &Pool<DB>, sql: impl SqlSafeStr, key: K) -> sqlx::Result<Vec<T>>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    T: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
    K: 'k + Encode<'k, DB> + Type<DB>,
{
    sqlx::query_as(sql).bind(key).fetch_all(pool).await
}
