//! `/v1/schedules`: runs started on a calendar (`crate::schedules`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use myloware_core::ErrorBody;
use myloware_core::auth::{Permission, Principal};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ValidJson};
use crate::middleware::{ClientId, LimitedRoute};
use crate::schedules::{self, CreateScheduleRequest};
use crate::state::ApiState;
use crate::store::{Firing, FiringOutcome, Schedule, ScheduleQuery, ScheduleStatus};

/// Firings shown with a schedule (the latest).
const FIRINGS_SHOWN: u32 = 20;

/// Reading schedules for any key; creating, pausing, resuming and deleting
/// them with Operate, as starting runs.
pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let read = OpenApiRouter::new()
        .routes(routes!(list_schedules))
        .routes(routes!(get_schedule));
    let operate = OpenApiRouter::new()
        .routes(routes!(create_schedule))
        .routes(routes!(delete_schedule))
        .routes(routes!(pause_schedule))
        .routes(routes!(resume_schedule));
    super::with_key(state, Permission::Read, read).merge(super::with_key(state, Permission::Operate, operate))
}

/// A schedule.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    id: String,
    project: String,
    cron: String,
    timezone: String,
    /// The runs' inputs, taken in turn (a list of one for `input`).
    #[schema(value_type = Vec<Object>)]
    inputs: Vec<Value>,
    /// The runs' options.
    #[schema(value_type = Object)]
    options: Value,
    /// `active` or `paused`.
    #[schema(value_type = String)]
    status: ScheduleStatus,
    /// The next firing time; null while paused.
    next_fire_at: Option<DateTime<Utc>>,
    /// Index in `inputs` of the next run's input.
    next_input: i64,
    /// The key that created it (`key:<name>`).
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The latest firings, newest first (`GET /v1/schedules/{scheduleId}`,
    /// pause and resume; not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    firings: Option<Vec<FiringView>>,
}

impl From<Schedule> for ScheduleView {
    fn from(schedule: Schedule) -> ScheduleView {
        ScheduleView {
            id: schedule.id,
            project: schedule.project,
            cron: schedule.cron,
            timezone: schedule.timezone,
            inputs: schedule.inputs,
            options: schedule.options,
            status: schedule.status,
            next_fire_at: schedule.next_fire_at,
            next_input: schedule.next_input,
            created_by: schedule.created_by,
            created_at: schedule.created_at,
            updated_at: schedule.updated_at,
            firings: None,
        }
    }
}

/// One firing: the run it started, or why none was.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FiringView {
    /// The firing time.
    fire_at: DateTime<Utc>,
    /// When it was handled (later than `fireAt` when no API ran then).
    fired_at: DateTime<Utc>,
    /// `started` or `refused`.
    #[schema(value_type = String)]
    outcome: FiringOutcome,
    run_id: Option<String>,
    /// Why it was refused (a spend limit, `MAX_ACTIVE_RUNS`, …).
    reason: Option<String>,
    /// Later firing times missed while no API ran, started with this one.
    skipped: i64,
}

