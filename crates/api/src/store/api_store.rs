//! [`ApiStore`]: the one interface to what the API keeps, implemented for
//! each backend by `sql.rs`. Its methods are grouped as the aggregates'
//! modules are (their types are named there).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use myloware_core::{Gate, RunStatus};
use serde_json::Value;

use super::artifacts::Artifact;
use super::audit::{AuditEntry, AuditQuery, AuditRecord};
use super::chat::{ChatDelivery, ChatMessage, PushOutcome};
use super::commands::{Command, DeliveryAttempt, NewCommand};
use super::common::StoreResult;
use super::costs::{DaySpend, RunCostRow};
use super::dead_letters::{DeadLetter, DeadLetterKind};
use super::events::{AppliedEvent, RunEvents};
use super::gates::{Decided, Decision, GateExpiry, GateRecord};
use super::retention::{ApiGauges, Pruned};
use super::runs::{NewRun, ProposalEdit, Run, RunDetails, RunQuery};
use super::schedules::{Fired, Firing, FiringClaim, FiringStart, NewSchedule, Schedule, ScheduleQuery};
use super::sessions::ConsoleSession;
use super::webhooks::{CallbackRecorded, WebhookDelivery};

#[async_trait]
pub trait ApiStore: Send + Sync + 'static {
    async fn insert_run(&self, run: &NewRun) -> StoreResult<Run> {
        self.insert_run_with_command(run, None).await
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<Run>>;

    /// The runs among `ids` that exist, in no particular order, read in
    /// one statement.
    async fn get_runs(&self, ids: &[&str]) -> StoreResult<Vec<Run>>;

    /// The run with its gates (in the order they were requested) and
    /// artifacts (in creation order), read together.
    async fn get_run_details(&self, id: &str) -> StoreResult<Option<RunDetails>>;

    /// Whether the run exists (without reading it).
    async fn run_exists(&self, id: &str) -> StoreResult<bool>;

    /// At most `query.limit` runs, newest first.
    async fn list_runs(&self, query: &RunQuery) -> StoreResult<Vec<Run>>;

    /// Moves the run from `from` to `to` if it is still in `from` (so two
    /// concurrent writers cannot both move it), recording `artifact`,
    /// enqueueing `command` and writing the `notice` in the same
    /// transaction. `false` when the run was not in `from` (then nothing is
    /// written).
    async fn transition(
        &self,
        id: &str,
        from: RunStatus,
        to: RunStatus,
        artifact: Option<&Artifact>,
        command: Option<&NewCommand>,
        notice: Option<&ChatMessage>,
    ) -> StoreResult<bool>;

    /// Replaces a proposal (a `pending_workflow` run's project, payload,
    /// result, estimate, and its workflow gate's preview), recording
    /// `edit.artifact` (the proposal before, who edited) in the same
    /// transaction. `false` when the run is no longer a proposal.
    async fn edit_proposal(&self, edit: &ProposalEdit) -> StoreResult<bool>;

    /// Moves a failed run back to `running` with `result` (its error
    /// removed), recording `artifact` (who asked) and enqueueing the retry
    /// `command` in the same transaction. `false` when the run is no longer
    /// failed (then nothing is written).
    async fn retry_run(&self, id: &str, result: &Value, artifact: &Artifact, command: &NewCommand)
    -> StoreResult<bool>;

    /// Inserts `run` and, in the same transaction, its first command.
    async fn insert_run_with_command(&self, run: &NewRun, command: Option<&NewCommand>) -> StoreResult<Run>;

    /// The oldest unacknowledged command of each run whose next attempt is
    /// due (later commands of a run wait for the earlier ones).
    async fn commands_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Command>>;

    /// Up to `limit` unacknowledged commands of `run_id`, oldest first, due
    /// or not.
    async fn pending_commands(&self, run_id: &str, limit: u32) -> StoreResult<Vec<Command>>;

    async fn record_delivery(&self, seq: i64, attempt: &DeliveryAttempt) -> StoreResult<()> {
        self.record_deliveries(&[seq], attempt).await
    }

    /// The same attempt at each of the commands `seqs` (sent together), in
    /// one statement; a command acknowledged before is left as it was.
    async fn record_deliveries(&self, seqs: &[i64], attempt: &DeliveryAttempt) -> StoreResult<()>;

    async fn list_commands(&self, run_id: &str) -> StoreResult<Vec<Command>>;

    /// Applies consecutive events of several runs in one transaction: each
    /// run's (seqs `expected_last_seq + 1` onwards, each with what it
    /// changes, worked out from the run as read) if the run's last applied
    /// seq and its status are still those read. Per run, in order: whether
    /// its events were written (`false`: nothing of that run's written,
    /// another writer (an event, a decision, a cancel) got there first).
    async fn apply_runs_events(&self, runs: &[&RunEvents]) -> StoreResult<Vec<bool>>;

    async fn list_events(&self, run_id: &str) -> StoreResult<Vec<AppliedEvent>>;

    /// Records a webhook delivery and, when it is accepted, enqueues
    /// `command` in the same transaction. `Ok(false)` when its idempotency
    /// key was already used (nothing is written then).
    async fn record_webhook(&self, delivery: &WebhookDelivery, command: Option<&NewCommand>) -> StoreResult<bool>;

    /// Several accepted deliveries, each with its command, in one
    /// transaction (group commit): what became of each. One whose
    /// idempotency key was used before (or earlier in the list) enqueues
    /// nothing and is recorded again as a `duplicate` delivery without the
    /// key; one for a run not known here is not recorded. Every delivery
    /// must carry a key.
    async fn record_callbacks(&self, callbacks: &[(WebhookDelivery, NewCommand)])
    -> StoreResult<Vec<CallbackRecorded>>;

    async fn list_webhooks(&self, provider: &str) -> StoreResult<Vec<WebhookDelivery>>;

    /// The latest `limit` provider webhook deliveries, newest first.
    async fn recent_webhooks(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>>;

    /// Applies a decision if the gate is still awaiting (on its locked row:
    /// of two simultaneous decisions one wins), with its run move, artifact
    /// and command, in one transaction. An approval short of the gate's
    /// `required` is only counted (once per approver).
    async fn decide(&self, decision: &Decision) -> StoreResult<Decided>;

    async fn get_gate(&self, run_id: &str, gate: Gate) -> StoreResult<Option<GateRecord>>;

    async fn list_gates(&self, run_id: &str) -> StoreResult<Vec<GateRecord>>;

    /// Every gate awaiting a decision, oldest first.
    async fn awaiting_gates(&self, limit: u32) -> StoreResult<Vec<GateRecord>>;

    /// Gates awaiting a decision since before `before`, oldest first; only
    /// those not reminded yet when `unreminded`.
    async fn gates_waiting_since(
        &self,
        before: DateTime<Utc>,
        unreminded: bool,
        limit: u32,
    ) -> StoreResult<Vec<GateRecord>>;

    /// Marks the gate reminded and writes `notice`, once: `false` when it
    /// was reminded already or no longer awaits.
    async fn remind_gate(&self, run_id: &str, gate: Gate, notice: &ChatMessage) -> StoreResult<bool>;

    /// Expires an awaiting gate with its run (`expiry.run_from` to
    /// `expired`), its artifact, notice and command, in one transaction;
    /// `false` when the gate or the run moved meanwhile.
    async fn expire_gate(&self, expiry: &GateExpiry) -> StoreResult<bool>;

    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// At most `query.limit` audit entries, newest first.
    async fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;

    /// Every audit entry of `run_id`, oldest first.
    async fn list_audit(&self, run_id: &str) -> StoreResult<Vec<AuditRecord>>;

    /// Appends to the transcript and queues the message's pushes, in one
    /// transaction. The message's seq.
    async fn append_chat(&self, message: &ChatMessage) -> StoreResult<i64>;

    /// Pending pushes whose next attempt is due, oldest first.
    async fn chat_deliveries_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<ChatDelivery>>;

    /// Takes a due push for one attempt if nobody else did (its attempt
    /// count is still `attempts`), holding it until `hold_until`.
    async fn claim_chat_delivery(&self, id: i64, attempts: i64, hold_until: DateTime<Utc>) -> StoreResult<bool>;

    async fn finish_chat_delivery(&self, id: i64, outcome: &PushOutcome) -> StoreResult<()>;

    /// Every push, newest first.
    async fn list_chat_deliveries(&self, limit: u32) -> StoreResult<Vec<ChatDelivery>>;

    /// Enqueues a command on its own (a replay).
    async fn enqueue_command(&self, command: &NewCommand) -> StoreResult<()>;

    async fn add_dead_letter(
        &self,
        kind: DeadLetterKind,
        run_id: Option<&str>,
        payload: &Value,
        error: &str,
    ) -> StoreResult<i64>;

    /// Unresolved dead letters (all of them with `include_resolved`), oldest first.
    async fn dead_letters(&self, include_resolved: bool, limit: u32) -> StoreResult<Vec<DeadLetter>>;

    async fn get_dead_letter(&self, seq: i64) -> StoreResult<Option<DeadLetter>>;

    /// Records a replay attempt; `resolved` closes the entry.
    async fn record_replay(&self, seq: i64, resolved: bool, error: Option<&str>) -> StoreResult<()>;

    async fn chat_messages(&self, user_id: &str, limit: u32) -> StoreResult<Vec<ChatMessage>>;

    async fn insert_artifact(&self, artifact: &Artifact) -> StoreResult<()>;

    /// A run's artifacts in creation order.
    async fn list_artifacts(&self, run_id: &str) -> StoreResult<Vec<Artifact>>;

    /// Retention: every row from before `cutoff` that no unfinished run
    /// needs (audit, applied events, acknowledged commands, webhook
    /// deliveries, artifacts and chat lines of ended runs or of none,
    /// resolved dead letters, finished chat pushes; `sql::PRUNABLE` says
    /// which exactly). Counted when `dry_run`, else deleted in one
    /// transaction; both select the same rows.
    async fn prune(&self, cutoff: DateTime<Utc>, dry_run: bool) -> StoreResult<Pruned>;

    /// What was spent per day (`from` to `to`, inclusive, `YYYY-MM-DD` in
    /// UTC), project, mode and provider, in that order; one project's only
    /// with `project`.
    async fn spend_by_day(&self, from: &str, to: &str, project: Option<&str>) -> StoreResult<Vec<DaySpend>>;

    /// A run's costs, oldest first.
    async fn run_costs(&self, run_id: &str) -> StoreResult<Vec<RunCostRow>>;

    /// Live spend since UTC day `from` (`YYYY-MM-DD`, inclusive), of
    /// `project` or of every project, in micro-dollars.
    async fn live_spend_since(&self, from: &str, project: Option<&str>) -> StoreResult<i64>;

    /// Inserts `schedule` unless `cap` schedules exist (`None` then).
    async fn insert_schedule(&self, schedule: &NewSchedule, cap: u32) -> StoreResult<Option<Schedule>>;

    async fn get_schedule(&self, id: &str) -> StoreResult<Option<Schedule>>;

    /// At most `query.limit` schedules, newest first.
    async fn list_schedules(&self, query: &ScheduleQuery) -> StoreResult<Vec<Schedule>>;

    /// Deletes the schedule and its firings (the runs it started stay).
    /// `false` when there was none.
    async fn delete_schedule(&self, id: &str) -> StoreResult<bool>;

    /// Stops an active schedule from firing (`next_fire_at` cleared);
    /// `false` when it is not active (or not there).
    async fn pause_schedule(&self, id: &str) -> StoreResult<bool>;

    /// Makes a paused schedule fire again, next at `next_fire_at`; `false`
    /// when it is not paused (or not there).
    async fn resume_schedule(&self, id: &str, next_fire_at: Option<DateTime<Utc>>) -> StoreResult<bool>;

    /// Active schedules whose next firing is at or before `now`, earliest first.
    async fn schedules_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Schedule>>;

    /// Claims the firing `claim.fire_at` if the schedule is active and its
    /// `next_fire_at` is still that (moving it to `claim.next_fire_at`), and
    /// in the same transaction records the firing, unique per schedule and
    /// firing time, with what `start` gives: the run and its command
    /// inserted (unless `MAX_ACTIVE_RUNS` refuses it, then the firing is
    /// refused with that reason), or the refusal; a refusal writes
    /// `claim.refusal_notice` too. [`Fired::Lost`] when the claim did not
    /// hold; nothing is written then.
    async fn fire_schedule(&self, claim: &FiringClaim, start: FiringStart<'_>) -> StoreResult<Fired>;

    /// A schedule's latest `limit` firings, newest first.
    async fn list_firings(&self, schedule_id: &str, limit: u32) -> StoreResult<Vec<Firing>>;

    /// Records a console sign-in.
    async fn create_session(&self, session: &ConsoleSession) -> StoreResult<()>;

    /// The sign-in whose id hashes to `id_hash`, if any (expired or not).
    async fn session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>>;

    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()>;

    /// Signs out (nothing when there is no such session).
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;

    /// Deletes the sessions idle since before `seen_before` or created
    /// before `created_before`; how many.
    async fn prune_sessions(&self, seen_before: DateTime<Utc>, created_before: DateTime<Utc>) -> StoreResult<u64>;

    /// The counts behind the gauges of `/metrics`.
    async fn gauges(&self) -> StoreResult<ApiGauges>;

    async fn ping(&self) -> StoreResult<()>;
}
