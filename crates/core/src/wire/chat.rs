//! `POST /v1/chat/brendan` on the orchestrator: one of Brendan's turns, as
//! the API sends it, and his reply with the actions the API applies.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::project::Persona;
use crate::run::Gate;

/// One line of a chat transcript, as Brendan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatLine {
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
}

/// One of the user's runs, as Brendan sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRun {
    pub run_id: String,
    pub project: String,
    pub status: String,
    /// What the run is about (`input` of the run).
    #[serde(default)]
    pub input: Value,
    /// The gate awaiting a decision, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_gate: Option<Gate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: String,
}

/// A project Brendan may propose, as the API knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatProject {
    pub project: String,
    pub title: String,
    pub description: String,
    /// Whether runs of it make videos (`general` does not).
    pub runnable: bool,
}

/// `POST /v1/chat/brendan` on the orchestrator: one chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatTurn {
    pub user_id: String,
    pub message: String,
    /// Earlier messages, oldest first (the current one is not included).
    #[serde(default)]
    pub history: Vec<ChatLine>,
    /// The user's recent runs, newest first.
    #[serde(default)]
    pub runs: Vec<ChatRun>,
    #[serde(default)]
    pub projects: Vec<ChatProject>,
}

/// What Brendan asks the API to do after his reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatAction {
    /// Create a run held at the workflow gate, and link its approval.
    ProposeRun {
        project: String,
        input: Value,
        /// Personas left out of the project's pipeline.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skip: Vec<Persona>,
    },
    /// Decide the user's gate awaiting a decision (the newest one, unless named).
    DecideGate {
        approve: bool,
        #[serde(default, rename = "runId", skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate: Option<Gate>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Fresh approval links for every gate of the user's runs awaiting a
    /// decision (a link expired, or the message was lost).
    ResendLinks,
    /// Request changes at the user's gate awaiting a decision (the newest
    /// one, unless named): the persona before it works again.
    ReviseGate {
        #[serde(default, rename = "runId", skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate: Option<Gate>,
        feedback: String,
    },
}

/// The orchestrator's answer to a chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatReply {
    pub reply: String,
    #[serde(default)]
    pub actions: Vec<ChatAction>,
}
