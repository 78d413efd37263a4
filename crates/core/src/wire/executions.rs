//! What the API asks of the orchestrator, one body per request, and the
//! orchestrator's acknowledgements: `POST /v1/executions` (start),
//! `POST /v1/executions/{runId}/signals`, `/resume` and `/cancel`.

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

/// The orchestrator's answer to a start: 202 `queued`, or 200 `exists`
/// when the same start came before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionAccepted {
    pub run_id: String,
    pub status: StartStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartStatus {
    Queued,
    Exists,
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
    /// "Request changes": the persona before the gate works again with the
    /// reviewer's `feedback`, then the gate waits again. `round` counts the
    /// gate's revisions (1 for the first).
    #[serde(rename = "gate.revision", rename_all = "camelCase")]
    GateRevision {
        gate: Gate,
        round: u32,
        feedback: String,
        #[serde(default)]
        by: Option<String>,
    },
}

/// `POST /v1/executions/{runId}/signals`: a signal with the id that makes
/// its delivery idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalDelivery {
    pub signal_id: String,
    pub signal: Signal,
    /// The API's dead letter this delivery replays (a refused replay
    /// updates that entry instead of adding another). Ignored by the
    /// orchestrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<i64>,
}

/// The orchestrator's answer to a signal or a resume: 202 `accepted`, or
/// 200 `duplicate` when its id (for a resume: the same decision at the
/// gate) came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalAccepted {
    pub status: SignalStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalStatus {
    Accepted,
    Duplicate,
}

/// Most signals one batch carries.
pub const MAX_SIGNAL_BATCH: usize = 100;

/// `POST /v1/executions/{runId}/signals/batch`: several signals of one run,
/// in order, in one request and one transaction (the API relays a run's
/// pending signals together). Each is idempotent on its `signalId`, as
/// when sent alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalBatch {
    /// 1 to [`MAX_SIGNAL_BATCH`].
    pub signals: Vec<SignalDelivery>,
}

/// The answer to a [`SignalBatch`]: each signal's status, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalBatchAccepted {
    pub results: Vec<SignalResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalResult {
    pub signal_id: String,
    pub status: SignalStatus,
}

/// `POST /v1/executions/{runId}/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelExecution {
    #[serde(default)]
    pub reason: Option<String>,
}

/// The orchestrator's answer to a cancel (202): the execution's status
/// when the cancel was recorded; it stops before its next side effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelAccepted {
    pub run_id: String,
    pub status: String,
    pub cancel_requested: bool,
}

/// `POST /v1/executions/{runId}/retry`: continue a failed execution from
/// the step that failed. `attempt` is the API's count of retries of the
/// run (1 for the first), so a retry delivered twice is one retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryExecution {
    #[schema(minimum = 1)]
    pub attempt: u32,
    /// Who asked (the credential, as the API records it).
    pub by: String,
}

/// The orchestrator's answer to a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryAccepted {
    pub run_id: String,
    pub status: RetryStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryStatus {
    /// The execution runs again from the step that failed.
    Queued,
    /// This attempt was taken before: nothing new happens.
    Duplicate,
}

/// `POST /v1/executions/{runId}/resume`: a gate decision. Delivered to the
/// execution as a [`Signal::GateDecision`] (or, to request changes, a
/// [`Signal::GateRevision`]) with the signal id `gate:{gate}` (after `n`
/// revisions `gate:{gate}:{n}`), so each wait at a gate takes one decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResumeExecution {
    pub gate: Gate,
    pub decision: Decision,
    /// Who decided (the credential, as the API's gate records it).
    #[serde(default)]
    pub approver: Option<String>,
    /// Why (a rejection), or the changes asked for (a revision).
    #[serde(default)]
    pub reason: Option<String>,
    /// How many revisions the gate had before this decision (left out at 0,
    /// as before revisions existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: u32,
}

impl ResumeExecution {
    /// The id of the signal this decision becomes: one per wait at the gate.
    pub fn signal_id(&self) -> String {
        gate_signal_id(self.gate, self.round)
    }

