//! Editing a proposal before its workflow gate is decided: the project,
//! the input or the options of a `pending_workflow` run change, checked as
//! a start is (the same 422s, the spending limits); the proposal before and
//! who changed it stay in the run's history (a `proposal.edited` artifact),
//! and every attempt in the audit.
//! The approval link already handed out stays valid and approves the new
//! proposal.

use myloware_core::RunStatus;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{self, Caller};
use crate::error::ApiError;
use crate::runs::{self, RunInput, RunOptions, StartRunRequest};
use crate::state::ApiState;
use crate::store::{Artifact, AuditAction, ProposalEdit, Run};

/// Edits one proposal may take (each keeps the one before in the history).
pub const MAX_EDITS: usize = 20;

/// `PATCH /v1/runs/{runId}/proposal`: what changes (at least one field).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct ProposalPatch {
    /// Another runnable project.
    #[serde(default)]
    #[schema(nullable = false)]
    pub project: Option<String>,
    /// Replaces the input as a whole.
    #[serde(default)]
    #[schema(nullable = false)]
    pub input: Option<RunInput>,
    /// Replaces the options as a whole (`skip` and the rest); the run's
    /// owner stays, and it stays a proposal.
    #[serde(default)]
    #[schema(nullable = false)]
    pub options: Option<RunOptions>,
}

/// Applies `patch` to proposal `run_id` on behalf of `caller`; the run
/// after. Audited (with the fields it changed), refused or not.
pub async fn edit(state: &ApiState, run_id: &str, patch: ProposalPatch, caller: &Caller) -> Result<Run, ApiError> {
    let changed: Vec<&str> = [
        ("project", patch.project.is_some()),
        ("input", patch.input.is_some()),
        ("options", patch.options.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect();
    let detail = json!({"changed": changed});
    let result = edit_unaudited(state, run_id, patch, &caller.actor).await;
    let verdict = audit::verdict(&result, |_| "edited".into());
    caller
        .record(state, AuditAction::EditProposal, Some(run_id), verdict, Some(detail))
        .await;
    result
}

async fn edit_unaudited(state: &ApiState, run_id: &str, patch: ProposalPatch, by: &str) -> Result<Run, ApiError> {
    if patch.project.is_none() && patch.input.is_none() && patch.options.is_none() {
        return Err(ApiError::invalid(
            &["body"],
            "name at least one of project, input, options",
        ));
    }
    let run = state
        .store
        .get_run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    if run.status != RunStatus::PendingWorkflow {
        return Err(ApiError::Conflict(format!(
            "only a proposal (pending_workflow) can be edited; the run is {}",
            run.status
        )));
    }
    let artifacts = state.store.list_artifacts(run_id).await?;
    if artifacts.iter().filter(|a| a.kind == "proposal.edited").count() >= MAX_EDITS {
        return Err(ApiError::Conflict(format!(
            "a proposal can be edited {MAX_EDITS} times; cancel it and propose again"
        )));
    }
    let current = current_request(&run)?;
    let mut options = patch.options.unwrap_or(current.options);
    options.user_id = run.user_id.clone();
    options.require_workflow_approval = true;
    let request = StartRunRequest {
        project: patch.project.unwrap_or(current.project),
        input: patch.input.unwrap_or(current.input),
        options,
    };
    let plan = runs::plan(state, &request).await?;
    let proposal = plan.proposal();
    let mut payload = run.payload.clone();
    payload["project"] = json!(plan.spec.project);
    payload["input"] = plan.input.clone();
    payload["options"] = serde_json::to_value(&request.options).expect("options serialize");
    payload["graph_spec"] = serde_json::to_value(&plan.graph).expect("a graph serializes");
    payload["metadata"]["project_spec"] = serde_json::to_value(plan.spec).expect("a spec serializes");
    payload["metadata"]["workflow_proposal"] = proposal.clone();
    let previous = run.payload["metadata"]["workflow_proposal"].clone();
    let edit = ProposalEdit {
        run_id: run.id.clone(),
        project: plan.spec.project.clone(),
        payload,
        result: plan.initial_result(),
        estimated_usd_micros: plan.estimate,
        preview: proposal.clone(),
        artifact: Artifact::new(
            &run.id,
            "proposal.edited",
            None,
            json!({"by": by, "previous": previous, "proposal": proposal}),
        ),
    };
    if !state.store.edit_proposal(&edit).await? {
        return Err(ApiError::Conflict(
            "the proposal was decided or cancelled meanwhile; it can no longer be edited".into(),
        ));
    }
    tracing::info!(runId = %run.id, %by, project = %edit.project, "proposal edited");
    state
        .store
        .get_run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))
}

/// The start request a proposal was made from.
fn current_request(run: &Run) -> Result<StartRunRequest, ApiError> {
    let unreadable = |what: &str, err: serde_json::Error| {
        ApiError::Conflict(format!(
            "the stored proposal's {what} cannot be read ({err}); cancel it and start again"
        ))
    };
    let options: RunOptions =
        serde_json::from_value(run.payload["options"].clone()).map_err(|e| unreadable("options", e))?;
    let input: RunInput = serde_json::from_value(run.payload["input"].clone()).map_err(|e| unreadable("input", e))?;
    Ok(StartRunRequest {
        project: run.project.clone(),
        input,
        options,
    })
}

/// The answer of an edit: the proposal as it is now.
pub fn view(run: &Run) -> Value {
    json!({
        "runId": run.id,
        "status": run.status,
        "proposal": run.payload["metadata"]["workflow_proposal"],
    })
}
