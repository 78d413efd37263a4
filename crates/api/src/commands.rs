//! Delivery of commands (start, signal, cancel) to the orchestrator: in
//! order per run, each retried with capped exponential backoff until the
//! orchestrator acknowledges it. Every command is stored (with the state
//! change that caused it) before the first attempt, so none is lost when
//! the orchestrator or this process is down.

use std::time::Duration;

use chrono::Utc;
use myloware_core::RunStatus;
use myloware_core::backoff::Backoff;
use myloware_core::wire::{ExecutionCommand, MAX_SIGNAL_BATCH, SignalBatch};
use serde_json::json;

use crate::notify;
use crate::orchestrator::OrchestratorError;
use crate::state::ApiState;
use crate::store::{Artifact, Command, CommandKind, DeadLetterKind, DeliveryAttempt};

/// The HITL log (the runbook greps for it): gate decisions (`hitl`) and
/// their delivery to the orchestrator (here).
pub const HITL_LOG_TARGET: &str = "myloware.api.hitl";

/// 1 s, 2 s, 4 s ... capped at 30 s.
const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

/// One attempt at `command`, recorded: acknowledged, refused (closed, it
/// will not be sent again) or failed (retried later).
async fn deliver(state: &ApiState, command: &Command) -> DeliveryAttempt {
    let outcome = state.orchestrator.send(&command.run_id, &command.body).await;
    let attempt = judge(state, command, &outcome).await;
    record(state, &[command.seq], &attempt).await;
    log_resume(command, &attempt);
    attempt
}

/// One attempt at several signals of a run (`signals`: two or more, in
/// order), sent in one request and recorded in one statement; `None` when
/// the orchestrator has no batch route (an older version: it answers 404
/// or 405 without its JSON error), so the caller sends them one by one.
async fn deliver_signals(state: &ApiState, run_id: &str, signals: &[Command]) -> Option<DeliveryAttempt> {
    let batch = SignalBatch {
        signals: signals
            .iter()
            .filter_map(|command| match &command.body {
                ExecutionCommand::Signal(delivery) => Some(delivery.clone()),
                _ => None,
            })
            .collect(),
    };
    let outcome = state.orchestrator.send_signals(run_id, &batch).await;
    if let Err(OrchestratorError::Refused {
        status: 404 | 405,
        body,
    }) = &outcome
        && !body.contains("not found")
    {
        return None;
    }
    // Every signal shares the answer (a refusal dead-letters each).
    let mut attempt = DeliveryAttempt::Acked;
    for command in signals {
        attempt = judge(state, command, &outcome).await;
    }
    let seqs: Vec<i64> = signals.iter().map(|c| c.seq).collect();
    record(state, &seqs, &attempt).await;
    Some(attempt)
}

/// What the orchestrator's answer to `command` means, with what a refusal
/// entails (a refused start or retry fails its run; a refused signal is
/// kept for replay).
async fn judge(state: &ApiState, command: &Command, outcome: &Result<(), OrchestratorError>) -> DeliveryAttempt {
    let kind = command.kind();
    match outcome {
        Ok(()) => DeliveryAttempt::Acked,
        // The orchestrator understood and refused: retrying cannot help.
        Err(OrchestratorError::Refused { status, body }) if matches!(status, 400 | 404 | 409 | 422) => {
            let error = format!("orchestrator refused the {} ({status}): {body}", kind.as_str());
            tracing::error!(runId = %command.run_id, command = kind.as_str(), %error, "command refused");
            match kind {
                CommandKind::Start if *status != 409 => {
                    fail_refused_run(state, &command.run_id, RunStatus::Pending, &error).await
                }
                // The run went back to running for nothing: failed again.
                CommandKind::Retry => fail_refused_run(state, &command.run_id, RunStatus::Running, &error).await,
                _ => {}
            }
            // A signal nobody took is kept for replay (before the command is
            // closed, so a crash in between repeats this, never loses it);
            // a refused replay updates its own entry instead.
            if let ExecutionCommand::Signal(delivery) = &command.body
                && delivery.replay_of.is_none()
            {
                let payload = serde_json::to_value(delivery).expect("serializes");
                if let Err(err) = state
                    .store
                    .add_dead_letter(DeadLetterKind::Signal, Some(&command.run_id), &payload, &error)
                    .await
                {
                    tracing::error!(runId = %command.run_id, error = %err, "cannot dead-letter a refused signal");
                }
            }
            DeliveryAttempt::Refused { error }
        }
        Err(err) => {
            tracing::warn!(
                runId = %command.run_id,
                command = kind.as_str(),
                attempt = command.attempts + 1,
                error = %err,
                "command not delivered; will retry"
            );
            DeliveryAttempt::Failed {
                error: err.to_string(),
                retry_at: Utc::now() + BACKOFF.after(command.attempts),
            }
        }
    }
}

async fn record(state: &ApiState, seqs: &[i64], attempt: &DeliveryAttempt) {
    if let Err(err) = state.store.record_deliveries(seqs, attempt).await {
        tracing::error!(commands = ?seqs, error = %err, "cannot record a command delivery");
    }
}

