//! Schedules: runs started on a calendar. A schedule is a project, a cron
//! pattern in a time zone ([`myloware_core::schedule`]), the input of its
//! runs (or a list of inputs taken in turn) and their options, checked when
//! it is created as `POST /v1/runs/start` checks a start.
//!
//! [`fire_loop`] runs in every API process next to the command reconciler.
//! Each tick it reads the schedules that are due and fires each: the run is
//! checked like any start (project, input, spend limits; `MAX_ACTIVE_RUNS`
//! in the store), then the store claims the firing by moving the
//! schedule's `next_fire_at` on from the value read and, in the same
//! transaction, records the firing (unique per schedule and firing time)
//! with the run and its start command. So with several replicas, or after
//! a crash at any point, a firing time starts one run at most: a replica
//! that loses the claim writes nothing, and a crash before the commit
//! leaves the firing due for the next tick. A refused firing is recorded
//! with its reason and not tried again; the schedule goes on to its next
//! time.
//!
//! Missed firings ("catch up once"): a schedule found due late, because no
//! API ran at its time, fires once for its earliest missed time and then
//! continues from the first time after now; the firing records how many
//! later times it stood for (`skipped`). A paused schedule does not fire;
//! resumed, it continues from the first time after the resume.

use std::time::Duration;

use chrono::{DateTime, Utc};
use myloware_core::error::FieldError;
use myloware_core::ids::new_schedule_id;
use myloware_core::schedule::{Cadence, CadenceError};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::notify;
use crate::runs::{self, RunInput, RunOptions, StartRunRequest};
use crate::state::ApiState;
use crate::store::{ChatMessage, Fired, FiringClaim, FiringStart, NewSchedule, Schedule, now};

/// Inputs a schedule may rotate through.
pub const MAX_INPUTS: usize = 100;
/// Schedules that may exist at once.
pub const MAX_SCHEDULES: u32 = 1000;
/// Due schedules fired per tick (the rest wait for the next tick).
const DUE_PER_TICK: u32 = 50;

/// `POST /v1/schedules`: a start (`project`, `input`, `options` as
/// `POST /v1/runs/start` takes them) on a calendar. `inputs` instead of
/// `input` rotates through the list, one input per run started.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduleRequest {
    pub project: String,
    /// Five fields (minute hour day-of-month month day-of-week), or six
    /// with seconds first; `@hourly`, `@daily`, `@weekly`, `@monthly` and
    /// `@yearly` too. Weekdays are POSIX: 0 and 7 are Sunday, 1 Monday.
    pub cron: String,
    /// An IANA time zone (`UTC`, `Europe/Paris`) the pattern is read in.
    pub timezone: String,
    /// The input of every run (give this or `inputs`).
    #[serde(default)]
    pub input: Option<RunInput>,
    /// Inputs taken in turn, one per run started (give this or `input`).
    #[serde(default)]
    pub inputs: Option<Vec<RunInput>>,
    #[serde(default)]
    pub options: RunOptions,
}

/// Checks `request` as a start would be checked (every refusal at once,
/// each naming its field) and stores the schedule, due at the pattern's
/// next time. `by` is the credential that asked.
pub async fn create(state: &ApiState, request: CreateScheduleRequest, by: &str) -> Result<Schedule, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let spec = keep(&mut errors, runs::runnable_project(state, &request.project));
    let cadence = keep(
        &mut errors,
        Cadence::parse(&request.cron, &request.timezone).map_err(|err| match err {
            CadenceError::Cron(msg) => ApiError::invalid(&["body", "cron"], msg),
            CadenceError::Timezone(msg) => ApiError::invalid(&["body", "timezone"], msg),
        }),
    );
    let inputs: Vec<RunInput> = match (request.input, request.inputs) {
        (Some(_), Some(_)) => {
            errors.push(field_error(
                &["body", "inputs"],
                "give input (every run's) or inputs (a list taken in turn), not both",
            ));
            Vec::new()
        }
        (None, None) => {
            errors.push(field_error(
                &["body", "input"],
                "required: input (every run's) or inputs (a list taken in turn)",
            ));
            Vec::new()
        }
        (Some(input), None) => {
            keep(&mut errors, input.validate_at(&["body", "input"]));
            vec![input]
        }
        (None, Some(inputs)) => {
            if !(1..=MAX_INPUTS).contains(&inputs.len()) {
                errors.push(field_error(&["body", "inputs"], &format!("1 to {MAX_INPUTS} inputs")));
            }
            for (index, input) in inputs.iter().enumerate() {
                keep(&mut errors, input.validate_at(&["body", "inputs", &index.to_string()]));
            }
            inputs
        }
    };
    if let Some(spec) = spec {
        keep(&mut errors, runs::graph_of(spec, &request.options));
    }
    let created_at = now();
    let next_fire_at = cadence.and_then(|cadence| cadence.next_after(created_at));
    let (Some(spec), Some(next_fire_at), true) = (spec, next_fire_at, errors.is_empty()) else {
        if errors.is_empty() {
            errors.push(field_error(&["body", "cron"], "never fires"));
        }
        return Err(ApiError::Validation(errors));
    };
    let schedule = NewSchedule {
        id: new_schedule_id(),
        project: spec.project.clone(),
        cron: request.cron.trim().to_string(),
        timezone: request.timezone,
        inputs: inputs
            .iter()
            .map(|input| serde_json::to_value(input).expect("an input serializes"))
            .collect(),
        options: serde_json::to_value(&request.options).expect("options serialize"),
        next_fire_at,
        created_by: by.to_string(),
        created_at,
    };
    let stored = state
        .store
        .insert_schedule(&schedule, MAX_SCHEDULES)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "{MAX_SCHEDULES} schedules exist, the most allowed; delete one first"
            ))
        })?;
    tracing::info!(scheduleId = %stored.id, project = %stored.project, cron = %stored.cron, timezone = %stored.timezone, %by, next_fire_at = %next_fire_at, "schedule created");
    Ok(stored)
}