    /// The signal the execution receives.
    pub fn signal(&self) -> Signal {
        match self.decision {
            Decision::Revise => Signal::GateRevision {
                gate: self.gate,
                round: self.round + 1,
                feedback: self.reason.clone().unwrap_or_default(),
                by: self.approver.clone(),
            },
            decision => Signal::GateDecision {
                gate: self.gate,
                approve: decision.approves(),
                approver: self.approver.clone(),
                reason: self.reason.clone(),
            },
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The signal id of the decision ending the wait at `gate` after `round`
/// revisions.
pub fn gate_signal_id(gate: Gate, round: u32) -> String {
    match round {
        0 => format!("gate:{gate}"),
        n => format!("gate:{gate}:{n}"),
    }
}

impl Signal {
    /// The decision a gate signal carries, if it is one.
    pub fn gate_decision(&self) -> Option<Decision> {
        match self {
            Signal::GateDecision { approve, .. } => Some(Decision::of(*approve)),
            Signal::GateRevision { .. } => Some(Decision::Revise),
            _ => None,
        }
    }
}

/// A decision at a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Decision {
    Approve,
    Reject,
    /// Request changes: the persona before the gate works again.
    Revise,
}

/// A decision at a gate that was already decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeated {
    /// The same decision again: nothing new happens; answered as a success.
    Duplicate,
    /// The opposite decision: refused (409).
    Conflict,
}

impl Decision {
    pub fn of(approve: bool) -> Decision {
        if approve { Decision::Approve } else { Decision::Reject }
    }

    pub fn approves(self) -> bool {
        self == Decision::Approve
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Revise => "revise",
        }
    }

    /// The rule for a gate decided before: the same decision again is a
    /// duplicate, the opposite one a conflict. Both services apply it (the
    /// API to its gate records, the orchestrator to the gate's decision
    /// signal), and only through this function.
    pub fn again(self, earlier: Decision) -> Repeated {
        if self == earlier {
            Repeated::Duplicate
        } else {
            Repeated::Conflict
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Decision {
    type Err = String;
    fn from_str(s: &str) -> Result<Decision, String> {
        match s {
            "approve" => Ok(Decision::Approve),
            "reject" => Ok(Decision::Reject),
            "revise" => Ok(Decision::Revise),
            _ => Err("decision must be approve, reject or revise".into()),
        }
    }
}

impl TryFrom<String> for Decision {
    type Error = String;
    fn try_from(s: String) -> Result<Decision, String> {
        s.parse()
    }
}

/// Which request a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    Start,
    Signal,
    Cancel,
    /// A gate decision.
    Resume,
    Retry,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Signal => "signal",
            Self::Cancel => "cancel",
            Self::Resume => "resume",
            Self::Retry => "retry",
        }
    }
}

impl std::str::FromStr for CommandKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Start, Self::Signal, Self::Cancel, Self::Resume, Self::Retry]
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown command kind {s:?}"))
    }
}

/// One request of the API to the orchestrator, with its body. Serialized
/// as the body alone (what is sent, and what the API's command queue
/// stores beside the kind); read back with [`ExecutionCommand::from_body`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ExecutionCommand {
    /// Boxed: a start carries the whole project spec.
    Start(Box<StartExecution>),
    Signal(SignalDelivery),
    Cancel(CancelExecution),
    Resume(ResumeExecution),
    Retry(RetryExecution),
}

impl ExecutionCommand {
    pub fn kind(&self) -> CommandKind {
        match self {
            Self::Start(_) => CommandKind::Start,
            Self::Signal(_) => CommandKind::Signal,
            Self::Cancel(_) => CommandKind::Cancel,
            Self::Resume(_) => CommandKind::Resume,
            Self::Retry(_) => CommandKind::Retry,
        }
    }

    /// The orchestrator's path for this request about `run_id`.
    pub fn path(&self, run_id: &str) -> String {
        match self.kind() {
            CommandKind::Start => "/v1/executions".to_string(),
            CommandKind::Signal => format!("/v1/executions/{run_id}/signals"),
            CommandKind::Cancel => format!("/v1/executions/{run_id}/cancel"),
            CommandKind::Resume => format!("/v1/executions/{run_id}/resume"),
            CommandKind::Retry => format!("/v1/executions/{run_id}/retry"),
        }
    }

