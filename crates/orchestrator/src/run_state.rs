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
    /// The revision of the prepublish gate that asked for this clip again
    /// (0: the first version), in its journal key: each is a new, paid call.
    #[serde(default)]
    pub revision: u32,
    /// The reviewer's words for this clip, added to its prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Render {
    pub id: String,
    /// Shotstack's temporary URL (deleted after 24 h).
    pub url: Option<String>,
    pub polls: u32,
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
    /// The copy in our asset store, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<RenderAsset>,
    /// Failed attempts at the copy so far.
    #[serde(default)]
    pub copies: u32,
    /// Failed attempts at reading the store before the publish.
    #[serde(default)]
    pub checks: u32,
}

/// A render's copy in the project's asset store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderAsset {
    pub key: String,
    /// A URL of the copy, valid `ASSET_URL_TTL_HOURS` from the copy: what
    /// the run's events show (the publish and the approval page mint their
    /// own).
    pub url: String,
}

impl Render {
    /// The URL the run shows for the render: the copy's once made
    /// (before: Shotstack's; runs rendered before the asset store had no copy).
    pub fn shown_url(&self) -> Option<String> {
        self.asset.as_ref().map(|a| a.url.clone()).or_else(|| self.url.clone())
    }
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
    /// Why the run failed; a retry reads and clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The last retry taken (the API's attempt number; 0: never retried).
    #[serde(default)]
    pub retries: u32,
    /// Renders asked for again after a failed one (in the render's journal key).
    #[serde(default)]
    pub render_attempt: u32,
    /// Publishes asked for again after a failed one (in our request id).
    #[serde(default)]
    pub publish_attempt: u32,
    /// The spending limit holding the run before its next paid call, while
    /// it does (its name, as the `budget.held` artifact said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_hold: Option<String>,
    /// The latest changes a reviewer asked for at a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
}

/// "Request changes" at a gate: what the personas before it do again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub gate: Gate,
    /// 1 for the gate's first revision.
    pub round: u32,
    pub feedback: String,
    /// The clips made again (prepublish), by index.
    #[serde(default)]
    pub clips: Vec<u32>,
}

/// What failed, as the run's `execution.failed` said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub code: String,
    #[serde(default)]
    pub persona: Option<Persona>,
}

/// The clips a reviewer's words name, as people count them (the first
/// clip is clip 1: "redo clip 3", "clips 2 and 5", "Clips 1, 4"), as the
/// indexes (from 0) among `indexes`. A list ends with its clause, and a
/// number followed by another word ("clip 3, 2 seconds longer") is not a
/// clip; numbers that name no clip are ignored.
pub fn named_clips(feedback: &str, indexes: impl Iterator<Item = u32>) -> Vec<u32> {
    let indexes: Vec<u32> = indexes.collect();
    let lower = feedback.to_lowercase();
    let mut named = Vec::new();
    for clause in lower.split([';', '.', '!', '?', '\n']) {
        let words: Vec<&str> = clause
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let mut listing = false;
        for (at, word) in words.iter().enumerate() {
            let Ok(number) = word.parse::<u32>() else {
                listing = matches!(*word, "clip" | "clips") || (listing && matches!(*word, "and" | "or"));
                continue;
            };
            if !listing {
                continue;
            }
            // "clip 3", "and 5": a clip. "3, 4": one too, unless a word
            // other than a list's follows ("3, 2 seconds longer").
            let after_number = at > 0 && words[at - 1].parse::<u32>().is_ok();
            let listed = words
                .get(at + 1)
                .is_none_or(|w| w.parse::<u32>().is_ok() || matches!(*w, "and" | "or" | "clip" | "clips"));
            if after_number && !listed {
                listing = false;
                continue;
            }
            let index = number.wrapping_sub(1);
            if number > 0 && indexes.contains(&index) && !named.contains(&index) {
                named.push(index);
            }
        }
    }
    named.sort_unstable();
    named
}

/// How long Shotstack keeps a render's output (its docs: 24 h), less an
/// hour of margin.
const SHOTSTACK_KEEPS_SECS: f64 = 23.0 * 3600.0;