fn field_error(loc: &[&str], msg: &str) -> FieldError {
    FieldError::new(loc, msg, "value_error")
}

/// The value of `result`, or `None` with its field errors added to `errors`.
fn keep<T>(errors: &mut Vec<FieldError>, result: Result<T, ApiError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(ApiError::Validation(found)) => {
            errors.extend(found);
            None
        }
        Err(other) => {
            errors.push(field_error(&["body"], &other.to_string()));
            None
        }
    }
}

/// The schedule `id`, or a 404.
pub async fn get(state: &ApiState, id: &str) -> Result<Schedule, ApiError> {
    let found = match myloware_core::ids::is_schedule_id(id) {
        true => state.store.get_schedule(id).await?,
        false => None,
    };
    found.ok_or_else(|| ApiError::not_found("schedule"))
}

/// Stops the schedule from firing (a paused one stays as it is).
pub async fn pause(state: &ApiState, id: &str, by: &str) -> Result<Schedule, ApiError> {
    let schedule = get(state, id).await?;
    if state.store.pause_schedule(&schedule.id).await? {
        tracing::info!(scheduleId = %id, %by, "schedule paused");
    }
    get(state, id).await
}

/// Makes a paused schedule fire again from its next time after now (the
/// times that passed while it was paused are not made up for); an active
/// one stays as it is.
pub async fn resume(state: &ApiState, id: &str, by: &str) -> Result<Schedule, ApiError> {
    let schedule = get(state, id).await?;
    let next = Cadence::parse(&schedule.cron, &schedule.timezone)
        .ok()
        .and_then(|cadence| cadence.next_after(Utc::now()));
    if state.store.resume_schedule(&schedule.id, next).await? {
        tracing::info!(scheduleId = %id, %by, next_fire_at = ?next, "schedule resumed");
    }
    get(state, id).await
}

/// Deletes the schedule and its firings; the runs it started stay (their
/// `payload.metadata.schedule` still names it).
pub async fn delete(state: &ApiState, id: &str, by: &str) -> Result<(), ApiError> {
    let deleted = myloware_core::ids::is_schedule_id(id) && state.store.delete_schedule(id).await?;
    if !deleted {
        return Err(ApiError::not_found("schedule"));
    }
    tracing::info!(scheduleId = %id, %by, "schedule deleted");
    Ok(())
}