impl From<Firing> for FiringView {
    fn from(firing: Firing) -> FiringView {
        FiringView {
            fire_at: firing.fire_at,
            fired_at: firing.fired_at,
            outcome: firing.outcome,
            run_id: firing.run_id,
            reason: firing.reason,
            skipped: firing.skipped,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleList {
    schedules: Vec<ScheduleView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

/// A change of schedules by `key` from `client`: within the client's rate
/// limit; who asked, as recorded (`key:<name>`).
fn change_by(state: &ApiState, client: &str, key: &Principal) -> Result<String, ApiError> {
    state.limiter.check(LimitedRoute::Schedule, client)?;
    Ok(format!("key:{}", key.name))
}

/// The schedule `id` with its latest firings. The firings are read first:
/// a firing is recorded with its claim, so the schedule read after them
/// shows at least the next time they left it at.
async fn with_firings(state: &ApiState, id: &str) -> Result<ScheduleView, ApiError> {
    let firings = match myloware_core::ids::is_schedule_id(id) {
        true => state.store.list_firings(id, FIRINGS_SHOWN).await?,
        false => Vec::new(),
    };
    let mut view = ScheduleView::from(schedules::get(state, id).await?);
    view.firings = Some(firings.into_iter().map(FiringView::from).collect());
    Ok(view)
}

/// Creates a schedule: from its next time on, each firing starts a run as
/// `POST /v1/runs/start` would.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", security(("api_key" = [])),
    request_body = CreateScheduleRequest,
    responses(
        (status = 201, description = "Created; `nextFireAt` is its first firing", body = ScheduleView),
        (status = 409, description = "1000 schedules exist already; nothing was stored", body = ErrorBody),
        (status = 422, description = "Unknown project, a bad cron pattern or time zone, both or neither of input and inputs, an input or options a start would refuse, or a malformed body; every field at fault is named and nothing was stored"),
        (status = 429, description = "Too many schedule changes from this client", body = ErrorBody),
    ))]
pub async fn create_schedule(
    State(state): State<ApiState>,
    ClientId(client): ClientId,
    Extension(key): Extension<Principal>,
    ValidJson(request): ValidJson<CreateScheduleRequest>,
) -> Result<Response, ApiError> {
    let by = change_by(&state, &client, &key)?;
    let schedule = schedules::create(&state, request, &by).await?;
    let view = with_firings(&state, &schedule.id).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only schedules of this project.
    project: Option<String>,
    /// Only `active` or only `paused` schedules.
    status: Option<String>,
    /// Page size, 1 to 100 (default 20).
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// Schedules, newest first.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", security(("api_key" = [])), params(ListParams),
    responses((status = 200, body = ScheduleList), (status = 400, description = "Malformed query (e.g. a parameter given twice)", body = ErrorBody), (status = 422, description = "Bad filter")))]
pub async fn list_schedules(
    State(state): State<ApiState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ScheduleList>, ApiError> {
    let status = params
        .status
        .map(|s| s.parse::<ScheduleStatus>())
        .transpose()
        .map_err(|err| ApiError::invalid(&["query", "status"], err))?;
    let limit = super::paging::limit(params.limit.as_deref(), 20, 100)?;
    let before = super::paging::cursor(params.cursor.as_deref())?;
    let schedules = state
        .store
        .list_schedules(&ScheduleQuery {
            project: params.project,
            status,
            before,
            limit: limit + 1,
        })
        .await?;
    let (schedules, next_cursor) = super::paging::page(schedules, limit, |schedule| schedule.seq);
    Ok(Json(ScheduleList {
        schedules: schedules.into_iter().map(ScheduleView::from).collect(),
        next_cursor,
    }))
}

/// One schedule, with its latest firings.
#[utoipa::path(get, path = "/v1/schedules/{scheduleId}", tag = "schedules", security(("api_key" = [])),
    params(("scheduleId" = String, Path, description = "e.g. sch_abc123def456")),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn get_schedule(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(with_firings(&state, &id).await?))
}

/// Deletes a schedule and its firings; the runs it started stay.
#[utoipa::path(delete, path = "/v1/schedules/{scheduleId}", tag = "schedules", security(("api_key" = [])),
    params(("scheduleId" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Too many schedule changes from this client", body = ErrorBody),
    ))]
pub async fn delete_schedule(
    State(state): State<ApiState>,
    ClientId(client): ClientId,
    Extension(key): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    schedules::delete(&state, &id, &change_by(&state, &client, &key)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops a schedule from firing; pausing a paused one changes nothing.
#[utoipa::path(post, path = "/v1/schedules/{scheduleId}/pause", tag = "schedules", security(("api_key" = [])),
    params(("scheduleId" = String, Path)),
    responses(
        (status = 200, description = "Paused: `nextFireAt` is null", body = ScheduleView),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Too many schedule changes from this client", body = ErrorBody),
    ))]
pub async fn pause_schedule(
    State(state): State<ApiState>,
    ClientId(client): ClientId,
    Extension(key): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = schedules::pause(&state, &id, &change_by(&state, &client, &key)?).await?;
    Ok(Json(with_firings(&state, &schedule.id).await?))
}

