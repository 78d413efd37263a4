//! The database connection both services share: SQLite (default, one
//! machine) or Postgres (production, many replicas), chosen by
//! `DATABASE_URL`, and the migrations of both backends
//! (`migrations/{sqlite,postgres}`), embedded in the binary.
//!
//! Each service's store is a trait with one implementation per backend; the
//! implementations get their pool from [`Db`], and share what their SQL
//! does alike: the guarded write that decides whether a transaction goes on
//! ([`guarded`]), the read of a key's rows ([`rows_for`]), text-stored enums
//! ([`text_enum!`]) and the retention prune ([`prune_tables!`]).
//!
//! Crate graph: `myloware-db` imports no other MyloWare crate; the
//! services (`myloware-api`, `myloware-orchestrator`) and `myloware-cli`
//! import it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

mod guard;
mod read;
mod text_enum;

pub use guard::{RowsAffected, guarded};
pub use read::{push_list, rows_for};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How the stores open a write transaction on SQLite: IMMEDIATE takes the
/// write lock at once, waiting in the busy handler. A DEFERRED transaction
/// that reads first and writes later can fail with SQLITE_BUSY (no waiting)
/// when another writer committed in between.
pub const SQLITE_BEGIN: &str = "BEGIN IMMEDIATE";
/// Postgres: a plain transaction (row locks and `SKIP LOCKED` do the rest).
pub const POSTGRES_BEGIN: &str = "BEGIN";

/// A pool on one of the two backends.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL must start with sqlite:// or postgres://")]
    UnsupportedUrl,
    #[error("cannot create the folder {path} for the SQLite database: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// Pool settings; the defaults suit one service process.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl PoolSettings {
    /// A pool of either backend with these settings, connected.
    async fn connect<DB: sqlx::Database>(
        &self,
        options: <DB::Connection as sqlx::Connection>::Options,
    ) -> Result<sqlx::Pool<DB>, DbError> {
        PoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(DbError::Connect)
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Db {
    /// Connects to `url`, creating a SQLite file (and its folder) on first use.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Db, DbError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url).map_err(DbError::Connect)?;
            if let Some(parent) = options.get_filename().parent() {
                create_dir(parent)?;
            }
            Self::connect_sqlite(options, settings).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(DbError::Connect)?;
            Self::connect_postgres(options, settings).await
        } else {
            Err(DbError::UnsupportedUrl)
        }
    }

    pub async fn connect_sqlite(options: SqliteConnectOptions, settings: PoolSettings) -> Result<Db, DbError> {
        let options = options
            .create_if_missing(true)
            // WAL lets readers run beside the one writer; NORMAL is durable
            // across process crashes (a power cut may lose the last commits).
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Ok(Db::Sqlite(settings.connect(options).await?))
    }

    pub async fn connect_postgres(options: PgConnectOptions, settings: PoolSettings) -> Result<Db, DbError> {
        // A transaction left open (a bug, a stuck task) would keep Postgres
        // from pruning the hot executions rows; end it after a minute.
        let options = options.options([("idle_in_transaction_session_timeout", "60000")]);
        Ok(Db::Postgres(settings.connect(options).await?))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every pending migration of this backend. Postgres serializes
    /// concurrent migrators with an advisory lock; SQLite has none, so when
    /// two processes start together on one file the loser retries (each
    /// migration is one transaction, and applied ones are skipped).
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
            Db::Sqlite(pool) => {
                let mut attempt = 1;
                loop {
                    match SQLITE_MIGRATIONS.run(pool).await {
                        Ok(()) => break,
                        Err(err) if attempt < 5 => {
                            tracing::warn!(error = %err, attempt, "SQLite migration raced another process; retrying");
                            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                            attempt += 1;
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies the migrations up to `version` (inclusive) and no further:
    /// for upgrade tests, which write what an older release wrote and then
    /// [`migrate`](Self::migrate) the rest.
    pub async fn migrate_to(&self, version: i64) -> Result<(), DbError> {
        match self {
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run_to(version, pool).await?,
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run_to(version, pool).await?,
        }
        Ok(())
    }

    /// One round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Db::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

fn create_dir(path: &Path) -> Result<(), DbError> {
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|source| DbError::CreateDir {
        path: path.display().to_string(),
        source,
    })
}

/// Whether `err` is a unique or primary-key violation, on either backend.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Whether `err` is about the rows a transaction wrote rather than about
/// the database: a constraint it broke (unique, foreign key, not null,
/// check), or Postgres ending it to break a deadlock or a serialization
/// conflict. Written again in parts, or later, such a transaction can
/// succeed; an unreachable, busy or timed-out database would fail each
/// part the same way.
pub fn is_about_the_rows(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|db| {
        db.kind() != sqlx::error::ErrorKind::Other || matches!(db.code().as_deref(), Some("40P01" | "40001"))
    })
}

/// Counts (`dry_run`) or deletes, per table, the rows matching its
/// condition, where `$1` is `cutoff`, inside the transaction `tx`: the
/// retention prune of each service's store. `tables` is a list of
/// `(table, condition)` written by the store (never user input). Evaluates
/// to a `BTreeMap` of table name to rows; `?` passes `sqlx::Error` up.
#[macro_export]
macro_rules! prune_tables {
    ($tx:ident, $tables:expr, $cutoff:expr, $dry_run:expr) => {{
        let mut pruned = ::std::collections::BTreeMap::<String, u64>::new();
        for (table, condition) in $tables {
            let count = if $dry_run {
                let n: i64 = ::sqlx::query_scalar(::sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table} WHERE {condition}"
                )))
                .bind($cutoff)
                .fetch_one(&mut *$tx)
                .await?;
                n.max(0) as u64
            } else {
                ::sqlx::query(::sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE {condition}")))
                    .bind($cutoff)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected()
            };
            pruned.insert(table.to_string(), count);
        }
        pruned
    }};
}