/// Seconds from `since` (if known) to now.
pub fn seconds_since(since: Option<DateTime<Utc>>) -> f64 {
    since.map_or(0.0, |at| (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0)
}

impl RunState {
    /// Readies a failed run's state for retry `attempt`, to continue at the
    /// step that failed: what failed is made again under a new journal key
    /// (each failed clip, a failed render or publish), what timed out is
    /// waited for again (never paid twice: the same task, render or
    /// request), and everything that succeeded stays. Calls that failed
    /// before the provider took them are made again by the step itself
    /// once the store sets their journal entries aside.
    pub fn prepare_retry(&mut self, attempt: u32) {
        self.retries = attempt;
        let code = self.failure.take().map(|failure| failure.code).unwrap_or_default();
        for clip in self.clips.iter_mut().filter(|c| c.status == ClipStatus::Failed) {
            clip.attempt += 1;
            clip.submitted = false;
            clip.task_id = None;
            clip.status = ClipStatus::Pending;
            clip.url = None;
            clip.submitted_at = None;
        }
        match code.as_str() {
            "kieai.clip_timeout" => {
                self.clips_waiting_since = None;
                self.clip_polls = 0;
            }
            // The render is gone from the asset store: render it again.
            "shotstack.render_failed" | "assets.missing" if self.render.take().is_some() => self.render_attempt += 1,
            // Shotstack keeps its output 24 h: copy it again while it is
            // there, render again once it is not.
            "assets.copy_failed" => match &mut self.render {
                Some(render) if seconds_since(render.requested_at) < SHOTSTACK_KEEPS_SECS => render.copies = 0,
                Some(_) => {
                    self.render = None;
                    self.render_attempt += 1;
                }
                None => {}
            },
            "assets.unavailable" => {
                if let Some(render) = &mut self.render {
                    render.checks = 0;
                }
            }
            "shotstack.render_timeout" => {
                if let Some(render) = &mut self.render {
                    render.polls = 0;
                }
            }
            "upload_post.publish_failed" if self.publish.take().is_some() => self.publish_attempt += 1,
            "upload_post.publish_timeout" => {
                if let Some(publish) = &mut self.publish {
                    publish.polls = 0;
                }
            }
            _ => {}
        }
    }

    /// Sets the run back to the persona before `gate` for the changes a
    /// reviewer asked for, and answers the persona to run again. At the
    /// ideate gate Iggy proposes new ideas; at prepublish the clips the
    /// feedback names (all, without an edit to redo) are made again under
    /// new journal keys, and the render (if the pipeline has Alex) too.
    /// Nothing else is repeated: no paid call that stays valid is made twice.
    pub fn revise(&mut self, gate: Gate, round: u32, feedback: &str, has_alex: bool) -> Persona {
        self.gates_reached.retain(|g| *g != gate);
        let mut clips = Vec::new();
        let again = match gate {
            Gate::Prepublish => {
                clips = named_clips(feedback, self.clips.iter().map(|c| c.index));
                if clips.is_empty() && !has_alex {
                    clips = self.clips.iter().map(|c| c.index).collect();
                }
                for clip in self.clips.iter_mut().filter(|c| clips.contains(&c.index)) {
                    *clip = Clip {
                        revision: round,
                        feedback: Some(feedback.to_string()),
                        task_id: None,
                        submitted: false,
                        status: ClipStatus::Pending,
                        url: None,
                        attempt: 0,
                        submitted_at: None,
                        ..clip.clone()
                    };
                }
                if !clips.is_empty() {
                    self.clips_waiting_since = None;
                    self.clip_polls = 0;
                }
                if has_alex {
                    self.render = None;
                    self.render_attempt += 1;
                    self.overlays = None;
                }
                // Only the edit to redo, when there is one; else Riley's.
                if clips.is_empty() && has_alex {
                    Persona::Alex
                } else {
                    Persona::Riley
                }
            }
            _ => {
                self.ideas.clear();
                Persona::Iggy
            }
        };
        let redone = [Persona::Iggy, Persona::Riley, Persona::Alex];
        let from = redone.iter().position(|p| *p == again).unwrap_or(0);
        self.started.retain(|p| !redone[from..].contains(p));
        self.revision = Some(Revision {
            gate,
            round,
            feedback: feedback.to_string(),
            clips,
        });
        again
    }

    /// The feedback of a revision of `gate` under way, for the persona
    /// working again.
    pub fn feedback_for(&self, gate: Gate) -> Option<&str> {
        self.revision
            .as_ref()
            .filter(|r| r.gate == gate)
            .map(|r| r.feedback.as_str())
    }

    /// How long `persona` has been at work in this run.
    pub fn persona_seconds(&self, persona: Persona) -> f64 {
        seconds_since(self.started_at.get(&persona).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(index: u32, status: ClipStatus) -> Clip {
        Clip {
            index,
            task_id: Some(format!("task-{index}")),
            submitted: true,
            status,
            url: (status == ClipStatus::Completed).then(|| format!("https://cdn/{index}.mp4")),
            duration: 8.0,
            attempt: 0,
            submitted_at: Some(Utc::now()),
            revision: 0,
            feedback: None,
        }
    }

    fn failed(code: &str) -> RunState {
        RunState {
            failure: Some(Failure {
                code: code.into(),
                persona: None,
            }),
            render: Some(Render {
                id: "render-1".into(),
                url: None,
                polls: 61,
                requested_at: None,
                asset: None,
                copies: 0,
                checks: 0,
            }),
            publish: Some(Publish {
                caption: "c".into(),
                hashtags: Vec::new(),
                urls: Vec::new(),
                polls: 61,
                requested_at: None,
            }),
            ..RunState::default()
        }
    }

    #[test]
    fn a_retry_resubmits_only_the_failed_clips() {
        let mut state = RunState {
            clips: vec![
                clip(0, ClipStatus::Completed),
                clip(1, ClipStatus::Failed),
                clip(2, ClipStatus::Pending),
            ],
            ..failed("kieai.clip_failed")
        };
        let before = state.clone();
        state.prepare_retry(1);
        assert_eq!((state.retries, state.failure.clone()), (1, None));
        assert_eq!(state.clips[0], before.clips[0], "completed: kept");
        assert_eq!(
            state.clips[2], before.clips[2],
            "in flight: still awaited, not paid again"
        );
        let again = &state.clips[1];
        assert_eq!(
            (again.attempt, again.submitted, again.status),
            (1, false, ClipStatus::Pending)
        );
        assert_eq!(again.task_id, None);
        assert_eq!(
            (state.render.clone(), state.publish.clone()),
            (before.render, before.publish)
        );
    }

    #[test]
    fn a_failed_render_or_publish_is_made_again_under_a_new_key() {
        let mut state = failed("shotstack.render_failed");
        state.prepare_retry(1);
        assert_eq!((state.render.is_none(), state.render_attempt), (true, 1));
        assert!(state.publish.is_some());

        let mut state = failed("upload_post.publish_failed");
        state.prepare_retry(2);
        assert_eq!((state.publish.is_none(), state.publish_attempt), (true, 1));
        assert_eq!(state.render_attempt, 0);
    }

    #[test]
    fn a_render_gone_from_storage_is_rendered_again() {
        let mut state = failed("assets.missing");
        state.prepare_retry(1);
        assert_eq!((state.render.is_none(), state.render_attempt), (true, 1));
        assert!(
            state.publish.is_some(),
            "the publish was never made: its request id stays"
        );
        assert_eq!(state.publish_attempt, 0);
    }

    #[test]
    fn a_failed_copy_copies_again_while_shotstack_keeps_the_render() {
        let mut state = failed("assets.copy_failed");
        if let Some(render) = &mut state.render {
            render.copies = 8;
            render.url = Some("https://shotstack/out.mp4".into());
            render.requested_at = Some(Utc::now() - chrono::Duration::hours(2));
        }
        let mut later = state.clone();
        state.prepare_retry(1);
        let render = state.render.clone().unwrap();
        assert_eq!(
            (render.id.as_str(), render.copies, state.render_attempt),
            ("render-1", 0, 0)
        );
        assert_eq!(render.url.as_deref(), Some("https://shotstack/out.mp4"));

        later.render.as_mut().unwrap().requested_at = Some(Utc::now() - chrono::Duration::hours(25));
        later.prepare_retry(1);
        assert_eq!(
            (later.render.is_none(), later.render_attempt),
            (true, 1),
            "gone from Shotstack"
        );
    }

    #[test]
    fn a_timeout_waits_again_for_the_same_render_publish_or_clips() {
        let mut state = failed("shotstack.render_timeout");
        state.prepare_retry(1);
        let render = state.render.clone().unwrap();
        assert_eq!(
            (render.id.as_str(), render.polls, state.render_attempt),
            ("render-1", 0, 0)
        );

        let mut state = failed("upload_post.publish_timeout");
        state.prepare_retry(1);
        assert_eq!((state.publish.unwrap().polls, state.publish_attempt), (0, 0));

        let mut state = RunState {
            clips_waiting_since: Some(Utc::now()),
            clip_polls: 9,
            clips: vec![clip(0, ClipStatus::Pending)],
            ..failed("kieai.clip_timeout")
        };
        state.prepare_retry(1);
        assert_eq!((state.clips_waiting_since, state.clip_polls), (None, 0));
        assert!(state.clips[0].submitted, "the same task is awaited");
    }

    #[test]
    fn the_clips_named_in_feedback_are_found_by_their_numbers() {
        let all = || 0..12u32;
        assert_eq!(
            named_clips("Redo clip 3, it is blurry", all()),
            [2],
            "clip 3 is the third"
        );
        assert_eq!(named_clips("clips 2 and 5 are too dark", all()), [1, 4]);
        assert_eq!(named_clips("Clips 1, 4 or 11; and 2 more seconds", all()), [0, 3, 10]);
        assert_eq!(named_clips("clip 40 does not exist, clip #7 does", all()), [6]);
        assert_eq!(
            named_clips("redo clip 3, 2 seconds longer", all()),
            [2],
            "2 seconds is no clip"
        );
        assert_eq!(named_clips("clip 0 and clip 12", all()), [11]);
        assert!(named_clips("make the text bigger, 3 words max", all()).is_empty());
    }

    #[test]
    fn a_revision_at_prepublish_makes_again_only_the_named_clips_and_the_render() {
        let mut state = RunState {
            started: vec![Persona::Iggy, Persona::Riley, Persona::Alex],
            gates_reached: vec![Gate::Ideate, Gate::Prepublish],
            clips: vec![clip(0, ClipStatus::Completed), clip(1, ClipStatus::Completed)],
            overlays: Some(Vec::new()),
            ..failed("none")
        };
        let before = state.clone();
        let again = state.revise(Gate::Prepublish, 1, "clip 2 is too dark", true);
        assert_eq!(again, Persona::Riley);
        assert_eq!(
            state.clips[0], before.clips[0],
            "a clip not named is kept, not paid again"
        );
        let redone = &state.clips[1];
        assert_eq!(
            (redone.revision, redone.submitted, redone.status, redone.url.clone()),
            (1, false, ClipStatus::Pending, None)
        );
        assert_eq!((state.render.is_none(), state.render_attempt), (true, 1));
        assert_eq!(state.started, [Persona::Iggy], "riley and alex start again");
        assert_eq!(state.gates_reached, [Gate::Ideate]);
        assert_eq!(state.feedback_for(Gate::Prepublish), Some("clip 2 is too dark"));

        let mut edit_only = before.clone();
        assert_eq!(
            edit_only.revise(Gate::Prepublish, 1, "bigger text", true),
            Persona::Alex
        );
        assert_eq!(edit_only.clips, before.clips);
        let mut no_edit = before;
        assert_eq!(
            no_edit.revise(Gate::Prepublish, 2, "warmer light", false),
            Persona::Riley
        );
        assert!(
            no_edit.clips.iter().all(|c| c.revision == 2 && !c.submitted),
            "without an edit, every clip"
        );
        assert!(no_edit.render.is_some(), "no render to redo without alex");
    }

    #[test]
    fn a_revision_at_ideate_asks_iggy_again() {
        let mut state = RunState {
            started: vec![Persona::Iggy],
            gates_reached: vec![Gate::Ideate],
            ideas: vec![Idea {
                index: 0,
                subject: "s".into(),
                header: "h".into(),
                concept: "c".into(),
            }],
            ..RunState::default()
        };
        assert_eq!(state.revise(Gate::Ideate, 1, "more colour", true), Persona::Iggy);
        assert!(state.ideas.is_empty() && state.started.is_empty() && state.gates_reached.is_empty());
        assert_eq!(state.feedback_for(Gate::Ideate), Some("more colour"));
        assert_eq!(state.feedback_for(Gate::Prepublish), None);
    }

    #[test]
    fn a_failure_before_any_paid_call_changes_nothing_but_the_count() {
        let mut state = failed("llm.iggy_failed");
        let before = state.clone();
        state.prepare_retry(1);
        assert_eq!(
            RunState {
                retries: 0,
                failure: before.failure.clone(),
                ..state
            },
            before
        );
    }
}
