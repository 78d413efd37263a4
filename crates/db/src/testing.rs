//! Fresh databases for tests: a new SQLite file, or a new Postgres schema in
//! the database `TEST_DATABASE_URL` names, each migrated and removed again
//! when the test ends. [`conformance_tests!`] runs one test body on both.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::{Db, PoolSettings};

pub struct TestDb {
    pub db: Db,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(PathBuf),
    PostgresSchema { url: String, schema: String },
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

impl TestDb {
    /// A migrated SQLite database in a new temporary file.
    pub async fn sqlite() -> TestDb {
        let path = std::env::temp_dir().join(format!("{}.db", unique_name("mw_test")));
        let options = SqliteConnectOptions::new().filename(&path);
        let db = Db::connect_sqlite(options, PoolSettings::default())
            .await
            .expect("open a SQLite test database");
        db.migrate().await.expect("migrate the SQLite test database");
        TestDb {
            db,
            cleanup: Cleanup::SqliteFile(path),
        }
    }

    /// A migrated Postgres schema of its own, or `None` when
    /// `TEST_DATABASE_URL` is not set (then the Postgres half of a
    /// conformance test is skipped, except under `CI`, where it fails).
    pub async fn postgres() -> Option<TestDb> {
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TEST_DATABASE_URL must be set in CI: the Postgres half of the store suite would be skipped"
            );
            eprintln!("TEST_DATABASE_URL is not set: skipping the Postgres half of this test");
            return None;
        };
        let schema = unique_name("mw_test");
        let admin = sqlx::PgPool::connect(&url).await.expect("connect to TEST_DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create a test schema");
        admin.close().await;
        let options = PgConnectOptions::from_str(&url)
            .expect("TEST_DATABASE_URL is a Postgres URL")
            .options([("search_path", schema.as_str())]);
        let settings = PoolSettings {
            max_connections: 16,
            ..PoolSettings::default()
        };
        let db = Db::connect_postgres(options, settings)
            .await
            .expect("connect to the test schema");
        db.migrate().await.expect("migrate the Postgres test schema");
        Some(TestDb {
            db,
            cleanup: Cleanup::PostgresSchema { url, schema },
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::PostgresSchema { url, schema } => {
                // Drop runs inside the test's runtime; do the async cleanup
                // on a thread of its own.
                let (url, schema) = (url.clone(), schema.clone());
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(async {
                        let admin = sqlx::PgPool::connect(&url).await?;
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                            .execute(&admin)
                            .await?;
                        admin.close().await;
                        Ok::<_, sqlx::Error>(())
                    })
                    .map_err(std::io::Error::other)
                })
                .join();
            }
        }
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests that call
/// `async fn <name>(db: &Db)` in the invoking module with a fresh database.
#[macro_export]
macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let test_db = $crate::testing::TestDb::sqlite().await;
                    super::$name(&test_db.db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(test_db) = $crate::testing::TestDb::postgres().await else { return };
                    super::$name(&test_db.db).await;
                }
            )*
        }
    };
}
