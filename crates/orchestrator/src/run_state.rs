//! The typed run state an execution carries from step to step (stored as
//! JSON in `executions.state`): each persona's output is the next one's
//! input.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use myloware_core::Gate;
use myloware_core::project::Persona;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Idea {
    pub index: u32,
    pub subject: String,
    pub header: String,
    pub concept: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    pub index: u32,
    pub prompt: String,
    pub duration: f64,
}

/// Alex's overlay text for a clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overlay {
    pub index: u32,
    pub text: String,
}

/// Quinn's words, kept before the publish so a re-run publishes the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Caption {
    pub caption: String,
    pub hashtags: Vec<String>,
}

/// Tokens an LLM persona used in this run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmUsage {
    pub persona: Option<Persona>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub calls: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipStatus {
    Pending,
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Clip {
    pub index: u32,
    pub task_id: Option<String>,
    /// Submitted (journaled) even if the task id is not known yet.
    pub submitted: bool,
    pub status: ClipStatus,
    pub url: Option<String>,
    pub duration: f64,
    /// 0 for the first submission, then one more per retry.
    #[serde(default)]
    pub attempt: u32,
    /// When the current attempt was submitted.
    #[serde(default)]
    pub submitted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Render {
    pub id: String,
    pub url: Option<String>,
    pub polls: u32,
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Publish {
    pub caption: String,
    pub hashtags: Vec<String>,
    pub urls: Vec<String>,
    pub polls: u32,
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    /// Personas whose `persona.started` was emitted.
    #[serde(default)]
    pub started: Vec<Persona>,
    /// When each persona started.
    #[serde(default)]
    pub started_at: BTreeMap<Persona, DateTime<Utc>>,
    /// Gates whose `gate.reached` was emitted.
    #[serde(default)]
    pub gates_reached: Vec<Gate>,
    #[serde(default)]
    pub ideas: Vec<Idea>,
    #[serde(default)]
    pub scripts: Vec<Script>,
    #[serde(default)]
    pub clips: Vec<Clip>,
    /// When the wait for clips began.
    #[serde(default)]
    pub clips_waiting_since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub clip_polls: u32,
    #[serde(default)]
    pub render: Option<Render>,
    #[serde(default)]
    pub publish: Option<Publish>,
    /// Alex's overlays (LLM personas; the scripted edit uses the headers).
    #[serde(default)]
    pub overlays: Option<Vec<Overlay>>,
    /// Quinn's caption and hashtags, once written.
    #[serde(default)]
    pub caption: Option<Caption>,
    /// LLM tokens per persona.
    #[serde(default)]
    pub llm_usage: Vec<LlmUsage>,
}

/// Seconds from `since` (if known) to now.
pub fn seconds_since(since: Option<DateTime<Utc>>) -> f64 {
    since.map_or(0.0, |at| (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0)
}

impl RunState {
    /// How long `persona` has been at work in this run.
    pub fn persona_seconds(&self, persona: Persona) -> f64 {
        seconds_since(self.started_at.get(&persona).copied())
    }
}
