//! Starting and cancelling runs: the rules between the HTTP handlers and the
//! store. A run is recorded with its start command before the orchestrator
//! is called, so a start is never lost; delivery is retried by the command
//! reconciler (`crate::commands`) until the orchestrator acknowledges it.

use myloware_core::ids::new_run_id;
use myloware_core::project::{Catalog, Persona, ProjectSpec};
use myloware_core::run::Transition;
use myloware_core::wire::{CancelExecution, ExecutionCommand, GraphSpec, RetryExecution, StartExecution};
use myloware_core::{Gate, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::audit::{self, Caller};
use crate::commands;
use crate::error::ApiError;
use crate::notify;
use crate::state::ApiState;
use crate::store::{Artifact, AuditAction, NewCommand, NewGate, NewRun, Run, now};

/// Limits of a run's input (the OpenAPI document states them too).
pub const MAX_TEXT_CHARS: usize = 4000;
pub const MAX_MODIFIERS: usize = 50;
pub const MAX_MODIFIER_CHARS: usize = 200;
/// The text fields of [`RunInput`], at least one of them not blank.
pub const TEXT_FIELDS: [&str; 5] = ["prompt", "title", "subject", "object", "topic"];

/// `POST /v1/runs/start`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunRequest {
    pub project: String,
    pub input: RunInput,
    #[serde(default)]
    pub options: RunOptions,
}

/// What the video is about. At least one text field is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifiers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Hold the run in `pending_workflow` until the workflow gate is approved.
    #[serde(default, rename = "requireWorkflowApproval")]
    pub require_workflow_approval: bool,
    /// Personas to leave out of the project's pipeline (e.g. `["alex"]`:
    /// "skip editing"; Quinn then publishes the first clip). Their gates go too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub skip: Vec<Persona>,
    /// Other options are kept in the payload as given.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl RunInput {
    fn texts(&self) -> [(&'static str, &Option<String>); 5] {
        let [prompt, title, subject, object, topic] = TEXT_FIELDS;
        [
            (prompt, &self.prompt),
            (title, &self.title),
            (subject, &self.subject),
            (object, &self.object),
            (topic, &self.topic),
        ]
    }

    fn validate(&self) -> Result<(), ApiError> {
        self.validate_at(&["body", "input"])
    }

    /// What a start refuses in this input, each error located under `loc`
    /// (`["body", "input"]` for a start's, `["body", "inputs", "2"]` for a
    /// schedule's third).
    pub fn validate_at(&self, loc: &[&str]) -> Result<(), ApiError> {
        fn at<'a>(loc: &[&'a str], field: &'a str) -> Vec<&'a str> {
            loc.iter().copied().chain([field]).collect()
        }
        let mut errors = Vec::new();
        for (field, text) in self.texts() {
            if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
                errors.push(field_error(
                    &at(loc, field),
                    format!("at most {MAX_TEXT_CHARS} characters"),
                ));
            }
        }
        if !self
            .texts()
            .iter()
            .any(|(_, t)| t.as_ref().is_some_and(|t| !t.trim().is_empty()))
        {
            errors.push(field_error(
                loc,
                "at least one of prompt, title, subject, object or topic must be a non-empty string".into(),
            ));
        }
        if self.modifiers.len() > MAX_MODIFIERS {
            errors.push(field_error(
                &at(loc, "modifiers"),
                format!("at most {MAX_MODIFIERS} modifiers"),
            ));
        }
        if self
            .modifiers
            .iter()
            .any(|m| m.trim().is_empty() || m.chars().count() > MAX_MODIFIER_CHARS)
        {
            errors.push(field_error(
                &at(loc, "modifiers"),
                format!("each modifier must be 1 to {MAX_MODIFIER_CHARS} characters"),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

fn field_error(loc: &[&str], msg: String) -> myloware_core::error::FieldError {
    myloware_core::error::FieldError::new(loc, msg, "value_error")
}

/// The projects a run may be started for (the others are conversation only).
pub fn runnable_projects(catalog: &Catalog) -> Vec<&str> {
    catalog
        .projects
        .values()
        .filter(|p| p.is_runnable())
        .map(|p| p.project.as_str())
        .collect()
}

/// The project a run may be started for, or a 422 naming the known ones.
pub fn runnable_project<'a>(state: &'a ApiState, name: &str) -> Result<&'a ProjectSpec, ApiError> {
    let spec = state.catalog.get(name).ok_or_else(|| {
        ApiError::invalid(
            &["body", "project"],
            format!(
                "unknown project {name:?}; known projects: {}",
                state.catalog.names().join(", ")
            ),
        )
    })?;
    if !spec.is_runnable() {
        let runnable = runnable_projects(&state.catalog);
        return Err(ApiError::invalid(
            &["body", "project"],
            format!(
                "project {name:?} is conversation only; runnable projects: {}",
                runnable.join(", ")
            ),
        ));
    }
    Ok(spec)
}

/// The videos a run starts with: the project's fixed ones, pending.
fn initial_videos(spec: &ProjectSpec) -> Vec<Value> {
    spec.specs
        .iter()
        .flat_map(|s| s.videos.iter().enumerate())
        .map(|(index, v)| json!({"index": index, "subject": v.subject, "header": v.header, "status": "pending"}))
        .collect()
}

/// The outcome of a start, as the handler reports it.
pub struct Started {
    pub run: Run,
    /// `None` when the orchestrator acknowledged the start (or none was due).
    pub delivery_error: Option<String>,
}

/// Where a start came from, for who is told of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `POST /v1/runs/start`, or a schedule's firing: the owner (or the
    /// operators) get a notice with the workflow link.
    Api,
    /// A chat turn: Brendan's answer carries the link to the user; only
    /// the operators' webhook gets a notice.
    Chat,
}

