//! The outbox dispatcher: delivers committed events to the API
//! (`POST /v1/internal/events`) in order per run, retrying each run's
//! undelivered events with capped exponential backoff until the API
//! acknowledges them. The API applies each event once, so a delivery
//! repeated after a crash (or by a second orchestrator) is harmless.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use myloware_core::backoff::Backoff;
use myloware_core::wire::{Event, EventBatch, EventKind, EventOutcome, EventResults};
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::watch;

use crate::engine::Engine;
use crate::store::OutboxEvent;

/// 0.5 s, 1 s, 2 s ... capped at 10 s: the API is usually back quickly,
/// and a run's later events wait behind its first undelivered one.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

pub async fn dispatch(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("the HTTP client builds");
    let url = engine.config.api_url.join("/v1/internal/events").expect("valid path");
    let idle = Duration::from_millis(engine.config.engine.poll_ms);
    while !*shutdown.borrow() {
        let due = match engine.store.outbox_due(Utc::now(), 200).await {
            Ok(due) => due,
            Err(err) => {
                tracing::error!(error = %err, "outbox: cannot read due events");
                Vec::new()
            }
        };
        if due.is_empty() {
            tokio::select! {
                _ = engine.events.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        deliver(&engine, &http, url.as_str(), due).await;
    }
}

/// The event as the API receives it; `None` for a type this build does
/// not know (never written by it), which then waits like an unapplied one.
fn wire_event(event: &OutboxEvent) -> Option<Event> {
    match event.kind.parse() {
        Ok(kind) => Some(Event {
            event_id: event.event_id.clone(),
            run_id: event.run_id.clone(),
            seq: event.run_seq,
            kind,
            at: event.created_at,
            data: event.data.clone(),
        }),
        Err(error) => {
            tracing::error!(eventId = %event.event_id, %error, "outbox: event not sendable");
            None
        }
    }
}

/// Posts a batch; `Err` says why nothing was acknowledged (with the
/// status, when the API answered).
async fn post(
    engine: &Engine,
    http: &reqwest::Client,
    url: &str,
    batch: &EventBatch,
) -> Result<EventResults, (Option<StatusCode>, String)> {
    let answer = match http.post(url).json(batch).build() {
        Ok(mut request) => {
            myloware_http::internal::sign(&engine.config.internal_keys(), &mut request);
            http.execute(request).await
        }
        Err(err) => Err(err),
    };
    match answer {
        Ok(response) if response.status().is_success() => {
            response.json::<EventResults>().await.map_err(|e| (None, e.to_string()))
        }
        Ok(response) => Err((Some(response.status()), format!("API answered {}", response.status()))),
        Err(err) => Err((None, format!("API unreachable: {err}"))),
    }
}

/// The batch as an API from before `cost.recorded` reads it: each cost as
/// an `artifact.created` of kind `cost.recorded` (same id and seq), which
/// such an API records as an artifact of the run.
fn without_cost_events(batch: &EventBatch) -> EventBatch {
    let events = batch
        .events
        .iter()
        .map(|event| match event.kind {
            EventKind::CostRecorded => Event {
                kind: EventKind::ArtifactCreated,
                data: json!({"kind": "cost.recorded", "persona": null, "data": event.data}),
                ..event.clone()
            },
            _ => event.clone(),
        })
        .collect();
    EventBatch { events }
}

async fn deliver(engine: &Engine, http: &reqwest::Client, url: &str, due: Vec<OutboxEvent>) {
    let batch = EventBatch {
        events: due.iter().filter_map(wire_event).collect(),
    };
    let mut results = post(engine, http, url, &batch).await;
    // An API older than `cost.recorded` refuses the whole batch (422: an
    // unknown event type); rather than hold every run's events until it is
    // upgraded, it gets the costs in a shape it knows.
    let has_costs = batch.events.iter().any(|e| e.kind == EventKind::CostRecorded);
    if has_costs && matches!(results, Err((Some(StatusCode::UNPROCESSABLE_ENTITY), _))) {
        tracing::warn!("the API refused cost.recorded events (an older API?); sending them as artifacts");
        results = post(engine, http, url, &without_cost_events(&batch)).await;
    }
    let results = results.map_err(|(_, error)| error);
    crate::faults::point("outbox.after_send");
    let statuses: HashMap<String, EventOutcome> = match results {
        Ok(results) => results.results.into_iter().map(|r| (r.event_id, r.status)).collect(),
        Err(error) => {
            // Nothing acknowledged: every run of the batch waits and retries.
            let mut runs: HashMap<&str, i64> = HashMap::new();
            for event in &due {
                runs.entry(&event.run_id).or_insert(event.attempts);
            }
            tracing::warn!(%error, events = due.len(), "outbox delivery failed; will retry");
            for (run_id, attempts) in runs {
                let _ = engine
                    .store
                    .outbox_retry(run_id, &error, Utc::now() + BACKOFF.after(attempts))
                    .await;
            }
            return;
        }
    };
    let mut delivered = Vec::new();
    let mut retry: HashMap<&str, i64> = HashMap::new();
    for event in &due {
        match statuses.get(&event.event_id) {
            Some(outcome) if outcome.is_final() => delivered.push(event.event_id.clone()),
            _ => {
                retry.entry(&event.run_id).or_insert(event.attempts);
            }
        }
    }
    if let Err(err) = engine.store.outbox_delivered(&delivered).await {
        tracing::error!(error = %err, "outbox: cannot mark events delivered");
    }
    for (run_id, attempts) in retry {
        let _ = engine
            .store
            .outbox_retry(
                run_id,
                "not applied by the API yet (an earlier event missing, or the run could not be written)",
                Utc::now() + BACKOFF.after(attempts),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_api_gets_costs_as_artifacts_with_the_same_id_and_seq() {
        let event = |seq: i64, kind: EventKind, data: serde_json::Value| Event {
            event_id: format!("e{seq}"),
            run_id: "run_a".into(),
            seq,
            kind,
            at: Utc::now(),
            data,
        };
        let cost = json!({"provider": "kieai", "usdMicros": 400_000});
        let batch = EventBatch {
            events: vec![
                event(1, EventKind::CostRecorded, cost.clone()),
                event(2, EventKind::StatusChanged, json!({"status": "generating"})),
            ],
        };
        let legacy = without_cost_events(&batch);
        assert_eq!(legacy.events[0].kind, EventKind::ArtifactCreated);
        assert_eq!(
            legacy.events[0].data,
            json!({"kind": "cost.recorded", "persona": null, "data": cost})
        );
        assert_eq!((legacy.events[0].event_id.as_str(), legacy.events[0].seq), ("e1", 1));
        assert_eq!(legacy.events[1], batch.events[1]);
    }
}
