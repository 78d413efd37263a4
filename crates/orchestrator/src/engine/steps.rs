//! What each node does in one step. Steps are re-entrant: a node may run
//! several times (before and after a wait, or again after a crash) and
//! picks up from the run state and the journal.

use chrono::Utc;
use myloware_core::graph::Node;
use myloware_core::project::Persona;
use myloware_core::signing;
use myloware_core::wire::{EventKind, Signal};
use myloware_core::{Gate, ProviderMode, RunStatus};
use myloware_providers::{
    ClipRequest, ClipState, ProviderError, PublishRequest, PublishState, Recovered, RenderRequest, RenderState,
};
use serde_json::{Value, json};

use super::state::{Caption, Clip, ClipStatus, LlmUsage, Publish, Render, seconds_since};
use super::{Outcome, Personas, RunError, Step, StepError, node_persona, scripted};
use crate::llm::Usage;
use crate::metrics::{Job, Observation};
use crate::personas::{LlmPersonas, Work};
use crate::store::{JournalBegin, JournalEntry};

pub async fn run(step: &mut Step<'_>, node: Node) -> Result<Outcome, StepError> {
    match node {
        Node::Persona(persona) => {
            if !step.state.started.contains(&persona) {
                step.state.started.push(persona);
                step.state.started_at.insert(persona, Utc::now());
                step.emit(EventKind::PersonaStarted, json!({"persona": persona}));
                if let Some(status) = persona_status(persona) {
                    step.emit(EventKind::StatusChanged, json!({"status": status}));
                }
            }
            let outcome = match persona {
                Persona::Iggy => iggy(step).await,
                Persona::Riley => riley(step).await?,
                Persona::Alex => alex(step).await?,
                Persona::Quinn => quinn(step).await?,
                Persona::Brendan => Outcome::Advance,
            };
            Ok(outcome)
        }
        Node::Gate(gate) => Ok(gate_node(step, gate, node_persona(node))),
    }
}

/// The run status a persona's work shows as.
fn persona_status(persona: Persona) -> Option<RunStatus> {
    match persona {
        Persona::Iggy => Some(RunStatus::Running),
        Persona::Riley => Some(RunStatus::Generating),
        Persona::Alex => Some(RunStatus::Rendering),
        Persona::Quinn => Some(RunStatus::Publishing),
        Persona::Brendan => None,
    }
}

fn fail(persona: Persona, code: &str, message: impl Into<String>) -> Outcome {
    Outcome::Fail(RunError {
        code: code.into(),
        message: message.into(),
        persona: Some(persona),
    })
}

fn provider_failure(persona: Persona, code: &str, err: &ProviderError) -> Outcome {
    fail(persona, code, err.to_string())
}

/// The LLM personas, if they do this run's work; `Err` fails the step
/// (an LLM is configured but unusable: never fall back to scripted output).
fn llm<'a>(step: &Step<'a>, persona: Persona) -> Result<Option<&'a LlmPersonas>, Outcome> {
    match &step.engine.personas {
        Personas::Scripted => Ok(None),
        Personas::Llm(llm) => Ok(Some(llm)),
        Personas::Unavailable(why) => Err(fail(persona, "llm.unavailable", why.clone())),
    }
}

/// What an LLM persona of this step works on.
fn work<'a>(step: &'a Step<'_>) -> Work<'a> {
    Work {
        store: step.engine.store.as_ref(),
        run_id: &step.run_id,
        spec: &step.request.project_spec,
    }
}

/// Keeps what an LLM persona used, for the run's record.
fn record_usage(step: &mut Step<'_>, persona: Persona, usage: &Usage) {
    if let Personas::Llm(llm) = &step.engine.personas {
        step.engine
            .metrics
            .llm_tokens(llm.model(), usage.prompt_tokens, usage.completion_tokens);
    }
    tracing::info!(runId = %step.run_id, %persona, tokens = usage.total_tokens, calls = usage.calls, "llm persona answered");
    step.state.llm_usage.push(LlmUsage {
        persona: Some(persona),
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.total_tokens,
        calls: usage.calls,
    });
}

