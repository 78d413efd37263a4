//! The orchestrator's domain metrics (OBSERVABILITY.md), in the service's
//! registry next to the HTTP ones. What a step observes is applied only
//! once the step is committed (a step that lost its lease did not happen);
//! provider requests and LLM tokens count when made, committed or not
//! (they were paid for either way). Queue gauges are read from the
//! database at scrape time. Every series a dashboard panel reads is
//! declared at zero at startup (projects from the catalog, the configured
//! providers mode and LLM model), so a fresh deployment shows zeros rather
//! than "No data".

use std::sync::Arc;

use myloware_core::ProviderMode;
use myloware_core::project::Persona;
use myloware_telemetry::HttpMetrics;
use myloware_telemetry::metrics::{STEP_BUCKETS, WAIT_BUCKETS, counter, gauge, histogram};
use myloware_telemetry::prometheus::{HistogramVec, IntCounterVec, IntGauge};

use crate::store::EngineCounts;

/// A provider job timed from submission to its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    KieAi,
    Shotstack,
    UploadPost,
}

/// Something a step saw, recorded once the step commits.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A persona finished or failed, after `seconds`.
    Persona {
        persona: Persona,
        outcome: PersonaOutcome,
        seconds: f64,
    },
    /// A provider job ended `seconds` after it was submitted.
    Job {
        job: Job,
        outcome: JobOutcome,
        seconds: f64,
    },
}

/// How a persona's step ended (the `outcome` label: `completed`, `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonaOutcome {
    Completed,
    Failed,
}

impl PersonaOutcome {
    pub const ALL: [PersonaOutcome; 2] = [Self::Completed, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// How a provider job ended (the `outcome` label: `succeeded`, `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Succeeded,
    Failed,
}

impl JobOutcome {
    pub const ALL: [JobOutcome; 2] = [Self::Succeeded, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

pub struct EngineMetrics {
    pub http: Arc<HttpMetrics>,
    persona_step: HistogramVec,
    kieai_job: HistogramVec,
    shotstack_render: HistogramVec,
    upload_post: HistogramVec,
    provider_requests: IntCounterVec,
    llm_tokens: IntCounterVec,
    outbox_pending: IntGauge,
    executions_runnable: IntGauge,
    executions_waiting: IntGauge,
}

/// What the series declared at startup are about.
pub struct Declared<'a> {
    pub projects: &'a [&'a str],
    pub mode: ProviderMode,
    pub model: &'a str,
}

/// `provider_requests_total`'s provider and operation pairs (`engine::steps`).
const PROVIDER_OPERATIONS: [(&str, &str); 8] = [
    ("kieai", "submit"),
    ("kieai", "status"),
    ("kieai", "recover"),
    ("shotstack", "render"),
    ("shotstack", "status"),
    ("shotstack", "recover"),
    ("upload_post", "publish"),
    ("upload_post", "status"),
];

impl EngineMetrics {
    pub fn new(http: Arc<HttpMetrics>, declared: &Declared<'_>) -> Arc<EngineMetrics> {
        let r = http.registry();
        let job = |name: &str, help: &str| histogram(r, name, help, &["mode", "outcome"], &WAIT_BUCKETS);
        let metrics = EngineMetrics {
            persona_step: histogram(
                r,
                "myloware_persona_step_duration_seconds",
                "A persona's work in a run, from its start to its end (waits included)",
                &["project", "persona", "outcome"],
                &STEP_BUCKETS,
            ),
            kieai_job: job("kieai_job_seconds", "kie.ai clips, submission to result"),
            shotstack_render: job("shotstack_render_seconds", "Shotstack renders, submission to result"),
            upload_post: job("upload_post_seconds", "Upload-Post publishes, request to published"),
            provider_requests: counter(
                r,
                "provider_requests_total",
                "Requests to the providers",
                &["provider", "operation", "mode", "status"],
            ),
            llm_tokens: counter(r, "llm_tokens_total", "LLM tokens used", &["model", "kind"]),
            outbox_pending: gauge(r, "outbox_pending", "Events not yet acknowledged by the API"),
            executions_runnable: gauge(r, "executions_runnable", "Executions ready for a worker"),
            executions_waiting: gauge(r, "executions_waiting", "Executions parked for a signal or a timer"),
            http,
        };
        metrics.declare(declared);
        Arc::new(metrics)
    }

    /// Every series the dashboard reads, at zero.
    fn declare(&self, declared: &Declared<'_>) {
        let mode = declared.mode.as_str();
        for project in declared.projects {
            for persona in Persona::ALL {
                for outcome in PersonaOutcome::ALL {
                    self.persona_step
                        .with_label_values(&[project, persona.as_str(), outcome.as_str()]);
                }
            }
        }
        for histogram in [&self.kieai_job, &self.shotstack_render, &self.upload_post] {
            for outcome in JobOutcome::ALL {
                histogram.with_label_values(&[mode, outcome.as_str()]);
            }
        }
        for (provider, operation) in PROVIDER_OPERATIONS {
            for status in ["ok", "error"] {
                self.provider_requests
                    .with_label_values(&[provider, operation, mode, status]);
            }
        }
        for kind in ["input", "output"] {
            self.llm_tokens.with_label_values(&[declared.model, kind]);
        }
    }

    /// Applies a committed step's observations.
    pub fn record(&self, project: &str, mode: ProviderMode, observations: &[Observation]) {
        let mode = mode.to_string();
        for observation in observations {
            match observation {
                Observation::Persona {
                    persona,
                    outcome,
                    seconds,
                } => self
                    .persona_step
                    .with_label_values(&[project, persona.as_str(), outcome.as_str()])
                    .observe(*seconds),
                Observation::Job { job, outcome, seconds } => {
                    let histogram = match job {
                        Job::KieAi => &self.kieai_job,
                        Job::Shotstack => &self.shotstack_render,
                        Job::UploadPost => &self.upload_post,
                    };
                    histogram
                        .with_label_values(&[mode.as_str(), outcome.as_str()])
                        .observe(*seconds);
                }
            }
        }
    }

    /// One request to a provider; `ok` when it answered what we asked.
    pub fn provider_request(&self, provider: &str, operation: &str, mode: ProviderMode, ok: bool) {
        let status = if ok { "ok" } else { "error" };
        self.provider_requests
            .with_label_values(&[provider, operation, &mode.to_string(), status])
            .inc();
    }

    pub fn llm_tokens(&self, model: &str, input: u64, output: u64) {
        self.llm_tokens.with_label_values(&[model, "input"]).inc_by(input);
        self.llm_tokens.with_label_values(&[model, "output"]).inc_by(output);
    }

    pub fn set_gauges(&self, counts: &EngineCounts) {
        self.outbox_pending.set(counts.outbox_pending);
        self.executions_runnable.set(counts.runnable);
        self.executions_waiting.set(counts.waiting);
    }
}
