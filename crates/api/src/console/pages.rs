//! The console's pages and the actions their buttons take (each one the
//! API's own: cancel, retry, a gate decision), audited as the signed-in
//! key.

use std::convert::Infallible;
use std::time::Duration;

use axum::Form;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{StatusCode, request::Parts};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, Utc};
use myloware_core::auth::Permission;
use myloware_core::config::Environment;
use myloware_core::ids::is_run_id;
use myloware_core::wire::Decision as Verdict;
use myloware_core::{Gate, RunStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::failed;
use super::render;
use super::session::{Session, refused};
use super::views::*;
use crate::audit::{self, Caller};
use crate::error::ApiError;
use crate::hitl::{self, Attempt, Credential};
use crate::middleware::ClientIp;
use crate::routes::paging;
use crate::runs::CancelRequest;
use crate::state::ApiState;
use crate::store::{RawArtifact, RunQuery};

/// Runs on a page.
pub const PAGE: u32 = 100;
/// A live-status stream ends after this long (the page opens another).
const STREAM_FOR: Duration = Duration::from_secs(600);
/// How often a stream looks at its runs.
const STREAM_EVERY: Duration = Duration::from_secs(1);

fn json_of(raw: &crate::store::RawJson) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// Who is asking, for the audit: the session's key, the client's address
/// and user agent.
pub struct Asker(Caller);

impl FromRequestParts<ApiState> for Asker {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let Ok(ip) = ClientIp::from_request_parts(parts, state).await;
        let (ip, user_agent) = audit::client(&parts.headers, &ip);
        Ok(Asker(Caller {
            actor: "none".into(),
            ip,
            user_agent,
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RunsQuery {
    project: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
}

/// A date filter (`YYYY-MM-DD`), at the start of that day (UTC); `to`
/// includes its day.
fn day(text: Option<&str>, field: &str, next_day: bool) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid(&["query", field], "a date, YYYY-MM-DD"))?;
    let date = if next_day {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    Ok(Some(date.and_hms_opt(0, 0, 0).expect("midnight").and_utc()))
}

/// `GET /console`: the runs, newest first, filtered, 100 a page; statuses
/// update live.
pub async fn runs(State(state): State<ApiState>, session: Session, Query(query): Query<RunsQuery>) -> Response {
    match runs_page(&state, &session, query).await {
        Ok(page) => render(&page).into_response(),
        Err(err) => failed(err),
    }
}

async fn runs_page(state: &ApiState, session: &Session, query: RunsQuery) -> Result<RunsPage, ApiError> {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let filter = Filter {
        project: text(&query.project),
        status: text(&query.status),
        from: text(&query.from),
        to: text(&query.to),
        q: text(&query.q),
    };
    let status = match filter.status.as_str() {
        "" => None,
        s => Some(
            s.parse::<RunStatus>()
                .map_err(|err| ApiError::invalid(&["query", "status"], err.to_string()))?,
        ),
    };
    let before = paging::cursor(query.cursor.as_deref())?;
    let search = Some(filter.q.trim()).filter(|q| !q.is_empty()).map(str::to_owned);
    if search.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::invalid(&["query", "q"], "at most 200 characters"));
    }
    let runs = state
        .store
        .list_runs(&RunQuery {
            status,
            project: Some(filter.project.clone()).filter(|p| !p.is_empty()),
            before,
            search,
            created_from: day(query.from.as_deref(), "from", false)?,
            created_to: day(query.to.as_deref(), "to", true)?,
            limit: PAGE + 1,
            ..RunQuery::default()
        })
        .await?;
    let (runs, next_cursor) = paging::page(runs, PAGE, |run| run.seq);
    let next = next_cursor.map(|cursor| {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("project", &filter.project),
            ("status", &filter.status),
            ("from", &filter.from),
            ("to", &filter.to),
            ("q", &filter.q),
        ] {
            if !value.is_empty() {
                url.append_pair(name, value);
            }
        }
        url.append_pair("cursor", &cursor);
        format!("/console?{}", url.finish())
    });
    let live = runs.iter().any(|run| !run.status.is_terminal());
    let rows = runs
        .into_iter()
        .map(|run| RunRow {
            about: about(&run.payload["input"]),
            status: run.status.to_string(),
            created: when(run.created_at),
            id: run.id,
            project: run.project,
        })
        .collect();
    Ok(RunsPage {
        session: Some(Who::of(session)),
        projects: Choice::all(state.catalog.names(), &filter.project),
        statuses: Choice::all(RunStatus::ALL.iter().map(|s| s.as_str()), &filter.status),
        filter,
        runs: rows,
        live,
        next,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    /// Run ids, comma-separated (at most 100).
    runs: Option<String>,
}

/// `GET /console/events?runs=…`: server-sent `status` events
/// (`{"runId", "status"}`) as the runs move, until each has ended (or is
/// unknown), the session has ended, or ten minutes have passed (`end`; the
/// page's script opens another while a run still moves). At most 64 at
/// once, 4 per session (503 beyond).
pub async fn events(State(state): State<ApiState>, session: Session, Query(query): Query<EventsQuery>) -> Response {
    let mut ids: Vec<String> = query
        .runs
        .unwrap_or_default()
        .split(',')
        .filter(|id| is_run_id(id))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids.truncate(PAGE as usize);
    let Some(slot) = state.console_streams.take(session.id()) else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many live pages are open; reload later.",
        );
    };
    let watch = Watch {
        state,
        session: session.id().to_string(),
        runs: ids.into_iter().map(|id| (id, Watched::Unseen)).collect(),
        deadline: tokio::time::Instant::now() + STREAM_FOR,
        rounds: 0,
        ended: false,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(watch, |mut watch| async move {
        if watch.ended {
            return None;
        }
        let events = watch.next().await;
        Some((futures_util::stream::iter(events), watch))
    });
    let stream = futures_util::StreamExt::flatten(stream);
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// What a stream knows of a run.
#[derive(Clone, Copy, PartialEq)]
enum Watched {
    Unseen,
    Is(RunStatus),
    /// No such run: nothing to watch.
    Gone,
}

impl Watched {
    fn done(self) -> bool {
        match self {
            Watched::Is(status) => status.is_terminal(),
            Watched::Gone => true,
            Watched::Unseen => false,
        }
    }
}

/// A live-status stream's state.
struct Watch {
    state: ApiState,
    session: String,
    runs: Vec<(String, Watched)>,
    deadline: tokio::time::Instant,
    rounds: u32,
    ended: bool,
    _slot: crate::limiter::StreamSlot,
}

impl Watch {
    /// The next events: the runs that moved, or `end`, waiting a second
    /// between looks while nothing moves.
    async fn next(&mut self) -> Vec<Result<SseEvent, Infallible>> {
        loop {
            let mut changed = Vec::new();
            for (id, last) in self.runs.iter_mut() {
                if last.done() {
                    continue;
                }
                let now = match self.state.store.get_run(id).await {
                    Ok(Some(run)) => Watched::Is(run.status),
                    Ok(None) => Watched::Gone,
                    Err(_) => continue,
                };
                if let (Watched::Is(status), true) = (now, now != *last) {
                    changed.push(json!({"runId": id, "status": status}));
                }
                *last = now;
            }
            self.rounds += 1;
            // Signed out (or expired and deleted): stop telling.
            let signed_out = self.rounds % 30 == 0 && matches!(self.state.store.session(&self.session).await, Ok(None));
            if !changed.is_empty() && !signed_out {
                return changed
                    .into_iter()
                    .map(|data| Ok(SseEvent::default().event("status").data(data.to_string())))
                    .collect();
            }
            if signed_out || self.runs.iter().all(|(_, w)| w.done()) || tokio::time::Instant::now() >= self.deadline {
                self.ended = true;
                return vec![Ok(SseEvent::default().event("end").data("{}"))];
            }
            tokio::time::sleep(STREAM_EVERY).await;
        }
    }
}

/// `GET /console/runs/{id}`: everything about one run.
pub async fn run(State(state): State<ApiState>, session: Session, Path(run_id): Path<String>) -> Response {
    match run_page(&state, &session, &run_id).await {
        Ok(page) => render(&page).into_response(),
        Err(err) => failed(err),
    }
}

async fn run_page(state: &ApiState, session: &Session, run_id: &str) -> Result<RunPage, ApiError> {
    if !is_run_id(run_id) {
        return Err(ApiError::not_found("run"));
    }
    let details = state
        .store
        .get_run_details(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    let payload = json_of(&details.payload);
    let result = json_of(&details.result);
    let events = state.store.list_events(run_id).await?;
    let costs = state.store.run_costs(run_id).await?;
    let revisions = hitl::revisions(state, run_id, &details.artifacts).await?;
    let allow_http = state.config.environment == Environment::Development;

    let cost = serde_json::to_value(crate::costs::RunCost::new(
        details.estimated_usd_micros,
        details.mode.as_deref(),
        &details.spent,
    ))
    .unwrap_or_default();
    let mut cost_text = usd(cost["spentUsd"].as_f64().unwrap_or_default());
    if let Some(estimate) = cost["estimatedUsd"].as_f64() {
        cost_text.push_str(&format!(" of {} estimated", usd(estimate)));
    }
    if cost["mode"] == "mock" {
        cost_text.push_str(" (mock: not paid)");
    }
    let trace = payload["metadata"]["traceparent"]
        .as_str()
        .and_then(|tp| tp.split('-').nth(1))
        .map(|id| Trace {
            id: id.to_string(),
            url: state
                .config
                .console
                .trace_url
                .as_ref()
                .map(|url| url.replace("{traceId}", id)),
        });
    let gates = details
        .gates
        .iter()
        .map(|g| {
            let policy = hitl::policy(state, &details.project, g.gate);
            GateRow {
                gate: g.gate.to_string(),
                status: g.status.as_str().to_string(),
                decided_by: g.approver.clone(),
                detail: g.reason.clone().or_else(|| g.note.clone()),
                waiting: hitl::waiting_for(g, &policy, true),
            }
        })
        .collect();
    let revisions = revisions
        .into_iter()
        .map(|r| RevisionRow {
            gate: r.gate.to_string(),
            round: r.round,
            by: r.by.unwrap_or_default(),
            feedback: r.feedback.unwrap_or_default(),
            cost: usd(r.cost_usd),
        })
        .collect();
    let render = latest_render(state, &details.artifacts, &result)
        .await
        .and_then(|url| crate::page::playable_url(&url, allow_http));
    let clips = result["videos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|video| {
            let url = crate::page::playable_url(video["assetUrl"].as_str()?, allow_http)?;
            Some(ClipRow {
                index: video["index"]
                    .as_u64()
                    .map_or_else(|| short(&video["index"]), |i| (i + 1).to_string()),
                subject: short(&video["subject"]),
                url,
            })
        })
        .collect();
    let publish_urls = result["publishUrls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|url| crate::page::playable_url(url.as_str()?, false))
        .collect();
    let calls = costs
        .into_iter()
        .map(|c| CallRow {
            at: when(c.at),
            provider: c.provider,
            operation: c.operation,
            cost: usd(myloware_core::costs::usd(c.usd_micros)),
            key: c.journal_key.unwrap_or_default(),
        })
        .collect();
    let incidents = details
        .artifacts
        .iter()
        .filter_map(|a| {
            let data: Value = serde_json::from_str(a.data.get()).ok()?;
            let failed_call = data["status"] == "failed";
            let noted = matches!(
                a.kind.as_str(),
                "run.failed" | "run.retried" | "run.rejected" | "budget.held" | "budget.released" | "gate.expired"
            );
            (failed_call || noted).then(|| Step {
                at: when(a.created_at),
                after: String::new(),
                kind: a.kind.clone(),
                what: short(&data),
            })
        })
        .collect();
    let mut previous = None;
    let timeline = events
        .iter()
        .take(500)
        .map(|event| {
            let after = previous.map_or(String::new(), |at: chrono::DateTime<Utc>| {
                format!("{:.3} s", (event.at - at).num_milliseconds() as f64 / 1000.0)
            });
            previous = Some(event.at);
            Step {
                at: when(event.at),
                after,
                kind: event.kind.clone(),
                what: what_happened(&event.kind, &event.data),
            }
        })
        .collect();
    let operate = session.allows(Permission::Operate);
    Ok(RunPage {
        session: Some(Who::of(session)),
        csrf: session.csrf.clone(),
        run: RunRow {
            id: details.id.clone(),
            project: details.project.clone(),
            about: about(&payload["input"]),
            status: details.status.to_string(),
            created: when(details.created_at),
        },
        cost: cost_text,
        trace,
        error: result["error"]["message"].as_str().map(str::to_owned),
        can_cancel: operate && !details.status.is_terminal(),
        can_retry: operate && details.status == RunStatus::Failed,
        gates,
        revisions,
        render,
        clips,
        publish_urls,
        calls,
        incidents,
        timeline,
    })
}

/// The render's URL: a fresh one of its copy (the latest preview that has
/// one), else what the run's result says.
async fn latest_render(state: &ApiState, artifacts: &[RawArtifact], result: &Value) -> Option<String> {
    let copy = artifacts.iter().rev().find_map(|a| {
        let data: Value = serde_json::from_str(a.data.get()).ok()?;
        (a.kind == "gate.reached" && data["preview"]["renderAsset"].is_string()).then(|| data["preview"].clone())
    });
    match copy {
        Some(preview) => crate::routes::assets::with_fresh_render_url(state, preview).await["renderUrl"]
            .as_str()
            .map(str::to_owned),
        None => result["renderUrl"].as_str().map(str::to_owned),
    }
}

/// One line about an event for the timeline.
fn what_happened(kind: &str, data: &Value) -> String {
    match kind {
        "persona.started" | "persona.completed" => short(&data["persona"]),
        "status.changed" => short(&data["status"]),
        "gate.reached" => short(&data["gate"]),
        "artifact.created" => format!("{} {}", short(&data["kind"]), short(&data["data"])),
        "cost.recorded" => format!(
            "{} {} {}",
            short(&data["provider"]),
            short(&data["operation"]),
            usd(myloware_core::costs::usd(
                data["usdMicros"].as_i64().unwrap_or_default()
            ))
        ),
        "execution.failed" => short(&data["error"]["message"]),
        _ => short(data),
    }
}

/// `GET /console/inbox`: every gate waiting for a decision, with its
/// preview and, for a key that may decide, the three decisions in place.
pub async fn inbox(State(state): State<ApiState>, session: Session) -> Response {
    match inbox_page(&state, &session).await {
        Ok(page) => render(&page).into_response(),
        Err(err) => failed(err),
    }
}

async fn inbox_page(state: &ApiState, session: &Session) -> Result<InboxPage, ApiError> {
    let allow_http = state.config.environment == Environment::Development;
    let mut gates = Vec::new();
    for record in state.store.awaiting_gates(200).await? {
        let Some(run) = state.store.get_run(&record.run_id).await? else {
            continue;
        };
        let policy = hitl::policy(state, &run.project, record.gate);
        let preview = crate::routes::assets::with_fresh_render_url(state, record.preview.clone()).await;
        let ideas = preview["ideas"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|idea| (short(&idea["subject"]), short(&idea["concept"])))
            .collect();
        let proposal = (record.gate == Gate::Workflow)
            .then(|| serde_json::to_string_pretty(&run.payload["metadata"]["workflow_proposal"]).unwrap_or_default());
        gates.push(InboxGate {
            since: when(record.requested_at),
            waiting: hitl::waiting_for(&record, &policy, true),
            revision: (record.revisions > 0).then_some(record.revisions),
            round: record.revisions,
            revisable: record.gate != Gate::Workflow && record.revisions < policy.max_revisions,
            ideas,
            render: preview["renderUrl"]
                .as_str()
                .and_then(|url| crate::page::playable_url(url, allow_http)),
            proposal,
            run_id: record.run_id,
            gate: record.gate.to_string(),
            project: run.project,
        });
    }
    Ok(InboxPage {
        session: Some(Who::of(session)),
        csrf: session.csrf.clone(),
        can_decide: session.allows(Permission::Decide),
        gates,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    reason: Option<String>,
    feedback: Option<String>,
    round: Option<u32>,
}

/// After an action: back to the page at `to`, or the refusal.
fn back<T>(done: Result<T, ApiError>, to: &str) -> Response {
    match done {
        Ok(_) => Redirect::to(to).into_response(),
        Err(err) => failed(err),
    }
}

/// The caller of an action: the session's key, the client.
pub(super) fn caller(session: &Session, asker: Asker) -> Caller {
    Caller {
        actor: session.actor(),
        ..asker.0
    }
}

/// `POST /console/runs/{id}/cancel` (operators).
pub async fn cancel(
    State(state): State<ApiState>,
    session: Session,
    asker: Asker,
    Path(run_id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refusal) = session.refusal(form.csrf.as_deref(), Permission::Operate) {
        return refusal;
    }
    let request = CancelRequest {
        reason: Some(form.reason.unwrap_or_else(|| "cancelled in the console".into())),
        actor: None,
    };
    let cancelled = crate::runs::cancel_run(&state, &run_id, request, &caller(&session, asker)).await;
    back(cancelled, &format!("/console/runs/{run_id}"))
}

/// `POST /console/runs/{id}/retry` (operators).
pub async fn retry(
    State(state): State<ApiState>,
    session: Session,
    asker: Asker,
    Path(run_id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refusal) = session.refusal(form.csrf.as_deref(), Permission::Operate) {
        return refusal;
    }
    let retried = crate::runs::retry_run(&state, &run_id, &caller(&session, asker)).await;
    back(retried, &format!("/console/runs/{run_id}"))
}

/// `POST /console/runs/{id}/gates/{gate}/{approve|reject|revise}` (keys
/// that may decide), as the HITL routes decide: same policy, same audit.
pub async fn decide(
    State(state): State<ApiState>,
    session: Session,
    asker: Asker,
    Path((run_id, gate, verdict)): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refusal) = session.refusal(form.csrf.as_deref(), Permission::Decide) {
        return refusal;
    }
    let Ok(verdict) = verdict.parse::<Verdict>() else {
        return failed(ApiError::not_found("decision"));
    };
    let feedback = form.feedback.map(|f| f.trim().to_string());
    let Asker(client) = asker;
    let attempt = Attempt {
        run_id: run_id.clone(),
        gate,
        verdict,
        note: Some("console".into()),
        reason: match verdict {
            Verdict::Revise => feedback,
            _ => form
                .reason
                .filter(|r| !r.trim().is_empty())
                .map(|r| r.chars().take(2000).collect()),
        },
        credential: Credential::ApiKey(session.principal.clone()),
        chat_user: None,
        round: form.round,
        ip: client.ip,
        user_agent: client.user_agent,
    };
    match hitl::decide(&state, &attempt).await {
        Ok(_) | Err(ApiError::BadGateway(_)) => Redirect::to("/console/inbox").into_response(),
        Err(err) => failed(err),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn dates_filter_whole_days() {
        let from = day(Some("2026-12-07"), "from", false).unwrap().unwrap();
        let to = day(Some("2026-12-07"), "to", true).unwrap().unwrap();
        assert_eq!(to - from, TimeDelta::days(1));
        assert!(day(Some("07/12/2026"), "from", false).is_err());
        assert_eq!(day(Some(""), "from", false).unwrap(), None);
    }

    #[test]
    fn the_timeline_says_what_each_event_did() {
        assert_eq!(
            what_happened("status.changed", &json!({"status": "rendering"})),
            "rendering"
        );
        assert_eq!(
            what_happened(
                "cost.recorded",
                &json!({"provider": "kieai", "operation": "submit", "usdMicros": 400000})
            ),
            "kieai submit 0.4 USD"
        );
    }
}
