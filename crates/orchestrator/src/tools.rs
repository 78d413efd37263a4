//! The tools the LLM personas and Brendan may call (their JSON-schema
//! definitions and what a call reaches: the knowledge base, the chat's runs,
//! Brendan's actions), and the one-line descriptions of runs and proposals
//! both Brendans give.

use std::sync::Mutex;

use async_trait::async_trait;
use myloware_core::project::Persona;
use myloware_core::wire::{ChatAction, ChatRun, ChatTurn};
use serde_json::{Value, json};

use crate::llm::{ToolHandler, ToolSpec};
use crate::store::OrchestratorStore;

/// Tools whose work the engine does after the persona's answer.
const ACTION_TOOLS: [&str; 4] = ["submit_clips", "wait_for_clips", "render_timeline", "publish"];
/// Knowledge hits per search, and characters of each shown to the model.
const SEARCH_LIMIT: u32 = 5;
const EXCERPT_CHARS: usize = 1200;

/// A strict JSON-schema object: every property required, nothing else.
pub(crate) fn object(properties: Value) -> Value {
    let required: Vec<Value> = properties
        .as_object()
        .map(|p| p.keys().map(|k| json!(k)).collect())
        .unwrap_or_default();
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

pub(crate) fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// The function definition of a tool, by name.
pub(crate) fn tool_spec(name: &str) -> Option<ToolSpec> {
    let (description, parameters) = match name {
        "knowledge_search" => (
            "Full-text search of the knowledge base (persona prompts, guardrails, project notes). Returns the best \
             matching documents.",
            object(json!({"query": {"type": "string", "description": "words to look for"}})),
        ),
        "submit_clips" => (
            "Submit the clip prompts of your answer to kie.ai. The engine submits them once, after your answer.",
            object(json!({})),
        ),
        "wait_for_clips" => (
            "Wait for every submitted clip. The engine waits after your answer.",
            object(json!({})),
        ),
        "render_timeline" => (
            "Render the timeline built from the clips and your overlays (once per run). The engine renders after \
             your answer.",
            object(json!({})),
        ),
        "publish" => (
            "Publish the video with your caption and hashtags. The engine publishes once, after your answer.",
            object(json!({})),
        ),
        "list_runs" => ("The user's recent runs, newest first, with status.", object(json!({}))),
        "run_status" => (
            "One run's status, gate, publish URLs and error.",
            object(json!({"runId": {"type": "string"}})),
        ),
        "propose_run" => (
            "Propose a video run for the user to approve. The API creates it held at the workflow gate and adds the \
             approval link to your reply.",
            object(json!({
                "project": {"type": "string", "description": "a project slug"},
                "object": {"type": "string", "description": "what the video is about (aismr: the object)"},
                "modifiers": array(json!({"type": "string"})),
                "skipEditing": {"type": "boolean", "description": "leave Alex (editing) out"}
            })),
        ),
        "resend_links" => (
            "Send the user fresh approval links for all their runs waiting at a gate (links expire; messages get \
             lost). The API adds the links to your reply.",
            object(json!({})),
        ),
        "decide_gate" => (
            "Approve or reject the user's run waiting at a gate (the newest one unless runId is given), or \
             request changes (decision revise, with the user's feedback: new ideas, or which clips to redo).",
            object(json!({
                "decision": {"type": "string", "enum": ["approve", "reject", "revise"]},
                "runId": {"type": ["string", "null"]},
                "reason": {"type": ["string", "null"]},
                "feedback": {"type": ["string", "null"], "description": "revise: the changes the user asked for"}
            })),
        ),
        _ => return None,
    };
    Some(ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        parameters,
    })
}

/// What a persona's or Brendan's tool calls reach.
pub(crate) struct Tools<'a> {
    pub(crate) store: &'a dyn OrchestratorStore,
    pub(crate) project: Option<String>,
    pub(crate) persona: Persona,
    pub(crate) turn: Option<&'a ChatTurn>,
    /// Brendan's actions, in call order.
    pub(crate) actions: Mutex<Vec<ChatAction>>,
}

