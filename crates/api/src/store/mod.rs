//! What the API keeps: runs, their artifacts, and (later) gates, webhook
//! deliveries and chat transcripts. [`ApiStore`] is the one interface; it
//! has a SQLite and a Postgres implementation (`sql.rs`), both checked by
//! the same conformance suite (`tests/store.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
pub use myloware_core::wire::CommandKind;
use myloware_core::wire::ExecutionCommand;
use myloware_core::{Gate, RunStatus};
use myloware_db::Db;
use serde_json::Value;

/// A status or kind stored as text: the enum, its stored strings
/// (`as_str`, `FromStr` naming an unknown value, `Display`) and its JSON
/// form (the same string).
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(concat!("unknown ", stringify!($name), " {:?}"), other)),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

mod sql;

pub use sql::{PgApiStore, SqliteApiStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a run with id {0} already exists")]
    DuplicateRun(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The current time at the precision both backends keep (microseconds), so a
/// value read back equals the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub project: String,
    pub status: RunStatus,
    pub current_persona: Option<String>,
    pub user_id: Option<String>,
    pub payload: Value,
    pub result: Value,
    /// seq of the last orchestrator event applied.
    pub last_event_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Insertion order; the list cursor.
    pub seq: i64,
}

/// A run to insert.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Opened with the run (the workflow gate of a proposed run).
    pub gate: Option<NewGate>,
    pub id: String,
    pub project: String,
    pub status: RunStatus,
    pub user_id: Option<String>,
    pub payload: Value,
    pub result: Value,
    pub created_at: DateTime<Utc>,
}

/// Filters of `GET /v1/runs`; newest first, `before` is an exclusive cursor.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub status: Option<RunStatus>,
    pub project: Option<String>,
    pub before: Option<i64>,
    pub user_id: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub id: String,
    pub run_id: String,
    pub kind: String,
    pub persona: Option<String>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

impl Artifact {
    pub fn new(run_id: &str, kind: &str, persona: Option<&str>, data: Value) -> Artifact {
        Artifact {
            id: uuid::Uuid::now_v7().to_string(),
            run_id: run_id.to_string(),
            kind: kind.to_string(),
            persona: persona.map(str::to_string),
            data,
            created_at: now(),
        }
    }
}

/// A command to the orchestrator, to enqueue. Commands of one run are
/// delivered in order and retried until acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCommand {
    pub run_id: String,
    pub body: ExecutionCommand,
}

impl NewCommand {
    pub fn new(run_id: &str, body: ExecutionCommand) -> NewCommand {
        NewCommand {
            run_id: run_id.to_string(),
            body,
        }
    }
}

/// A command as stored: its body (the kind is stored beside it, and read
/// back into the body's variant), and how its delivery goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub seq: i64,
    pub run_id: String,
    pub body: ExecutionCommand,
    pub attempts: i64,
    pub acked_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        self.body.kind()
    }
}

/// The outcome of one attempt to deliver a command.
#[derive(Debug, Clone)]
pub enum DeliveryAttempt {
    Acked,
    /// Delivered but refused for good (recorded, never retried).
    Refused {
        error: String,
    },
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
    },
}

/// How an applied event changes its run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    /// `Some(None)` clears the current persona.
    pub current_persona: Option<Option<String>>,
    pub result: Option<Value>,
    pub artifacts: Vec<Artifact>,
    /// A gate the event opens.
    pub gate: Option<NewGate>,
    /// Messages for the run owner's chat transcript.
    pub messages: Vec<ChatMessage>,
}

/// A HITL gate to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGate {
    pub run_id: String,
    pub gate: Gate,
    pub preview: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateStatus {
    Awaiting,
    Approved,
    Rejected,
    Expired,
}

impl GateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Awaiting => "awaiting",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }
}

impl std::str::FromStr for GateStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Awaiting, Self::Approved, Self::Rejected, Self::Expired]
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| format!("unknown gate status {s:?}"))
    }
}

