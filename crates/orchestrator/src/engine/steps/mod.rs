//! What each node does in one step. Steps are re-entrant: a node may run
//! several times (before and after a wait, or again after a crash) and
//! picks up from the run state and the journal.
//!
//! One module per persona ([`iggy`], [`riley`], [`alex`], [`quinn`]) and
//! the [`journal`] of provider calls they share; the gates and the
//! helpers every persona uses are here.

use std::time::Duration;

use chrono::Utc;
use myloware_core::backoff::Backoff;
use myloware_core::graph::Node;
use myloware_core::project::Persona;
use myloware_core::signing;
use myloware_core::wire::{EventKind, Signal};
use myloware_core::{Gate, ProviderMode, RunStatus};
use myloware_providers::{
    ClipRequest, ClipState, ProviderError, Providers, PublishRequest, PublishState, Recovered, RenderRequest,
    RenderState,
};
use serde_json::{Value, json};

use super::{Outcome, Personas, RunError, Step, StepError, node_persona};
use crate::llm::{RequestTokens, Usage};
use crate::metrics::{Job, JobOutcome, Observation, PersonaOutcome};
use crate::personas::{LlmPersonas, Work};
use crate::run_state::{Caption, Clip, ClipStatus, LlmUsage, Publish, Render, seconds_since};
use crate::scripted;
use crate::store::{JournalBegin, JournalEntry, JournalStatus, NextCall, PaidAnswer};

mod alex;
mod assets;
mod budget;
mod iggy;
mod jobs;
mod journal;
mod quinn;
mod riley;
mod spend;

pub(super) use journal::write_held_answer;

use alex::alex;
use iggy::iggy;
use journal::*;
use quinn::quinn;
use riley::riley;

/// How long a render or a publish waits between status polls: 1 s doubling,
/// capped at 30 s.
const POLL_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

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

/// What an LLM persona of this step works on; `revising`: the gate whose
/// requested changes the persona answers, if it works again for one.
fn work<'a>(step: &'a Step<'_>, revising: Option<Gate>) -> Work<'a> {
    Work {
        store: step.engine.store.as_ref(),
        run_id: &step.run_id,
        spec: &step.request.project_spec,
        feedback: revising.and_then(|gate| step.state.feedback_for(gate)),
    }
}

/// Keeps what an LLM persona used, for the run's record, and what each of
/// its requests cost.
fn record_usage(step: &mut Step<'_>, persona: Persona, usage: &Usage) {
    let engine = step.engine;
    if let Personas::Llm(llm) = &engine.personas {
        engine
            .metrics
            .llm_tokens(llm.model(), usage.prompt_tokens, usage.completion_tokens);
        spend::llm_requests(step, llm.model(), &usage.requests);
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
        outcome: PersonaOutcome::Completed,
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
        outcome: if succeeded {
            JobOutcome::Succeeded
        } else {
            JobOutcome::Failed
        },
        seconds: seconds_since(since),
    });
}

fn llm_failed(persona: Persona, reason: String) -> Outcome {
    fail(persona, &format!("llm.{persona}_failed"), reason)
}

/// A gate: announce it once, then wait for the decision (or for changes
/// asked: back to the persona that made what the gate shows).
fn gate_node(step: &mut Step<'_>, gate: Gate, persona: Option<Persona>) -> Outcome {
    for signal in std::mem::take(&mut step.signals) {
        match serde_json::from_value(signal.body) {
            Ok(Signal::GateDecision {
                gate: decided,
                approve,
                reason,
                ..
            }) if decided == gate => {
                return if approve {
                    Outcome::Advance
                } else {
                    Outcome::Rejected { gate, reason }
                };
            }
            Ok(Signal::GateRevision {
                gate: asked,
                round,
                feedback,
                by,
            }) if asked == gate => {
                let has_alex = step.request.graph_spec.pipeline.contains(&Persona::Alex);
                let again = step.state.revise(gate, round, &feedback, has_alex);
                tracing::info!(runId = %step.run_id, %gate, round, by = ?by, persona = %again, "changes requested; the persona works again");
                return Outcome::Revisit(again);
            }
            _ => {}
        }
    }
    if !step.state.gates_reached.contains(&gate) {
        step.state.gates_reached.push(gate);
        let mut preview = match gate {
            Gate::Ideate => json!({"ideas": step.state.ideas}),
            _ => json!({
                "renderUrl": step.state.render.as_ref().and_then(Render::shown_url),
                // The approval page mints a fresh URL of the copy from its key.
                "renderAsset": step.state.render.as_ref().and_then(|r| r.asset.as_ref().map(|a| a.key.clone())),
                "clips": step.state.clips,
            }),
        };
        if let Some(revision) = step.state.revision.as_ref().filter(|r| r.gate == gate) {
            // The clips made again, as people count them (from 1).
            let numbers: Vec<u32> = revision.clips.iter().map(|index| index + 1).collect();
            preview["revision"] = json!({"round": revision.round, "feedback": revision.feedback, "clips": numbers});
        }
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
