//! The durable engine. An execution walks its graph's nodes; each node
//! invocation is a step whose output, new state and events for the API are
//! committed in one transaction, fenced by the worker's lease. Provider
//! calls are journaled by idempotency key before they are made, so a step
//! re-run after a crash recovers the earlier call instead of paying twice.
//! Waiting executions are rows, not tasks: signals and timers make them
//! runnable again. See docs/engine.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use myloware_core::config::Config;
use myloware_core::graph::{self, Node};
use myloware_core::project::Persona;
use myloware_core::wire::{EventKind, StartExecution};
use myloware_core::{Gate, ProviderMode};
use myloware_providers::Providers;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, watch};

use crate::metrics::{EngineMetrics, Observation};
use crate::personas::LlmPersonas;
use crate::store::{ExecStatus, Execution, NewEvent, OrchestratorStore, Spend, StepCommit, StoredSignal};
use myloware_telemetry::HttpMetrics;

mod intake;
mod steps;

use crate::run_state::{ClipStatus, RunState};

/// Why a step stopped without committing, or failed the run.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Another worker holds the execution now; drop this step's work.
    #[error("lease lost")]
    LeaseLost,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    /// The mock providers' ledger (this database) failed mid-call.
    #[error("{0}")]
    Ledger(String),
}

/// A failure that ends the run, with a reason a person can act on.
#[derive(Debug, Clone, PartialEq)]
pub struct RunError {
    pub code: String,
    pub message: String,
    pub persona: Option<Persona>,
}

/// What a step decided.
#[derive(Debug)]
pub enum Outcome {
    /// The node is done; go on with the next one.
    Advance,
    /// Commit the state so far and run the same node again at once (an
    /// LLM's answer is kept before the side effects that follow it).
    Checkpoint,
    /// Wait for a signal, or until `wake_at`.
    Park {
        wait: Value,
        wake_at: Option<chrono::DateTime<Utc>>,
    },
    Fail(RunError),
    Cancelled,
    Rejected {
        gate: Gate,
        reason: Option<String>,
    },
    /// Changes were asked at a gate: go back to this persona's node.
    Revisit(Persona),
}

/// The providers of each mode; a run uses the set of its own mode. `live`
/// is the reason there are none when live mode is not configured here.
#[derive(Clone)]
pub struct ProviderSets {
    pub mock: Providers,
    pub live: Result<Providers, String>,
}

/// Who does the personas' creative work.
pub enum Personas {
    /// Deterministic outputs from the project (no LLM configured).
    Scripted,
    Llm(Arc<LlmPersonas>),
    /// An LLM is configured but cannot be used (the reason): persona steps
    /// fail rather than fall back to scripted output.
    Unavailable(String),
}

impl Personas {
    /// The personas `config` asks for.
    pub fn from_config(config: &Config) -> Personas {
        match LlmPersonas::from_config(config) {
            Ok(None) => Personas::Scripted,
            Ok(Some(llm)) => {
                tracing::info!(model = llm.model(), "personas use the LLM");
                Personas::Llm(llm)
            }
            Err(why) => {
                tracing::error!(reason = %why, "an LLM is configured but the persona prompts cannot be loaded");
                Personas::Unavailable(format!("the persona prompts cannot be loaded: {why}"))
            }
        }
    }
}

/// Shared by workers, routes and the outbox dispatcher.
pub struct Engine {
    pub store: Arc<dyn OrchestratorStore>,
    /// Where renders are copied before the prepublish gate.
    pub assets: Arc<myloware_assets::AssetStore>,
    pub config: Arc<Config>,
    pub providers: ProviderSets,
    pub personas: Personas,
    pub metrics: Arc<EngineMetrics>,
    /// Each project's own spending limits, as the catalog says now (a held
    /// run sees a raised `[budget]` after a restart).
    pub project_budgets: std::collections::HashMap<String, Option<myloware_core::project::BudgetSpec>>,
    /// New runnable work (a start, a signal, a cancel).
    pub work: Notify,
    /// New events in the outbox.
    pub events: Notify,
}

/// One step's working set.
pub struct Step<'a> {
    pub engine: &'a Engine,
    pub worker: &'a str,
    pub run_id: String,
    pub request: StartExecution,
    pub state: RunState,
    pub signals: Vec<StoredSignal>,
    pub events: Vec<NewEvent>,
    /// Metrics to record once the step commits.
    pub observations: Vec<Observation>,
    /// The costs of its LLM requests, committed with it.
    pub spend: Vec<Spend>,
    /// Provider jobs it learned ended (their slots are freed with it).
    pub jobs_ended: Vec<String>,
    /// A paid call's answer held back to go with the next call's begin.
    pub held: HeldAnswer,
}