/// A JSON document as stored: passed on without being parsed.
pub type RawJson = Box<serde_json::value::RawValue>;

/// A run with its gates and artifacts, as `GET /v1/runs/{id}` shows it.
/// Its JSON documents (payload, result, artifact data) stay the stored
/// text: they go into the answer as they are, instead of being parsed into
/// values and written out again (most of that request's work otherwise).
#[derive(Debug)]
pub struct RunDetails {
    pub id: String,
    pub project: String,
    pub status: RunStatus,
    pub current_persona: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub payload: RawJson,
    pub result: RawJson,
    pub gates: Vec<GateRecord>,
    pub artifacts: Vec<RawArtifact>,
}

/// An artifact of [`RunDetails`], its data as stored.
#[derive(Debug, serde::Deserialize)]
pub struct RawArtifact {
    pub id: String,
    pub kind: String,
    pub persona: Option<String>,
    pub data: RawJson,
    pub created_at: DateTime<Utc>,
}

/// A gate instance, with whether the orchestrator has its decision.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRecord {
    pub run_id: String,
    pub gate: Gate,
    pub status: GateStatus,
    pub preview: Value,
    pub requested_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub decision: Option<String>,
    /// The credential that decided: `key:<name>`, `token:<fingerprint>`,
    /// `telegram:<chat id>`.
    pub approver: Option<String>,
    /// The name the decider gave (free text; not an identity).
    pub note: Option<String>,
    pub reason: Option<String>,
    /// `None` before a decision or when none had to be delivered.
    pub delivered: Option<bool>,
}

text_enum! {
    /// What a dead letter holds.
    pub enum DeadLetterKind {
        /// A signal the orchestrator refused (its [`SignalDelivery`](myloware_core::wire::SignalDelivery)).
        Signal = "signal",
        /// A verified webhook that could not be processed (`{provider, signal}`).
        Webhook = "webhook",
    }
}

/// Something that could not be processed, kept for replay.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub seq: i64,
    pub kind: DeadLetterKind,
    pub run_id: Option<String>,
    pub payload: Value,
    pub error: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One decision, with what it changes beside the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub run_id: String,
    pub gate: Gate,
    pub approve: bool,
    pub approver: Option<String>,
    pub note: Option<String>,
    pub reason: Option<String>,
    /// The run status move the decision makes, if any (`from`, `to`).
    pub run_move: Option<(RunStatus, RunStatus)>,
    pub artifact: Option<Artifact>,
    /// What the orchestrator must be told.
    pub command: Option<NewCommand>,
}

/// One decision attempt, whatever its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub run_id: String,
    pub gate: String,
    pub at: DateTime<Utc>,
    /// `approve`, `reject`, `view`, `link`.
    pub action: String,
    pub outcome: String,
    /// `token:<fingerprint>` or `api_key:<fingerprint>`; never the secret.
    pub credential: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub user_id: String,
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
    pub run_id: Option<String>,
    pub gate: Option<String>,
    pub link: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Channels to push the message to besides the transcript (written
    /// with the message, sent by `crate::chat::push_loop`). Empty when read.
    pub pushes: Vec<Push>,
}

/// Where a chat message is to be pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `telegram` or `webhook`.
    pub channel: String,
    /// The Telegram chat id, or the webhook URL.
    pub target: String,
}

/// A push of a chat message to a channel, as queued.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatDelivery {
    pub id: i64,
    pub message_seq: i64,
    pub channel: String,
    pub target: String,
    pub text: String,
    /// `pending`, `delivered` or `failed` (gave up).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Counts behind the API's gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiGauges {
    /// `(project, status, runs)` of runs not ended.
    pub active_runs: Vec<(String, String, i64)>,
    pub dead_letters_open: i64,
    pub commands_pending: i64,
    pub chat_pushes_pending: i64,
}

/// How a delivery attempt of a chat push ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome {
    Delivered,
    Retry { error: String, at: DateTime<Utc> },
    GaveUp { error: String },
}

