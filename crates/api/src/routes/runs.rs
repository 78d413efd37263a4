//! `/v1/runs`: start, list, read, artifacts, cancel, retry, edit a proposal.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use myloware_core::auth::Permission;
use myloware_core::project::Persona;
use myloware_core::{ErrorBody, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging;
use crate::audit::Caller;
use crate::error::{ApiError, OptionalJson, ValidJson};
use crate::middleware::{ClientId, LimitedRoute};
use crate::proposals::{self, ProposalPatch};
use crate::runs::{self, CancelRequest, StartRunRequest};
use crate::state::ApiState;
use crate::store::{Artifact, RawArtifact, RawJson, Run, RunQuery};

/// Reading runs for any key; starting, cancelling, retrying them and editing
/// proposals with Operate.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let read = OpenApiRouter::new()
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(list_artifacts));
    let operate = OpenApiRouter::new()
        .routes(routes!(start_run))
        .routes(routes!(cancel_run))
        .routes(routes!(retry_run))
        .routes(routes!(edit_proposal));
    super::with_key(state, Permission::Read, read).merge(super::with_key(state, Permission::Operate, operate))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactView {
    id: String,
    kind: String,
    persona: Option<String>,
    #[schema(value_type = Object)]
    data: RawJson,
    created_at: DateTime<Utc>,
}

impl From<Artifact> for ArtifactView {
    fn from(a: Artifact) -> Self {
        RawArtifact {
            id: a.id,
            kind: a.kind,
            persona: a.persona,
            data: serde_json::value::to_raw_value(&a.data).expect("a JSON value serializes"),
            created_at: a.created_at,
        }
        .into()
    }
}

impl From<RawArtifact> for ArtifactView {
    fn from(a: RawArtifact) -> Self {
        ArtifactView {
            id: a.id,
            kind: a.kind,
            persona: a.persona,
            data: a.data,
            created_at: a.created_at,
        }
    }
}

/// A run with everything known about it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    run_id: String,
    project: String,
    status: RunStatus,
    current_persona: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// `project`, `input`, `options`, `user_id`, `graph_spec`, `metadata`.
    #[schema(value_type = Object)]
    payload: RawJson,
    /// `videos`, `totalVideos`, `renderUrl`, `publishUrls`, `error`.
    #[schema(value_type = Object)]
    result: RawJson,
    #[schema(value_type = Vec<Object>)]
    gates: Vec<Value>,
    artifacts: Vec<ArtifactView>,
    cost: crate::costs::RunCost,
    /// Changes requested at the run's gates, with what each cost.
    revisions: Vec<crate::hitl::RevisionView>,
}

/// A run in a list.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    run_id: String,
    project: String,
    status: RunStatus,
    current_persona: Option<String>,
    user_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Run> for RunSummary {
    fn from(run: Run) -> Self {
        RunSummary {
            run_id: run.id,
            project: run.project,
            status: run.status,
            current_persona: run.current_persona,
            user_id: run.user_id,
            created_at: run.created_at,
            updated_at: run.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunList {
    runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    run_id: String,
    status: RunStatus,
    /// Present when the orchestrator has not taken the run yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ArtifactList {
    artifacts: Vec<ArtifactView>,
}

/// Creates a run and starts it (or holds it for the workflow gate).
#[utoipa::path(post, path = "/v1/runs/start", tag = "runs", security(("api_key" = [])),
    request_body = StartRunRequest,
    responses(
        (status = 201, description = "Recorded and accepted by the orchestrator", body = RunStarted),
        (status = 202, description = "Recorded; the orchestrator was unreachable and the start will be retried", body = RunStarted),
        (status = 409, description = "A spend limit has less left than the run's estimate, or MAX_ACTIVE_RUNS runs are active (the detail names the limit and the numbers); nothing was stored", body = ErrorBody),
        (status = 422, description = "Unknown project, no text input, or a malformed body"),
        (status = 429, description = "Too many starts from this client", body = ErrorBody),
    ))]
pub async fn start_run(
    State(state): State<ApiState>,
    ClientId(client): ClientId,
    caller: Caller,
    ValidJson(request): ValidJson<StartRunRequest>,
) -> Result<Response, ApiError> {
    state.limiter.check(LimitedRoute::RunStart, &client)?;
    let started = runs::start_run(&state, runs::Origin::Api, request, Some(&caller.actor)).await?;
    let (status, detail) = match started.delivery_error {
        None => (StatusCode::CREATED, None),
        Some(error) => (
            StatusCode::ACCEPTED,
            Some(format!(
                "run recorded; the orchestrator has not accepted it yet ({error}); it will be started when the orchestrator is reachable"
            )),
        ),
    };
    let label = myloware_telemetry::RunLabel(started.run.id.clone());
    let body = RunStarted {
        run_id: started.run.id,
        status: started.run.status,
        detail,
    };
    Ok((status, axum::Extension(label), Json(body)).into_response())
}

/// Most runs in one page of `GET /v1/runs`.
const MAX_RUNS_PAGE: u32 = 100;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only runs in this status.
    status: Option<String>,
    /// Only runs of this project.
    project: Option<String>,
    /// Only runs started for this user (`options.user_id`, or chat).
    user_id: Option<String>,
    /// Page size, 1 to 100 (default 20). Read as text so that a value
    /// that is not a number gets the same 422 as one out of range.
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", security(("api_key" = [])), params(ListParams),
    responses((status = 200, body = RunList), (status = 400, description = "Malformed query (e.g. a parameter given twice)", body = ErrorBody), (status = 422, description = "Bad filter")))]
