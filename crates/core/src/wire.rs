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
