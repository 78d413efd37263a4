//! [`guarded`]: the write that decides whether a store transaction goes on,
//! written once for both backends and both services' stores.

use sqlx::postgres::PgQueryResult;
use sqlx::query::Query;
use sqlx::sqlite::SqliteQueryResult;
use sqlx::{Database, Executor, IntoArguments, Transaction};

/// How many rows a statement changed, on either backend (sqlx gives each
/// backend's result its own `rows_affected`, not a shared trait).
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        PgQueryResult::rows_affected(self)
    }
}

/// Runs `write`, the guard of `tx`'s work: a conditional update (a run
/// still in the status it leaves, a lease still held, a gate still
/// awaiting) or an insert that skips a used key (`ON CONFLICT DO NOTHING`).
/// When it changed a row, `tx` comes back to go on with; when it changed
/// none, `tx` is rolled back (nothing done in it stays) and `None` tells the
/// caller to answer that the guard did not hold.
pub async fn guarded<'c, 'q, DB>(
    mut tx: Transaction<'c, DB>,
    write: Query<'q, DB, DB::Arguments>,
) -> sqlx::Result<Option<Transaction<'c, DB>>>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'t> &'t mut DB::Connection: Executor<'t, Database = DB>,
{
    if write.execute(&mut *tx).await?.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    Ok(Some(tx))
}
