//! The API's domain metrics (OBSERVABILITY.md), in the service's registry
//! next to the HTTP ones. Counters move where things happen; gauges are
//! read from the database at scrape time, so they are right after a restart
//! and across instances.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use myloware_core::costs::{PROVIDERS, usd};
use myloware_core::project::Catalog;
use myloware_core::{Gate, ProviderMode, RunStatus};
use myloware_telemetry::HttpMetrics;
use myloware_telemetry::metrics::{WAIT_BUCKETS, counter, gauge, gauge_vec, histogram};
use myloware_telemetry::prometheus::{CounterVec, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use crate::store::{ApiGauges, AppliedCost};

pub struct ApiMetrics {
    pub http: Arc<HttpMetrics>,
    runs_total: IntCounterVec,
    runs_active: IntGaugeVec,
    gate_wait: HistogramVec,
    decisions: IntCounterVec,
    webhooks: IntCounterVec,
    chat_turns: IntCounterVec,
    dead_letters_open: IntGauge,
    commands_pending: IntGauge,
    chat_pushes_pending: IntGauge,
    spend: CounterVec,
    /// The catalog's projects, whose series start at zero.
    projects: Vec<String>,
    /// The configured providers mode, whose spend series start at zero.
    mode: ProviderMode,
}

/// `via` of `hitl_decisions_total` (`hitl::Credential::via`).
const VIA: [&str; 3] = ["api_key", "chat", "token"];
/// Labels of `webhook_events_total` (`routes::webhooks`, `routes::chat`).
/// Each provider with the signature statuses it records: Upload-Post's
/// webhook carries none.
const WEBHOOK_SIGNATURES: [(&str, &[&str]); 3] = [
    ("kieai", &["verified", "missing", "rejected"]),
    ("telegram", &["verified", "missing", "rejected"]),
    ("upload_post", &["unsigned"]),
];
const WEBHOOK_RESULTS: [&str; 4] = ["processed", "duplicate", "dlq", "rejected"];
const DECISIONS: [&str; 2] = ["approve", "reject"];

impl ApiMetrics {
    pub fn new(http: Arc<HttpMetrics>, catalog: &Catalog, mode: ProviderMode) -> Arc<ApiMetrics> {
        let r = http.registry();
        let spend = CounterVec::new(
            Opts::new(
                "myloware_spend_usd_total",
                "What paid calls cost, in USD (mock: what they would have cost), once per cost.recorded event",
            ),
            &["provider", "project", "mode"],
        )
        .expect("valid metric");
        r.register(Box::new(spend.clone())).expect("register once");
        let metrics = ApiMetrics {
            runs_total: counter(
                r,
                "myloware_runs_total",
                "Runs that ended, by terminal status",
                &["project", "status"],
            ),
            runs_active: gauge_vec(
                r,
                "myloware_runs_active",
                "Runs not ended, by status",
                &["project", "status"],
            ),
            gate_wait: histogram(
                r,
                "myloware_gate_wait_seconds",
                "Time from a gate opening to its decision",
                &["project", "gate", "decision"],
                &WAIT_BUCKETS,
            ),
            decisions: counter(
                r,
                "hitl_decisions_total",
                "Gate decisions taken",
                &["gate", "decision", "via"],
            ),
            webhooks: counter(
                r,
                "webhook_events_total",
                "Webhook deliveries by signature status and what became of them",
                &["provider", "signature", "result"],
            ),
            chat_turns: counter(r, "myloware_chat_turns_total", "Chat turns with Brendan", &["outcome"]),
            dead_letters_open: gauge(r, "myloware_dead_letters_open", "Dead letters not yet replayed"),
            commands_pending: gauge(
                r,
                "commands_pending",
                "Commands to the orchestrator not yet acknowledged",
            ),
            chat_pushes_pending: gauge(
                r,
                "chat_pushes_pending",
                "Chat messages waiting to be pushed to a channel",
            ),
            spend,
            http,
            projects: catalog.names().into_iter().map(str::to_owned).collect(),
            mode,
        };
        metrics.declare();
        Arc::new(metrics)
    }

    /// Every series the dashboard and the alerts read, at zero.
    fn declare(&self) {
        for project in &self.projects {
            for provider in PROVIDERS {
                self.spend.with_label_values(&[provider, project, self.mode.as_str()]);
            }
            for status in RunStatus::ALL {
                if status.is_terminal() {
                    self.runs_total.with_label_values(&[project, status.as_str()]);
                } else {
                    self.runs_active.with_label_values(&[project, status.as_str()]);
                }
            }
            for gate in Gate::ALL {
                for decision in DECISIONS {
                    self.gate_wait.with_label_values(&[project, gate.as_str(), decision]);
                }
            }
        }
        for gate in Gate::ALL {
            for decision in DECISIONS {
                for via in VIA {
                    self.decisions.with_label_values(&[gate.as_str(), decision, via]);
                }
            }
            self.http
                .declare("POST", "/v1/hitl/approve/{runId}/{gate}", 200, gate.as_str());
            self.http
                .declare("POST", "/v1/hitl/reject/{runId}/{gate}", 200, gate.as_str());
        }
        for (provider, signatures) in WEBHOOK_SIGNATURES {
            for signature in signatures {
                for result in WEBHOOK_RESULTS {
                    self.webhooks.with_label_values(&[provider, signature, result]);
                }
            }
        }
        for outcome in ["ok", "error"] {
            self.chat_turns.with_label_values(&[outcome]);
        }
        self.http.declare("POST", "/v1/runs/start", 201, "");
        self.http.declare("POST", "/v1/chat/brendan", 200, "");
    }

    /// A run reached a terminal status: count it, and let its HTTP series
    /// go after the TTL.
    pub fn run_ended(&self, run_id: &str, project: &str, status: RunStatus) {
        if status.is_terminal() {
            self.runs_total.with_label_values(&[project, status.as_str()]).inc();
            self.http.run_finished(run_id);
        }
    }

    /// A gate decided (`decision` approve|reject|revise).
    pub fn gate_decided(&self, project: &str, gate: Gate, decision: &str, via: &str, opened: DateTime<Utc>) {
        self.decisions.with_label_values(&[gate.as_str(), decision, via]).inc();
        let waited = (Utc::now() - opened).num_milliseconds().max(0) as f64 / 1000.0;
        self.gate_wait
            .with_label_values(&[project, gate.as_str(), decision])
            .observe(waited);
    }

    /// A webhook delivery: `signature` verified|missing|rejected, `result`
    /// processed|duplicate|dlq|rejected.
    pub fn webhook(&self, provider: &str, signature: &str, result: &str) {
        self.webhooks.with_label_values(&[provider, signature, result]).inc();
    }

    /// A paid call's cost, applied once (with its `cost.recorded` event).
    pub fn spent(&self, cost: &AppliedCost) {
        self.spend
            .with_label_values(&[&cost.charge.provider, &cost.project, cost.mode.as_str()])
            .inc_by(usd(cost.charge.usd_micros));
    }

    pub fn chat_turn(&self, ok: bool) {
        self.chat_turns
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// Sets the gauges from the database's counts.
    pub fn set_gauges(&self, gauges: &ApiGauges) {
        self.runs_active.reset();
        for project in &self.projects {
            for status in RunStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
                self.runs_active.with_label_values(&[project, status.as_str()]);
            }
        }
        for (project, status, count) in &gauges.active_runs {
            self.runs_active.with_label_values(&[project, status]).set(*count);
        }
        self.dead_letters_open.set(gauges.dead_letters_open);
        self.commands_pending.set(gauges.commands_pending);
        self.chat_pushes_pending.set(gauges.chat_pushes_pending);
    }
}
