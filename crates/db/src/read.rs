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

/// Appends `(v1, v2, …)` to `query`, each value bound: the list of an
/// `IN`, for the statements that read or mark many rows by key at once.
pub fn push_list<'t, DB, T>(query: &mut sqlx::QueryBuilder<DB>, values: impl IntoIterator<Item = T>)
where
    DB: Database,
    T: Encode<'t, DB> + Type<DB>,
{
    query.push("(");
    let mut list = query.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    query.push(")");
}