/// A start request, checked: its project, its graph (the project's less
/// the skipped personas and their gates), its input, what it is expected
/// to cost (within the spending limits).
pub(crate) struct Plan<'a> {
    pub spec: &'a ProjectSpec,
    pub graph: GraphSpec,
    pub input: Value,
    pub estimate: i64,
}

impl Plan<'_> {
    /// What a workflow gate shows and its approval starts.
    pub fn proposal(&self) -> Value {
        json!({
            "project": self.spec.project,
            "pipeline": self.graph.pipeline,
            "gates": self.graph.hitl_gates,
            "input": self.input,
        })
    }

    /// A run's `result` before any work: the project's videos, pending.
    pub fn initial_result(&self) -> Value {
        json!({
            "videos": initial_videos(self.spec),
            "totalVideos": self.spec.video_count(),
            "renderUrl": null,
            "publishUrls": [],
            "error": null,
        })
    }
}

/// The graph a start of `spec` with `options` runs: the project's, less
/// the personas `options.skip` leaves out (and their gates); a 422 on
/// `options.skip` when what is left is no graph.
pub fn graph_of(spec: &ProjectSpec, options: &RunOptions) -> Result<GraphSpec, ApiError> {
    let mut graph = GraphSpec::for_project(spec);
    graph.pipeline.retain(|persona| !options.skip.contains(persona));
    graph.hitl_gates.retain(|gate| match gate {
        Gate::Ideate => graph.pipeline.contains(&Persona::Iggy),
        Gate::Prepublish => graph.pipeline.contains(&Persona::Quinn),
        Gate::Workflow => true,
    });
    myloware_core::graph::nodes(&graph)
        .map_err(|err| ApiError::invalid(&["body", "options", "skip"], err.to_string()))?;
    Ok(graph)
}

