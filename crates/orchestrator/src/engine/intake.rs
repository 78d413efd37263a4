//! What the API asks of the engine, as the routes hand it over: start an
//! execution, deliver a signal, decide a gate, cancel. Each is idempotent
//! (on `runId`, on the signal id, on the gate), so the API's retries are
//! harmless; each wakes the workers when it changed something.

use myloware_core::wire::{
    CancelAccepted, EventKind, ExecutionAccepted, MAX_SIGNAL_BATCH, Repeated, ResumeExecution, RetryAccepted,
    RetryExecution, RetryStatus, Signal, SignalAccepted, SignalBatch, SignalBatchAccepted, SignalResult, SignalStatus,
    StartExecution, StartStatus,
};
use serde_json::json;

use super::Engine;
use crate::error::OrchestratorError;
use crate::run_state::RunState;
use crate::store::{Created, ExecStatus, NewEvent, NewExecution, SignalOutcome};

impl Engine {
    /// Queues a new execution; the same start again is `exists`, a
    /// different one with the same `runId` a conflict.
    pub async fn start(&self, request: &StartExecution) -> Result<ExecutionAccepted, OrchestratorError> {
        if !myloware_core::ids::is_run_id(&request.run_id) {
            return Err(OrchestratorError::Unprocessable("runId is not a run id".into()));
        }
        myloware_core::graph::nodes(&request.graph_spec)
            .map_err(|err| OrchestratorError::Unprocessable(err.to_string()))?;
        let new = NewExecution {
            run_id: request.run_id.clone(),
            project: request.project.clone(),
            request: serde_json::to_value(request).expect("serializes"),
            state: json!({}),
        };
        let first = NewEvent {
            kind: EventKind::ExecutionStarted,
            data: json!({"providersMode": request.providers_mode}),
        };
        let status = match self.store.create_execution(&new, &first).await? {
            Created::Created => {
                tracing::info!(runId = %request.run_id, project = %request.project, "execution queued");
                self.work.notify_one();
                self.events.notify_one();
                StartStatus::Queued
            }
            Created::Exists { same: true } => StartStatus::Exists,
            Created::Exists { same: false } => {
                return Err(OrchestratorError::Conflict(
                    "an execution with this runId exists with a different request".into(),
                ));
            }
        };
        Ok(ExecutionAccepted {
            run_id: request.run_id.clone(),
            status,
        })
    }

    /// Delivers `signal` to the execution once per `signal_id`.
    pub async fn signal(
        &self,
        run_id: &str,
        signal_id: &str,
        signal: &Signal,
    ) -> Result<SignalAccepted, OrchestratorError> {
        let body = serde_json::to_value(signal).expect("serializes");
        let status = match self.store.add_signal(run_id, signal_id, &body).await? {
            SignalOutcome::Accepted => {
                self.work.notify_one();
                SignalStatus::Accepted
            }
            SignalOutcome::Duplicate => SignalStatus::Duplicate,
            SignalOutcome::UnknownExecution => return Err(OrchestratorError::not_found("execution")),
        };
        Ok(SignalAccepted { status })
    }

    /// Delivers a run's signals, in order, in one transaction; each once
    /// per its id, as [`Engine::signal`] does one.
    pub async fn signals(&self, run_id: &str, batch: &SignalBatch) -> Result<SignalBatchAccepted, OrchestratorError> {
        if batch.signals.is_empty() || batch.signals.len() > MAX_SIGNAL_BATCH {
            return Err(OrchestratorError::Unprocessable(format!(
                "signals must hold 1 to {MAX_SIGNAL_BATCH} signals"
            )));
        }
        let signals: Vec<(String, serde_json::Value)> = batch
            .signals
            .iter()
            .map(|d| {
                (
                    d.signal_id.clone(),
                    serde_json::to_value(&d.signal).expect("serializes"),
                )
            })
            .collect();
        let fresh = self
            .store
            .add_signals(run_id, &signals)
            .await?
            .ok_or_else(|| OrchestratorError::not_found("execution"))?;
        if fresh.contains(&true) {
            self.work.notify_one();
        }
        let results = batch
            .signals
            .iter()
            .zip(fresh)
            .map(|(delivery, fresh)| SignalResult {
                signal_id: delivery.signal_id.clone(),
                status: if fresh {
                    SignalStatus::Accepted
                } else {
                    SignalStatus::Duplicate
                },
            })
            .collect();
        Ok(SignalBatchAccepted { results })
    }