impl Tools<'_> {
    fn run(&self, run_id: &str) -> Result<Value, String> {
        let turn = self.turn.ok_or("no runs here")?;
        let run = turn
            .runs
            .iter()
            .find(|r| r.run_id == run_id)
            .ok_or_else(|| format!("the user has no run {run_id}"))?;
        Ok(json!({"summary": describe_run(run), "run": run}))
    }

    fn propose(&self, args: &Value) -> Result<Value, String> {
        let turn = self.turn.ok_or("not in a chat")?;
        let project = args["project"].as_str().unwrap_or_default();
        if !turn.projects.iter().any(|p| p.project == project && p.runnable) {
            let known: Vec<&str> = turn
                .projects
                .iter()
                .filter(|p| p.runnable)
                .map(|p| p.project.as_str())
                .collect();
            return Err(format!("unknown project {project:?}; propose one of {known:?}"));
        }
        let mut input = serde_json::Map::new();
        match args["object"].as_str().map(str::trim).filter(|o| !o.is_empty()) {
            Some(object) => input.insert("object".into(), json!(object)),
            None if project == "aismr" => return Err("an aismr run needs the object it is about".into()),
            None => input.insert("title".into(), json!(format!("{project} video"))),
        };
        input.insert("prompt".into(), json!(turn.message));
        if let Some(modifiers) = args["modifiers"].as_array().filter(|m| !m.is_empty()) {
            input.insert("modifiers".into(), json!(modifiers));
        }
        let skip = if args["skipEditing"].as_bool() == Some(true) {
            vec![Persona::Alex]
        } else {
            Vec::new()
        };
        let input = Value::Object(input);
        let plan = describe_proposal(project, &input, &skip);
        self.actions.lock().expect("actions lock").push(ChatAction::ProposeRun {
            project: project.to_string(),
            input,
            skip,
        });
        Ok(json!({"proposed": true, "plan": plan, "note": "the API adds the approval link to your reply"}))
    }

    fn decide(&self, args: &Value) -> Result<Value, String> {
        let turn = self.turn.ok_or("not in a chat")?;
        let decision = args["decision"].as_str();
        if !matches!(decision, Some("approve" | "reject" | "revise")) {
            return Err("decision must be approve, reject or revise".into());
        }
        let feedback = args["feedback"].as_str().or(args["reason"].as_str()).map(str::trim);
        if decision == Some("revise") && feedback.is_none_or(str::is_empty) {
            return Err("a revision needs the user's feedback".into());
        }
        let run_id = args["runId"].as_str().map(str::to_owned);
        let run = match &run_id {
            Some(id) => turn.runs.iter().find(|r| &r.run_id == id),
            None => turn.runs.iter().find(|r| r.awaiting_gate.is_some()),
        };
        let Some(run) = run.filter(|r| r.awaiting_gate.is_some()) else {
            return Err("none of the user's runs is waiting at a gate".into());
        };
        let (run_id, gate) = (Some(run.run_id.clone()), run.awaiting_gate);
        let action = match (decision, feedback) {
            (Some("revise"), Some(feedback)) => ChatAction::ReviseGate {
                run_id,
                gate,
                feedback: feedback.to_string(),
            },
            _ => ChatAction::DecideGate {
                approve: decision == Some("approve"),
                run_id,
                gate,
                reason: args["reason"].as_str().map(str::to_owned),
            },
        };
        self.actions.lock().expect("actions lock").push(action);
        Ok(json!({"queued": true, "runId": run.run_id, "gate": run.awaiting_gate}))
    }
}

#[async_trait]
impl ToolHandler for Tools<'_> {
    async fn call(&self, name: &str, args: Value) -> Result<Value, String> {
        match name {
            "knowledge_search" => {
                let query = args["query"].as_str().unwrap_or_default();
                let persona = (self.persona != Persona::Brendan).then(|| self.persona.as_str());
                let hits = self
                    .store
                    .search_knowledge(query, self.project.as_deref(), persona, SEARCH_LIMIT)
                    .await
                    .map_err(|err| format!("the knowledge base is unavailable: {err}"))?;
                let results: Vec<Value> = hits
                    .into_iter()
                    .map(|h| {
                        json!({"id": h.id, "title": h.title, "kind": h.kind,
                               "text": h.body.chars().take(EXCERPT_CHARS).collect::<String>()})
                    })
                    .collect();
                Ok(json!({"results": results}))
            }
            action if ACTION_TOOLS.contains(&action) => Ok(json!({
                "accepted": true,
                "note": "the engine does this once your final answer is in"
            })),
            "list_runs" => {
                let turn = self.turn.ok_or("not in a chat")?;
                let runs: Vec<String> = turn.runs.iter().map(describe_run).collect();
                Ok(json!({"runs": runs}))
            }
            "run_status" => self.run(args["runId"].as_str().unwrap_or_default()),
            "propose_run" => self.propose(&args),
            "decide_gate" => self.decide(&args),
            "resend_links" => {
                let turn = self.turn.ok_or("not in a chat")?;
                let waiting: Vec<&str> = turn
                    .runs
                    .iter()
                    .filter(|r| r.awaiting_gate.is_some())
                    .map(|r| r.run_id.as_str())
                    .collect();
                self.actions.lock().expect("actions lock").push(ChatAction::ResendLinks);
                Ok(json!({"queued": true, "waiting": waiting, "note": "the API adds the links to your reply"}))
            }
            other => Err(format!("unknown tool {other}")),
        }
    }
}

/// One line about a run: its status, gate, links, error.
pub fn describe_run(run: &ChatRun) -> String {
    let about = ["object", "subject", "topic", "title", "prompt"]
        .iter()
        .find_map(|f| run.input[f].as_str())
        .map(|s| format!(" about {s}"))
        .unwrap_or_default();
    let mut line = format!("Run {} ({}{about}) is {}", run.run_id, run.project, run.status);
    if let Some(gate) = run.awaiting_gate {
        line.push_str(&format!(", waiting for your approval at the {gate} gate"));
    }
    if !run.publish_urls.is_empty() {
        line.push_str(&format!("; published at {}", run.publish_urls.join(", ")));
    }
    if let Some(error) = &run.error {
        line.push_str(&format!("; it failed: {error}"));
    }
    line.push('.');
    line
}

/// A person-readable description of a proposal.
pub fn describe_proposal(project: &str, input: &Value, skip: &[Persona]) -> String {
    let subject = ["object", "subject"].iter().find_map(|f| input[f].as_str());
    let what = match (project, subject) {
        ("aismr", Some(s)) => format!("an AISMR video about {s}: twelve surreal 8-second clips of {s}"),
        ("aismr", None) => "an AISMR video".to_string(),
        ("test_video_gen", _) => "a test video (moon/cheeseburger and sun/pickle)".to_string(),
        (project, Some(s)) => format!("a {project} video about {s}"),
        (project, None) => format!("a {project} video"),
    };
    let mut plan = format!("Here is the plan: {what}.");
    if let Some(modifiers) = input["modifiers"].as_array().filter(|m| !m.is_empty()) {
        let list: Vec<&str> = modifiers.iter().filter_map(Value::as_str).collect();
        plan.push_str(&format!(" Modifiers: {}.", list.join(", ")));
    }
    if skip.contains(&Persona::Alex) {
        plan.push_str(" Editing is skipped: the first clip is published as is.");
    }
    plan.push_str(" Approve the plan to start it.");
    plan
}