/// Checks `request`: 422 naming the field, or 409 over a spending limit.
pub(crate) async fn plan<'a>(state: &'a ApiState, request: &StartRunRequest) -> Result<Plan<'a>, ApiError> {
    let spec = runnable_project(state, &request.project)?;
    request.input.validate()?;
    let graph = graph_of(spec, &request.options)?;
    let estimate = crate::budget::estimate(state, spec, &graph.pipeline);
    crate::budget::check_start(state, spec, state.config.providers_mode, estimate).await?;
    Ok(Plan {
        spec,
        input: serde_json::to_value(&request.input).expect("input serializes"),
        graph,
        estimate,
    })
}

/// A start that passed every check, ready to be stored: the run and, unless
/// it waits for its workflow gate, its start command.
pub struct PreparedStart {
    pub run: NewRun,
    pub command: Option<NewCommand>,
}

/// Checks a start as `POST /v1/runs/start` does (project, input, skip, the
/// spend limits) and builds its run; `schedule` (the schedule and firing
/// that start it) goes into `payload.metadata.schedule`. Nothing is stored.
/// `started_by`: the credential that asked (`key:<name>`), kept in the
/// run's metadata (`startedBy`): a gate with `selfApproval = false` refuses
/// its approval, whatever `userId` the request named.
pub async fn prepare_start(
    state: &ApiState,
    origin: Origin,
    request: &StartRunRequest,
    schedule: Option<Value>,
    started_by: Option<&str>,
) -> Result<PreparedStart, ApiError> {
    let plan = plan(state, request).await?;
    let Plan {
        spec,
        ref graph,
        ref input,
        estimate,
    } = plan;
    let mode = state.config.providers_mode;
    let videos = initial_videos(spec);
    let awaiting_workflow = request.options.require_workflow_approval;
    let mut metadata = json!({
        "project_spec": spec,
        "providers": {"mode": mode},
    });
    if let Some(by) = started_by {
        metadata["startedBy"] = json!(by);
    }
    if let Some(schedule) = schedule {
        metadata["schedule"] = schedule;
    }
    if awaiting_workflow {
        metadata["workflow_proposal"] = plan.proposal();
    }
    let run_id = new_run_id();
    // The run's root span; the orchestrator's steps are its children (under
    // the chat turn's span when the run came from chat).
    let root = tracing::info_span!(
        "run-graph",
        otel.name = %format!("{}-graph", spec.project),
        run_id = %run_id,
        langsmith.metadata.run_id = %run_id,
        langsmith.span.kind = "chain",
        project = %spec.project,
    );
    let traceparent = myloware_telemetry::trace::traceparent_of(&root);
    drop(root);
    let start = StartExecution {
        run_id: run_id.clone(),
        project: spec.project.clone(),
        graph_spec: graph.clone(),
        project_spec: spec.clone(),
        providers_mode: mode,
        input: input.clone(),
        videos: videos.clone(),
        traceparent,
    };
    if let Some(traceparent) = &start.traceparent {
        // A proposed run starts on approval: it keeps its trace for then.
        metadata["traceparent"] = json!(traceparent);
    }
    let payload = json!({
        "project": spec.project,
        "input": input,
        "options": request.options,
        "user_id": request.options.user_id,
        "graph_spec": graph,
        "metadata": metadata,
    });
    let result = plan.initial_result();
    let command = (!awaiting_workflow).then(|| NewCommand::new(&run_id, ExecutionCommand::Start(Box::new(start))));
    let notice = awaiting_workflow
        .then(|| {
            let link = crate::hitl::mint(state, &run_id, Gate::Workflow);
            let text = format!(
                "Run {run_id} ({}) is proposed and waits for approval at its workflow gate. Approve or reject: {}",
                spec.project, link.approval_url
            );
            let gate = Some((Gate::Workflow, link.approval_url));
            match origin {
                Origin::Api => Some(notify::notice_about(
                    &state.config,
                    &run_id,
                    request.options.user_id.as_deref(),
                    text,
                    gate,
                )),
                Origin::Chat => notify::webhook_notice(&state.config, &run_id, text, gate),
            }
        })
        .flatten();
    let run = NewRun {
        gate: awaiting_workflow.then(|| NewGate {
            run_id: run_id.clone(),
            gate: Gate::Workflow,
            preview: payload["metadata"]["workflow_proposal"].clone(),
        }),
        id: run_id,
        project: spec.project.clone(),
        status: if awaiting_workflow {
            RunStatus::PendingWorkflow
        } else {
            RunStatus::Pending
        },
        user_id: request.options.user_id.clone(),
        payload,
        result,
        created_at: now(),
        estimated_usd_micros: Some(estimate),
        max_active: state.config.budget.max_active_runs,
        notice,
    };
    Ok(PreparedStart { run, command })
}