    /// Decides the gate the execution waits at. A gate decided before
    /// answers by [`Decision::again`](myloware_core::wire::Decision::again):
    /// the same decision is a duplicate, the opposite one a conflict.
    pub async fn resume(&self, run_id: &str, resume: &ResumeExecution) -> Result<SignalAccepted, OrchestratorError> {
        let execution = self
            .store
            .get_execution(run_id)
            .await?
            .ok_or_else(|| OrchestratorError::not_found("execution"))?;
        let signal_id = resume.signal_id();
        if let Some(earlier) = self.store.find_signal(run_id, &signal_id).await? {
            let repeated = match serde_json::from_value::<Signal>(earlier).map(|s| s.gate_decision()) {
                Ok(Some(earlier)) => resume.decision.again(earlier),
                // Not a decision under a gate's id: nothing it could repeat.
                _ => Repeated::Conflict,
            };
            return match repeated {
                Repeated::Duplicate => Ok(SignalAccepted {
                    status: SignalStatus::Duplicate,
                }),
                Repeated::Conflict => Err(OrchestratorError::Conflict(format!(
                    "the {} gate was already decided otherwise",
                    resume.gate
                ))),
            };
        }
        let waiting_here = execution.wait.as_ref().is_some_and(|w| w["gate"] == json!(resume.gate));
        if execution.status.is_finished() || !waiting_here {
            return Err(OrchestratorError::Conflict(format!(
                "the execution is not waiting at the {} gate",
                resume.gate
            )));
        }
        self.signal(run_id, &signal_id, &resume.signal()).await
    }

    /// Continues a failed execution at the step that failed (see
    /// [`RunState::prepare_retry`]). The same attempt again is a duplicate;
    /// a retry of an execution that has not failed is a conflict.
    pub async fn retry(&self, run_id: &str, retry: &RetryExecution) -> Result<RetryAccepted, OrchestratorError> {
        if retry.attempt == 0 {
            return Err(OrchestratorError::Unprocessable("attempt starts at 1".into()));
        }
        let accepted = |status| RetryAccepted {
            run_id: run_id.to_string(),
            status,
        };
        for _ in 0..3 {
            let execution = self
                .store
                .get_execution(run_id)
                .await?
                .ok_or_else(|| OrchestratorError::not_found("execution"))?;
            let mut state: RunState = serde_json::from_value(execution.state.clone())
                .map_err(|err| OrchestratorError::Internal(anyhow::anyhow!("stored state unreadable: {err}")))?;
            if state.retries >= retry.attempt {
                return Ok(accepted(RetryStatus::Duplicate));
            }
            if execution.status != ExecStatus::Failed {
                return Err(OrchestratorError::Conflict(format!(
                    "the execution is {}; only a failed one can be retried",
                    execution.status.as_str()
                )));
            }
            state.prepare_retry(retry.attempt);
            let state = serde_json::to_value(&state).expect("state serializes");
            if self.store.retry_execution(run_id, retry.attempt, &state).await? {
                tracing::info!(runId = %run_id, attempt = retry.attempt, by = %retry.by, "execution retried");
                self.work.notify_one();
                return Ok(accepted(RetryStatus::Queued));
            }
        }
        Err(OrchestratorError::Conflict(
            "the execution is changing; send the retry again".into(),
        ))
    }

    /// Asks the execution to stop before its next side effect.
    pub async fn cancel(&self, run_id: &str) -> Result<CancelAccepted, OrchestratorError> {
        let status = self
            .store
            .request_cancel(run_id)
            .await?
            .ok_or_else(|| OrchestratorError::not_found("execution"))?;
        self.work.notify_one();
        tracing::info!(runId = %run_id, "cancel requested");
        Ok(CancelAccepted {
            run_id: run_id.to_string(),
            status: status.as_str().to_string(),
            cancel_requested: true,
        })
    }
}