/// The tokens `persona` used in this run, for its `persona.completed`.
fn usage_of(step: &Step<'_>, persona: Persona) -> Value {
    let used: Vec<&LlmUsage> = step
        .state
        .llm_usage
        .iter()
        .filter(|u| u.persona == Some(persona))
        .collect();
    if used.is_empty() {
        return Value::Null;
    }
    json!({
        "promptTokens": used.iter().map(|u| u.prompt_tokens).sum::<u64>(),
        "completionTokens": used.iter().map(|u| u.completion_tokens).sum::<u64>(),
        "totalTokens": used.iter().map(|u| u.total_tokens).sum::<u64>(),
        "calls": used.iter().map(|u| u.calls).sum::<u32>(),
    })
}

/// `persona.completed` with the persona's output and token usage, and its
/// duration for the metrics.
fn persona_completed(step: &mut Step<'_>, persona: Persona, output: Value) {
    let usage = usage_of(step, persona);
    step.emit(
        EventKind::PersonaCompleted,
        json!({"persona": persona, "output": output, "usage": usage}),
    );
    let seconds = step.state.persona_seconds(persona);
    step.observe(Observation::Persona {
        persona,
        outcome: "completed",
        seconds,
    });
}

/// A request to a provider, in its span (`provider.<name>.<operation>`)
/// and counted in `provider_requests_total`.
async fn counted<T>(
    step: &Step<'_>,
    provider: &str,
    operation: &str,
    request: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<Result<T, ProviderError>, StepError> {
    let mode = step.request.providers_mode;
    let span = tracing::info_span!(
        "provider",
        otel.name = %format!("provider.{provider}.{operation}"),
        otel.kind = "client",
        run_id = %step.run_id,
        langsmith.metadata.run_id = %step.run_id,
        langsmith.span.kind = "tool",
        provider = %provider,
        mode = %mode,
    );
    let result = tracing::Instrument::instrument(request, span).await;
    step.engine
        .metrics
        .provider_request(provider, operation, mode, result.is_ok());
    ledger_failure(&result)?;
    Ok(result)
}

/// A mock call whose ledger write failed is not a provider's answer: the
/// step stops uncommitted and runs again (the journal recovers the call).
fn ledger_failure<T>(result: &Result<T, ProviderError>) -> Result<(), StepError> {
    match result {
        Err(err @ ProviderError::Ledger { .. }) => Err(StepError::Ledger(err.to_string())),
        _ => Ok(()),
    }
}

/// A provider job ended: its time from submission, for the metrics.
fn job_ended(step: &mut Step<'_>, job: Job, succeeded: bool, since: Option<chrono::DateTime<Utc>>) {
    step.observe(Observation::Job {
        job,
        outcome: if succeeded { "succeeded" } else { "failed" },
        seconds: seconds_since(since),
    });
}

fn llm_failed(persona: Persona, reason: String) -> Outcome {
    fail(persona, &format!("llm.{persona}_failed"), reason)
}

async fn iggy(step: &mut Step<'_>) -> Outcome {
    let persona = Persona::Iggy;
    let ideas = match llm(step, persona) {
        Err(outcome) => return outcome,
        Ok(None) => scripted::ideas(&step.request.project_spec, &step.request.input),
        Ok(Some(llm)) => match llm.ideas(work(step), &step.request.input).await {
            Ok(answer) => {
                record_usage(step, persona, &answer.usage);
                answer.output
            }
            Err(reason) => return llm_failed(persona, reason),
        },
    };
    persona_completed(step, persona, json!({"ideas": ideas}));
    step.state.ideas = ideas;
    Outcome::Advance
}

/// The outcome of a journaled provider call.
enum Journaled {
    /// Nobody made this call before: make it now.
    Fresh,
    /// Made and answered before (the stored response).
    Answered(Value),
    /// Made before, answer lost: ask the provider.
    Unanswered,
    /// Made before and failed.
    Failed(Value),
}

async fn begin(
    step: &Step<'_>,
    key: &str,
    provider: &str,
    operation: &str,
    request: &Value,
) -> Result<Journaled, StepError> {
    match step
        .engine
        .store
        .journal_begin(&step.run_id, step.worker, key, provider, operation, request)
        .await?
    {
        JournalBegin::Begun => Ok(Journaled::Fresh),
        JournalBegin::LeaseLost => Err(StepError::LeaseLost),
        JournalBegin::Existing(JournalEntry { status, response, .. }) => Ok(match (status.as_str(), response) {
            ("succeeded", Some(response)) => Journaled::Answered(response),
            ("failed", response) => Journaled::Failed(response.unwrap_or(Value::Null)),
            _ => Journaled::Unanswered,
        }),
    }
}

async fn finish(step: &Step<'_>, key: &str, succeeded: bool, response: Value) -> Result<(), StepError> {
    Ok(step
        .engine
        .store
        .journal_finish(&step.run_id, key, succeeded, &response)
        .await?)
}

/// What to do about a call whose answer was lost, once the provider was
/// asked: use what it found (recorded under `field`), call now if it never
/// saw the call, or treat it as unanswered if it cannot tell.
async fn after_recovery(
    step: &Step<'_>,
    key: &str,
    recovered: Result<Recovered<String>, ProviderError>,
    field: &str,
) -> Result<Result<Journaled, ProviderError>, StepError> {
    Ok(match recovered {
        Ok(Recovered::Found(id)) => {
            finish(step, key, true, json!({ field: id, "recovered": true })).await?;
            Ok(Journaled::Answered(json!({ field: id })))
        }
        Ok(Recovered::NotFound) => Ok(Journaled::Fresh),
        Ok(Recovered::Unknown) => Ok(Journaled::Unanswered),
        Err(err) => Err(err),
    })
}

/// A journaled provider call that answers an id (a task, a render).
struct IdCall<'a> {
    key: &'a str,
    provider: &'static str,
    operation: &'static str,
    /// What the journal keeps of the request.
    request: &'a Value,
    /// The answer's field in the journal (`taskId`, `id`).
    field: &'static str,
    crash_point: &'static str,
    persona: Persona,
}

