//! The console's schedules, costs and operations pages, and what their
//! buttons do: schedules created, paused, resumed and deleted, and dead
//! letters replayed, each through the same functions as the API's routes
//! (same checks, same rate limit, same audit), as the signed-in key.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Datelike, Days, NaiveDate, Utc};
use myloware_core::auth::Permission;
use serde::Deserialize;
use serde_json::Value;

use super::ops_views::*;
use super::pages::{Asker, caller};
use super::render;
use super::session::Session;
use super::views::{Choice, Who, about, short, usd, when};
use super::{failed, field_errors};
use crate::error::ApiError;
use crate::limiter::LimitedRoute;
use crate::routes::paging;
use crate::runs::{RunInput, RunOptions};
use crate::schedules::{self, CreateScheduleRequest};
use crate::state::ApiState;
use crate::store::{AuditQuery, Channel, PushStatus, ScheduleQuery, ScheduleStatus};

/// Schedules on a page.
const SCHEDULES_PAGE: u32 = 100;
/// Rows of each operations table.
const OPS_ROWS: u32 = 100;
/// Audit entries on the operations page.
const AUDIT_ROWS: u32 = 50;

/// A change by the session's key, within its rate limit (the API's limit
/// for schedule changes): who, as recorded.
fn change_by(state: &ApiState, session: &Session) -> Result<String, ApiError> {
    let by = session.actor();
    state.limiter.check(LimitedRoute::Schedule, &by)?;
    Ok(by)
}

#[derive(Debug, Default, Deserialize)]
pub struct SchedulesQuery {
    cursor: Option<String>,
}

/// `GET /console/schedules`: the schedules, newest first; for operators,
/// their buttons and the create form.
pub async fn schedules(
    State(state): State<ApiState>,
    session: Session,
    Query(query): Query<SchedulesQuery>,
) -> Response {
    match schedules_page(
        &state,
        &session,
        query.cursor.as_deref(),
        ScheduleForm::default(),
        Vec::new(),
    )
    .await
    {
        Ok(page) => render(&page).into_response(),
        Err(err) => failed(err),
    }
}

