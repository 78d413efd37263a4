//! Fresh databases for tests: a new SQLite file, or a new Postgres schema in
//! the database `TEST_DATABASE_URL` names, each migrated and removed again
//! when the test ends. [`conformance_tests!`](crate::conformance_tests) runs
//! one test body on both.
//!
//! Without `TEST_DATABASE_URL` the Postgres half of a test is skipped with a
//! note, except under `CI=1`, where it fails.

use std::ops::Deref;
use std::path::PathBuf;
use std::str::FromStr;

use myloware_db::{Db, PoolSettings};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

/// A migrated database of one test; a [`Db`] by `Deref`, and a URL
/// ([`TestDb::url`]) for `mw` processes.
pub struct TestDb {
    pub db: Db,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(PathBuf),
    PostgresSchema { admin_url: String, schema: String },
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// `TEST_DATABASE_URL`, or `None` (with a note) outside CI; under `CI` its
/// absence fails the test instead of skipping its Postgres half.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                !crate::under_ci(),
                "TEST_DATABASE_URL must be set in CI: the Postgres half of this test would be skipped"
            );
            eprintln!("TEST_DATABASE_URL is not set: skipping the Postgres half of this test");
            None
        }
    }
}

/// Creates schema `schema` in the database at `admin_url`; the URL whose
/// connections use it (`options=-c search_path=…`).
pub async fn create_schema(admin_url: &str, schema: &str) -> Result<String, sqlx::Error> {
    let admin = sqlx::PgPool::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    Ok(format!("{admin_url}{separator}options=-c%20search_path%3D{schema}"))
}

/// Drops schema `schema` (and everything in it) of the database at `admin_url`.
pub async fn drop_schema(admin_url: &str, schema: &str) -> Result<(), sqlx::Error> {
    let admin = sqlx::PgPool::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(())
}

/// Removes a SQLite database file and its `-wal` and `-shm` companions.
pub fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.to_path_buf().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

async fn migrate(db: &Db, version: Option<i64>) {
    match version {
        None => db.migrate().await,
        Some(version) => db.migrate_to(version).await,
    }
    .expect("migrate the test database");
}

impl TestDb {
    /// A migrated SQLite database in a new temporary file.
    pub async fn sqlite() -> TestDb {
        Self::sqlite_migrated_to(None).await
    }

    /// [`TestDb::sqlite`] migrated up to `version` (an older release's
    /// schema, for upgrade tests), or fully (`None`).
    pub async fn sqlite_migrated_to(version: Option<i64>) -> TestDb {
        let path = std::env::temp_dir().join(format!("{}.db", unique_name("mw_test")));
        let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let db = Db::connect_sqlite(options, PoolSettings::default())
            .await
            .expect("open a SQLite test database");
        migrate(&db, version).await;
        TestDb {
            db,
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::SqliteFile(path),
        }
    }

    /// A migrated Postgres schema of its own, or `None` when
    /// `TEST_DATABASE_URL` is not set (see [`postgres_url`]).
    pub async fn postgres() -> Option<TestDb> {
        Self::postgres_migrated_to(None).await
    }

    /// [`TestDb::postgres`] migrated up to `version`, or fully (`None`).
    pub async fn postgres_migrated_to(version: Option<i64>) -> Option<TestDb> {
        let admin_url = postgres_url()?;
        let schema = unique_name("mw_test");
        let url = create_schema(&admin_url, &schema).await.expect("create a test schema");
        let options = PgConnectOptions::from_str(&admin_url)
            .expect("TEST_DATABASE_URL is a Postgres URL")
            .options([("search_path", schema.as_str())]);
        let settings = PoolSettings {
            max_connections: 16,
            ..PoolSettings::default()
        };
        let db = Db::connect_postgres(options, settings)
            .await
            .expect("connect to the test schema");
        migrate(&db, version).await;
        Some(TestDb {
            db,
            url,
            cleanup: Cleanup::PostgresSchema { admin_url, schema },
        })
    }

    /// What a process gets as `DATABASE_URL` to use this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.cleanup, Cleanup::PostgresSchema { .. })
    }
}

impl Deref for TestDb {
    type Target = Db;

    fn deref(&self) -> &Db {
        &self.db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteFile(path) => remove_sqlite_files(path),
            Cleanup::PostgresSchema { admin_url, schema } => {
                // Drop runs inside the test's runtime; do the async cleanup
                // on a thread of its own.
                let (url, schema) = (admin_url.clone(), schema.clone());
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(drop_schema(&url, &schema)).map_err(std::io::Error::other)
                })
                .join();
            }
        }
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests that call
/// `async fn <name>(db)` of the invoking module with a fresh [`TestDb`]
/// (`db: &Db` or `db: &TestDb`: a `&TestDb` derefs to a `&Db`).
///
/// `conformance_tests!(a, b)` runs them on tokio's current-thread runtime;
/// `conformance_tests!(multi_thread: a, b)` on two worker threads.
#[macro_export]
macro_rules! conformance_tests {
    (multi_thread: $($name:ident),* $(,)?) => {
        $crate::conformance_tests!(@with [tokio::test(flavor = "multi_thread", worker_threads = 2)] $($name),*);
    };
    (@with [$test:meta] $($name:ident),*) => {
        mod sqlite {
            $(
                #[$test]
                async fn $name() {
                    let test_db = $crate::db::TestDb::sqlite().await;
                    super::$name(&test_db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[$test]
                async fn $name() {
                    let Some(test_db) = $crate::db::TestDb::postgres().await else { return };
                    super::$name(&test_db).await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::conformance_tests!(@with [tokio::test] $($name),*);
    };
}