/// Makes `call` once: a fresh call is made and journaled; an answered one
/// reuses the journal; a lost answer is asked of the provider (`recover`),
/// which may say to call now. `Ok(None)`: the provider cannot tell whether
/// it got the call, so it is not made again. `Err`: the run's outcome.
async fn journaled_id<R, C>(
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
        Journaled::Unanswered => match after_recovery(
            step,
            call.key,
            counted(step, call.provider, "recover", recover()).await?,
            field,
        )
        .await?
        {
            Ok(journaled) => journaled,
            Err(err) => {
                let code = format!("{}.recover_failed", call.provider);
                return Ok(Err(provider_failure(persona, &code, &err)));
            }
        },
        other => other,
    };
    Ok(match journaled {
        Journaled::Fresh => {
            match recorded(
                step,
                call.key,
                counted(step, call.provider, call.operation, make()).await?,
                call.crash_point,
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
    })
}

/// Records a fresh call's answer in the journal. A call the provider may
/// have received without answering ([`ProviderError::Unanswered`]) stays
/// begun: a later run of the step recovers it like a lost answer.
async fn recorded<T>(
    step: &Step<'_>,
    key: &str,
    answer: Result<T, ProviderError>,
    crash_point: &str,
    to_json: impl Fn(&T) -> Value,
) -> Result<Result<T, ProviderError>, StepError> {
    crate::faults::point(crash_point);
    match &answer {
        Ok(value) => finish(step, key, true, to_json(value)).await?,
        Err(ProviderError::Unanswered { .. }) => {}
        Err(err) => finish(step, key, false, json!({"error": err.to_string()})).await?,
    }
    Ok(answer)
}

fn callback_url(step: &Step<'_>, index: u32) -> String {
    let config = &step.engine.config;
    // Mock callbacks come from inside the deployment; real ones from kie.ai.
    let base = match step.request.providers_mode {
        ProviderMode::Mock => &config.api_url,
        ProviderMode::Live => &config.public_base_url,
    };
    let purpose = signing::clip_purpose(step.request.providers_mode, index);
    let token = signing::callback_token(config.hitl_secret_bytes(), &step.run_id, &purpose);
    let mut url = base.join("/v1/webhooks/kieai").expect("valid path");
    url.query_pairs_mut()
        .append_pair("runId", &step.run_id)
        .append_pair("index", &index.to_string())
        .append_pair("token", &token);
    url.to_string()
}

/// Riley: scripts, one journaled submission per clip, then waits for every
/// clip. Its result comes only from kie.ai's `record-info`, asked when a
/// callback (relayed as a `clip.reported` signal) names the clip's task,
/// and for every pending clip after a while (callbacks may be lost).
async fn riley(step: &mut Step<'_>) -> Result<Outcome, StepError> {
    let persona = Persona::Riley;
    if step.state.scripts.is_empty() {
        let from_llm = match llm(step, persona) {
            Err(outcome) => return Ok(outcome),
            Ok(llm) => llm,
        };
        let scripts = match from_llm {
            None => scripted::scripts(&step.request.project_spec, &step.state.ideas),
            Some(llm) => match llm.scripts(work(step), &step.state.ideas).await {
                Ok(answer) => {
                    record_usage(step, persona, &answer.usage);
                    answer.output
                }
                Err(reason) => return Ok(llm_failed(persona, reason)),
            },
        };
        step.state.clips = scripts
            .iter()
            .map(|s| Clip {
                index: s.index,
                task_id: None,
                submitted: false,
                status: ClipStatus::Pending,
                url: None,
                duration: s.duration,
                attempt: 0,
                submitted_at: None,
            })
            .collect();
        step.state.scripts = scripts;
        if from_llm.is_some() {
            // Keep the answer before paying for clips.
            return Ok(Outcome::Checkpoint);
        }
    }
    let providers = match step.providers() {
        Ok(providers) => providers.clone(),
        Err(err) => {
            return Ok(Outcome::Fail(RunError {
                persona: Some(persona),
                ..err
            }));
        }
    };
    let aspect_ratio = step
        .request
        .project_spec
        .specs
        .as_ref()
        .map_or("9:16".to_string(), |s| s.aspect_ratio.clone());

    for i in 0..step.state.clips.len() {
        if step.state.clips[i].submitted {
            continue;
        }
        if step.cancelled().await? {
            return Ok(Outcome::Cancelled);
        }
        let script = step.state.scripts[i].clone();
        let request = ClipRequest {
            run_id: step.run_id.clone(),
            index: script.index,
            prompt: script.prompt.clone(),
            duration_seconds: script.duration,
            aspect_ratio: aspect_ratio.clone(),
            callback_url: callback_url(step, script.index),
        };
        let key = clip_key(&step.run_id, script.index, step.state.clips[i].attempt);
        let journal_request = json!({"index": script.index, "prompt": script.prompt});
        let call = IdCall {
            key: &key,
            provider: "kieai",
            operation: "submit",
            request: &journal_request,
            field: "taskId",
            crash_point: "riley.after_submit",
            persona,
        };
        // Never submit twice: an unknown submission (kie.ai cannot be asked
        // by our key) waits for its callback, whose URL names run and clip.
        let task_id = match journaled_id(
            step,
            call,
            || providers.video.recover(&key),
            || providers.video.submit(&key, &request),
        )
        .await?
        {
            Ok(task_id) => task_id,
            Err(outcome) => return Ok(outcome),
        };
        let clip = &mut step.state.clips[i];
        clip.submitted = true;
        clip.task_id = task_id.clone();
        clip.submitted_at = Some(Utc::now());
        step.emit(
            EventKind::ArtifactCreated,
            json!({"kind": "kieai.job", "persona": "riley", "data": {"index": script.index, "taskId": task_id}}),
        );
    }

    // A callback is only a trigger: ask kie.ai about the task it named
    // (once per clip), never take its body's word.
    let mut reported: Vec<(u32, String)> = Vec::new();
    for signal in std::mem::take(&mut step.signals) {
        match serde_json::from_value::<Signal>(signal.body) {
            Ok(
                Signal::ClipReported { task_id, index }
                | Signal::ClipCompleted { task_id, index, .. }
                | Signal::ClipFailed { task_id, index, .. },
            ) => {
                if !reported.iter().any(|(i, _)| *i == index) {
                    reported.push((index, task_id));
                }
            }
            Ok(other) => {
                tracing::warn!(runId = %step.run_id, signal = ?other, "signal ignored while waiting for clips")
            }
            Err(err) => tracing::warn!(runId = %step.run_id, error = %err, "unreadable signal ignored"),
        }
    }
    for (index, task_id) in reported {
        let Some(clip) = step.state.clips.iter().find(|c| c.index == index) else {
            tracing::warn!(runId = %step.run_id, clip = index, "report of an unknown clip ignored");
            continue;
        };
        if clip.status != ClipStatus::Pending {
            continue;
        }
        // The task we submitted; the reported one only when the submission's
        // answer was lost (the token of the URL binds run and clip).
        let task_id = match &clip.task_id {
            Some(ours) if *ours != task_id => {
                tracing::info!(runId = %step.run_id, clip = index, %task_id, "report of an earlier attempt ignored");
                continue;
            }
            Some(ours) => ours.clone(),
            None => task_id,
        };
        if let Some(outcome) = clip_status(step, &providers, index, task_id).await? {
            return Ok(outcome);
        }
    }

    let now = Utc::now();
    let since = *step.state.clips_waiting_since.get_or_insert(now);
    let engine_config = &step.engine.config.engine;
    let mock_delay = step.engine.config.providers.mock_delay_ms;
    let (poll_after, timeout) = match step.request.providers_mode {
        ProviderMode::Mock => (
            chrono::Duration::milliseconds((mock_delay as i64 * 5).max(2000)),
            chrono::Duration::seconds(engine_config.clip_timeout_secs.min(120) as i64),
        ),
        ProviderMode::Live => (
            chrono::Duration::seconds(engine_config.clip_poll_after_secs as i64),
            chrono::Duration::seconds(engine_config.clip_timeout_secs as i64),
        ),
    };
    // Callbacks may be lost: past the poll time, ask the provider.
    if now >= since + poll_after * (step.state.clip_polls as i32 + 1) {
        step.state.clip_polls += 1;
        let pending: Vec<(u32, String)> = step
            .state
            .clips
            .iter()
            .filter(|c| c.status == ClipStatus::Pending)
            .filter_map(|c| c.task_id.clone().map(|t| (c.index, t)))
            .collect();
        for (index, task_id) in pending {
            if let Some(outcome) = clip_status(step, &providers, index, task_id).await? {
                return Ok(outcome);
            }
        }
    }
    if step.state.clips.iter().any(|c| !c.submitted) {
        // A failed clip is to be submitted again: at once, in the next step.
        return Ok(Outcome::Park {
            wait: json!({"for": "clips", "retrying": true}),
            wake_at: Some(Utc::now()),
        });
    }
    let waiting: Vec<u32> = step
        .state
        .clips
        .iter()
        .filter(|c| c.status != ClipStatus::Completed)
        .map(|c| c.index)
        .collect();
    if waiting.is_empty() {
        let clips = step.state.clips.clone();
        let output = json!({"scripts": step.state.scripts, "clips": clips});
        persona_completed(step, persona, output);
        return Ok(Outcome::Advance);
    }
    if now >= since + timeout {
        return Ok(fail(
            persona,
            "kieai.clip_timeout",
            format!("clips {waiting:?} not ready after {} s", timeout.num_seconds()),
        ));
    }
    let next_poll = since + poll_after * (step.state.clip_polls as i32 + 1);
    Ok(Outcome::Park {
        wait: json!({"for": "clips", "clips": waiting}),
        wake_at: Some(next_poll.min(since + timeout)),
    })
}

/// Asks kie.ai's `record-info` about a clip's task and applies its answer
/// (the only source of a clip's result); `Some` ends the step.
async fn clip_status(
    step: &mut Step<'_>,
    providers: &myloware_providers::Providers,
    index: u32,
    task_id: String,
) -> Result<Option<Outcome>, StepError> {
    match counted(step, "kieai", "status", providers.video.status(&task_id)).await? {
        Ok(ClipState::Succeeded { url }) => complete_clip(step, index, Some(task_id), url),
        Ok(ClipState::Failed { code, message }) => {
            return Ok(clip_failed(step, index, Some(task_id), code, &message));
        }
        Ok(ClipState::Generating) => {}
        Err(err) => {
            tracing::warn!(runId = %step.run_id, clip = index, error = %err, "clip status lookup failed")
        }
    }
    Ok(None)
}

/// The journal key of a clip submission (each retry is a new, paid call).
fn clip_key(run_id: &str, index: u32, attempt: u32) -> String {
    match attempt {
        0 => format!("{run_id}:riley:clip:{index}"),
        n => format!("{run_id}:riley:clip:{index}:attempt:{n}"),
    }
}

/// A clip failed: retry it if the project allows (`specs.clipRetries`),
/// else fail the run at once with the provider's message. Reports of an
/// earlier attempt are ignored.
fn clip_failed(step: &mut Step<'_>, index: u32, task_id: Option<String>, code: i64, message: &str) -> Option<Outcome> {
    let retries = step.request.project_spec.specs.as_ref().map_or(0, |s| s.clip_retries);
    let clip = step.state.clips.iter_mut().find(|c| c.index == index)?;
    if clip.status == ClipStatus::Completed || (clip.task_id.is_some() && task_id.is_some() && clip.task_id != task_id)
    {
        return None;
    }
    let (attempt, submitted_at) = (clip.attempt, clip.submitted_at);
    job_ended(step, Job::KieAi, false, submitted_at);
    step.emit(
        EventKind::ArtifactCreated,
        json!({"kind": "kieai.clip", "persona": "riley", "data": {"index": index, "taskId": task_id, "status": "failed", "code": code, "message": message, "attempt": attempt}}),
    );
    let clip = step.state.clips.iter_mut().find(|c| c.index == index)?;
    if attempt < retries {
        clip.attempt += 1;
        clip.submitted = false;
        clip.task_id = None;
        tracing::info!(runId = %step.run_id, clip = index, attempt = clip.attempt, "clip failed; submitting it again");
        return None;
    }
    let tries = if attempt == 0 {
        String::new()
    } else {
        format!(" after {} attempts", attempt + 1)
    };
    Some(fail(
        Persona::Riley,
        "kieai.clip_failed",
        format!("clip {index} failed{tries}: {message} (kie.ai code {code})"),
    ))
}

fn complete_clip(step: &mut Step<'_>, index: u32, task_id: Option<String>, url: String) {
    let Some(clip) = step.state.clips.iter_mut().find(|c| c.index == index) else {
        tracing::warn!(runId = %step.run_id, clip = index, "completion for an unknown clip ignored");
        return;
    };
    if clip.status == ClipStatus::Completed {
        return;
    }
    clip.status = ClipStatus::Completed;
    clip.url = Some(url.clone());
    if clip.task_id.is_none() {
        clip.task_id = task_id;
    }
    let (task_id, submitted_at) = (clip.task_id.clone(), clip.submitted_at);
    job_ended(step, Job::KieAi, true, submitted_at);
    step.emit(
        EventKind::ArtifactCreated,
        json!({"kind": "kieai.clip", "persona": "riley", "data": {"index": index, "taskId": task_id, "status": "completed", "url": url}}),
    );
}

/// Alex: the edit, one journaled render per run, polled to done.
async fn alex(step: &mut Step<'_>) -> Result<Outcome, StepError> {
    let persona = Persona::Alex;
    let providers = match step.providers() {
        Ok(providers) => providers.clone(),
        Err(err) => {
            return Ok(Outcome::Fail(RunError {
                persona: Some(persona),
                ..err
            }));
        }
    };
    if step.state.render.is_none() && step.state.overlays.is_none() {
        match llm(step, persona) {
            Err(outcome) => return Ok(outcome),
            Ok(None) => {}
            Ok(Some(llm)) => {
                match llm.overlays(work(step), &step.state.ideas, &step.state.clips).await {
                    Ok(answer) => {
                        record_usage(step, persona, &answer.usage);
                        step.state.overlays = Some(answer.output);
                        // Keep the answer before paying for the render.
                        return Ok(Outcome::Checkpoint);
                    }
                    Err(reason) => return Ok(llm_failed(persona, reason)),
                }
            }
        }
    }
    let overlays = step
        .state
        .overlays
        .clone()
        .unwrap_or_else(|| scripted::overlays(&step.state.ideas));
    let edit = scripted::edit(&step.request.project_spec, &overlays, &step.state.clips);
    if step.state.render.is_none() {
        if step.cancelled().await? {
            return Ok(Outcome::Cancelled);
        }
        let key = format!("{}:alex:render", step.run_id);
        let request = RenderRequest {
            run_id: step.run_id.clone(),
            edit: edit.clone(),
        };
        let call = IdCall {
            key: &key,
            provider: "shotstack",
            operation: "render",
            request: &edit,
            field: "id",
            crash_point: "alex.after_render",
            persona,
        };
        let render_id = match journaled_id(
            step,
            call,
            || providers.render.recover(&key),
            || providers.render.render(&key, &request),
        )
        .await?
        {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Ok(fail(
                    persona,
                    "shotstack.render_unknown",
                    "a render was requested but its answer was lost; not rendering twice. Check Shotstack and retry the run",
                ));
            }
            Err(outcome) => return Ok(outcome),
        };
        step.state.render = Some(Render {
            id: render_id,
            url: None,
            polls: 0,
            requested_at: Some(Utc::now()),
        });
    }
    let render = step.state.render.clone().expect("set above");
    match counted(step, "shotstack", "status", providers.render.status(&render.id)).await? {
        Ok(RenderState::Done { url }) => {
            step.state.render = Some(Render {
                url: Some(url.clone()),
                ..render.clone()
            });
            step.emit(
                EventKind::ArtifactCreated,
                json!({"kind": "render.url", "persona": "alex", "data": {"url": url, "renderId": render.id}}),
            );
            job_ended(step, Job::Shotstack, true, render.requested_at);
            persona_completed(step, persona, json!({"edit": edit, "renderUrl": url}));
            Ok(Outcome::Advance)
        }
        Ok(RenderState::Failed { message }) => {
            job_ended(step, Job::Shotstack, false, render.requested_at);
            Ok(fail(persona, "shotstack.render_failed", message))
        }
        Ok(RenderState::Rendering) | Err(_) => {
            let polls = render.polls + 1;
            if polls > 60 {
                return Ok(fail(persona, "shotstack.render_timeout", "the render did not finish"));
            }
            step.state.render = Some(Render { polls, ..render });
            let backoff = chrono::Duration::seconds((1i64 << polls.min(5)).min(30));
            Ok(Outcome::Park {
                wait: json!({"for": "render"}),
                wake_at: Some(Utc::now() + backoff),
            })
        }
    }
}