async fn schedules_page(
    state: &ApiState,
    session: &Session,
    cursor: Option<&str>,
    form: ScheduleForm,
    errors: Vec<String>,
) -> Result<SchedulesPage, ApiError> {
    let found = state
        .store
        .list_schedules(&ScheduleQuery {
            before: paging::cursor(cursor)?,
            limit: SCHEDULES_PAGE + 1,
            ..ScheduleQuery::default()
        })
        .await?;
    let (found, next) = paging::page(found, SCHEDULES_PAGE, |s| s.seq);
    let schedules = found
        .into_iter()
        .map(|s| {
            let next_input = usize::try_from(s.next_input).unwrap_or_default();
            ScheduleRow {
                about: about(s.inputs.get(next_input).or(s.inputs.first()).unwrap_or(&Value::Null)),
                inputs: s.inputs.len(),
                active: s.status == ScheduleStatus::Active,
                status: s.status.as_str().to_string(),
                next_fire: s.next_fire_at.map(when).unwrap_or_default(),
                created: when(s.created_at),
                id: s.id,
                project: s.project,
                cron: s.cron,
                timezone: s.timezone,
                created_by: s.created_by,
            }
        })
        .collect();
    Ok(SchedulesPage {
        session: Some(Who::of(session)),
        csrf: session.csrf.clone(),
        can_operate: session.allows(Permission::Operate),
        schedules,
        next: next.map(|cursor| format!("/console/schedules?cursor={cursor}")),
        projects: Choice::all(crate::runs::runnable_projects(&state.catalog), &form.project),
        form,
        errors,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    csrf: Option<String>,
    project: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
    input: Option<String>,
}

/// The form as a create request: `input` is one input (a JSON object) or
/// inputs taken in turn (a JSON array of them).
fn create_request(form: &ScheduleForm) -> Result<CreateScheduleRequest, ApiError> {
    let not_input = |err: serde_json::Error| ApiError::invalid(&["body", "input"], format!("not an input: {err}"));
    let (input, inputs) = match serde_json::from_str::<Value>(&form.input).map_err(not_input)? {
        Value::Array(items) => {
            let inputs = items
                .into_iter()
                .map(serde_json::from_value::<RunInput>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(not_input)?;
            (None, Some(inputs))
        }
        value => (
            Some(serde_json::from_value::<RunInput>(value).map_err(not_input)?),
            None,
        ),
    };
    Ok(CreateScheduleRequest {
        project: form.project.clone(),
        cron: form.cron.clone(),
        timezone: form.timezone.trim().to_string(),
        input,
        inputs,
        options: RunOptions::default(),
    })
}

/// `POST /console/schedules` (operators): creates a schedule as
/// `POST /v1/schedules` does. A refused one shows the page again with the
/// form as sent and every field at fault (422).
pub async fn create_schedule(
    State(state): State<ApiState>,
    session: Session,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Some(refusal) = session.refusal(form.csrf.as_deref(), Permission::Operate) {
        return refusal;
    }
    let form = ScheduleForm {
        project: form.project.unwrap_or_default(),
        cron: form.cron.unwrap_or_default(),
        timezone: form.timezone.unwrap_or_default(),
        input: form.input.unwrap_or_default(),
    };
    let created = match (change_by(&state, &session), create_request(&form)) {
        (Err(err), _) | (_, Err(err)) => Err(err),
        (Ok(by), Ok(request)) => schedules::create(&state, request, &by).await,
    };
    match created {
        Ok(_) => Redirect::to("/console/schedules").into_response(),
        Err(err @ ApiError::Validation(_)) => {
            let status = err.status();
            match schedules_page(&state, &session, None, form, field_errors(&err)).await {
                Ok(page) => (status, render(&page)).into_response(),
                Err(err) => failed(err),
            }
        }
        Err(err) => failed(err),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// What a schedule's button does.
enum Change {
    Pause,
    Resume,
    Delete,
}

async fn change_schedule(
    state: &ApiState,
    session: &Session,
    id: &str,
    csrf: Option<&str>,
    change: Change,
) -> Response {
    if let Some(refusal) = session.refusal(csrf, Permission::Operate) {
        return refusal;
    }
    let by = match change_by(state, session) {
        Ok(by) => by,
        Err(err) => return failed(err),
    };
    let done = match change {
        Change::Pause => schedules::pause(state, id, &by).await.map(drop),
        Change::Resume => schedules::resume(state, id, &by).await.map(drop),
        Change::Delete => schedules::delete(state, id, &by).await,
    };
    match done {
        Ok(()) => Redirect::to("/console/schedules").into_response(),
        Err(err) => failed(err),
    }
}

/// `POST /console/schedules/{id}/pause` (operators).
pub async fn pause_schedule(
    State(state): State<ApiState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    change_schedule(&state, &session, &id, form.csrf.as_deref(), Change::Pause).await
}

/// `POST /console/schedules/{id}/resume` (operators).
pub async fn resume_schedule(
    State(state): State<ApiState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    change_schedule(&state, &session, &id, form.csrf.as_deref(), Change::Resume).await
}

/// `POST /console/schedules/{id}/delete` (operators).
pub async fn delete_schedule(
    State(state): State<ApiState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    change_schedule(&state, &session, &id, form.csrf.as_deref(), Change::Delete).await
}

#[derive(Debug, Default, Deserialize)]
pub struct CostsQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /console/costs`: what was spent per day and project (the last 30
/// days unless asked, as `GET /v1/costs` answers), drawn and listed, and
/// every spending limit with what is left of it.
pub async fn costs(State(state): State<ApiState>, session: Session, Query(query): Query<CostsQuery>) -> Response {
    match costs_page(&state, &session, query).await {
        Ok(page) => render(&page).into_response(),
        Err(err) => failed(err),
    }
}

async fn costs_page(state: &ApiState, session: &Session, query: CostsQuery) -> Result<CostsPage, ApiError> {
    let blank = |value: Option<String>| value.filter(|v| !v.is_empty());
    let today = Utc::now().date_naive();
    let (from, to) = crate::costs::range(blank(query.from).as_deref(), blank(query.to).as_deref(), today)?;
    let spent = state
        .store
        .spend_by_day(&from.to_string(), &to.to_string(), None)
        .await?;
    // The API's own answer, so the page and `GET /v1/costs` never differ.
    let report = serde_json::to_value(crate::costs::report(from, to, &spent)).unwrap_or_default();
    let reported = report["days"].as_array().cloned().unwrap_or_default();
    let mut per_day: Vec<(String, f64, f64)> = Vec::new();
    let mut day = from;
    while day <= to {
        let text = day.to_string();
        let of = |mode: &str| -> f64 {
            reported
                .iter()
                .filter(|d| d["day"] == text.as_str() && d["mode"] == mode)
                .filter_map(|d| d["spentUsd"].as_f64())
                .sum()
        };
        per_day.push((text.clone(), of("live"), of("mock")));
        let Some(next) = day.checked_add_days(Days::new(1)) else {
            break;
        };
        day = next;
    }
    let rows = reported
        .iter()
        .rev()
        .map(|d| CostRow {
            day: short(&d["day"]),
            project: short(&d["project"]),
            mode: short(&d["mode"]),
            spent: usd(d["spentUsd"].as_f64().unwrap_or_default()),
            providers: providers(&d["byProvider"]),
        })
        .collect();
    let active_cap = state
        .config
        .budget
        .max_active_runs
        .map_or_else(|| "no cap".to_string(), |cap| format!("at most {cap} at once"));
    Ok(CostsPage {
        session: Some(Who::of(session)),
        from: from.to_string(),
        to: to.to_string(),
        total: usd(report["totalUsd"].as_f64().unwrap_or_default()),
        chart: Chart::of(&per_day),
        rows,
        budgets: budgets(state, today).await?,
        active_cap,
    })
}

/// `kieai 4.8 USD, shotstack 0.48 USD`: the providers that cost something.
fn providers(by_provider: &Value) -> String {
    by_provider
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(provider, amount)| {
            let amount = amount.as_f64().filter(|a| *a > 0.0)?;
            Some(format!("{provider} {}", usd(amount)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The deployment's limits, then each project's (`[budget]`), for today
/// and this month, with the live spend so far.
async fn budgets(state: &ApiState, today: NaiveDate) -> Result<Vec<BudgetRow>, ApiError> {
    let month = today.with_day(1).unwrap_or(today);
    let global = &state.config.budget;
    let mut wanted: Vec<(Option<&str>, Option<i64>, Option<i64>)> =
        vec![(None, global.daily_micros, global.monthly_micros)];
    let mut names = state.catalog.names();
    names.sort_unstable();
    for name in names {
        let spec = state.catalog.get(name).and_then(|p| p.budget).unwrap_or_default();
        let micros = |usd: Option<f64>| usd.map(myloware_core::costs::micros);
        wanted.push((Some(name), micros(spec.daily_usd), micros(spec.monthly_usd)));
    }
    let mut rows = Vec::new();
    for (project, daily, monthly) in wanted {
        for (period, since, limit) in [("today", today, daily), ("this month", month, monthly)] {
            let spent = state.store.live_spend_since(&since.to_string(), project).await?;
            let left = limit.map(|limit| (limit - spent).max(0));
            rows.push(BudgetRow {
                whose: project.unwrap_or("all projects").to_string(),
                period: period.to_string(),
                limit: limit.map_or_else(|| "no limit".to_string(), |l| usd(myloware_core::costs::usd(l))),
                spent: usd(myloware_core::costs::usd(spent)),
                left: left.map(|l| usd(myloware_core::costs::usd(l))).unwrap_or_default(),
                exhausted: left == Some(0),
            });
        }
    }
    Ok(rows)
}

/// `GET /console/ops`: the dead-letter queue (with a replay button for
/// operators), the deliveries still owed (commands to the orchestrator,
/// chat pushes) and, for keys that may read it, the audit.
pub async fn operations(State(state): State<ApiState>, session: Session) -> Response {
    match ops_page(&state, &session).await {
        Ok(page) => render(&page).into_response(),
        Err(err) => failed(err),
    }
}

async fn ops_page(state: &ApiState, session: &Session) -> Result<OpsPage, ApiError> {
    // Errors and payloads may quote a provider's answer or a link: the
    // configured secrets and credential shapes are taken out.
    let redactor = state.config.redactor();
    let clean = |text: &str| short(&Value::String(redactor.redact(text)));
    let dead_letters = state
        .store
        .dead_letters(false, OPS_ROWS)
        .await?
        .into_iter()
        .map(|letter| DeadLetterRow {
            seq: letter.seq,
            kind: letter.kind.as_str().to_string(),
            what: clean(&letter.payload.to_string()),
            error: clean(&letter.error),
            attempts: letter.attempts,
            created: when(letter.created_at),
            last_attempt: letter.last_attempt_at.map(when).unwrap_or_default(),
            run_id: letter.run_id,
        })
        .collect();
    // Every run's oldest unacknowledged command, due or not.
    let far = Utc::now() + chrono::TimeDelta::days(365 * 100);
    let commands = state
        .store
        .commands_due(far, OPS_ROWS)
        .await?
        .into_iter()
        .map(|command| CommandRow {
            seq: command.seq,
            kind: command.kind().as_str().to_string(),
            attempts: command.attempts,
            created: when(command.created_at),
            next_attempt: when(command.next_attempt_at),
            last_error: command.last_error.as_deref().map(&clean).unwrap_or_default(),
            run_id: command.run_id,
        })
        .collect();
    let pushes = state
        .store
        .list_chat_deliveries(OPS_ROWS)
        .await?
        .into_iter()
        .map(|push| PushRow {
            message_seq: push.message_seq,
            channel: push.channel.as_str().to_string(),
            target: match push.channel {
                Channel::Telegram => push.target,
                Channel::Webhook => url::Url::parse(&push.target)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "(a webhook)".into()),
            },
            status: push.status.as_str().to_string(),
            attempts: push.attempts,
            next_attempt: match push.status {
                PushStatus::Pending => when(push.next_attempt_at),
                _ => String::new(),
            },
            last_error: push.last_error.as_deref().map(&clean).unwrap_or_default(),
            delivered: push.delivered_at.map(when).unwrap_or_default(),
        })
        .collect();
    let webhooks = state
        .store
        .recent_webhooks(OPS_ROWS)
        .await?
        .into_iter()
        .map(|hook| WebhookRow {
            provider: hook.provider,
            run_id: hook.run_id.filter(|id| myloware_core::ids::is_run_id(id)),
            signature: hook.signature_status.as_str().to_string(),
            outcome: hook.outcome.as_str().to_string(),
            size: hook.body_size,
            received: when(hook.received_at),
        })
        .collect();
    let audit = match session.allows(Permission::Audit) {
        false => None,
        true => Some(
            state
                .store
                .audit(&AuditQuery {
                    limit: AUDIT_ROWS,
                    ..AuditQuery::default()
                })
                .await?
                .into_iter()
                .map(|entry| AuditRow {
                    at: when(entry.at),
                    actor: entry.actor,
                    action: entry.action,
                    run_id: entry.run_id.filter(|id| myloware_core::ids::is_run_id(id)),
                    gate: entry.gate.unwrap_or_default(),
                    accepted: entry.accepted,
                    outcome: clean(&entry.outcome),
                    ip: entry.ip.unwrap_or_default(),
                })
                .collect(),
        ),
    };
    Ok(OpsPage {
        session: Some(Who::of(session)),
        csrf: session.csrf.clone(),
        can_operate: session.allows(Permission::Operate),
        dead_letters,
        commands,
        pushes,
        webhooks,
        audit,
    })
}

/// `POST /console/dlq/{seq}/replay` (operators): processes a dead letter
/// again, as `POST /v1/dlq/{seq}/replay` does (audited as the key); back to
/// the operations page, which shows the entry gone or its new error.
pub async fn replay(
    State(state): State<ApiState>,
    session: Session,
    asker: Asker,
    Path(seq): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refusal) = session.refusal(form.csrf.as_deref(), Permission::Operate) {
        return refusal;
    }
    let Ok(seq) = seq.parse::<i64>() else {
        return failed(ApiError::not_found("dead letter"));
    };
    let caller = caller(&session, asker);
    tracing::info!(seq, by = %caller.actor, "dead letter replay from the console");
    match crate::dlq::replay_for(&state, seq, &caller).await {
        Ok(_) => Redirect::to("/console/ops#dlq").into_response(),
        Err(err) => failed(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(input: &str) -> ScheduleForm {
        ScheduleForm {
            project: "aismr".into(),
            input: input.into(),
            ..ScheduleForm::default()
        }
    }

    #[test]
    fn the_input_is_one_object_or_a_list_taken_in_turn() {
        let one = create_request(&form(r#"{"object": "candles"}"#)).unwrap();
        assert_eq!(one.input.unwrap().object.as_deref(), Some("candles"));
        assert!(one.inputs.is_none());
        let list = create_request(&form(r#"[{"object": "a"}, {"topic": "b"}]"#)).unwrap();
        assert_eq!(list.inputs.map(|i| i.len()), Some(2));
        for bad in ["", "{", r#"{"colour": "red"}"#, "[1]"] {
            let err = create_request(&form(bad)).unwrap_err();
            assert!(field_errors(&err)[0].starts_with("input: not an input"), "{bad:?}");
        }
    }

    #[test]
    fn providers_that_cost_nothing_are_left_out() {
        let by = serde_json::json!({"kieai": 4.8, "shotstack": 0.0, "openai": 0.0012});
        assert_eq!(providers(&by), "kieai 4.8 USD, openai 0.0012 USD");
    }
}
