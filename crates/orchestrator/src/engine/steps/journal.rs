//! The journal of provider calls: each call is begun under an idempotency
//! key before it is made and finished with its answer, so a step re-run
//! after a crash asks the provider to recover the call instead of making
//! it again. A paid call's success is recorded with its cost (`spend`).

use super::*;

/// The outcome of a journaled provider call.
pub(super) enum Journaled {
    /// Nobody made this call before: make it now.
    Fresh,
    /// Made and answered before (the stored response).
    Answered(Value),
    /// Made before, answer lost: ask the provider.
    Unanswered,
    /// Made before and failed.
    Failed(Value),
    /// The run's cancel was requested: make no call.
    Cancelled,
}

pub(super) async fn begin(
    step: &Step<'_>,
    key: &str,
    provider: &str,
    operation: &str,
    request: &Value,
) -> Result<Journaled, StepError> {
    let store = &step.engine.store;
    let begun = match take_held(step) {
        None => {
            store
                .journal_begin(&step.run_id, step.worker, key, provider, operation, request)
                .await?
        }
        Some(held) => {
            let next = NextCall {
                key,
                provider,
                operation,
                request,
            };
            match store
                .journal_paid_then_begin(&step.run_id, step.worker, &held, next)
                .await
            {
                Ok((_, begun)) => begun,
                Err(err) => {
                    // Maybe not written: the step's end writes it (again
                    // changes nothing: one cost and one event per key).
                    hold(step, held);
                    return Err(err.into());
                }
            }
        }
    };
    match begun {
        JournalBegin::Begun => Ok(Journaled::Fresh),
        JournalBegin::LeaseLost => Err(StepError::LeaseLost),
        JournalBegin::Cancelled => Ok(Journaled::Cancelled),
        JournalBegin::Existing(JournalEntry { status, response, .. }) => Ok(match (status, response) {
            (JournalStatus::Succeeded, Some(response)) => Journaled::Answered(response),
            (JournalStatus::Failed, response) => Journaled::Failed(response.unwrap_or(Value::Null)),
            _ => Journaled::Unanswered,
        }),
    }
}

/// From now on, a paid call's answer is held back and written with the
/// next call's begin, in one transaction (`SpendStore::journal_paid_then_begin`),
/// until [`stop_holding`]. For calls made one after another with nothing
/// between one's answer and the next's begin but building the next request
/// (a job slot under a cap writes the answer first): the answer is durable
/// before the next call is made, as it is when written alone, so a crash
/// leaves no more unknown. Whatever is still held when the step returns is
/// written then ([`write_held_answer`]).
pub(super) fn hold_answers(step: &mut Step<'_>) {
    step.held.holding = true;
}

/// Writes the answer held, if any, and holds no more.
pub(super) async fn stop_holding(step: &mut Step<'_>) -> Result<(), StepError> {
    step.held.holding = false;
    write_held_answer(step).await
}

/// Writes the answer held, if any (alone, as `journal_succeeded_paid`).
pub(crate) async fn write_held_answer(step: &Step<'_>) -> Result<(), StepError> {
    let Some(held) = take_held(step) else { return Ok(()) };
    let written = step
        .engine
        .store
        .journal_succeeded_paid(&step.run_id, &held.key, &held.response, &held.spend, &held.event)
        .await;
    if let Err(err) = written {
        hold(step, held);
        return Err(err.into());
    }
    Ok(())
}

fn take_held(step: &Step<'_>) -> Option<PaidAnswer> {
    step.held.answer.lock().expect("held answer lock").take()
}

pub(super) fn hold(step: &Step<'_>, answer: PaidAnswer) {
    *step.held.answer.lock().expect("held answer lock") = Some(answer);
}

pub(super) async fn finish(step: &Step<'_>, key: &str, succeeded: bool, response: Value) -> Result<(), StepError> {
    Ok(step
        .engine
        .store
        .journal_finish(&step.run_id, key, succeeded, &response)
        .await?)
}

/// Records a call's answer as succeeded; a paid call's cost with it, in
/// the same transaction and once per key ([`spend::journal_succeeded`]).
pub(super) async fn succeeded(
    step: &Step<'_>,
    key: &str,
    provider: &str,
    operation: &str,
    response: Value,
) -> Result<(), StepError> {
    match spend::provider_charge(step, provider, operation) {
        Some(charge) => spend::journal_succeeded(step, key, &charge, &response).await,
        None => finish(step, key, true, response).await,
    }
}