/// After `prepared` was stored as `run`: logs it and hands its start (if
/// any) to the orchestrator; the command reconciler retries when that fails.
pub async fn hand_over(state: &ApiState, run: Run, prepared: &PreparedStart) -> Started {
    let mode = state.config.providers_mode;
    let estimated_usd = myloware_core::costs::usd(prepared.run.estimated_usd_micros.unwrap_or_default());
    tracing::info!(runId = %run.id, project = %run.project, status = %run.status, mode = %mode, estimated_usd, "run created");
    let delivery_error = match prepared.command {
        None => None,
        Some(_) => commands::deliver_pending(state, &run.id).await.err(),
    };
    Started { run, delivery_error }
}

/// Validates, records the run together with its start command, then hands
/// it to the orchestrator (the command reconciler retries if that fails).
pub async fn start_run(
    state: &ApiState,
    origin: Origin,
    request: StartRunRequest,
    started_by: Option<&str>,
) -> Result<Started, ApiError> {
    let prepared = prepare_start(state, origin, &request, None, started_by).await?;
    let run = state
        .store
        .insert_run_with_command(&prepared.run, prepared.command.as_ref())
        .await?;
    Ok(hand_over(state, run, &prepared).await)
}

/// `POST /v1/runs/{runId}/cancel`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
}

/// Cancels a run that is not yet terminal; 409 otherwise. `caller` is
/// who asked (the credential); the request's `actor` is the caller's own
/// note. Audited, refused or not.
pub async fn cancel_run(
    state: &ApiState,
    run_id: &str,
    request: CancelRequest,
    caller: &Caller,
) -> Result<Run, ApiError> {
    let result = cancel_unaudited(state, run_id, &request, &caller.actor).await;
    let detail = audit::reason_and_note(request.reason.as_deref(), request.actor.as_deref());
    let verdict = audit::verdict(&result, |_| "cancelled".into());
    caller
        .record(state, AuditAction::Cancel, Some(run_id), verdict, detail)
        .await;
    result
}

async fn cancel_unaudited(state: &ApiState, run_id: &str, request: &CancelRequest, by: &str) -> Result<Run, ApiError> {
    // Re-read and retry when another writer moved the run in between.
    for _ in 0..5 {
        let run = state
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| ApiError::not_found("run"))?;
        if run.status.transition_to(RunStatus::Cancelled) != Ok(Transition::Moved) {
            return Err(ApiError::Conflict(format!("run is already {}", run.status)));
        }
        let artifact = Artifact::new(
            run_id,
            "run.cancelled",
            None,
            json!({"reason": request.reason, "by": by, "actor": request.actor, "previousStatus": run.status}),
        );
        // A run held for its workflow gate has no execution to stop.
        let command = (run.status != RunStatus::PendingWorkflow).then(|| {
            NewCommand::new(
                run_id,
                ExecutionCommand::Cancel(CancelExecution {
                    reason: request.reason.clone(),
                }),
            )
        });
        let notice = notify::notice(
            &state.config,
            &run,
            notify::cancelled(&run, request.actor.as_deref().unwrap_or(by), request.reason.as_deref()),
            None,
        );
        if state
            .store
            .transition(
                run_id,
                run.status,
                RunStatus::Cancelled,
                Some(&artifact),
                command.as_ref(),
                Some(&notice),
            )
            .await?
        {
            state.metrics.run_ended(run_id, &run.project, RunStatus::Cancelled);
            tracing::info!(runId = %run_id, %by, actor = ?request.actor, "run cancelled");
            if command.is_some() {
                if let Err(error) = commands::deliver_pending(state, run_id).await {
                    tracing::warn!(runId = %run_id, %error, "orchestrator not told of the cancel yet; will retry");
                }
            }
            return state
                .store
                .get_run(run_id)
                .await?
                .ok_or_else(|| ApiError::not_found("run"));
        }
    }
    Err(ApiError::Conflict("run is changing; retry the cancel".into()))
}

