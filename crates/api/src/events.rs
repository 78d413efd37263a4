//! Applying the orchestrator's events to runs: each event once (by
//! `eventId`, and by `seq`: a seq at or below the run's last is a
//! duplicate), in `seq` order per run (a gap is refused so the outbox
//! retries it later), in one transaction with its artifacts and costs
//! (all the runs' events of one delivery together, in one transaction).
//! Terminal runs never move: late events are recorded but change neither
//! status nor result.

use std::collections::HashMap;

use myloware_core::costs::Charge;
use myloware_core::run::Transition;
use myloware_core::wire::EventOutcome;
use myloware_core::wire::{CostRecorded, Event, EventKind};
use myloware_core::{Gate, RunStatus};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::hitl;
use crate::notify;
use crate::state::ApiState;
use crate::store::{AppliedCost, AppliedEvent, Artifact, NewGate, Run, RunEvents, RunUpdate, StoreError};

/// Applies a delivery's events, each run's (in `seq` order, as `runs`
/// groups them) with the others in one transaction. A run another writer
/// changed since it was read goes on by itself ([`apply_run`]); so does
/// every run when that transaction fails because of what some run wrote
/// ([`myloware_db::is_about_the_rows`]), so that one run's failure does not
/// fail its neighbours: it is answered "out of order" (sent again later).
/// Fails as a whole when nothing could be written. Each run's outcomes,
/// as [`apply_run`]'s.
pub async fn apply_delivery(state: &ApiState, runs: &[Vec<&Event>]) -> Result<Vec<Vec<EventOutcome>>, ApiError> {
    let ids: Vec<&str> = runs
        .iter()
        .filter_map(|events| Some(events.first()?.run_id.as_str()))
        .collect();
    let mut known: HashMap<String, Run> = state
        .store
        .get_runs(&ids)
        .await?
        .into_iter()
        .map(|run| (run.id.clone(), run))
        .collect();
    let mut outcomes: Vec<Vec<EventOutcome>> = Vec::with_capacity(runs.len());
    // The runs with something to write: their index in `runs`, and the plan.
    let mut batch: Vec<(usize, Planned)> = Vec::new();
    for (index, events) in runs.iter().enumerate() {
        let Some(run) = events.first().and_then(|first| known.remove(&first.run_id)) else {
            outcomes.push(unknown_run(events));
            continue;
        };
        let mut planned = plan(state, run, events);
        if planned.writes.events.is_empty() {
            outcomes.push(std::mem::take(&mut planned.outcomes));
        } else {
            // Answered once written.
            outcomes.push(Vec::new());
            batch.push((index, planned));
        }
    }
    if batch.is_empty() {
        return Ok(outcomes);
    }
    let writes: Vec<&RunEvents> = batch.iter().map(|(_, planned)| &planned.writes).collect();
    let mut held = match state.store.apply_runs_events(&writes).await {
        Ok(held) => held,
        Err(StoreError::Database(error)) if myloware_db::is_about_the_rows(&error) => {
            tracing::warn!(%error, runs = batch.len(), "a delivery's runs failed together; applying each alone");
            Vec::new()
        }
        Err(error) => return Err(error.into()),
    };
    // A run without its flag is taken as not written (it goes alone).
    held.resize(batch.len(), false);
    let (to_write, mut failed, mut error) = (batch.len(), 0, None);
    for ((index, mut planned), held) in batch.into_iter().zip(held) {
        if held {
            announce(state, &planned);
            outcomes[index] = std::mem::take(&mut planned.outcomes);
            continue;
        }
        match apply_run(state, &runs[index]).await {
            Ok(answer) => outcomes[index] = answer,
            Err(cause) => {
                // Not applied: the outbox sends them again.
                tracing::error!(runId = %planned.run.id, error = %cause, "a run's events could not be applied");
                outcomes[index] = vec![EventOutcome::OutOfOrder; runs[index].len()];
                failed += 1;
                // The answer if all fail: a conflict only if every run's was.
                if !matches!(cause, ApiError::Conflict(_)) || error.is_none() {
                    error = Some(cause);
                }
            }
        }
    }
    match error {
        // Nothing could be written: the delivery failed as a whole.
        Some(error) if failed == to_write => Err(error),
        _ => Ok(outcomes),
    }
}