/// Quinn: caption and hashtags, one publish per run under our own request
/// id, resolved by status when an answer was lost.
async fn quinn(step: &mut Step<'_>) -> Result<Outcome, StepError> {
    let persona = Persona::Quinn;
    let providers = match step.providers() {
        Ok(providers) => providers.clone(),
        Err(err) => {
            return Ok(Outcome::Fail(RunError {
                persona: Some(persona),
                ..err
            }));
        }
    };
    let key = myloware_core::ids::publish_request_id(&step.run_id);
    let publish = match step.state.publish.clone() {
        Some(publish) => publish,
        None => {
            let video_url = step
                .state
                .render
                .as_ref()
                .and_then(|r| r.url.clone())
                .or_else(|| step.state.clips.first().and_then(|c| c.url.clone()))
                .unwrap_or_default();
            let Caption { caption, hashtags } = match step.state.caption.clone() {
                Some(words) => words,
                None => match llm(step, persona) {
                    Err(outcome) => return Ok(outcome),
                    Ok(None) => {
                        let (caption, hashtags) = scripted::caption(&step.request.project_spec, &step.state.ideas);
                        Caption { caption, hashtags }
                    }
                    Ok(Some(llm)) => {
                        match llm.caption(work(step), &step.state.ideas, &video_url).await {
                            Ok(answer) => {
                                record_usage(step, persona, &answer.usage);
                                let (caption, hashtags) = answer.output;
                                step.state.caption = Some(Caption { caption, hashtags });
                                // Keep the words before publishing them.
                                return Ok(Outcome::Checkpoint);
                            }
                            Err(reason) => return Ok(llm_failed(persona, reason)),
                        }
                    }
                },
            };
            if step.cancelled().await? {
                return Ok(Outcome::Cancelled);
            }
            let spec = &step.request.project_spec;
            let request = PublishRequest {
                run_id: step.run_id.clone(),
                video_url,
                caption: format!("{caption} {}", hashtags.join(" ")).trim().to_string(),
                platforms: spec
                    .publish
                    .as_ref()
                    .map(|p| p.platforms.clone())
                    .unwrap_or_else(|| vec!["tiktok".into()]),
                profile: spec.publish.as_ref().and_then(|p| p.profile.clone()),
            };
            let state = match begin(
                step,
                &key,
                "upload_post",
                "publish",
                &serde_json::to_value(&request).expect("serializes"),
            )
            .await?
            {
                Journaled::Fresh => {
                    let state = counted(
                        step,
                        "upload_post",
                        "publish",
                        providers.publish.publish(&key, &request),
                    )
                    .await?;
                    crate::faults::point("quinn.after_publish");
                    match state {
                        // Maybe posted: ask by our request id, never post again.
                        Err(ProviderError::Unanswered { .. }) => {
                            match counted(step, "upload_post", "status", providers.publish.status(&key)).await? {
                                Ok(Some(state)) => Ok(state),
                                Ok(None) | Err(_) => Ok(PublishState::Pending),
                            }
                        }
                        other => other,
                    }
                }
                Journaled::Answered(response) => Ok(serde_json::from_value(response).unwrap_or(PublishState::Pending)),
                Journaled::Failed(response) => {
                    return Ok(fail(
                        persona,
                        "upload_post.publish_failed",
                        response["error"].as_str().unwrap_or("publish failed"),
                    ));
                }
                // Our request id makes the lost answer recoverable: ask, and
                // publish only if the provider never saw it.
                Journaled::Unanswered => {
                    match counted(step, "upload_post", "status", providers.publish.status(&key)).await? {
                        Ok(Some(state)) => Ok(state),
                        Ok(None) => {
                            counted(
                                step,
                                "upload_post",
                                "publish",
                                providers.publish.publish(&key, &request),
                            )
                            .await?
                        }
                        Err(err) => Err(err),
                    }
                }
            };
            let state = match state {
                Ok(state) => state,
                Err(err) => {
                    finish(step, &key, false, json!({"error": err.to_string()})).await?;
                    return Ok(provider_failure(persona, "upload_post.publish_failed", &err));
                }
            };
            finish(step, &key, true, serde_json::to_value(&state).expect("serializes")).await?;
            let publish = Publish {
                caption,
                hashtags,
                urls: Vec::new(),
                polls: 0,
                requested_at: Some(Utc::now()),
            };
            step.state.publish = Some(publish.clone());
            return Ok(published(step, publish, state));
        }
    };
    let state = match counted(step, "upload_post", "status", providers.publish.status(&key)).await? {
        Ok(Some(state)) => state,
        Ok(None) | Err(_) => PublishState::Pending,
    };
    Ok(published(step, publish, state))
}

