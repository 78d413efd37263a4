//! The LLM-backed personas and Brendan: each runs with its prompt
//! (`projects/personas/<name>.md`), the project's guardrails and notes, the
//! tools its project allows, and a JSON-schema output matching the typed
//! output the next persona reads. Required tools must be called; an invalid
//! answer gets one corrective retry (see [`crate::llm`]), then the step
//! fails with the reason. There is no fallback to scripted output once an
//! LLM is configured: a run never carries made-up data.
//!
//! Side-effect tools (`submit_clips`, `wait_for_clips`, `render_timeline`,
//! `publish`) are declarations: the persona calls them to say the work is
//! to be done, and the engine does it after the answer, journaled, exactly
//! once (an LLM loop that crashed half-way must not have paid for anything).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use myloware_core::config::Config;
use myloware_core::project::{Catalog, Persona, ProjectSpec};
use myloware_core::wire::{ChatReply, ChatTurn};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::llm::{AgentTask, Llm, OutputSchema, Role, Usage};
use crate::run_state::{Clip, Idea, Overlay, Script};
use crate::store::OrchestratorStore;
use crate::tools::{Tools, array, object, tool_spec};

/// Tool-call rounds per attempt.
const MAX_ROUNDS: u32 = 8;

/// The LLM and the persona prompts.
pub struct LlmPersonas {
    llm: Llm,
    prompts: BTreeMap<Persona, String>,
}

/// What a persona works on: the run and its project.
#[derive(Clone, Copy)]
pub struct Work<'a> {
    pub store: &'a dyn OrchestratorStore,
    pub run_id: &'a str,
    pub spec: &'a ProjectSpec,
    /// The changes a reviewer asked for, when the persona works again for
    /// them (added to its task).
    pub feedback: Option<&'a str>,
}

/// A persona's typed output and what it cost.
pub struct Answer<T> {
    pub output: T,
    pub usage: Usage,
}

impl LlmPersonas {
    pub fn new(llm: Llm, prompts: BTreeMap<Persona, String>) -> LlmPersonas {
        LlmPersonas { llm, prompts }
    }

    /// The LLM personas of `config`: `Ok(None)` without `OPENAI_API_KEY`;
    /// an error when the key is set but the prompts cannot be read.
    pub fn from_config(config: &Config) -> Result<Option<Arc<LlmPersonas>>, String> {
        let Some(mut llm) = Llm::from_config(&config.llm) else {
            return Ok(None);
        };
        if config.telemetry.trace_content {
            llm = llm.with_trace_content(config.redactor());
        }
        let catalog = Catalog::load_from(&config.projects).map_err(|err| err.to_string())?;
        let prompts = catalog
            .prompts
            .into_iter()
            .map(|(p, prompt)| (p, prompt.text))
            .collect();
        Ok(Some(Arc::new(LlmPersonas::new(llm, prompts))))
    }

    pub fn model(&self) -> &str {
        self.llm.model()
    }

    fn prompt(&self, persona: Persona) -> &str {
        self.prompts.get(&persona).map_or("", String::as_str)
    }