    /// The command of `kind` whose body is `body`.
    pub fn from_body(kind: CommandKind, body: Value) -> Result<ExecutionCommand, serde_json::Error> {
        Ok(match kind {
            CommandKind::Start => Self::Start(Box::new(serde_json::from_value(body)?)),
            CommandKind::Signal => Self::Signal(serde_json::from_value(body)?),
            CommandKind::Cancel => Self::Cancel(serde_json::from_value(body)?),
            CommandKind::Resume => Self::Resume(serde_json::from_value(body)?),
            CommandKind::Retry => Self::Retry(serde_json::from_value(body)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_decision_again_is_a_duplicate_and_the_opposite_a_conflict() {
        assert_eq!(Decision::Approve.again(Decision::Approve), Repeated::Duplicate);
        assert_eq!(Decision::Reject.again(Decision::Reject), Repeated::Duplicate);
        assert_eq!(Decision::Approve.again(Decision::Reject), Repeated::Conflict);
        assert_eq!(Decision::Reject.again(Decision::Approve), Repeated::Conflict);
    }

    #[test]
    fn an_unknown_decision_is_refused_with_the_accepted_values() {
        let err = serde_json::from_value::<ResumeExecution>(json!({"gate": "ideate", "decision": "maybe"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("decision must be approve, reject or revise"), "{err}");
    }

    #[test]
    fn a_resume_is_sent_as_the_api_always_sent_it() {
        let resume = ResumeExecution {
            gate: Gate::Ideate,
            decision: Decision::Reject,
            approver: Some("key:ops".into()),
            reason: None,
            round: 0,
        };
        let body = json!({"gate": "ideate", "decision": "reject", "approver": "key:ops", "reason": null});
        assert_eq!(
            serde_json::to_value(ExecutionCommand::Resume(resume.clone())).unwrap(),
            body
        );
        assert_eq!(
            ExecutionCommand::from_body(CommandKind::Resume, body).unwrap(),
            ExecutionCommand::Resume(resume.clone())
        );
        assert_eq!(resume.signal_id(), "gate:ideate");
    }

    #[test]
    fn each_wait_at_a_gate_takes_its_own_decision() {
        let revise = ResumeExecution {
            gate: Gate::Prepublish,
            decision: Decision::Revise,
            approver: Some("key:ann".into()),
            reason: Some("redo clip 3".into()),
            round: 0,
        };
        assert_eq!(revise.signal_id(), "gate:prepublish");
        assert_eq!(
            revise.signal(),
            Signal::GateRevision {
                gate: Gate::Prepublish,
                round: 1,
                feedback: "redo clip 3".into(),
                by: Some("key:ann".into()),
            }
        );
        assert_eq!(revise.signal().gate_decision(), Some(Decision::Revise));
        let approve = ResumeExecution {
            decision: Decision::Approve,
            round: 1,
            ..revise
        };
        assert_eq!(approve.signal_id(), "gate:prepublish:1", "the wait after a revision");
        assert_eq!(serde_json::to_value(&approve).unwrap()["round"], 1);
        assert_eq!(approve.signal().gate_decision(), Some(Decision::Approve));
    }

    #[test]
    fn commands_read_back_from_their_stored_bodies() {
        let signal = json!({"signalId": "kieai:t1", "signal": {"type": "clip.reported", "taskId": "t1", "index": 2}});
        let command = ExecutionCommand::from_body(CommandKind::Signal, signal.clone()).unwrap();
        assert_eq!(serde_json::to_value(&command).unwrap(), signal);
        assert_eq!(command.path("run_x"), "/v1/executions/run_x/signals");
        let replay = json!({"signalId": "kieai:t1:replay:1", "signal": signal["signal"], "replayOf": 3});
        let command = ExecutionCommand::from_body(CommandKind::Signal, replay.clone()).unwrap();
        assert_eq!(serde_json::to_value(&command).unwrap(), replay);
        let cancel = ExecutionCommand::from_body(CommandKind::Cancel, json!({"reason": null})).unwrap();
        assert_eq!(serde_json::to_value(&cancel).unwrap(), json!({"reason": null}));
        assert!(ExecutionCommand::from_body(CommandKind::Resume, json!({"gate": "ideate"})).is_err());
        for kind in ["start", "signal", "cancel", "resume"] {
            assert_eq!(kind.parse::<CommandKind>().unwrap().as_str(), kind);
        }
    }
}