fn published(step: &mut Step<'_>, publish: Publish, state: PublishState) -> Outcome {
    match state {
        PublishState::Published { urls } => {
            for url in &urls {
                step.emit(
                    EventKind::ArtifactCreated,
                    json!({"kind": "publish.url", "persona": "quinn", "data": {"url": url, "platform": "tiktok"}}),
                );
            }
            job_ended(step, Job::UploadPost, true, publish.requested_at);
            let output = json!({"caption": publish.caption, "hashtags": publish.hashtags, "publishUrls": urls});
            persona_completed(step, Persona::Quinn, output);
            step.state.publish = Some(Publish { urls, ..publish });
            Outcome::Advance
        }
        PublishState::Failed { message } => {
            job_ended(step, Job::UploadPost, false, publish.requested_at);
            fail(Persona::Quinn, "upload_post.publish_failed", message)
        }
        PublishState::Pending => {
            let polls = publish.polls + 1;
            if polls > 60 {
                return fail(
                    Persona::Quinn,
                    "upload_post.publish_timeout",
                    "the publish did not complete",
                );
            }
            step.state.publish = Some(Publish { polls, ..publish });
            let backoff = chrono::Duration::seconds((1i64 << polls.min(5)).min(30));
            Outcome::Park {
                wait: json!({"for": "publish"}),
                wake_at: Some(Utc::now() + backoff),
            }
        }
    }
}

/// A gate: announce it once, then wait for the decision.
fn gate_node(step: &mut Step<'_>, gate: Gate, persona: Option<Persona>) -> Outcome {
    for signal in std::mem::take(&mut step.signals) {
        if let Ok(Signal::GateDecision {
            gate: decided,
            approve,
            reason,
            ..
        }) = serde_json::from_value(signal.body)
        {
            if decided == gate {
                return if approve {
                    Outcome::Advance
                } else {
                    Outcome::Rejected { gate, reason }
                };
            }
        }
    }
    if !step.state.gates_reached.contains(&gate) {
        step.state.gates_reached.push(gate);
        let preview = match gate {
            Gate::Ideate => json!({"ideas": step.state.ideas}),
            _ => json!({
                "renderUrl": step.state.render.as_ref().and_then(|r| r.url.clone()),
                "clips": step.state.clips,
            }),
        };
        step.emit(
            EventKind::GateReached,
            json!({"gate": gate, "persona": persona, "preview": preview}),
        );
    }
    Outcome::Park {
        wait: json!({"for": "gate", "gate": gate}),
        wake_at: None,
    }
}
