//! `GET /v1/projects` and `GET /v1/projects/{project}`.

use axum::Json;
use axum::extract::{Path, State};
use myloware_core::auth::Permission;
use myloware_core::project::{Persona, ProjectSpec, VideoSpecs};
use myloware_core::providers::Provider;
use myloware_core::{ErrorBody, Gate};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::ApiState;

/// The catalog, for any key.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    super::with_key(
        state,
        Permission::Read,
        OpenApiRouter::new()
            .routes(routes!(list_projects))
            .routes(routes!(get_project)),
    )
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSummary {
    project: String,
    title: String,
    description: String,
    gates: Vec<Gate>,
    video_count: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectList {
    projects: Vec<ProjectSummary>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDetail {
    project: String,
    title: String,
    description: String,
    workflow: Vec<Persona>,
    hitl_points: Vec<String>,
    gates: Vec<Gate>,
    specs: Option<VideoSpecs>,
    /// `{"mode": "mock"|"live", "kieai": {"host", "configured"}, "shotstack": ..., "uploadPost": ...}`
    #[schema(value_type = Object)]
    providers: Value,
}

/// Every project.
#[utoipa::path(get, path = "/v1/projects", tag = "projects", security(("api_key" = [])),
    responses((status = 200, body = ProjectList), (status = 401, body = ErrorBody)))]
pub async fn list_projects(State(state): State<ApiState>) -> Json<ProjectList> {
    let projects = state
        .catalog
        .projects
        .values()
        .map(|p| ProjectSummary {
            project: p.project.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            gates: p.gates(),
            video_count: p.video_count(),
        })
        .collect();
    Json(ProjectList { projects })
}

/// One project, with the providers its runs would use now.
#[utoipa::path(get, path = "/v1/projects/{project}", tag = "projects", security(("api_key" = [])),
    params(("project" = String, Path, description = "Project slug, e.g. test_video_gen")),
    responses((status = 200, body = ProjectDetail), (status = 400, description = "Malformed path", body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_project(
    State(state): State<ApiState>,
    Path(project): Path<String>,
) -> Result<Json<ProjectDetail>, ApiError> {
    let spec: &ProjectSpec = state
        .catalog
        .get(&project)
        .ok_or_else(|| ApiError::not_found("project"))?;
    Ok(Json(ProjectDetail {
        project: spec.project.clone(),
        title: spec.title.clone(),
        description: spec.description.clone(),
        workflow: spec.workflow.clone(),
        hitl_points: spec.hitl_points.clone(),
        gates: spec.gates(),
        specs: spec.specs.clone(),
        providers: providers_block(&state),
    }))
}

/// The mode new runs get, and per provider the host a live call would
/// reach and whether its secrets are set.
fn providers_block(state: &ApiState) -> Value {
    let mut block = Map::new();
    block.insert("mode".into(), json!(state.config.providers_mode));
    for provider in Provider::ALL {
        block.insert(
            provider.key().into(),
            json!({
                "host": state.config.providers.endpoint(provider).host(),
                "configured": state.config.providers.is_configured(provider),
            }),
        );
    }
    Value::Object(block)
}