    /// Runs `persona` of `spec` to a validated `T` (`check` adds the
    /// project's rules to the schema's).
    async fn run<T: DeserializeOwned + 'static>(
        &self,
        work: Work<'_>,
        persona: Persona,
        user: String,
        schema: Value,
        check: impl Fn(&T) -> Result<(), String> + Send + Sync + 'static,
    ) -> Result<Answer<T>, String> {
        let Work {
            store,
            run_id,
            spec,
            feedback,
        } = work;
        let user = match feedback {
            Some(feedback) => format!(
                "{user}\n\nA reviewer saw your previous answer and asked for changes; answer again with them \
                 applied: {feedback}"
            ),
            None => user,
        };
        let grants = spec.personas.get(&persona).cloned().unwrap_or_default();
        let task = AgentTask {
            name: persona.to_string(),
            system: system_prompt(self.prompt(persona), spec),
            user,
            history: Vec::new(),
            tools: grants.tools.iter().filter_map(|t| tool_spec(t)).collect(),
            required_tools: grants.required_tools.clone(),
            output: Some(OutputSchema {
                name: format!("{persona}_output"),
                schema,
            }),
            validate: Some(Box::new(move |value: &Value| {
                let typed: T = serde_json::from_value(value.clone()).map_err(|err| err.to_string())?;
                check(&typed)
            })),
            max_rounds: MAX_ROUNDS,
            run_id: Some(run_id.to_string()),
        };
        let tools = Tools {
            store,
            project: Some(spec.project.clone()),
            persona,
            turn: None,
            actions: Mutex::default(),
        };
        let answer = self.llm.run(&task, &tools).await.map_err(|err| err.to_string())?;
        let output = answer.output.ok_or("the answer had no JSON output")?;
        let output = serde_json::from_value(output).map_err(|err| err.to_string())?;
        Ok(Answer {
            output,
            usage: answer.usage,
        })
    }

    /// Iggy: exactly as many ideas as the project asks, the fixed ones
    /// where the project fixes them.
    pub async fn ideas(&self, work: Work<'_>, input: &Value) -> Result<Answer<Vec<Idea>>, String> {
        let specs = work.spec.specs.clone().ok_or("the project has no video specs")?;
        let fixed = specs.videos.clone();
        let count = if fixed.is_empty() {
            specs.video_count as usize
        } else {
            fixed.len()
        };
        let user = format!(
            "Write exactly {count} ideas for this run.\nThe user's input: {input}\n{}",
            if fixed.is_empty() {
                String::new()
            } else {
                format!(
                    "The project fixes the subjects and headers, in this order: {}",
                    serde_json::to_string(&fixed).expect("serializes")
                )
            }
        );
        #[derive(Deserialize)]
        struct Out {
            ideas: Vec<Idea>,
        }
        let schema = object(json!({"ideas": array(object(json!({
            "index": {"type": "integer"}, "subject": {"type": "string"},
            "header": {"type": "string"}, "concept": {"type": "string"}
        })))}));
        let answer = self
            .run(work, Persona::Iggy, user, schema, move |out: &Out| {
                indexed(out.ideas.iter().map(|i| i.index), count, "ideas")?;
                for idea in &out.ideas {
                    if [&idea.subject, &idea.header, &idea.concept]
                        .iter()
                        .any(|s| s.trim().is_empty())
                    {
                        return Err(format!("idea {} has an empty subject, header or concept", idea.index));
                    }
                    if let Some(want) = fixed.get(idea.index as usize)
                        && (want.subject != idea.subject || want.header != idea.header)
                    {
                        return Err(format!(
                            "idea {} must keep the fixed subject {:?} and header {:?}",
                            idea.index, want.subject, want.header
                        ));
                    }
                }
                Ok(())
            })
            .await?;
        Ok(Answer {
            output: answer.output.ideas,
            usage: answer.usage,
        })
    }

    /// Riley: one clip prompt per idea, of the project's clip duration.
    pub async fn scripts(&self, work: Work<'_>, ideas: &[Idea]) -> Result<Answer<Vec<Script>>, String> {
        let duration = work.spec.specs.as_ref().map_or(8.0, |s| s.clip_duration_seconds);
        let count = ideas.len();
        let user = format!(
            "Write one clip prompt per idea, each {duration} seconds long, then call the tools to submit the clips \
             and wait for them.\nIdeas: {}",
            serde_json::to_string(ideas).expect("serializes")
        );
        #[derive(Deserialize)]
        struct Out {
            scripts: Vec<Script>,
        }
        let schema = object(json!({"scripts": array(object(json!({
            "index": {"type": "integer"}, "prompt": {"type": "string"}, "duration": {"type": "number"}
        })))}));
        let answer = self
            .run(work, Persona::Riley, user, schema, move |out: &Out| {
                indexed(out.scripts.iter().map(|s| s.index), count, "scripts")?;
                for script in &out.scripts {
                    if script.prompt.trim().is_empty() || script.prompt.chars().count() > 4000 {
                        return Err(format!(
                            "script {} needs a prompt of 1 to 4000 characters",
                            script.index
                        ));
                    }
                    if (script.duration - duration).abs() > 0.1 {
                        return Err(format!(
                            "script {} lasts {} s; clips are {duration} s (plus or minus 0.1)",
                            script.index, script.duration
                        ));
                    }
                }
                Ok(())
            })
            .await?;
        Ok(Answer {
            output: answer.output.scripts,
            usage: answer.usage,
        })
    }

    /// Alex: the overlay text of each clip (the engine builds the timeline).
    pub async fn overlays(
        &self,
        work: Work<'_>,
        ideas: &[Idea],
        clips: &[Clip],
    ) -> Result<Answer<Vec<Overlay>>, String> {
        let count = clips.len();
        let user = format!(
            "Choose the header overlay text of each clip (a word or two, usually the idea's header), then call \
             render_timeline.\nIdeas: {}\nClips: {}",
            serde_json::to_string(ideas).expect("serializes"),
            serde_json::to_string(clips).expect("serializes")
        );
        #[derive(Deserialize)]
        struct Out {
            overlays: Vec<Overlay>,
        }
        let schema = object(json!({"overlays": array(object(json!({
            "index": {"type": "integer"}, "text": {"type": "string"}
        })))}));
        let answer = self
            .run(work, Persona::Alex, user, schema, move |out: &Out| {
                indexed(out.overlays.iter().map(|o| o.index), count, "overlays")?;
                match out
                    .overlays
                    .iter()
                    .find(|o| o.text.trim().is_empty() || o.text.chars().count() > 40)
                {
                    Some(bad) => Err(format!("overlay {} needs 1 to 40 characters", bad.index)),
                    None => Ok(()),
                }
            })
            .await?;
        Ok(Answer {
            output: answer.output.overlays,
            usage: answer.usage,
        })
    }

    /// Quinn: the caption and hashtags within the project's limits.
    pub async fn caption(
        &self,
        work: Work<'_>,
        ideas: &[Idea],
        video_url: &str,
    ) -> Result<Answer<(String, Vec<String>)>, String> {
        let publish = work
            .spec
            .publish
            .clone()
            .unwrap_or_else(|| myloware_core::project::PublishSpec {
                platforms: vec!["tiktok".into()],
                profile: None,
                caption: None,
                hashtags: Vec::new(),
                hashtag_count: None,
                max_caption_chars: 2200,
            });
        let user = format!(
            "Write the caption and hashtags for this video, then call publish.\nVideo: {video_url}\nIdeas: {}\n\
             Limits: the caption plus the hashtags (joined by spaces) within {} characters{}{}.",
            serde_json::to_string(ideas).expect("serializes"),
            publish.max_caption_chars,
            publish
                .hashtag_count
                .map(|n| format!("; exactly {n} hashtags"))
                .unwrap_or_default(),
            publish
                .caption
                .as_ref()
                .map(|c| format!("; the caption is fixed: {c:?}"))
                .unwrap_or_default(),
        );
        #[derive(Deserialize)]
        struct Out {
            caption: String,
            hashtags: Vec<String>,
        }
        let schema = object(json!({"caption": {"type": "string"}, "hashtags": array(json!({"type": "string"}))}));
        let answer = self
            .run(work, Persona::Quinn, user, schema, move |out: &Out| {
                if out.caption.trim().is_empty() {
                    return Err("the caption is empty".into());
                }
                if let Some(fixed) = &publish.caption
                    && out.caption != *fixed
                {
                    return Err(format!("the caption is fixed: {fixed:?}"));
                }
                if let Some(bad) = out
                    .hashtags
                    .iter()
                    .find(|h| !h.starts_with('#') || h.contains(' ') || h.len() < 2)
                {
                    return Err(format!("{bad:?} is not a hashtag (#word)"));
                }
                if let Some(n) = publish.hashtag_count
                    && out.hashtags.len() != n as usize
                {
                    return Err(format!("exactly {n} hashtags, got {}", out.hashtags.len()));
                }
                let length = out.caption.chars().count() + 1 + out.hashtags.join(" ").chars().count();
                if length > publish.max_caption_chars as usize {
                    return Err(format!(
                        "caption and hashtags are {length} characters; at most {}",
                        publish.max_caption_chars
                    ));
                }
                Ok(())
            })
            .await?;
        Ok(Answer {
            output: (answer.output.caption, answer.output.hashtags),
            usage: answer.usage,
        })
    }

    /// Brendan's turn: his reply text, and the actions his tool calls asked for.
    pub async fn brendan(&self, store: &dyn OrchestratorStore, turn: &ChatTurn) -> Result<(ChatReply, Usage), String> {
        let projects = serde_json::to_string(&turn.projects).expect("serializes");
        let task = AgentTask {
            name: "brendan".into(),
            system: format!(
                "{}\n\n## Projects you can propose\n{projects}\n\nAnswer the user in plain text. To start a video, \
                 call propose_run; the API adds the approval link to your reply. To approve or reject the user's \
                 pending gate, call decide_gate; when they want changes instead (other ideas, a clip redone), \
                 call decide_gate with decision revise and their feedback. When the user asks for their approval link again (expired, lost), \
                 call resend_links.",
                self.prompt(Persona::Brendan)
            ),
            user: turn.message.clone(),
            history: turn
                .history
                .iter()
                .map(|line| {
                    let role = if line.role == "user" {
                        Role::User
                    } else {
                        Role::Assistant
                    };
                    (role, line.text.clone())
                })
                .collect(),
            tools: [
                "knowledge_search",
                "list_runs",
                "run_status",
                "propose_run",
                "decide_gate",
                "resend_links",
            ]
            .iter()
            .filter_map(|t| tool_spec(t))
            .collect(),
            required_tools: Vec::new(),
            output: None,
            validate: None,
            max_rounds: MAX_ROUNDS,
            run_id: None,
        };
        let tools = Tools {
            store,
            project: None,
            persona: Persona::Brendan,
            turn: Some(turn),
            actions: Mutex::default(),
        };
        let answer = self.llm.run(&task, &tools).await.map_err(|err| err.to_string())?;
        tracing::info!(user = %turn.user_id, tokens = answer.usage.total_tokens, calls = answer.usage.calls, "brendan answered");
        let reply = ChatReply {
            reply: answer.content.trim().to_string(),
            actions: tools.actions.into_inner().expect("actions lock"),
        };
        Ok((reply, answer.usage))
    }
}