/// A paid call's answer that a step making several calls in a row holds
/// back, to write it in the transaction that begins its next call (one
/// commit instead of two; Riley's clips). Nothing is held unless the step
/// asks (`steps::journal::hold_answers`), and what is held is written
/// alone when the step returns without another call.
#[derive(Default)]
pub struct HeldAnswer {
    pub(crate) holding: bool,
    pub(crate) answer: std::sync::Mutex<Option<crate::store::PaidAnswer>>,
}

impl Step<'_> {
    pub fn emit(&mut self, kind: EventKind, data: Value) {
        self.events.push(NewEvent { kind, data });
    }

    pub fn observe(&mut self, observation: Observation) {
        self.observations.push(observation);
    }

    /// The providers this run's mode calls; a live run on an orchestrator
    /// without live credentials fails at `persona`'s step.
    pub fn providers(&self, persona: Persona) -> Result<Providers, Outcome> {
        match self.request.providers_mode {
            ProviderMode::Mock => Ok(self.engine.providers.mock.clone()),
            ProviderMode::Live => self.engine.providers.live.clone().map_err(|why| {
                Outcome::Fail(RunError {
                    code: "providers.not_configured".into(),
                    message: format!("this run is in live mode but the orchestrator cannot call the providers: {why}"),
                    persona: Some(persona),
                })
            }),
        }
    }
}

