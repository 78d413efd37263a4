//! The API <-> orchestrator wire types. Both services compile against these
//! definitions, so a field renamed here is renamed on both sides.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::project::{Persona, ProjectSpec};
use crate::providers::ProviderMode;
use crate::run::Gate;

/// The graph an execution runs: the personas in order and the gates
/// between them. Stored in the run as `payload.graph_spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GraphSpec {
    pub pipeline: Vec<Persona>,
    pub hitl_gates: Vec<Gate>,
}

impl GraphSpec {
    /// The project's full graph.
    pub fn for_project(spec: &ProjectSpec) -> GraphSpec {
        GraphSpec {
            pipeline: spec.workflow.clone(),
            hitl_gates: spec.gates(),
        }
    }
}

/// `POST /v1/executions` on the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartExecution {
    pub run_id: String,
    pub project: String,
    pub graph_spec: GraphSpec,
    pub project_spec: ProjectSpec,
    pub providers_mode: ProviderMode,
    pub input: Value,
    /// The videos known when the run starts (fixed ones from the project).
    #[serde(default)]
    pub videos: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// The orchestrator's answer to a start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionAccepted {
    pub run_id: String,
    pub status: String,
}

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

/// What the orchestrator tells the API about a run. Applied once per
/// `eventId`, in `seq` order per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: String,
    pub run_id: String,
    /// 1, 2, 3... per run, without gaps.
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
}

/// `POST /v1/internal/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    #[serde(rename = "execution.started")]
    ExecutionStarted,
    /// `{persona}`
    #[serde(rename = "persona.started")]
    PersonaStarted,
    /// `{persona, output}`
    #[serde(rename = "persona.completed")]
    PersonaCompleted,
    /// `{kind, persona?, data}`; `kieai.clip`, `render.url` and `publish.url`
    /// also update the run's `result`.
    #[serde(rename = "artifact.created")]
    ArtifactCreated,
    /// `{status}`
    #[serde(rename = "status.changed")]
    StatusChanged,
    /// `{gate, persona, preview}`
    #[serde(rename = "gate.reached")]
    GateReached,
    /// `{videos, renderUrl, publishUrls}`
    #[serde(rename = "execution.completed")]
    ExecutionCompleted,
    /// `{error: {code, message, persona}}`
    #[serde(rename = "execution.failed")]
    ExecutionFailed,
    /// `{reason}`
    #[serde(rename = "execution.cancelled")]
    ExecutionCancelled,
    /// `{gate, reason}`
    #[serde(rename = "execution.rejected")]
    ExecutionRejected,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExecutionStarted => "execution.started",
            Self::PersonaStarted => "persona.started",
            Self::PersonaCompleted => "persona.completed",
            Self::ArtifactCreated => "artifact.created",
            Self::StatusChanged => "status.changed",
            Self::GateReached => "gate.reached",
            Self::ExecutionCompleted => "execution.completed",
            Self::ExecutionFailed => "execution.failed",
            Self::ExecutionCancelled => "execution.cancelled",
            Self::ExecutionRejected => "execution.rejected",
        }
    }
}

/// Something that happened outside the orchestrator and that a waiting
/// execution may be waiting for (relayed by the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum Signal {
    /// kie.ai called back about a clip: only a trigger. The execution asks
    /// kie.ai's `record-info` for the task's result; nothing of the
    /// callback's body beyond the task id is trusted.
    #[serde(rename = "clip.reported", rename_all = "camelCase")]
    ClipReported { task_id: String, index: u32 },
    /// Relayed before `clip.reported` existed; still read from stored
    /// signals, and treated as `clip.reported` (its `url` is ignored).
    #[serde(rename = "clip.completed", rename_all = "camelCase")]
    ClipCompleted { task_id: String, index: u32, url: String },
    /// Like `clip.completed`: a trigger; `code` and `message` are ignored.
    #[serde(rename = "clip.failed", rename_all = "camelCase")]
    ClipFailed {
        task_id: String,
        index: u32,
        code: i64,
        message: String,
    },
    /// A hint that a publish may have moved (an Upload-Post webhook, which
    /// is unsigned): the step asks Upload-Post by its own request id; the
    /// `status` given here is not trusted.
    #[serde(rename = "publish.updated", rename_all = "camelCase")]
    PublishUpdated { request_id: String, status: String },
    #[serde(rename = "gate.decision", rename_all = "camelCase")]
    GateDecision {
        gate: Gate,
        approve: bool,
        #[serde(default)]
        approver: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
}

/// `POST /v1/executions/{runId}/signals`: a signal with the id that makes
/// its delivery idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalDelivery {
    pub signal_id: String,
    pub signal: Signal,
}

/// `POST /v1/executions/{runId}/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelExecution {
    #[serde(default)]
    pub reason: Option<String>,
}

/// One line of a chat transcript, as Brendan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatLine {
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
}

/// One of the user's runs, as Brendan sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRun {
    pub run_id: String,
    pub project: String,
    pub status: String,
    /// What the run is about (`input` of the run).
    #[serde(default)]
    pub input: Value,
    /// The gate awaiting a decision, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_gate: Option<Gate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: String,
}

/// A project Brendan may propose, as the API knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatProject {
    pub project: String,
    pub title: String,
    pub description: String,
    /// Whether runs of it make videos (`general` does not).
    pub runnable: bool,
}

/// `POST /v1/chat/brendan` on the orchestrator: one chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatTurn {
    pub user_id: String,
    pub message: String,
    /// Earlier messages, oldest first (the current one is not included).
    #[serde(default)]
    pub history: Vec<ChatLine>,
    /// The user's recent runs, newest first.
    #[serde(default)]
    pub runs: Vec<ChatRun>,
    #[serde(default)]
    pub projects: Vec<ChatProject>,
}

/// What Brendan asks the API to do after his reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatAction {
    /// Create a run held at the workflow gate, and link its approval.
    ProposeRun {
        project: String,
        input: Value,
        /// Personas left out of the project's pipeline.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skip: Vec<Persona>,
    },
    /// Decide the user's gate awaiting a decision (the newest one, unless named).
    DecideGate {
        approve: bool,
        #[serde(default, rename = "runId", skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate: Option<Gate>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// The orchestrator's answer to a chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatReply {
    pub reply: String,
    #[serde(default)]
    pub actions: Vec<ChatAction>,
}

/// The longest retention a prune accepts (about ten years).
pub const MAX_PRUNE_DAYS: i64 = 3650;

/// `POST /v1/retention/prune`, on the API (from `mw retention prune`) and
/// on the orchestrator (from the API's prune).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PruneRequest {
    /// Rows older than this many days (1 to 3650) are pruned.
    pub older_than_days: i64,
    /// Count what would be deleted without deleting it.
    #[serde(default)]
    pub dry_run: bool,
}

impl PruneRequest {
    /// `Err` says what is wrong with `olderThanDays`.
    pub fn check(&self) -> Result<(), String> {
        if (1..=MAX_PRUNE_DAYS).contains(&self.older_than_days) {
            Ok(())
        } else {
            Err(format!("must be between 1 and {MAX_PRUNE_DAYS} days"))
        }
    }
}

/// What a service's prune deleted (or, for a dry run, would delete): rows
/// by table name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneCounts {
    pub dry_run: bool,
    /// Now minus `olderThanDays`.
    pub cutoff: chrono::DateTime<chrono::Utc>,
    pub tables: std::collections::BTreeMap<String, u64>,
}