/// An orchestrator event, as recorded when applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedEvent {
    pub event_id: String,
    pub run_id: String,
    pub seq: i64,
    pub kind: String,
    pub data: Value,
    pub at: DateTime<Utc>,
}

/// A provider webhook delivery, as recorded: never its whole body (a
/// refused delivery is anybody's bytes), but its size, its SHA-256 and its
/// first [`WEBHOOK_BODY_EXCERPT_BYTES`] (see [`WebhookDelivery::of_body`]).
/// Nothing reads a delivery's body back: an accepted delivery's effect is
/// its command (or dead letter), and its idempotency key deduplicates it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub provider: String,
    /// `None` for deliveries that must not consume a key (rejected, duplicate).
    pub idempotency_key: Option<String>,
    pub run_id: Option<String>,
    pub headers: Value,
    /// The body's first [`WEBHOOK_BODY_EXCERPT_BYTES`], cut at a UTF-8
    /// boundary (invalid UTF-8 shown as U+FFFD).
    pub body: String,
    /// The body's length in bytes.
    pub body_size: i64,
    /// Hex SHA-256 of the whole body (empty for rows stored before it was kept).
    pub body_sha256: String,
    /// `verified`, `missing` or `rejected`.
    pub signature_status: String,
    /// `accepted`, `duplicate`, `rejected`.
    pub outcome: String,
    pub received_at: DateTime<Utc>,
}

/// How much of a webhook body is stored.
pub const WEBHOOK_BODY_EXCERPT_BYTES: usize = 1024;

impl WebhookDelivery {
    /// A delivery of `body`, not yet verified (`missing`, `rejected`),
    /// received now: its size, hash and excerpt. The caller sets the rest.
    pub fn of_body(body: &[u8]) -> WebhookDelivery {
        use sha2::Digest;
        WebhookDelivery {
            provider: String::new(),
            idempotency_key: None,
            run_id: None,
            headers: Value::Object(Default::default()),
            body: excerpt(body, WEBHOOK_BODY_EXCERPT_BYTES),
            body_size: i64::try_from(body.len()).unwrap_or(i64::MAX),
            body_sha256: hex::encode(sha2::Sha256::digest(body)),
            signature_status: "missing".into(),
            outcome: "rejected".into(),
            received_at: now(),
        }
    }
}

/// At most `max` bytes of text from the start of `bytes`, never splitting a
/// character (invalid UTF-8 becomes U+FFFD, which counts its 3 bytes).
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut end = 0;
    for (at, c) in text.char_indices() {
        if at + c.len_utf8() > max {
            break;
        }
        end = at + c.len_utf8();
    }
    text[..end].to_string()
}

/// What a retention prune deleted, or would delete (dry run): rows by
/// table name, every prunable table listed.
pub type Pruned = std::collections::BTreeMap<String, u64>;

