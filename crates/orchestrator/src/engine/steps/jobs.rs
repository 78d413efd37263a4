//! The cap on provider jobs in flight (`MAX_PROVIDER_JOBS`): a live run
//! takes a slot (`provider_jobs`, one per journal key, counted per provider
//! under a lock) before submitting a kie.ai clip or a Shotstack render, and
//! frees it with the step that learns the job ended (or with the run's
//! end). Without a free slot the submission waits and the step looks again
//! every [`SLOT_RECHECK`]; jobs already submitted go on meanwhile.

use super::*;

/// How often a step waiting for a slot looks again (a callback of one of
/// its own jobs wakes it sooner).
pub(super) const SLOT_RECHECK: chrono::Duration = chrono::Duration::seconds(1);

/// The cap, for this run: live runs only.
fn cap(step: &Step<'_>) -> Option<u32> {
    match step.request.providers_mode {
        ProviderMode::Live => step.engine.config.budget.max_provider_jobs,
        ProviderMode::Mock => None,
    }
}

/// Whether job `key` at `provider` may be submitted now (a slot taken, or
/// held already, or no cap).
pub(super) async fn slot(step: &Step<'_>, provider: &str, key: &str) -> Result<bool, StepError> {
    let Some(cap) = cap(step) else { return Ok(true) };
    // Taking a slot is a transaction behind a lock every run shares: an
    // answer held for the next begin is written first, not kept in memory
    // while it waits (journal::hold_answers).
    write_held_answer(step).await?;
    let taken = step
        .engine
        .store
        .take_job_slot(&step.run_id, key, provider, cap)
        .await?;
    if !taken {
        tracing::debug!(runId = %step.run_id, %provider, %key, cap, "no provider job slot free; waiting");
    }
    Ok(taken)
}

/// Job `key` ended (done or failed): its slot is freed with the step.
pub(super) fn ended(step: &mut Step<'_>, key: String) {
    if cap(step).is_some() {
        step.jobs_ended.push(key);
    }
}

/// A render waiting for a slot.
pub(super) fn wait_for_slot(provider: &str) -> Outcome {
    Outcome::Park {
        wait: json!({"for": "job_slot", "provider": provider}),
        wake_at: Some(Utc::now() + SLOT_RECHECK),
    }
}