/// Most retries one run may take; past it, start a new run.
pub const MAX_RETRIES: usize = 3;

/// Continues a failed run from the step that failed (the orchestrator
/// keeps every paid call that succeeded). `caller` is who asked; each
/// retry is recorded as a `run.retried` artifact, and every request in the
/// audit. 409 when the run is not failed, never reached the orchestrator,
/// or is out of retries.
pub async fn retry_run(state: &ApiState, run_id: &str, caller: &Caller) -> Result<Run, ApiError> {
    let result = retry_unaudited(state, run_id, &caller.actor).await;
    let verdict = audit::verdict(&result, |(_, attempt)| format!("retried (attempt {attempt})"));
    caller
        .record(state, AuditAction::Retry, Some(run_id), verdict, None)
        .await;
    result.map(|(run, _)| run)
}

/// The run retried and the retry's number.
async fn retry_unaudited(state: &ApiState, run_id: &str, by: &str) -> Result<(Run, u32), ApiError> {
    let run = state
        .store
        .get_run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    if run.status != RunStatus::Failed {
        return Err(ApiError::Conflict(format!(
            "run is {}; only a failed run can be retried",
            run.status
        )));
    }
    if run.last_event_seq == 0 {
        return Err(ApiError::Conflict(
            "the run failed before the orchestrator took it; start a new run".into(),
        ));
    }
    let earlier = state
        .store
        .list_artifacts(run_id)
        .await?
        .iter()
        .filter(|artifact| artifact.kind == RETRIED)
        .count();
    if earlier >= MAX_RETRIES {
        return Err(ApiError::Conflict(format!(
            "run was retried {earlier} times, the most allowed; start a new run"
        )));
    }
    let attempt = earlier as u32 + 1;
    let mut result = run.result.clone();
    let error = result.as_object_mut().and_then(|result| result.remove("error"));
    let artifact = Artifact::new(
        run_id,
        RETRIED,
        None,
        json!({"attempt": attempt, "by": by, "error": error}),
    );
    let command = NewCommand::new(
        run_id,
        ExecutionCommand::Retry(RetryExecution {
            attempt,
            by: by.to_string(),
        }),
    );
    if !state.store.retry_run(run_id, &result, &artifact, &command).await? {
        return Err(ApiError::Conflict("run is changing; retry again".into()));
    }
    tracing::info!(runId = %run_id, %by, attempt, "run retried");
    if let Err(error) = commands::deliver_pending(state, run_id).await {
        tracing::warn!(runId = %run_id, %error, "orchestrator not told of the retry yet; will retry");
    }
    let run = state
        .store
        .get_run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok((run, attempt))
}

/// The artifact of each retry: `{attempt, by, error}` (the error it retried).
pub const RETRIED: &str = "run.retried";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_needs_one_non_empty_text() {
        assert!(RunInput::default().validate().is_err());
        let blank = RunInput {
            prompt: Some("  ".into()),
            ..Default::default()
        };
        assert!(blank.validate().is_err());
        let ok = RunInput {
            topic: Some("candles".into()),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
    }
}