/// The persona's prompt with the project's definition, guardrails and notes.
fn system_prompt(prompt: &str, spec: &ProjectSpec) -> String {
    let mut system = format!(
        "{prompt}\n\n## Project: {} ({})\n{}\n",
        spec.title, spec.project, spec.description
    );
    if let Some(specs) = &spec.specs {
        system.push_str(&format!(
            "\nSpecs: {}\n",
            serde_json::to_string(specs).expect("serializes")
        ));
    }
    if !spec.guardrails.is_empty() {
        system.push_str("\n## Guardrails (must hold)\n");
        for rule in &spec.guardrails {
            system.push_str(&format!("- {rule}\n"));
        }
    }
    if !spec.notes.is_empty() {
        system.push_str(&format!("\n## Notes\n{}\n", spec.notes));
    }
    system.push_str("\nAnswer with JSON matching the output schema, nothing else.");
    system
}

/// Indices are exactly `0..count`, each once.
fn indexed(indices: impl Iterator<Item = u32>, count: usize, what: &str) -> Result<(), String> {
    let mut seen: Vec<u32> = indices.collect();
    seen.sort_unstable();
    let want: Vec<u32> = (0..count as u32).collect();
    if seen == want {
        Ok(())
    } else {
        Err(format!(
            "expected {count} {what} with indexes 0 to {}, got {} with indexes {seen:?}",
            count.saturating_sub(1),
            seen.len()
        ))
    }
}