/// Applies a run's events of one delivery (in `seq` order) in one
/// transaction; retries when another writer applied some concurrently.
/// Each event's outcome, in order: applied, a duplicate, out of order (it
/// and every later one: the outbox sends them again), or for an unknown run.
pub async fn apply_run(state: &ApiState, events: &[&Event]) -> Result<Vec<EventOutcome>, ApiError> {
    let Some(first) = events.first() else {
        return Ok(Vec::new());
    };
    for _ in 0..5 {
        let Some(run) = state.store.get_run(&first.run_id).await? else {
            return Ok(unknown_run(events));
        };
        let planned = plan(state, run, events);
        if planned.writes.events.is_empty() {
            return Ok(planned.outcomes);
        }
        if !state.store.apply_runs_events(&[&planned.writes]).await?[0] {
            continue;
        }
        announce(state, &planned);
        return Ok(planned.outcomes);
    }
    Err(ApiError::Conflict("the run is changing; send the events again".into()))
}

fn unknown_run(events: &[&Event]) -> Vec<EventOutcome> {
    if let Some(first) = events.first() {
        tracing::warn!(runId = %first.run_id, events = events.len(), "events for an unknown run dropped");
    }
    vec![EventOutcome::UnknownRun; events.len()]
}

/// A run's events of a delivery as they apply to the run as read.
struct Planned {
    run: Run,
    /// Each event's outcome, in order.
    outcomes: Vec<EventOutcome>,
    /// The events to write, each with what it changes, if the run is
    /// still as read.
    writes: RunEvents,
    /// Each event to write's run status before it, for the log.
    before: Vec<RunStatus>,
}

/// Works out what `events` do to `run`, each to the run as the one before
/// left it: applied, a duplicate (its seq is past), or out of order (a gap
/// before it: it and every later one wait for the outbox to send them again).
fn plan(state: &ApiState, run: Run, events: &[&Event]) -> Planned {
    let mut now = run.clone();
    let mut planned = Planned {
        outcomes: Vec::with_capacity(events.len()),
        writes: RunEvents {
            expected_last_seq: run.last_event_seq,
            expected_status: run.status,
            events: Vec::new(),
        },
        before: Vec::new(),
        run,
    };
    for event in events {
        if event.seq <= now.last_event_seq {
            planned.outcomes.push(EventOutcome::Duplicate);
            continue;
        }
        if event.seq > now.last_event_seq + 1 || planned.outcomes.contains(&EventOutcome::OutOfOrder) {
            planned.outcomes.push(EventOutcome::OutOfOrder);
            continue;
        }
        let update = update_of(state, &now, event);
        planned.before.push(now.status);
        if let Some(status) = update.status {
            now.status = status;
        }
        if let Some(result) = &update.result {
            now.result = result.clone();
        }
        if let Some(persona) = &update.current_persona {
            now.current_persona = persona.clone();
        }
        now.last_event_seq = event.seq;
        let event = AppliedEvent {
            event_id: event.event_id.clone(),
            run_id: event.run_id.clone(),
            seq: event.seq,
            kind: event.kind.as_str().to_string(),
            data: event.data.clone(),
            at: event.at,
        };
        planned.writes.events.push((event, update));
        planned.outcomes.push(EventOutcome::Applied);
    }
    planned
}

/// What the service does once a run's events are written: wakes the chat
/// pushes, counts the money and the runs ended, logs each status change.
fn announce(state: &ApiState, planned: &Planned) {
    let run = &planned.run;
    for ((event, update), before) in planned.writes.events.iter().zip(&planned.before) {
        if update.messages.iter().any(|m| !m.pushes.is_empty()) {
            state.pushes.notify_one();
        }
        if let Some(cost) = &update.cost {
            state.metrics.spent(cost);
        }
        if let Some(status) = update.status {
            state.metrics.run_ended(&run.id, &run.project, status);
            tracing::info!(runId = %run.id, from = %before, to = %status, event = %event.kind, "run status changed");
        }
    }
}

/// What `event` changes, the run as it finds it: [`effect`], the gate it
/// opens and what the run's people hear of it.
fn update_of(state: &ApiState, run: &Run, event: &Event) -> RunUpdate {
    let mut update = effect(run, event);
    if event.kind == EventKind::GateReached && !run.status.is_terminal() {
        open_gate(state, run, event, &mut update);
    }
    if !run.status.is_terminal()
        && let Some(text) = notice_text(run, event, &update)
    {
        update.messages.push(notify::notice(&state.config, run, text, None));
    }
    update
}