/// Makes a paused schedule fire again from its next time after now (times
/// passed while it was paused are not made up for); resuming an active one
/// changes nothing.
#[utoipa::path(post, path = "/v1/schedules/{scheduleId}/resume", tag = "schedules", security(("api_key" = [])),
    params(("scheduleId" = String, Path)),
    responses(
        (status = 200, description = "Active again, next at `nextFireAt`", body = ScheduleView),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Too many schedule changes from this client", body = ErrorBody),
    ))]
pub async fn resume_schedule(
    State(state): State<ApiState>,
    ClientId(client): ClientId,
    Extension(key): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = schedules::resume(&state, &id, &change_by(&state, &client, &key)?).await?;
    Ok(Json(with_firings(&state, &schedule.id).await?))
}

/// A cron pattern of the documented grammar's common subset that always
/// fires: each field `*`, `*/step` or one value in range (days of the
/// month up to 28, which every month has); the server accepts lists,
/// ranges, names and nicknames too.
fn cron_pattern() -> String {
    let field = |value: &str| format!("(?:\\*(?:/[1-9][0-9]?)?|{value})");
    let sixty = "[1-5]?[0-9]";
    format!(
        "^(?:{} )?{} {} {} {} {}$",
        field(sixty),
        field(sixty),
        field("1?[0-9]|2[0-3]"),
        field("[1-9]|1[0-9]|2[0-8]"),
        field("[1-9]|1[0-2]"),
        field("[0-7]")
    )
}

/// What the create and list handlers check that the derived schemas do
/// not say: the runnable projects, the pattern, the time zones, input or
/// inputs (one of them), the list's filters and the id's shape.
pub(crate) fn refine_schema(doc: &mut Value, state: &ApiState) {
    let runnable = crate::runs::runnable_projects(&state.catalog);
    let zones: Vec<&str> = myloware_core::schedule::time_zones().collect();
    let request = &mut doc["components"]["schemas"]["CreateScheduleRequest"];
    request["properties"]["project"] = json!({
        "type": "string",
        "enum": runnable,
        "description": "A runnable project of the catalog (`GET /v1/projects`)",
    });
    request["properties"]["cron"]["pattern"] = json!(cron_pattern());
    request["properties"]["cron"]["maxLength"] = json!(myloware_core::schedule::MAX_CRON_CHARS);
    request["properties"]["timezone"]["enum"] = json!(zones);
    request["properties"]["input"] = json!({"$ref": "#/components/schemas/RunInput"});
    request["properties"]["inputs"] = json!({
        "type": "array",
        "minItems": 1,
        "maxItems": schedules::MAX_INPUTS,
        "items": {"$ref": "#/components/schemas/RunInput"},
        "description": request["properties"]["inputs"]["description"],
    });
    request["oneOf"] = json!([{"required": ["input"]}, {"required": ["inputs"]}]);
    for method in ["get", "delete"] {
        set_id_pattern(super::schema::operation(doc, method, "/v1/schedules/{scheduleId}"));
    }
    for action in ["pause", "resume"] {
        set_id_pattern(super::schema::operation(
            doc,
            "post",
            &format!("/v1/schedules/{{scheduleId}}/{action}"),
        ));
    }
    let statuses: Vec<&str> = ScheduleStatus::ALL.iter().map(|s| s.as_str()).collect();
    if let Some(parameters) = super::schema::operation(doc, "get", "/v1/schedules")["parameters"].as_array_mut() {
        for parameter in parameters {
            let schema = match parameter["name"].as_str() {
                Some("status") => json!({"type": "string", "enum": statuses}),
                Some("limit") => json!({"type": "integer", "minimum": 1, "maximum": 100}),
                Some("cursor") => json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}),
                _ => continue,
            };
            parameter["schema"] = schema;
        }
    }
}

/// A schedule id's shape (`myloware_core::ids::is_schedule_id`); any other is a 404.
fn set_id_pattern(operation: &mut Value) {
    for parameter in operation["parameters"].as_array_mut().into_iter().flatten() {
        if parameter["name"] == "scheduleId" {
            parameter["schema"] = json!({"type": "string", "pattern": "^sch_[a-z0-9]{12}$"});
        }
    }
}