#[async_trait]
pub trait ApiStore: Send + Sync + 'static {
    async fn insert_run(&self, run: &NewRun) -> StoreResult<Run> {
        self.insert_run_with_command(run, None).await
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<Run>>;

    /// The run with its gates (in the order they were requested) and
    /// artifacts (in creation order), read together.
    async fn get_run_details(&self, id: &str) -> StoreResult<Option<RunDetails>>;

    /// Whether the run exists (without reading it).
    async fn run_exists(&self, id: &str) -> StoreResult<bool>;

    /// At most `query.limit` runs, newest first.
    async fn list_runs(&self, query: &RunQuery) -> StoreResult<Vec<Run>>;

    /// Moves the run from `from` to `to` if it is still in `from` (so two
    /// concurrent writers cannot both move it), recording `artifact` and
    /// enqueueing `command` in the same transaction. `false` when the run
    /// was not in `from` (then nothing is written).
    async fn transition(
        &self,
        id: &str,
        from: RunStatus,
        to: RunStatus,
        artifact: Option<&Artifact>,
        command: Option<&NewCommand>,
    ) -> StoreResult<bool>;

    /// Inserts `run` and, in the same transaction, its first command.
    async fn insert_run_with_command(&self, run: &NewRun, command: Option<&NewCommand>) -> StoreResult<Run>;

    /// The oldest unacknowledged command of each run whose next attempt is
    /// due (later commands of a run wait for the earlier ones).
    async fn commands_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Command>>;

    /// Up to `limit` unacknowledged commands of `run_id`, oldest first, due
    /// or not.
    async fn pending_commands(&self, run_id: &str, limit: u32) -> StoreResult<Vec<Command>>;

    async fn record_delivery(&self, seq: i64, attempt: &DeliveryAttempt) -> StoreResult<()>;

    async fn list_commands(&self, run_id: &str) -> StoreResult<Vec<Command>>;

    /// Applies one event if the run's last applied seq is still
    /// `expected_last_seq`: records the event, writes `update`, advances the
    /// seq. `false` when another writer got there first.
    async fn apply_event(&self, event: &AppliedEvent, expected_last_seq: i64, update: &RunUpdate) -> StoreResult<bool>;

    async fn list_events(&self, run_id: &str) -> StoreResult<Vec<AppliedEvent>>;

    /// Records a webhook delivery and, when it is accepted, enqueues
    /// `command` in the same transaction. `Ok(false)` when its idempotency
    /// key was already used (nothing is written then).
    async fn record_webhook(&self, delivery: &WebhookDelivery, command: Option<&NewCommand>) -> StoreResult<bool>;

    async fn list_webhooks(&self, provider: &str) -> StoreResult<Vec<WebhookDelivery>>;

    /// Applies a decision if the gate is still awaiting (one conditional
    /// update: of two simultaneous decisions one wins), with its run move,
    /// artifact and command, in one transaction. `false` when it was not
    /// awaiting (nothing written).
    async fn decide(&self, decision: &Decision) -> StoreResult<bool>;

    async fn get_gate(&self, run_id: &str, gate: Gate) -> StoreResult<Option<GateRecord>>;

    async fn list_gates(&self, run_id: &str) -> StoreResult<Vec<GateRecord>>;

    /// Every gate awaiting a decision, oldest first.
    async fn awaiting_gates(&self, limit: u32) -> StoreResult<Vec<GateRecord>>;

    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    async fn list_audit(&self, run_id: &str) -> StoreResult<Vec<AuditEntry>>;

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
    /// needs (gate audit, applied events, acknowledged commands, webhook
    /// deliveries, artifacts and chat lines of ended runs or of none,
    /// resolved dead letters, finished chat pushes; `sql::PRUNABLE` says
    /// which exactly). Counted when `dry_run`, else deleted in one
    /// transaction; both select the same rows.
    async fn prune(&self, cutoff: DateTime<Utc>, dry_run: bool) -> StoreResult<Pruned>;

    /// The counts behind the gauges of `/metrics`.
    async fn gauges(&self) -> StoreResult<ApiGauges>;

    async fn ping(&self) -> StoreResult<()>;
}

/// The store for `db`'s backend.
pub fn open(db: &Db) -> Arc<dyn ApiStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteApiStore::new(pool.clone())),
        Db::Postgres(pool) => Arc::new(PgApiStore::new(pool.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_and_cut_at_character_boundaries() {
        assert_eq!(excerpt(b"{\"a\":1}", 1024), "{\"a\":1}");
        assert_eq!(excerpt("ééé".as_bytes(), 5), "éé", "never half a character");
        let junk = excerpt(&[0xFF; 5000], 1024);
        assert!(junk.len() <= 1024 && junk.chars().all(|c| c == '\u{FFFD}'));
        let delivery = WebhookDelivery::of_body(&[0xFF; 5000]);
        assert_eq!(delivery.body_size, 5000);
        assert_eq!(delivery.body_sha256.len(), 64);
        assert!(delivery.body.len() <= WEBHOOK_BODY_EXCERPT_BYTES);
    }
}