/// A gate decision's delivery, in the HITL log (`myloware.api.hitl`): the
/// orchestrator resumed the run (`resumed`, with the time from the decision
/// to the acknowledgement), refused the decision, or could not be reached.
fn log_resume(command: &Command, attempt: &DeliveryAttempt) {
    let ExecutionCommand::Resume(resume) = &command.body else {
        return;
    };
    let (run_id, gate, decision) = (&command.run_id, resume.gate, resume.decision.as_str());
    let latency_ms = (Utc::now() - command.created_at).num_milliseconds();
    let attempts = command.attempts + 1;
    match attempt {
        DeliveryAttempt::Acked => {
            tracing::info!(target: HITL_LOG_TARGET, runId = %run_id, %gate, decision, latency_ms, attempts, "resumed")
        }
        DeliveryAttempt::Refused { error } => {
            tracing::error!(target: HITL_LOG_TARGET, runId = %run_id, %gate, decision, latency_ms, attempts, %error, "resume refused")
        }
        DeliveryAttempt::Failed { error, retry_at } => {
            tracing::warn!(target: HITL_LOG_TARGET, runId = %run_id, %gate, decision, latency_ms, attempts, %error, %retry_at, "resume failed; will retry")
        }
    }
}

/// Most commands one call delivers for a run (a bound, not a quota: the
/// reconciler picks the rest up).
const DRAIN_LIMIT: u32 = 100;

/// Delivers the run's pending commands now, oldest first (signals next to
/// each other in one request), until none is
/// left (then `Ok`: the one just enqueued was acknowledged too) or one is
/// not acknowledged (its error). Commands of a run queue behind each other,
/// so delivering only the oldest would leave the rest to the reconciler's
/// next ticks (seen: a gate decision waiting seconds behind clip signals
/// that concurrent callbacks had enqueued).
///
/// A command the orchestrator refused is closed (and dead-lettered if it
/// was a signal); the next ones still go. The answer is that of the last
/// command delivered, normally the one the caller just enqueued.
///
/// One drain per run at a time in this process: concurrent callers (twelve
/// clip callbacks of a run arriving together) wait for the drain in
/// progress instead of each sending the same oldest command again (seen:
/// every signal relayed about 7 times under load; harmless, the
/// orchestrator deduplicates, but paid in requests and writes). Each caller
/// enqueued its command before it called, so the pending commands are read
/// once per drain: one enqueued during this drain is delivered by its own
/// caller's drain, next.
pub async fn deliver_pending(state: &ApiState, run_id: &str) -> Result<(), String> {
    let _drain = state.delivery_locks.lock(run_id).await;
    let pending = state
        .store
        .pending_commands(run_id, DRAIN_LIMIT)
        .await
        .map_err(|err| format!("cannot read pending commands: {err}"))?;
    let mut last = Ok(());
    let mut rest = pending.as_slice();
    let mut batches = true;
    while let Some(command) = rest.first() {
        // Signals next to each other go in one request.
        let signals = rest.iter().take(MAX_SIGNAL_BATCH).take_while(|c| batchable(c)).count();
        let (attempt, sent) = match signals {
            2.. if batches => match deliver_signals(state, run_id, &rest[..signals]).await {
                Some(attempt) => (attempt, signals),
                None => {
                    batches = false;
                    continue;
                }
            },
            _ => (deliver(state, command).await, 1),
        };
        rest = &rest[sent..];
        match attempt {
            DeliveryAttempt::Acked => last = Ok(()),
            // Closed: the next ones still go.
            DeliveryAttempt::Refused { error } => last = Err(error),
            // Retried later, and the rest waits behind it.
            DeliveryAttempt::Failed { error, .. } => return Err(error),
        }
    }
    last
}

/// A signal that may share a request with its neighbours: not a replay of
/// a dead letter (a refused replay updates its own entry).
fn batchable(command: &Command) -> bool {
    matches!(&command.body, ExecutionCommand::Signal(delivery) if delivery.replay_of.is_none())
}

/// A start or a retry the orchestrator will never accept (e.g. an invalid
/// graph) fails the run with the orchestrator's reason, instead of leaving
/// it `from` (pending, or running after a retry) with nothing to move it.
async fn fail_refused_run(state: &ApiState, run_id: &str, from: RunStatus, error: &str) {
    let run = match state.store.get_run(run_id).await {
        Ok(Some(run)) => run,
        Ok(None) => return,
        Err(err) => {
            tracing::error!(runId = %run_id, error = %err, "cannot fail a refused run");
            return;
        }
    };
    let artifact = Artifact::new(run_id, "run.failed", None, json!({"error": error}));
    let notice = notify::notice(&state.config, &run, notify::failed(&run, error), None);
    match state
        .store
        .transition(run_id, from, RunStatus::Failed, Some(&artifact), None, Some(&notice))
        .await
    {
        Ok(true) => {
            tracing::error!(runId = %run_id, %error, "run failed: the orchestrator refused it");
            state.metrics.run_ended(run_id, &run.project, RunStatus::Failed);
        }
        Ok(false) => {}
        Err(err) => tracing::error!(runId = %run_id, error = %err, "cannot fail a refused run"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(BACKOFF.after(0).num_seconds(), 1);
        assert_eq!(BACKOFF.after(1).num_seconds(), 2);
        assert_eq!(BACKOFF.after(4).num_seconds(), 16);
        assert_eq!(BACKOFF.after(40).num_seconds(), 30);
    }
}