/// What to do about a call whose answer was lost, once the provider was
/// asked: use what it found (recorded under the call's `field`), call now
/// if it never saw the call, or treat it as unanswered if it cannot tell.
pub(super) async fn after_recovery(
    step: &Step<'_>,
    call: &IdCall<'_>,
    recovered: Result<Recovered<String>, ProviderError>,
) -> Result<Result<Journaled, ProviderError>, StepError> {
    let field = call.field;
    Ok(match recovered {
        Ok(Recovered::Found(id)) => {
            let response = json!({ field: id, "recovered": true });
            succeeded(step, call.key, call.provider, call.operation, response).await?;
            Ok(Journaled::Answered(json!({ field: id })))
        }
        Ok(Recovered::NotFound) => Ok(Journaled::Fresh),
        Ok(Recovered::Unknown) => Ok(Journaled::Unanswered),
        Err(err) => Err(err),
    })
}

/// A journaled provider call that answers an id (a task, a render).
pub(super) struct IdCall<'a> {
    pub(super) key: &'a str,
    pub(super) provider: &'static str,
    pub(super) operation: &'static str,
    /// What the journal keeps of the request.
    pub(super) request: &'a Value,
    /// The answer's field in the journal (`taskId`, `id`).
    pub(super) field: &'static str,
    pub(super) crash_point: &'static str,
    pub(super) persona: Persona,
}

/// Makes `call` once: a fresh call is made and journaled; an answered one
/// reuses the journal; a lost answer is asked of the provider (`recover`),
/// which may say to call now. `Ok(None)`: the provider cannot tell whether
/// it got the call, so it is not made again. `Err`: the run's outcome.
pub(super) async fn journaled_id<R, C>(
    step: &Step<'_>,
    call: IdCall<'_>,
    recover: impl FnOnce() -> R,
    make: impl FnOnce() -> C,
) -> Result<Result<Option<String>, Outcome>, StepError>
where
    R: std::future::Future<Output = Result<Recovered<String>, ProviderError>>,
    C: std::future::Future<Output = Result<String, ProviderError>>,
{
    let (persona, field) = (call.persona, call.field);
    let code = |what: &str| format!("{}.{}_{what}", call.provider, call.operation);
    let journaled = match begin(step, call.key, call.provider, call.operation, call.request).await? {
        Journaled::Unanswered => {
            match after_recovery(step, &call, counted(step, call.provider, "recover", recover()).await?).await? {
                Ok(journaled) => journaled,
                Err(err) => {
                    let code = format!("{}.recover_failed", call.provider);
                    return Ok(Err(provider_failure(persona, &code, &err)));
                }
            }
        }
        other => other,
    };
    Ok(match journaled {
        Journaled::Fresh => {
            match recorded(
                step,
                &call,
                counted(step, call.provider, call.operation, make()).await?,
                |id| json!({ field: id }),
            )
            .await?
            {
                Ok(id) => Ok(Some(id)),
                // Maybe received: never sent again (as for a lost answer).
                Err(ProviderError::Unanswered { message, .. }) => {
                    tracing::warn!(runId = %step.run_id, key = call.key, %message, "provider call unanswered; not sending it again");
                    Ok(None)
                }
                Err(err) => Err(provider_failure(persona, &code("failed"), &err)),
            }
        }
        Journaled::Answered(response) => Ok(response[field].as_str().map(str::to_owned)),
        Journaled::Failed(response) => Err(fail(
            persona,
            &code("failed"),
            response["error"].as_str().unwrap_or("the call failed"),
        )),
        Journaled::Unanswered => Ok(None),
        Journaled::Cancelled => Err(Outcome::Cancelled),
    })
}

/// Records a fresh call's answer in the journal. A call the provider may
/// have received without answering ([`ProviderError::Unanswered`]) stays
/// begun: a later run of the step recovers it like a lost answer.
pub(super) async fn recorded<T>(
    step: &Step<'_>,
    call: &IdCall<'_>,
    answer: Result<T, ProviderError>,
    to_json: impl Fn(&T) -> Value,
) -> Result<Result<T, ProviderError>, StepError> {
    crate::faults::point(call.crash_point);
    match &answer {
        Ok(value) => succeeded(step, call.key, call.provider, call.operation, to_json(value)).await?,
        Err(ProviderError::Unanswered { .. }) => {}
        Err(err) => finish(step, call.key, false, json!({"error": err.to_string()})).await?,
    }
    Ok(answer)
}
