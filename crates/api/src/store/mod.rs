//! What the API keeps. [`ApiStore`] is the one interface; it has a SQLite
//! and a Postgres implementation (`sql.rs`), both checked by the same
//! conformance suite (`tests/store.rs`). One module per aggregate holds its
//! types, its rows and its SQL (written once, compiled for both backends
//! by `sql.rs`): [`runs`], [`artifacts`], [`commands`] (to the
//! orchestrator), [`events`] (from it) and the [`costs`] they carry,
//! [`gates`], the [`audit`] of operator actions,
//! [`webhooks`], [`dead_letters`], [`chat`], [`schedules`] and their
//! firings, the console's [`sessions`], and [`retention`] with the gauges.

use std::sync::Arc;

pub use myloware_core::wire::CommandKind;
use myloware_db::Db;

mod api_store;
pub mod artifacts;
pub mod audit;
pub mod chat;
pub mod commands;
mod common;
pub mod costs;
pub mod dead_letters;
pub mod events;
pub mod gates;
pub mod retention;
pub mod runs;
pub mod schedules;
pub mod sessions;
mod sql;
pub mod webhooks;

pub use api_store::ApiStore;
pub use artifacts::{Artifact, RawArtifact};
pub use audit::{AuditAction, AuditEntry, AuditQuery, AuditRecord};
pub use chat::{Channel, ChatDelivery, ChatMessage, Push, PushOutcome, PushStatus};
pub use commands::{Command, DeliveryAttempt, NewCommand};
pub use common::{RawJson, StoreError, StoreResult, now};
pub use costs::{AppliedCost, DaySpend, RunCostRow};
pub use dead_letters::{DeadLetter, DeadLetterKind};
pub use events::{AppliedEvent, RunEvents, RunUpdate};
pub use gates::{Approval, Decided, Decision, GateExpiry, GateRecord, GateStatus, NewGate};
pub use retention::{ApiGauges, Pruned};
pub use runs::{NewRun, ProposalEdit, Run, RunDetails, RunQuery};
pub use schedules::{
    Fired, Firing, FiringClaim, FiringOutcome, FiringStart, NewSchedule, Schedule, ScheduleQuery, ScheduleStatus,
};
pub use sessions::ConsoleSession;
pub use sql::{PgApiStore, SqliteApiStore};
pub use webhooks::{
    CallbackRecorded, SignatureStatus, WEBHOOK_BODY_EXCERPT_BYTES, WebhookDelivery, WebhookOutcome, excerpt,
};

/// The store for `db`'s backend.
pub fn open(db: &Db) -> Arc<dyn ApiStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteApiStore::new(pool.clone())),
        Db::Postgres(pool) => Arc::new(PgApiStore::new(pool.clone())),
    }
}