pub async fn list_runs(
    State(state): State<ApiState>,
    Query(params): Query<ListParams>,
) -> Result<Json<RunList>, ApiError> {
    let status = params
        .status
        .map(|s| s.parse::<RunStatus>())
        .transpose()
        .map_err(|err| ApiError::invalid(&["query", "status"], err.to_string()))?;
    let limit = paging::limit(params.limit.as_deref(), 20, MAX_RUNS_PAGE)?;
    let before = paging::cursor(params.cursor.as_deref())?;
    let runs = state
        .store
        .list_runs(&RunQuery {
            status,
            project: params.project,
            before,
            user_id: params.user_id,
            limit: limit + 1,
            ..RunQuery::default()
        })
        .await?;
    let (runs, next_cursor) = paging::page(runs, limit, |run| run.seq);
    Ok(Json(RunList {
        runs: runs.into_iter().map(RunSummary::from).collect(),
        next_cursor,
    }))
}

/// 404 unless `run_id` names a run (checked without reading it).
pub(crate) async fn require_run(state: &ApiState, run_id: &str) -> Result<(), ApiError> {
    if myloware_core::ids::is_run_id(run_id) && state.store.run_exists(run_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("run"))
    }
}

/// One run, with its gates, artifacts and cost.
#[utoipa::path(get, path = "/v1/runs/{runId}", tag = "runs", security(("api_key" = [])),
    params(("runId" = String, Path, description = "e.g. run_abc123def456")),
    responses((status = 200, body = RunView), (status = 400, description = "Malformed path", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_run(State(state): State<ApiState>, Path(run_id): Path<String>) -> Result<Json<RunView>, ApiError> {
    if !myloware_core::ids::is_run_id(&run_id) {
        return Err(ApiError::not_found("run"));
    }
    let run = state
        .store
        .get_run_details(&run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    let revisions = crate::hitl::revisions(&state, &run.id, &run.artifacts).await?;
    let gates = run
        .gates
        .iter()
        .map(|g| crate::hitl::gate_view(g, &crate::hitl::policy(&state, &run.project, g.gate)))
        .collect();
    Ok(Json(RunView {
        run_id: run.id,
        project: run.project,
        status: run.status,
        current_persona: run.current_persona,
        created_at: run.created_at,
        updated_at: run.updated_at,
        payload: run.payload,
        result: run.result,
        gates,
        artifacts: run.artifacts.into_iter().map(ArtifactView::from).collect(),
        cost: crate::costs::RunCost::new(run.estimated_usd_micros, run.mode.as_deref(), &run.spent),
        revisions,
    }))
}

/// A run's artifacts in creation order.
#[utoipa::path(get, path = "/v1/runs/{runId}/artifacts", tag = "runs", security(("api_key" = [])),
    params(("runId" = String, Path)),
    responses((status = 200, body = ArtifactList), (status = 400, description = "Malformed path", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_artifacts(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
) -> Result<Json<ArtifactList>, ApiError> {
    require_run(&state, &run_id).await?;
    let artifacts = state.store.list_artifacts(&run_id).await?;
    Ok(Json(ArtifactList {
        artifacts: artifacts.into_iter().map(ArtifactView::from).collect(),
    }))
}

/// Stops a run; 409 when it already ended.
#[utoipa::path(post, path = "/v1/runs/{runId}/cancel", tag = "runs", security(("api_key" = [])),
    params(("runId" = String, Path)), request_body(content = CancelRequest, description = "Optional"),
    responses(
        (status = 200, description = "Cancelled", body = RunStatusAnswer),
        (status = 400, description = "Malformed path", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ))]
pub async fn cancel_run(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
    caller: Caller,
    OptionalJson(request): OptionalJson<CancelRequest>,
) -> Result<Json<RunStatusAnswer>, ApiError> {
    let run = runs::cancel_run(&state, &run_id, request, &caller).await?;
    Ok(Json(RunStatusAnswer {
        run_id: run.id,
        status: run.status,
    }))
}

/// Changes a proposal (`pending_workflow`) before its workflow gate is
/// decided: its project, input or options, checked as a start is. The
/// proposal before stays in the run's history (`proposal.edited`).
#[utoipa::path(patch, path = "/v1/runs/{runId}/proposal", tag = "runs", security(("api_key" = [])),
    params(("runId" = String, Path)), request_body = ProposalPatch,
    responses(
        (status = 200, description = "Edited: `{runId, status, proposal: {project, pipeline, gates, input}}`"),
        (status = 400, description = "Malformed path", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not a proposal (decided, cancelled), edited 20 times already, or over a spending limit", body = ErrorBody),
        (status = 413, description = "Body over MAX_BODY_BYTES", body = ErrorBody),
        (status = 422, description = "No field to change, an unknown or conversation-only project, no text input, an invalid skip, or a malformed body"),
    ))]
pub async fn edit_proposal(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
    caller: Caller,
    ValidJson(patch): ValidJson<ProposalPatch>,
) -> Result<Json<Value>, ApiError> {
    let run = proposals::edit(&state, &run_id, patch, &caller).await?;
    Ok(Json(proposals::view(&run)))
}

/// Continues a failed run from the step that failed: paid calls that
/// succeeded are never made again. At most three retries per run.
#[utoipa::path(post, path = "/v1/runs/{runId}/retry", tag = "runs", security(("api_key" = [])),
    params(("runId" = String, Path)),
    responses(
        (status = 200, description = "Retried: the run is `running` again", body = RunStatusAnswer),
        (status = 400, description = "Malformed path", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not failed, never started, or out of retries", body = ErrorBody),
    ))]
pub async fn retry_run(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
    caller: Caller,
) -> Result<Json<RunStatusAnswer>, ApiError> {
    let run = runs::retry_run(&state, &run_id, &caller).await?;
    Ok(Json(RunStatusAnswer {
        run_id: run.id,
        status: run.status,
    }))
}

/// A run's id and status after a change.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStatusAnswer {
    run_id: String,
    status: RunStatus,
}

/// What the start and list handlers check that the derived schemas do not
/// say: the runnable projects (from the catalog), the input's lengths and
/// its one required text, which personas may be skipped, the free-form
/// options, and the list's filters.
pub(crate) fn refine_schema(doc: &mut Value, state: &ApiState) {
    use super::schema::{NOT_BLANK, NUL_FREE};
    use crate::runs::{MAX_MODIFIER_CHARS, MAX_MODIFIERS, MAX_TEXT_CHARS, TEXT_FIELDS};
    let runnable = crate::runs::runnable_projects(&state.catalog);
    let schemas = &mut doc["components"]["schemas"];
    schemas["StartRunRequest"]["properties"]["project"] = json!({
        "type": "string",
        "enum": runnable,
        "description": "A runnable project of the catalog (`GET /v1/projects`; conversation-only projects cannot be run)",
    });
    let input = &mut schemas["RunInput"];
    for field in TEXT_FIELDS {
        input["properties"][field]["maxLength"] = json!(MAX_TEXT_CHARS);
    }
    input["anyOf"] = TEXT_FIELDS
        .iter()
        .map(|field| json!({"required": [field], "properties": {*field: {"type": "string", "pattern": NOT_BLANK}}}))
        .collect();
    input["properties"]["modifiers"] = json!({
        "type": "array",
        "maxItems": MAX_MODIFIERS,
        "items": {"type": "string", "minLength": 1, "maxLength": MAX_MODIFIER_CHARS, "pattern": NOT_BLANK},
    });
    let options = &schemas["RunOptions"]["allOf"];
    let mut properties = options[1]["properties"].clone();
    // The pipeline must stay a graph (`myloware_core::graph::nodes`): alex
    // and quinn need riley's clips. Riley may still be left out together
    // with both; the schema keeps to the simple rule.
    let skippable: Vec<&str> = Persona::ALL
        .iter()
        .filter(|p| **p != Persona::Riley)
        .map(|p| p.as_str())
        .collect();
    properties["skip"]["items"] = json!({"type": "string", "enum": skippable});
    properties["skip"]["description"] = json!(
        "Personas to leave out of the project's pipeline (e.g. `[\"alex\"]`: \"skip editing\"; Quinn then publishes the first clip). Their gates go too. Riley can be left out only together with Alex and Quinn (`[\"riley\", \"alex\", \"quinn\"]`); any other skip of riley is a 422."
    );
    schemas["RunOptions"] = json!({
        "type": "object",
        "description": options[0]["description"],
        "properties": properties,
        "propertyNames": {"pattern": NUL_FREE},
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
    });
    super::schema::operation(doc, "post", "/v1/runs/{runId}/cancel")["requestBody"]["required"] = json!(false);
    // A run id's shape (`myloware_core::ids::is_run_id`); any other is a 404.
    for item in doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
    {
        for operation in item.as_object_mut().into_iter().flat_map(|item| item.values_mut()) {
            for parameter in operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if parameter["in"] == "path" && parameter["name"] == "runId" {
                    parameter["schema"] = json!({"type": "string", "pattern": "^run_[a-z0-9_]{1,64}$"});
                }
            }
        }
    }
    let statuses: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
    if let Some(parameters) = super::schema::operation(doc, "get", "/v1/runs")["parameters"].as_array_mut() {
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap_or_default();
            let schema = match name {
                "status" => json!({"type": "string", "enum": statuses}),
                _ => match paging::schema(name, MAX_RUNS_PAGE) {
                    Some(schema) => schema,
                    None => continue,
                },
            };
            parameter["schema"] = schema;
        }
    }
}
