//! The SQL behind [`ApiStore`], written once and compiled for each backend:
//! both speak `$n` placeholders, `RETURNING` and `ON CONFLICT`, and the
//! column types map to the same Rust types (TEXT/JSONB -> `Json`,
//! TEXT/TIMESTAMPTZ -> `DateTime<Utc>`; SQLite keeps UTC RFC 3339 text,
//! whose byte order is time order).
//!
//! Each aggregate's module writes its methods once, in a macro that hands
//! them on to the next one's; the last, `api_store!`, makes them the
//! `ApiStore` impl of a backend's store. The methods name their rows, rows'
//! helpers and insert macros as they are imported here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use myloware_core::wire::Decision as Verdict;
use myloware_core::{Gate, RunStatus};
use myloware_db::{guarded, is_unique_violation, rows_for};
use serde_json::Value;
use sqlx::types::Json;

use super::api_store::ApiStore;
use super::artifacts::*;
use super::audit::*;
use super::chat::*;
use super::commands::*;
use super::common::{StoreError, StoreResult, now};
use super::costs::*;
use super::dead_letters::*;
use super::events::*;
use super::gates::*;
use super::retention::*;
use super::runs::*;
use super::schedules::*;
use super::sessions::*;
use super::webhooks::*;

/// The `ApiStore` impl of `$store`, with every aggregate's methods.
macro_rules! api_store {
    ($store:ident; $($methods:tt)*) => {
        #[async_trait]
        impl ApiStore for $store {
            $($methods)*
        }
    };
}

/// A backend's store: its pool, how it begins a transaction, how it reads
/// a run with its gates and artifacts; and its `ApiStore` impl.
macro_rules! sql_api_store {
    ($store:ident, $db:ty, $begin:expr, $runs_lock:expr, $run_view:expr, $input_text:expr) => {
        #[derive(Clone)]
        pub struct $store {
            pool: sqlx::Pool<$db>,
        }

        impl $store {
            const RUN_VIEW: &str = $run_view;
            /// A run's input as text, for searching it.
            const INPUT_TEXT: &str = $input_text;
            /// Taken before counting active runs (`MAX_ACTIVE_RUNS`).
            const RUNS_LOCK: Option<&str> = $runs_lock;

            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { pool }
            }

            async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, $db>> {
                self.pool.begin_with(sqlx::AssertSqlSafe($begin)).await
            }
        }

        run_methods!(artifact_methods!(command_methods!(event_methods!(gate_methods!(audit_methods!(webhook_methods!(
            dead_letter_methods!(chat_methods!(retention_methods!(cost_methods!(schedule_methods!(session_methods!(
                api_store!($store;)
            ))))))
        )))))));
    };
}

sql_api_store!(
    SqliteApiStore,
    sqlx::Sqlite,
    myloware_db::SQLITE_BEGIN,
    None,
    SQLITE_RUN_VIEW,
    "json_extract(payload, '$.input')"
);
sql_api_store!(
    PgApiStore,
    sqlx::Postgres,
    myloware_db::POSTGRES_BEGIN,
    // A transaction-scoped lock of its own ("runs" in ASCII): released at
    // commit or rollback.
    Some("SELECT pg_advisory_xact_lock(1920298611)"),
    POSTGRES_RUN_VIEW,
    "(payload->>'input')"
);
