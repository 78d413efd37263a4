//! The dead-letter queue: signals the orchestrator refused and verified
//! webhooks that could not be processed, kept with their error, listed and
//! replayed (by an operator, audited; or by the reconciler's backoff). A replay really processes the entry again: its signal gets a
//! new id, so the orchestrator's idempotency does not swallow it.

use std::time::Duration;

use myloware_core::backoff::Backoff;
use myloware_core::wire::{ExecutionCommand, SignalDelivery};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Caller};
use crate::commands;
use crate::error::ApiError;
use crate::state::ApiState;
use crate::store::{AuditAction, DeadLetter, DeadLetterKind, NewCommand};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    pub seq: i64,
    pub resolved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The signal delivery a dead letter asks for, with a fresh signal id.
fn replay_signal(letter: &DeadLetter) -> Result<(String, SignalDelivery), String> {
    let run_id = letter.run_id.clone().ok_or("the entry names no run")?;
    let kept = match letter.kind {
        DeadLetterKind::Signal => letter.payload.clone(),
        DeadLetterKind::Webhook => letter.payload["signal"].clone(),
    };
    let mut delivery: SignalDelivery =
        serde_json::from_value(kept).map_err(|err| format!("the entry has no signal ({err})"))?;
    delivery.signal_id = format!("{}:replay:{}", delivery.signal_id, letter.attempts + 1);
    // A refused replay updates this entry instead of adding another.
    delivery.replay_of = Some(letter.seq);
    Ok((run_id, delivery))
}

/// An operator's replay ([`replay`]), audited with the entry's run,
/// refused or not.
pub async fn replay_for(state: &ApiState, seq: i64, caller: &Caller) -> Result<Replayed, ApiError> {
    let letter = state.store.get_dead_letter(seq).await;
    let run_id = letter.as_ref().ok().and_then(|l| l.as_ref()?.run_id.clone());
    let result = match letter {
        Ok(letter) => replay_letter(state, letter).await,
        Err(err) => Err(err.into()),
    };
    let verdict = audit::verdict(&result, |replayed| match &replayed.error {
        None => "resolved".into(),
        Some(error) => format!("still failing: {error}"),
    });
    let detail = json!({"deadLetter": seq});
    caller
        .record(state, AuditAction::Replay, run_id.as_deref(), verdict, Some(detail))
        .await;
    result
}

/// Processes a dead letter again; resolved once the orchestrator has it.
pub async fn replay(state: &ApiState, seq: i64) -> Result<Replayed, ApiError> {
    let letter = state.store.get_dead_letter(seq).await?;
    replay_letter(state, letter).await
}

async fn replay_letter(state: &ApiState, letter: Option<DeadLetter>) -> Result<Replayed, ApiError> {
    let letter = letter.ok_or_else(|| ApiError::not_found("dead letter"))?;
    let seq = letter.seq;
    if letter.resolved_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "dead letter {seq} was already replayed successfully"
        )));
    }
    let outcome = match replay_signal(&letter) {
        Err(error) => Err(error),
        Ok((run_id, delivery)) => {
            state
                .store
                .enqueue_command(&NewCommand::new(&run_id, ExecutionCommand::Signal(delivery)))
                .await?;
            commands::deliver_pending(state, &run_id).await
        }
    };
    let error = outcome.err();
    state
        .store
        .record_replay(seq, error.is_none(), error.as_deref())
        .await?;
    tracing::info!(seq, resolved = error.is_none(), error = ?error, "dead letter replayed");
    Ok(Replayed {
        seq,
        resolved: error.is_none(),
        error,
    })
}

/// Wait before the automatic replay after `attempts` failed ones: 1 min
/// doubling, capped at 6 hours.
const BACKOFF: Backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(6 * 3600));

/// Replays the open entries whose backoff has passed (called by the
/// command reconciler); an operator can always replay at once.
pub async fn retry_due(state: &ApiState) {
    let letters = match state.store.dead_letters(false, 50).await {
        Ok(letters) => letters,
        Err(err) => {
            tracing::error!(error = %err, "dead-letter retry cannot read the queue");
            return;
        }
    };
    let now = chrono::Utc::now();
    for letter in letters {
        let since = letter.last_attempt_at.unwrap_or(letter.created_at);
        if since + BACKOFF.after(letter.attempts) <= now {
            if let Err(err) = replay(state, letter.seq).await {
                tracing::warn!(seq = letter.seq, error = %err, "dead-letter retry failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_backoff_doubles_and_caps() {
        assert_eq!(BACKOFF.after(0).num_minutes(), 1);
        assert_eq!(BACKOFF.after(3).num_minutes(), 8);
        assert_eq!(BACKOFF.after(30).num_minutes(), 360);
    }
}
