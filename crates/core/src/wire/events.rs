//! `POST /v1/internal/events` on the API: the orchestrator's outbox
//! delivers its events in batches; the API answers per event whether it
//! was applied (and the orchestrator forgets the ones it may).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ProviderMode;
use crate::costs::Charge;

/// What the orchestrator tells the API about a run. Applied once per
/// `eventId`, in `seq` order per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: String,
    pub run_id: String,
    /// 1, 2, 3... per run, without gaps.
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
}

/// `POST /v1/internal/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    #[serde(rename = "execution.started")]
    ExecutionStarted,
    /// `{persona}`
    #[serde(rename = "persona.started")]
    PersonaStarted,
    /// `{persona, output}`
    #[serde(rename = "persona.completed")]
    PersonaCompleted,
    /// `{kind, persona?, data}`; `kieai.clip`, `render.url` and `publish.url`
    /// also update the run's `result`.
    #[serde(rename = "artifact.created")]
    ArtifactCreated,
    /// `{status}`
    #[serde(rename = "status.changed")]
    StatusChanged,
    /// `{gate, persona, preview}`
    #[serde(rename = "gate.reached")]
    GateReached,
    /// `{videos, renderUrl, publishUrls}`
    #[serde(rename = "execution.completed")]
    ExecutionCompleted,
    /// `{error: {code, message, persona}}`
    #[serde(rename = "execution.failed")]
    ExecutionFailed,
    /// `{reason}`
    #[serde(rename = "execution.cancelled")]
    ExecutionCancelled,
    /// `{gate, reason}`
    #[serde(rename = "execution.rejected")]
    ExecutionRejected,
    /// [`CostRecorded`]: a paid call, once per call.
    #[serde(rename = "cost.recorded")]
    CostRecorded,
}

impl EventKind {
    const ALL: [EventKind; 11] = [
        Self::ExecutionStarted,
        Self::PersonaStarted,
        Self::PersonaCompleted,
        Self::ArtifactCreated,
        Self::StatusChanged,
        Self::GateReached,
        Self::ExecutionCompleted,
        Self::ExecutionFailed,
        Self::ExecutionCancelled,
        Self::ExecutionRejected,
        Self::CostRecorded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExecutionStarted => "execution.started",
            Self::PersonaStarted => "persona.started",
            Self::PersonaCompleted => "persona.completed",
            Self::ArtifactCreated => "artifact.created",
            Self::StatusChanged => "status.changed",
            Self::GateReached => "gate.reached",
            Self::ExecutionCompleted => "execution.completed",
            Self::ExecutionFailed => "execution.failed",
            Self::ExecutionCancelled => "execution.cancelled",
            Self::ExecutionRejected => "execution.rejected",
            Self::CostRecorded => "cost.recorded",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<EventKind, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown event type {s:?}"))
    }
}

/// `cost.recorded`'s data: one paid call (a clip, a render, a publish, an
/// LLM request) as the orchestrator recorded it, in the transaction that
/// recorded it, so the API counts each once (by event id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostRecorded {
    /// `kieai`, `shotstack`, `upload_post` or `openai`.
    pub provider: String,
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Clips, rendered minutes, publishes, or an LLM request's tokens.
    pub units: f64,
    /// USD, rounded to 6 decimals.
    pub usd: f64,
    /// The same amount in micro-dollars: what is stored and summed.
    pub usd_micros: i64,
    pub mode: ProviderMode,
    /// The journal key of a provider call; none for an LLM request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl CostRecorded {
    pub fn new(charge: &Charge, mode: ProviderMode, key: Option<&str>) -> CostRecorded {
        CostRecorded {
            provider: charge.provider.clone(),
            operation: charge.operation.clone(),
            model: charge.model.clone(),
            units: charge.units,
            usd: crate::costs::usd(charge.usd_micros),
            usd_micros: charge.usd_micros,
            mode,
            key: key.map(str::to_owned),
        }
    }
}

/// What became of one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    Applied,
    Duplicate,
    /// Not applied now: an earlier event of the run has not arrived yet,
    /// or the run could not be written; send again later.
    OutOfOrder,
    /// No such run here (another deployment's, or a database reset): nothing to apply, do not retry.
    UnknownRun,
}

impl EventOutcome {
    /// Whether the sender may forget the event.
    pub fn is_final(self) -> bool {
        self != EventOutcome::OutOfOrder
    }
}

/// The answer about one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventResult {
    pub event_id: String,
    pub status: EventOutcome,
}

/// The answer to a batch: one result per event, in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventResults {
    pub results: Vec<EventResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_parse_from_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!("execution.exploded".parse::<EventKind>().is_err());
    }

    #[test]
    fn a_cost_reads_as_the_orchestrator_writes_it() {
        let table = crate::costs::PriceTable::default();
        let cost = CostRecorded::new(&table.clip("veo3_fast"), ProviderMode::Mock, Some("run_a:riley:clip:0"));
        let json = serde_json::to_value(&cost).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"provider": "kieai", "operation": "submit", "model": "veo3_fast", "units": 1.0,
                "usd": 0.4, "usdMicros": 400_000, "mode": "mock", "key": "run_a:riley:clip:0"})
        );
        assert_eq!(serde_json::from_value::<CostRecorded>(json).unwrap(), cost);
        let llm = CostRecorded::new(&table.llm_request("gpt-4o-mini", 10, 10), ProviderMode::Live, None);
        assert!(serde_json::to_value(&llm).unwrap().get("key").is_none());
    }

    #[test]
    fn results_read_as_the_api_writes_them() {
        let results: EventResults = serde_json::from_value(serde_json::json!({"results": [
            {"eventId": "e1", "status": "applied"},
            {"eventId": "e2", "status": "out_of_order"},
            {"eventId": "e3", "status": "unknown_run"},
        ]}))
        .unwrap();
        let finals: Vec<bool> = results.results.iter().map(|r| r.status.is_final()).collect();
        assert_eq!(finals, [true, false, true]);
    }
}
