//! The run state machine (owned by the API) and the HITL gates.
//!
//! Every status change of a run goes through [`RunStatus::transition_to`], so
//! the rules live in one place: late or duplicate events never move a
//! terminal run, and a run only reaches a gate's waiting status from an
//! active one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Proposed (in chat, or with `requireWorkflowApproval`); waits for the workflow gate.
    PendingWorkflow,
    /// Recorded; the orchestrator has not reported progress yet.
    Pending,
    Running,
    Generating,
    Rendering,
    Publishing,
    AwaitingIdeate,
    AwaitingPrepublish,
    /// Held before a paid call that a spending limit has no room for; goes
    /// on by itself when the limit allows (raised, or the next period).
    AwaitingBudget,
    Published,
    Failed,
    Cancelled,
    Rejected,
    /// A gate waited past `GATE_TIMEOUT_HOURS` without a decision.
    Expired,
}

/// What a valid transition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Moved,
    /// Already in the target status: nothing to write.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run is {from}; it cannot become {to}")]
pub struct TransitionRefused {
    pub from: RunStatus,
    pub to: RunStatus,
}

impl RunStatus {
    pub const ALL: [RunStatus; 14] = [
        Self::PendingWorkflow,
        Self::Pending,
        Self::Running,
        Self::Generating,
        Self::Rendering,
        Self::Publishing,
        Self::AwaitingIdeate,
        Self::AwaitingPrepublish,
        Self::AwaitingBudget,
        Self::Published,
        Self::Failed,
        Self::Cancelled,
        Self::Rejected,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingWorkflow => "pending_workflow",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Generating => "generating",
            Self::Rendering => "rendering",
            Self::Publishing => "publishing",
            Self::AwaitingIdeate => "awaiting_ideate",
            Self::AwaitingPrepublish => "awaiting_prepublish",
            Self::AwaitingBudget => "awaiting_budget",
            Self::Published => "published",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Published | Self::Failed | Self::Cancelled | Self::Rejected | Self::Expired
        )
    }

    /// A gate of the run waits for a person's decision.
    pub fn is_awaiting_gate(self) -> bool {
        matches!(
            self,
            Self::PendingWorkflow | Self::AwaitingIdeate | Self::AwaitingPrepublish
        )
    }

    /// The execution is doing work (as opposed to waiting for a person).
    fn is_active(self) -> bool {
        matches!(
            self,
            Self::Running | Self::Generating | Self::Rendering | Self::Publishing
        )
    }

    /// Checks the move from `self` to `to` against the lifecycle in
    /// ARCHITECTURE.md ("Run lifecycle").
    pub fn transition_to(self, to: RunStatus) -> Result<Transition, TransitionRefused> {
        use RunStatus::*;
        if self == to {
            return Ok(Transition::Unchanged);
        }
        let allowed = match self {
            _ if self.is_terminal() => false,
            // Anything not yet terminal can be cancelled or fail.
            _ if matches!(to, Cancelled | Failed) => true,
            PendingWorkflow => matches!(to, Pending | Rejected | Expired),
            Pending => matches!(to, Running),
            s if s.is_active() => {
                to.is_active() || matches!(to, AwaitingIdeate | AwaitingPrepublish | AwaitingBudget | Published)
            }
            // A budget hold goes back to the work it held.
            AwaitingBudget => to.is_active(),
            // A decided gate resumes the execution; a rejection ends the run.
            AwaitingIdeate | AwaitingPrepublish => to.is_active() || matches!(to, Rejected | Expired),
            _ => false,
        };
        if allowed {
            Ok(Transition::Moved)
        } else {
            Err(TransitionRefused { from: self, to })
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// A status read back from storage (`#[sqlx(try_from = "String")]`).
impl TryFrom<String> for RunStatus {
    type Error = UnknownStatus;
    fn try_from(s: String) -> Result<Self, UnknownStatus> {
        s.parse()
    }
}

/// A human approval point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Held by the API before the execution starts.
    Workflow,
    /// After Iggy (`after_iggy`).
    Ideate,
    /// Before Quinn (`before_quinn`).
    Prepublish,
}

impl Gate {
    pub const ALL: [Gate; 3] = [Self::Workflow, Self::Ideate, Self::Prepublish];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workflow => "workflow",
            Self::Ideate => "ideate",
            Self::Prepublish => "prepublish",
        }
    }

    /// The run status while this gate waits for a decision.
    pub fn awaiting_status(self) -> RunStatus {
        match self {
            Self::Workflow => RunStatus::PendingWorkflow,
            Self::Ideate => RunStatus::AwaitingIdeate,
            Self::Prepublish => RunStatus::AwaitingPrepublish,
        }
    }

    /// The gate a project's `hitlPoints` marker declares, if any.
    pub fn from_hitl_point(point: &str) -> Option<Gate> {
        match point {
            "after_iggy" => Some(Self::Ideate),
            "before_quinn" => Some(Self::Prepublish),
            _ => None,
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Gate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|gate| gate.as_str() == s)
            .ok_or_else(|| format!("unknown gate {s:?}; gates are workflow, ideate, prepublish"))
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus::*;
    use super::*;

    /// Every move, spelled out as a grid: a row per `from`, a column per
    /// `to`, both in the order of `RunStatus::ALL`. `x` allowed, `=` the same
    /// status (unchanged), `.` refused.
    ///
    /// Columns: pending_workflow, pending, running, generating, rendering,
    /// publishing, awaiting_ideate, awaiting_prepublish, awaiting_budget,
    /// published, failed, cancelled, rejected, expired.
    const LIFECYCLE: &str = "
        pending_workflow     =x........xxxx
        pending              .=x.......xx..
        running              ..=xxxxxxxxx..
        generating           ..x=xxxxxxxx..
        rendering            ..xx=xxxxxxx..
        publishing           ..xxx=xxxxxx..
        awaiting_ideate      ..xxxx=...xxxx
        awaiting_prepublish  ..xxxx.=..xxxx
        awaiting_budget      ..xxxx..=.xx..
        published            .........=....
        failed               ..........=...
        cancelled            ...........=..
        rejected             ............=.
        expired              .............=
    ";

    #[test]
    fn every_pair_of_statuses_follows_the_lifecycle() {
        let rows: Vec<_> = LIFECYCLE.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(rows.len(), RunStatus::ALL.len());
        for (row, from) in rows.into_iter().zip(RunStatus::ALL) {
            let (name, cells) = row.trim().split_once(char::is_whitespace).unwrap();
            assert_eq!(name, from.as_str(), "rows follow RunStatus::ALL");
            let cells = cells.trim().as_bytes();
            assert_eq!(cells.len(), RunStatus::ALL.len(), "{from}: one cell per status");
            for (cell, to) in cells.iter().zip(RunStatus::ALL) {
                let expected = match cell {
                    b'=' => Ok(Transition::Unchanged),
                    b'x' => Ok(Transition::Moved),
                    b'.' => Err(TransitionRefused { from, to }),
                    other => panic!("{from}: unknown cell {:?}", *other as char),
                };
                assert_eq!(from.transition_to(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_runs_never_move() {
        for from in RunStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in RunStatus::ALL.into_iter().filter(|to| *to != from) {
                assert!(from.transition_to(to).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn refusal_names_both_statuses() {
        let err = Published.transition_to(Running).unwrap_err();
        assert_eq!(err.to_string(), "run is published; it cannot become running");
    }

    #[test]
    fn statuses_round_trip_through_text_and_json() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("done".parse::<RunStatus>().is_err());
    }

    #[test]
    fn gates_parse_and_map_to_waiting_statuses() {
        assert_eq!("ideate".parse::<Gate>(), Ok(Gate::Ideate));
        assert!("publish".parse::<Gate>().is_err());
        assert_eq!(Gate::Workflow.awaiting_status(), PendingWorkflow);
        assert_eq!(Gate::Prepublish.awaiting_status(), AwaitingPrepublish);
        assert_eq!(Gate::from_hitl_point("after_iggy"), Some(Gate::Ideate));
        assert_eq!(Gate::from_hitl_point("before_quinn"), Some(Gate::Prepublish));
        assert_eq!(Gate::from_hitl_point("after_alex"), None);
    }
}