impl Engine {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn OrchestratorStore>,
        providers: ProviderSets,
        personas: Personas,
    ) -> Arc<Engine> {
        let telemetry = &config.telemetry;
        let http = HttpMetrics::new("orchestrator", telemetry.run_series_ttl, telemetry.max_run_series);
        // The projects only name series declared at zero: without a
        // readable catalog there are none to declare.
        let catalog = myloware_core::project::Catalog::load_from(&config.projects).ok();
        let declared = crate::metrics::Declared {
            projects: &catalog.as_ref().map(|c| c.names()).unwrap_or_default(),
            mode: config.providers_mode,
            model: &config.llm.model,
        };
        let metrics = EngineMetrics::new(http, &declared);
        let project_budgets = catalog
            .iter()
            .flat_map(|c| {
                c.names()
                    .into_iter()
                    .filter_map(|name| c.get(name).map(|s| (name.to_string(), s.budget)))
            })
            .collect();
        Arc::new(Engine {
            project_budgets,
            store,
            assets: Arc::new(myloware_assets::AssetStore::from_config(&config)),
            config,
            providers,
            personas,
            metrics,
            work: Notify::new(),
            events: Notify::new(),
        })
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.config.engine.lease_secs as i64)
    }

    /// Runs up to `config.engine.workers` executions at once until
    /// `shutdown` fires: one task claims work, as many executions per
    /// statement as there are free workers, and drives each in a task of
    /// its own. The handle ends once the executions in hand have parked.
    pub fn spawn_workers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let process = uuid::Uuid::new_v4().simple().to_string();
        vec![tokio::spawn(
            self.clone().claim_loop(process[..8].to_string(), shutdown),
        )]
    }

    async fn claim_loop(self: Arc<Self>, process: String, mut shutdown: watch::Receiver<bool>) {
        let idle = Duration::from_millis(self.config.engine.poll_ms);
        let workers = Arc::new(Semaphore::new(self.config.engine.workers.max(1)));
        let mut driving = tokio::task::JoinSet::new();
        let mut claims = 0u64;
        while !*shutdown.borrow() {
            // A free worker first; then as many as are free.
            let first = tokio::select! {
                permit = workers.clone().acquire_owned() => permit.expect("never closed"),
                _ = shutdown.changed() => break,
            };
            let mut permits = vec![first];
            while let Ok(permit) = workers.clone().try_acquire_owned() {
                permits.push(permit);
            }
            // Every claim's owners are new: an execution this process
            // claims again (its lease lost meanwhile) is another owner's.
            claims += 1;
            let owner = format!("{process}-{claims}:");
            let now = Utc::now();
            match self
                .store
                .claim_many(&owner, now, now + self.lease(), permits.len() as u32)
                .await
            {
                Ok(claimed) if !claimed.is_empty() => {
                    for execution in claimed {
                        let permit = permits.pop().expect("one per claimed execution");
                        let engine = self.clone();
                        driving.spawn(async move {
                            let worker = execution.lease_owner.clone().unwrap_or_default();
                            engine.drive(&worker, execution).await;
                            drop(permit);
                        });
                    }
                    // Finished drives are forgotten as they end.
                    while driving.try_join_next().is_some() {}
                }
                Ok(_) => {
                    drop(permits);
                    tokio::select! {
                        _ = self.work.notified() => {}
                        _ = tokio::time::sleep(idle) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(err) => {
                    drop(permits);
                    tracing::error!(error = %err, "cannot claim work");
                    tokio::time::sleep(idle).await;
                }
            }
        }
        // Shutting down: the steps in hand finish (and park) first.
        while driving.join_next().await.is_some() {}
    }

    /// Runs steps of one claimed execution until it parks or ends, keeping
    /// the lease alive meanwhile.
    async fn drive(self: &Arc<Self>, worker: &str, execution: Execution) {
        let run_id = execution.run_id.clone();
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let (engine, worker, run_id, lost) = (self.clone(), worker.to_string(), run_id.clone(), lost.clone());
            tokio::spawn(async move {
                let every = Duration::from_secs((engine.config.engine.lease_secs / 3).max(1));
                loop {
                    tokio::time::sleep(every).await;
                    match engine
                        .store
                        .extend_lease(&run_id, &worker, Utc::now() + engine.lease())
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(err) => tracing::warn!(runId = %run_id, error = %err, "heartbeat failed"),
                    }
                }
            })
        };
        // Part of the run's trace: a child of the API's `<project>-graph`.
        let span = tracing::info_span!(
            "execution",
            runId = %run_id,
            run_id = %run_id,
            langsmith.metadata.run_id = %run_id,
            project = %execution.project,
            worker = %worker,
        );
        myloware_telemetry::trace::set_parent(&span, execution.request["traceparent"].as_str());
        let result = tracing::Instrument::instrument(self.run_steps(worker, execution, &lost), span).await;
        heartbeat.abort();
        match result {
            Ok(()) => {}
            Err(StepError::LeaseLost) => {
                tracing::warn!(runId = %run_id, %worker, "lease lost; another worker continues")
            }
            Err(err @ (StepError::Store(_) | StepError::Ledger(_))) => {
                // Nothing was committed: give the lease back so the step runs
                // again soon (if even that fails, the lease expires).
                tracing::error!(runId = %run_id, error = %err, "step failed; it will run again");
                if let Err(err) = self.store.release_lease(&run_id, worker).await {
                    tracing::warn!(runId = %run_id, error = %err, "cannot release the lease; it will expire");
                }
            }
        }
    }

    async fn run_steps(&self, worker: &str, mut execution: Execution, lost: &AtomicBool) -> Result<(), StepError> {
        let request: StartExecution = match serde_json::from_value(execution.request.clone()) {
            Ok(request) => request,
            Err(err) => {
                tracing::error!(runId = %execution.run_id, error = %err, "stored request unreadable");
                return Ok(());
            }
        };
        let nodes = graph::nodes(&request.graph_spec).unwrap_or_default();
        // The claim just read the flag and the signals, in the statement
        // that took the lease.
        let mut claimed_inputs = Some((execution.cancel_requested, execution.pending_signals.take()));
        loop {
            if lost.load(Ordering::SeqCst) {
                return Err(StepError::LeaseLost);
            }
            let state: RunState = serde_json::from_value(execution.state.clone()).unwrap_or_default();
            // A step's inputs: from the claim for the first, one read for each next.
            let (cancelled, signals) = match claimed_inputs.take() {
                Some((cancelled, Some(signals))) => (cancelled, signals),
                Some((cancelled, None)) => (cancelled, self.store.pending_signals(&execution.run_id).await?),
                None => self.store.step_inputs(&execution.run_id).await?,
            };
            let consumed_through = signals.last().map(|s| s.seq);
            let mut step = Step {
                engine: self,
                worker,
                run_id: execution.run_id.clone(),
                request: request.clone(),
                state,
                signals,
                events: Vec::new(),
                observations: Vec::new(),
                spend: Vec::new(),
                jobs_ended: Vec::new(),
                held: HeldAnswer::default(),
            };
            let node = nodes.get(execution.node as usize).copied();
            let outcome = if cancelled {
                Outcome::Cancelled
            } else {
                match node {
                    Some(node) => {
                        let span = step_span(&execution.run_id, &request.project, node);
                        let ran = tracing::Instrument::instrument(steps::run(&mut step, node), span).await;
                        // An answer held for a next call that did not come.
                        let written = steps::write_held_answer(&step).await;
                        if let (Err(_), Err(err)) = (&ran, &written) {
                            tracing::warn!(runId = %execution.run_id, error = %err, "a paid call's answer held by the failed step is not written");
                        }
                        let outcome = ran?;
                        written?;
                        outcome
                    }
                    None => Outcome::Advance,
                }
            };
            let started = std::time::Instant::now();
            let mut next_node = execution.node;
            let (status, wait, wake_at) = match outcome {
                Outcome::Advance => {
                    next_node += 1;
                    if next_node as usize >= nodes.len() {
                        step.emit(EventKind::ExecutionCompleted, completion(&step.state));
                        (ExecStatus::Completed, None, None)
                    } else {
                        (ExecStatus::Runnable, None, None)
                    }
                }
                Outcome::Checkpoint => (ExecStatus::Runnable, None, None),
                Outcome::Revisit(persona) => {
                    let back = nodes.iter().position(|n| *n == Node::Persona(persona));
                    next_node = back.map_or(next_node, |at| at as i64);
                    (ExecStatus::Runnable, None, None)
                }
                Outcome::Park { wait, wake_at } => (ExecStatus::Waiting, Some(wait), wake_at),
                Outcome::Fail(error) => {
                    tracing::warn!(runId = %execution.run_id, code = %error.code, message = %error.message, "run failed");
                    if let Some(persona) = error.persona {
                        let seconds = step.state.persona_seconds(persona);
                        step.observe(Observation::Persona {
                            persona,
                            outcome: crate::metrics::PersonaOutcome::Failed,
                            seconds,
                        });
                    }
                    step.emit(
                        EventKind::ExecutionFailed,
                        json!({"error": {"code": error.code, "message": error.message, "persona": error.persona}}),
                    );
                    step.state.failure = Some(crate::run_state::Failure {
                        code: error.code,
                        persona: error.persona,
                    });
                    (ExecStatus::Failed, None, None)
                }
                Outcome::Cancelled => {
                    step.emit(EventKind::ExecutionCancelled, json!({"reason": "cancelled"}));
                    (ExecStatus::Cancelled, None, None)
                }
                Outcome::Rejected { gate, reason } => {
                    step.emit(EventKind::ExecutionRejected, json!({"gate": gate, "reason": reason}));
                    (ExecStatus::Rejected, None, None)
                }
            };
            let keep_going = status == ExecStatus::Runnable;
            let state = serde_json::to_value(&step.state).expect("state serializes");
            let had_events = !step.events.is_empty();
            let commit = StepCommit {
                run_id: execution.run_id.clone(),
                worker: worker.to_string(),
                node: next_node,
                status,
                state: state.clone(),
                wait: wait.clone(),
                wake_at,
                events: step.events,
                consumed_through,
                keep_lease_until: keep_going.then(|| Utc::now() + self.lease()),
                spend: step.spend,
                jobs_ended: step.jobs_ended,
                release_jobs: status.is_finished() && self.config.budget.max_provider_jobs.is_some(),
            };
            crate::faults::point("step.before_commit");
            if !self.store.commit_step(&commit).await? {
                return Err(StepError::LeaseLost);
            }
            crate::faults::point("step.after_commit");
            let metrics = &self.metrics;
            metrics.record(&request.project, request.providers_mode, &step.observations);
            if status.is_finished() {
                metrics.http.run_finished(&execution.run_id);
            }
            tracing::debug!(runId = %execution.run_id, node = ?node, status = status.as_str(), commit_us = started.elapsed().as_micros() as u64, "step committed");
            if had_events {
                self.events.notify_one();
            }
            if !keep_going {
                return Ok(());
            }
            execution.node = next_node;
            execution.state = state;
        }
    }
}

