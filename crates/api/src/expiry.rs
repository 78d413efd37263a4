//! Gate lifetime: a gate awaiting a decision gets one reminder after
//! `GATE_REMIND_AFTER_HOURS` (a notice with a fresh link), and after
//! `GATE_TIMEOUT_HOURS` it is decided by its project's
//! `gateTimeoutDecision` (audited as `system:gate-timeout`) or, without
//! one, expires: the gate `expired`, the run `expired` (final), the
//! execution stopped, the owner and the operators told. Swept by the
//! reconciler's loop; every change is a conditional update, so several
//! API replicas remind and expire each gate once.

use chrono::Utc;
use myloware_core::project::TimeoutDecision;
use myloware_core::wire::{CancelExecution, Decision as Verdict, ExecutionCommand};
use myloware_core::{Gate, RunStatus};
use serde_json::json;

use crate::commands;
use crate::error::ApiError;
use crate::hitl::{self, Attempt, Credential};
use crate::notify;
use crate::state::ApiState;
use crate::store::{Artifact, GateExpiry, GateRecord, NewCommand, Run};

/// Gates handled per sweep and kind (the next sweep takes the rest).
const BATCH: u32 = 100;

/// Reminds and expires the gates that are due.
pub async fn sweep(state: &ApiState) {
    let now = Utc::now();
    if let Some(after) = state.config.gate_remind_after
        && let Err(err) = remind(state, now - after).await
    {
        tracing::error!(target: hitl::LOG_TARGET, error = %err, "cannot remind gates");
    }
    if let Err(err) = expire(state, now - state.config.gate_timeout).await {
        tracing::error!(target: hitl::LOG_TARGET, error = %err, "cannot expire gates");
    }
}

fn hours(delta: chrono::TimeDelta) -> f64 {
    delta.num_seconds() as f64 / 3600.0
}

async fn remind(state: &ApiState, before: chrono::DateTime<Utc>) -> Result<(), ApiError> {
    for gate in state.store.gates_waiting_since(before, true, BATCH).await? {
        let Some(run) = state.store.get_run(&gate.run_id).await? else {
            continue;
        };
        let link = hitl::mint(state, &run.id, gate.gate);
        let left = gate.requested_at + state.config.gate_timeout - Utc::now();
        let text = format!(
            "Reminder: run {} ({}) has waited {:.1} h at the {} gate; without a decision it expires in {:.1} h. \
             Approve or reject: {}",
            run.id,
            run.project,
            hours(Utc::now() - gate.requested_at),
            gate.gate,
            hours(left).max(0.0),
            link.approval_url
        );
        let notice = notify::notice(&state.config, &run, text, Some((gate.gate, link.approval_url)));
        if state.store.remind_gate(&run.id, gate.gate, &notice).await? {
            state.pushes.notify_one();
            tracing::info!(target: hitl::LOG_TARGET, runId = %run.id, gate = %gate.gate, "gate reminder sent");
        }
    }
    Ok(())
}

async fn expire(state: &ApiState, before: chrono::DateTime<Utc>) -> Result<(), ApiError> {
    for gate in state.store.gates_waiting_since(before, false, BATCH).await? {
        let Some(run) = state.store.get_run(&gate.run_id).await? else {
            continue;
        };
        let decision = state
            .catalog
            .get(&run.project)
            .and_then(|spec| spec.gate_timeout_decision);
        match decision {
            Some(decision) => decide(state, &run, gate.gate, decision).await,
            None => end(state, &run, &gate).await?,
        }
    }
    Ok(())
}

/// The project's default decision, taken as any decision is (audited).
async fn decide(state: &ApiState, run: &Run, gate: Gate, decision: TimeoutDecision) {
    let attempt = Attempt {
        run_id: run.id.clone(),
        gate: gate.as_str().to_string(),
        verdict: match decision {
            TimeoutDecision::Approve => Verdict::Approve,
            TimeoutDecision::Reject => Verdict::Reject,
        },
        note: None,
        reason: Some(format!(
            "no decision within GATE_TIMEOUT_HOURS ({:.1} h)",
            hours(state.config.gate_timeout)
        )),
        credential: Credential::Timeout,
        chat_user: None,
        round: None,
        ip: None,
        user_agent: None,
    };
    match hitl::decide(state, &attempt).await {
        Ok(outcome) => {
            tracing::info!(target: hitl::LOG_TARGET, runId = %run.id, %gate, outcome = outcome.as_str(), "gate timed out; the project's decision taken")
        }
        Err(err) => {
            tracing::warn!(target: hitl::LOG_TARGET, runId = %run.id, %gate, error = %err, "gate timed out; its decision did not go through yet")
        }
    }
}

/// No default decision: the gate and the run expire.
async fn end(state: &ApiState, run: &Run, gate: &GateRecord) -> Result<(), ApiError> {
    let timeout = hours(state.config.gate_timeout);
    let expiry = GateExpiry {
        run_id: run.id.clone(),
        gate: gate.gate,
        run_from: gate.gate.awaiting_status(),
        artifact: Artifact::new(
            &run.id,
            "gate.expired",
            None,
            json!({"gate": gate.gate, "requestedAt": gate.requested_at, "timeoutHours": timeout}),
        ),
        // A proposal has no execution yet.
        command: (gate.gate != Gate::Workflow).then(|| {
            NewCommand::new(
                &run.id,
                ExecutionCommand::Cancel(CancelExecution {
                    reason: Some(format!("the {} gate expired", gate.gate)),
                }),
            )
        }),
        notice: notify::notice(
            &state.config,
            run,
            format!(
                "Run {} ({}) expired: nobody decided its {} gate within {timeout:.1} h. Start it again to go on.",
                run.id, run.project, gate.gate
            ),
            None,
        ),
    };
    if !state.store.expire_gate(&expiry).await? {
        return Ok(());
    }
    state.pushes.notify_one();
    state.metrics.run_ended(&run.id, &run.project, RunStatus::Expired);
    tracing::info!(target: hitl::LOG_TARGET, runId = %run.id, gate = %gate.gate, timeout_hours = timeout, "gate expired");
    if expiry.command.is_some()
        && let Err(error) = commands::deliver_pending(state, &run.id).await
    {
        tracing::warn!(runId = %run.id, %error, "orchestrator not told of the expiry yet; will retry");
    }
    Ok(())
}