/// Background task: fires the due schedules every `every` until `shutdown`.
pub async fn fire_loop(state: ApiState, every: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        fire_due(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Fires every schedule due now (at most [`DUE_PER_TICK`]); how many
/// firings this process recorded.
pub async fn fire_due(state: &ApiState) -> usize {
    let due = match state.store.schedules_due(Utc::now(), DUE_PER_TICK).await {
        Ok(due) => due,
        Err(err) => {
            tracing::error!(error = %err, "schedules cannot be read");
            return 0;
        }
    };
    let mut fired = 0;
    for schedule in due {
        match fire(state, &schedule).await {
            Ok(Fired::Lost) => {}
            Ok(_) => fired += 1,
            Err(err) => tracing::error!(scheduleId = %schedule.id, error = %err, "schedule not fired; will try again"),
        }
    }
    fired
}

/// Fires `schedule` (read due) once: a run started, or the refusal
/// recorded; [`Fired::Lost`] when another process fired it first. An
/// unexpected error (the database) leaves it due.
async fn fire(state: &ApiState, schedule: &Schedule) -> Result<Fired, ApiError> {
    let Some(fire_at) = schedule.next_fire_at else {
        return Ok(Fired::Lost);
    };
    let cadence = Cadence::parse(&schedule.cron, &schedule.timezone);
    let (next_fire_at, skipped) = match &cadence {
        Ok(cadence) => cadence.after_missed(fire_at, Utc::now()),
        Err(_) => (None, 0),
    };
    let claim = FiringClaim {
        schedule_id: schedule.id.clone(),
        fire_at,
        next_fire_at,
        skipped,
        refusal_notice: Some(refusal_notice(state, schedule, fire_at, next_fire_at)),
    };
    let count = schedule.inputs.len().max(1) as i64;
    let index = schedule.next_input.rem_euclid(count);
    let origin = json!({"id": schedule.id, "fireAt": fire_at, "input": index});
    let prepared = match (&cadence, request_of(schedule, index as usize)) {
        (Err(err), _) => Err(format!("the schedule no longer parses ({err:?}); it fires no more")),
        (_, Err(err)) => Err(err),
        (Ok(_), Ok(request)) => match runs::prepare_start(state, runs::Origin::Api, &request, Some(origin), None).await
        {
            Ok(prepared) => Ok(prepared),
            Err(err @ ApiError::Internal(_)) => return Err(err),
            Err(refused) => Err(describe(&refused)),
        },
    };
    let fired = match &prepared {
        Ok(prepared) => {
            let start = FiringStart::Run {
                run: &prepared.run,
                command: prepared.command.as_ref(),
                next_input: (index + 1) % count,
            };
            state.store.fire_schedule(&claim, start).await?
        }
        Err(reason) => state.store.fire_schedule(&claim, FiringStart::Refused(reason)).await?,
    };
    match (&fired, prepared) {
        (Fired::Started(run), Ok(prepared)) => {
            tracing::info!(scheduleId = %schedule.id, fire_at = %fire_at, runId = %run.id, skipped, "schedule fired");
            runs::hand_over(state, run.as_ref().clone(), &prepared).await;
        }
        (Fired::Refused(reason), _) => {
            tracing::warn!(scheduleId = %schedule.id, fire_at = %fire_at, %reason, skipped, "schedule firing refused");
        }
        _ => {}
    }
    Ok(fired)
}

/// What the schedule's owner (`options.user_id`, else the operators) is
/// told of a refused firing, in their transcript and on their channels; the
/// store appends the reason.
fn refusal_notice(
    state: &ApiState,
    schedule: &Schedule,
    fire_at: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) -> ChatMessage {
    let owner = schedule.options["user_id"].as_str().unwrap_or(notify::OPERATORS);
    let next = next.map_or_else(
        || "no next time".to_string(),
        |at| format!("next at {} UTC", at.format("%Y-%m-%d %H:%M:%S")),
    );
    ChatMessage {
        user_id: owner.to_string(),
        role: "assistant".into(),
        text: format!(
            "Schedule {} ({}) did not start its run of {} UTC ({next}): ",
            schedule.id,
            schedule.project,
            fire_at.format("%Y-%m-%d %H:%M:%S")
        ),
        run_id: None,
        gate: None,
        link: None,
        created_at: now(),
        pushes: notify::pushes(&state.config, owner),
    }
}

/// The start of the schedule's `index`th input, as stored.
fn request_of(schedule: &Schedule, index: usize) -> Result<StartRunRequest, String> {
    let input = schedule
        .inputs
        .get(index)
        .ok_or_else(|| "the schedule has no input".to_string())?;
    let input: RunInput =
        serde_json::from_value(input.clone()).map_err(|err| format!("the stored input no longer reads: {err}"))?;
    let options: RunOptions = serde_json::from_value(schedule.options.clone())
        .map_err(|err| format!("the stored options no longer read: {err}"))?;
    Ok(StartRunRequest {
        project: schedule.project.clone(),
        input,
        options,
    })
}

/// A refusal in a sentence, as the firing records it.
fn describe(err: &ApiError) -> String {
    match err {
        ApiError::Validation(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.loc.join("."), e.msg))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