/// A `gate.reached` opens the gate and puts the approval link in the
/// run's notices, in the event's transaction.
fn open_gate(state: &ApiState, run: &Run, event: &Event, update: &mut RunUpdate) {
    let Some(gate) = event.data["gate"].as_str().and_then(|g| g.parse::<Gate>().ok()) else {
        return;
    };
    update.gate = Some(NewGate {
        run_id: run.id.clone(),
        gate,
        preview: event.data["preview"].clone(),
    });
    let link = hitl::mint(state, &run.id, gate);
    let text = format!(
        "Run {} ({}) is waiting for your approval at the {gate} gate. Approve or reject: {}",
        run.id, run.project, link.approval_url
    );
    update.messages.push(notify::notice(
        &state.config,
        run,
        text,
        Some((gate, link.approval_url)),
    ));
}

fn is_artifact(event: &Event, kind: &str) -> bool {
    event.kind == EventKind::ArtifactCreated && event.data["kind"] == kind
}

/// What the run's people hear of `event`, besides the gates: a budget hold
/// (nothing to approve: it goes on by itself), the run published, failed.
fn notice_text(run: &Run, event: &Event, update: &RunUpdate) -> Option<String> {
    let (id, project) = (&run.id, &run.project);
    if is_artifact(event, "budget.held") {
        let hold = &event.data["data"];
        return Some(format!(
            "Run {id} ({project}) is on hold before {} paid call(s): the {} has {} USD left of {} USD and they need {} USD. \
             It goes on by itself when the limit allows (raised, or from {}).",
            hold["calls"]["count"],
            hold["limit"].as_str().unwrap_or("spending limit"),
            hold["leftUsd"],
            hold["limitUsd"],
            hold["neededUsd"],
            hold["until"].as_str().unwrap_or("the next period"),
        ));
    }
    match update.status? {
        RunStatus::Published => {
            let urls: Vec<&str> = event.data["publishUrls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            Some(format!("Run {id} ({project}) is published: {}", urls.join(" ")))
        }
        RunStatus::Failed => Some(notify::failed(
            run,
            event.data["error"]["message"].as_str().unwrap_or("no reason given"),
        )),
        _ => None,
    }
}

/// What `event` does to `run` (pure; the store writes it).
pub fn effect(run: &Run, event: &Event) -> RunUpdate {
    let data = &event.data;
    let persona = data["persona"].as_str().map(str::to_owned);
    let mut update = RunUpdate::default();
    let mut result = run.result.clone();
    let mut result_changed = false;
    let mut move_to = |to: RunStatus| match run.status.transition_to(to) {
        Ok(Transition::Moved) => update.status = Some(to),
        Ok(Transition::Unchanged) => {}
        Err(refused) => {
            tracing::warn!(runId = %run.id, event = event.kind.as_str(), %refused, "event does not move the run")
        }
    };
    match event.kind {
        EventKind::ExecutionStarted => move_to(RunStatus::Running),
        EventKind::PersonaStarted => {
            if matches!(
                run.status,
                RunStatus::Pending | RunStatus::AwaitingIdeate | RunStatus::AwaitingPrepublish
            ) {
                move_to(RunStatus::Running);
            }
        }
        EventKind::StatusChanged => match data["status"].as_str().and_then(|s| s.parse::<RunStatus>().ok()) {
            Some(status) => move_to(status),
            None => tracing::warn!(runId = %run.id, data = %data, "status.changed without a known status"),
        },
        EventKind::GateReached => match data["gate"]
            .as_str()
            .and_then(|g| g.parse::<myloware_core::Gate>().ok())
        {
            Some(gate) => move_to(gate.awaiting_status()),
            None => tracing::warn!(runId = %run.id, data = %data, "gate.reached without a known gate"),
        },
        EventKind::ExecutionCompleted => {
            move_to(RunStatus::Published);
            for field in ["videos", "renderUrl", "publishUrls"] {
                if let Some(value) = data.get(field) {
                    result[field] = value.clone();
                }
            }
            result_changed = true;
        }
        EventKind::ExecutionFailed => {
            move_to(RunStatus::Failed);
            result["error"] = data["error"].clone();
            result_changed = true;
        }
        EventKind::ExecutionCancelled => move_to(RunStatus::Cancelled),
        EventKind::ExecutionRejected => move_to(RunStatus::Rejected),
        EventKind::PersonaCompleted | EventKind::ArtifactCreated | EventKind::CostRecorded => {}
    }

    // Artifacts record what happened, even for a run that already ended.
    match event.kind {
        EventKind::PersonaCompleted => update.artifacts.push(Artifact::new(
            &run.id,
            "persona.output",
            persona.as_deref(),
            data["output"].clone(),
        )),
        EventKind::ArtifactCreated => {
            let kind = data["kind"].as_str().unwrap_or("unknown");
            update
                .artifacts
                .push(Artifact::new(&run.id, kind, persona.as_deref(), data["data"].clone()));
            result_changed |= update_result_for_artifact(&mut result, kind, &data["data"]);
        }
        EventKind::GateReached => update.artifacts.push(Artifact::new(
            &run.id,
            "gate.reached",
            persona.as_deref(),
            json!({"gate": data["gate"], "preview": data["preview"]}),
        )),
        EventKind::ExecutionFailed => update.artifacts.push(Artifact::new(
            &run.id,
            "run.failed",
            persona.as_deref(),
            data["error"].clone(),
        )),
        _ => {}
    }
    // A paid call was paid, however the run ended.
    if event.kind == EventKind::CostRecorded {
        update.cost = cost_of(run, event);
    }
    if event.kind == EventKind::PersonaCompleted && persona.as_deref() == Some("iggy") {
        // Iggy's ideas are the run's videos from now on.
        if let Some(ideas) = data["output"]["ideas"].as_array() {
            result["videos"] = Value::Array(
                ideas
                    .iter()
                    .map(|idea| {
                        json!({"index": idea["index"], "subject": idea["subject"], "header": idea["header"], "status": "pending"})
                    })
                    .collect(),
            );
            result_changed = true;
        }
    }

    if run.status.is_terminal() {
        // Late events never move a terminal run.
        update.status = None;
        return update;
    }
    match event.kind {
        EventKind::PersonaStarted => update.current_persona = Some(persona),
        EventKind::ExecutionCompleted
        | EventKind::ExecutionFailed
        | EventKind::ExecutionCancelled
        | EventKind::ExecutionRejected => update.current_persona = Some(None),
        _ => {}
    }
    if result_changed {
        update.result = Some(result);
    }
    update
}

/// The cost a `cost.recorded` event tells of; one that cannot be read is
/// logged and the event applied without it.
fn cost_of(run: &Run, event: &Event) -> Option<AppliedCost> {
    match serde_json::from_value::<CostRecorded>(event.data.clone()) {
        Ok(cost) => Some(AppliedCost {
            event_id: event.event_id.clone(),
            run_id: run.id.clone(),
            project: run.project.clone(),
            charge: Charge {
                provider: cost.provider,
                operation: cost.operation,
                model: cost.model,
                units: cost.units,
                usd_micros: cost.usd_micros,
            },
            mode: cost.mode,
            journal_key: cost.key,
            at: event.at,
        }),
        Err(err) => {
            tracing::warn!(runId = %run.id, eventId = %event.event_id, error = %err, "cost.recorded unreadable; not counted");
            None
        }
    }
}

/// `kieai.clip`, `render.url` and `publish.url` artifacts also fill `result`.
fn update_result_for_artifact(result: &mut Value, kind: &str, data: &Value) -> bool {
    match kind {
        "kieai.clip" => {
            let Some(index) = data["index"].as_u64() else {
                return false;
            };
            let videos = result["videos"].as_array_mut();
            let Some(videos) = videos else { return false };
            let video = match videos.iter_mut().find(|v| v["index"].as_u64() == Some(index)) {
                Some(video) => video,
                None => {
                    videos.push(json!({"index": index}));
                    videos.last_mut().expect("just pushed")
                }
            };
            video["status"] = data["status"].clone();
            if let Some(url) = data.get("url").filter(|u| !u.is_null()) {
                video["assetUrl"] = url.clone();
            }
            true
        }
        "render.url" => {
            result["renderUrl"] = data["url"].clone();
            true
        }
        "publish.url" => {
            let url = data["url"].clone();
            match result["publishUrls"].as_array_mut() {
                Some(urls) if urls.contains(&url) => return false,
                Some(urls) => urls.push(url),
                None => result["publishUrls"] = json!([url]),
            }
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn run(status: RunStatus) -> Run {
        Run {
            id: "run_abc".into(),
            project: "test_video_gen".into(),
            status,
            current_persona: None,
            user_id: None,
            payload: json!({}),
            result: json!({"videos": [{"index": 0, "subject": "moon", "header": "cheeseburger", "status": "pending"}], "renderUrl": null, "publishUrls": [], "error": null}),
            last_event_seq: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            seq: 1,
        }
    }

    fn event(kind: EventKind, data: Value) -> Event {
        Event {
            event_id: "e1".into(),
            run_id: "run_abc".into(),
            seq: 1,
            kind,
            at: Utc::now(),
            data,
        }
    }

    #[test]
    fn clips_renders_and_publishes_fill_the_result() {
        let clip = event(
            EventKind::ArtifactCreated,
            json!({"kind": "kieai.clip", "persona": "riley", "data": {"index": 0, "status": "completed", "url": "https://x/0.mp4"}}),
        );
        let update = effect(&run(RunStatus::Generating), &clip);
        let result = update.result.unwrap();
        assert_eq!(result["videos"][0]["status"], "completed");
        assert_eq!(result["videos"][0]["assetUrl"], "https://x/0.mp4");
        assert_eq!(result["videos"][0]["subject"], "moon");
        assert_eq!(update.artifacts[0].kind, "kieai.clip");

        let publish = event(
            EventKind::ArtifactCreated,
            json!({"kind": "publish.url", "data": {"url": "https://tiktok/1"}}),
        );
        let result = effect(&run(RunStatus::Publishing), &publish).result.unwrap();
        assert_eq!(result["publishUrls"], json!(["https://tiktok/1"]));
    }

    #[test]
    fn failures_carry_the_error_into_the_result() {
        let failed = event(
            EventKind::ExecutionFailed,
            json!({"error": {"code": "kieai.clip_failed", "message": "content policy", "persona": "riley"}}),
        );
        let update = effect(&run(RunStatus::Generating), &failed);
        assert_eq!(update.status, Some(RunStatus::Failed));
        assert_eq!(update.result.unwrap()["error"]["message"], "content policy");
        assert_eq!(update.current_persona, Some(None));
    }

    #[test]
    fn terminal_runs_do_not_move_or_change_their_result() {
        for kind in [
            EventKind::ExecutionStarted,
            EventKind::ExecutionCompleted,
            EventKind::ExecutionFailed,
        ] {
            let update = effect(&run(RunStatus::Cancelled), &event(kind, json!({"videos": []})));
            assert_eq!(update.status, None, "{kind:?}");
            assert_eq!(update.result, None, "{kind:?}");
            assert_eq!(update.current_persona, None, "{kind:?}");
        }
        let late_clip = event(
            EventKind::ArtifactCreated,
            json!({"kind": "kieai.clip", "data": {"index": 0, "status": "completed"}}),
        );
        let update = effect(&run(RunStatus::Cancelled), &late_clip);
        assert_eq!(update.artifacts.len(), 1, "what happened is still recorded");
        assert_eq!(update.result, None);
    }

    #[test]
    fn a_cost_is_kept_even_for_an_ended_run_and_moves_nothing() {
        let cost = json!({"provider": "shotstack", "operation": "render", "units": 1.6, "usd": 0.48,
                          "usdMicros": 480_000, "mode": "live", "key": "run_abc:alex:render"});
        for status in [RunStatus::Rendering, RunStatus::Cancelled] {
            let update = effect(&run(status), &event(EventKind::CostRecorded, cost.clone()));
            let recorded = update.cost.clone().expect("the cost");
            assert_eq!(
                (
                    recorded.charge.provider.as_str(),
                    recorded.charge.usd_micros,
                    recorded.project.as_str()
                ),
                ("shotstack", 480_000, "test_video_gen")
            );
            assert_eq!(recorded.journal_key.as_deref(), Some("run_abc:alex:render"));
            assert_eq!(recorded.event_id, "e1");
            assert_eq!((update.status, update.result), (None, None), "{status}");
        }
        let unreadable = effect(
            &run(RunStatus::Rendering),
            &event(EventKind::CostRecorded, json!({"usd": "a lot"})),
        );
        assert_eq!(unreadable.cost, None);
    }

    #[test]
    fn gates_and_resumption_move_the_status() {
        let gate = event(
            EventKind::GateReached,
            json!({"gate": "ideate", "persona": "iggy", "preview": {}}),
        );
        assert_eq!(
            effect(&run(RunStatus::Running), &gate).status,
            Some(RunStatus::AwaitingIdeate)
        );
        let resumed = event(EventKind::PersonaStarted, json!({"persona": "riley"}));
        let update = effect(&run(RunStatus::AwaitingIdeate), &resumed);
        assert_eq!(update.status, Some(RunStatus::Running));
        assert_eq!(update.current_persona, Some(Some("riley".into())));
    }
}
