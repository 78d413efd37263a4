//! The API <-> orchestrator contract: every body that crosses between the
//! two services, in both directions. Both services compile against these
//! definitions, so a field renamed here is renamed on both sides.
//!
//! - [`executions`]: what the API asks of the orchestrator (start, signal,
//!   resume, cancel; [`ExecutionCommand`] is one of them, as the API's
//!   command queue keeps it) and the orchestrator's acknowledgements, with
//!   the one rule about repeated gate decisions ([`Decision::again`]).
//! - [`events`]: what the orchestrator tells the API (the outbox batch) and
//!   the API's per-event answer.
//! - [`chat`]: one of Brendan's turns and the actions he answers.
//! - [`retention`]: the prune both services run.

use serde::{Deserialize, Serialize};

pub mod chat;
pub mod events;
pub mod executions;
pub mod retention;

pub use chat::{ChatAction, ChatLine, ChatProject, ChatReply, ChatRun, ChatTurn};
pub use events::{CostRecorded, Event, EventBatch, EventKind, EventOutcome, EventResult, EventResults};
pub use executions::{
    CancelAccepted, CancelExecution, CommandKind, Decision, ExecutionAccepted, ExecutionCommand, GraphSpec,
    MAX_SIGNAL_BATCH, Repeated, ResumeExecution, RetryAccepted, RetryExecution, RetryStatus, Signal, SignalAccepted,
    SignalBatch, SignalBatchAccepted, SignalDelivery, SignalResult, SignalStatus, StartExecution, StartStatus,
};
pub use retention::{MAX_PRUNE_DAYS, PruneCounts, PruneRequest};

/// `GET /health` of both services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub service: String,
    pub version: String,
    pub time: String,
}

impl Health {
    /// The liveness answer of `service` now.
    pub fn ok(service: &str) -> Health {
        Health {
            status: "ok".into(),
            service: service.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            time: chrono::Utc::now().to_rfc3339(),
        }
    }
}