/// `execution.completed`: the videos with their clips, the render, the posts.
fn completion(state: &RunState) -> Value {
    let videos: Vec<Value> = state
        .ideas
        .iter()
        .map(|idea| {
            let clip = state.clips.iter().find(|c| c.index == idea.index);
            json!({
                "index": idea.index,
                "subject": idea.subject,
                "header": idea.header,
                "status": clip.map_or("pending", |c| match c.status {
                    ClipStatus::Completed => "completed",
                    ClipStatus::Failed => "failed",
                    ClipStatus::Pending => "pending",
                }),
                "assetUrl": clip.and_then(|c| c.url.clone()),
                "renderUrl": state.render.as_ref().and_then(crate::run_state::Render::shown_url),
            })
        })
        .collect();
    json!({
        "videos": videos,
        "renderUrl": state.render.as_ref().and_then(crate::run_state::Render::shown_url),
        "publishUrls": state.publish.as_ref().map(|p| p.urls.clone()).unwrap_or_default(),
    })
}

/// The span of one step: `persona.<name>` or `gate.<gate>`.
fn step_span(run_id: &str, project: &str, node: Node) -> tracing::Span {
    let name = match node {
        Node::Persona(persona) => format!("persona.{persona}"),
        Node::Gate(gate) => format!("gate.{gate}"),
    };
    tracing::info_span!(
        "step",
        otel.name = %name,
        run_id = %run_id,
        langsmith.metadata.run_id = %run_id,
        langsmith.span.kind = "chain",
        project = %project,
    )
}

/// The first persona node at or after `node`, for events about gates.
pub fn node_persona(node: Node) -> Option<Persona> {
    match node {
        Node::Persona(p) => Some(p),
        Node::Gate(Gate::Ideate) => Some(Persona::Iggy),
        Node::Gate(Gate::Prepublish) => Some(Persona::Quinn),
        Node::Gate(Gate::Workflow) => None,
    }
}
