//! Brendan, the showrunner: one chat turn at a time. He answers questions
//! about projects and runs, reports status, proposes runs and relays
//! approvals; he never does specialist work. The API owns the transcript
//! and turns his actions into runs and decisions.
//!
//! Two implementations: [`scripted`] (deterministic keyword rules, used when
//! no LLM is configured) and the LLM one in [`crate::personas`], whose tools
//! ([`crate::tools`]) describe runs and proposals the same way.

use myloware_core::project::Persona;
use myloware_core::wire::{ChatAction, ChatReply, ChatTurn};
use serde_json::{Map, Value, json};

use crate::engine::{Engine, Personas};
use crate::tools::{describe_proposal, describe_run};

/// Words that, opening a message, decide the user's pending gate.
const APPROVE: [&str; 8] = ["approve", "approved", "approving", "lgtm", "yes", "ok", "okay", "ship"];
const REJECT: [&str; 5] = ["reject", "rejected", "rejecting", "no", "decline"];

/// A project named in `text`, as a slug the API knows.
fn project_in(text: &str, turn: &ChatTurn) -> Option<String> {
    let known = |slug: &str| turn.projects.is_empty() || turn.projects.iter().any(|p| p.project == slug && p.runnable);
    let words = words(text);
    let has = |w: &str| words.iter().any(|x| x == w);
    if (has("aismr") || has("asmr") || has("surreal")) && known("aismr") {
        return Some("aismr".into());
    }
    if (has("test") || text.contains("test_video_gen") || text.contains("smoke")) && known("test_video_gen") {
        return Some("test_video_gen".into());
    }
    turn.projects
        .iter()
        .find(|p| p.runnable && has(&p.project))
        .map(|p| p.project.clone())
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Cuts a phrase at the first clause that is not part of the subject.
fn trim_phrase(phrase: &str) -> String {
    let lower = phrase.to_lowercase();
    let mut end = phrase.len();
    for stop in [
        " with ",
        " using ",
        " but ",
        " without ",
        " and skip",
        " skip",
        ", ",
        ". ",
        "; ",
        " please",
        " for tiktok",
        "!",
        "?",
    ] {
        if let Some(at) = lower.find(stop) {
            end = end.min(at);
        }
    }
    let mut subject = phrase[..end].trim().trim_end_matches(['.', ',', '!', '?']).trim();
    for article in ["a ", "an ", "the ", "some "] {
        if subject.to_lowercase().starts_with(article) {
            subject = subject[article.len()..].trim();
        }
    }
    subject.to_string()
}

/// The subject after "about", "featuring" or "of" (`a video about candles`).
fn subject_in(message: &str) -> Option<String> {
    let lower = message.to_lowercase();
    ["about ", "featuring ", "video of ", "videos of ", "clips of "]
        .iter()
        .find_map(|marker| lower.find(marker).map(|at| at + marker.len()))
        .map(|start| trim_phrase(&message[start..]))
        .filter(|s| !s.is_empty())
}

/// Modifiers the user asked for: `with modifiers glass, velvet and moss`.
fn modifiers_in(message: &str) -> Vec<String> {
    let lower = message.to_lowercase();
    let Some(at) = lower.find("modifiers") else {
        return Vec::new();
    };
    let rest = message[at + "modifiers".len()..].trim_start_matches([':', ' ']);
    let rest = ["like ", "such as "]
        .iter()
        .find_map(|p| rest.to_lowercase().starts_with(p).then(|| &rest[p.len()..]))
        .unwrap_or(rest);
    let rest = rest.split(['.', ';', '!', '?']).next().unwrap_or("");
    let lower_rest = rest.to_lowercase();
    let end = [", skip", " skip", " please", " without", " but "]
        .iter()
        .filter_map(|stop| lower_rest.find(stop))
        .min()
        .unwrap_or(rest.len());
    let rest = &rest[..end];
    rest.split(',')
        .flat_map(|part| part.split(" and "))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty() && m.chars().count() <= 200)
        .take(50)
        .collect()
}

/// Phrases that ask to leave Alex (editing) out.
const SKIP_EDITING: [&str; 5] = [
    "skip editing",
    "no editing",
    "without editing",
    "skip the edit",
    "skip alex",
];
/// Phrases of a question about runs.
const STATUS_QUESTIONS: [&str; 9] = [
    "status",
    "how is",
    "how's",
    "progress",
    "where is",
    "what happened",
    "is it done",
    "my runs",
    "my video",
];
/// How a request for changes starts ("change: warmer light, redo clip 3").
const CHANGE: [&str; 5] = ["change:", "changes:", "revise:", "request changes:", "please change:"];
/// Phrases asking for approval links again.
const RESEND: [&str; 6] = [
    "resend",
    "send the link",
    "send me the link",
    "new link",
    "fresh link",
    "link again",
];
/// Phrases of a question about what Brendan can make.
const PROJECT_QUESTIONS: [&str; 6] = [
    "what projects",
    "which projects",
    "what can you",
    "help",
    "what kinds",
    "what kind of",
];

/// Whether lowercased `text` contains one of `phrases`.
fn mentions(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| text.contains(p))
}

/// The proposal's input for `project` from what the user said.
fn proposal_input(project: &str, subject: Option<&str>, modifiers: Vec<String>, message: &str) -> Value {
    let mut input = Map::new();
    match subject {
        Some(subject) => {
            let field = if project == "aismr" { "object" } else { "subject" };
            input.insert(field.into(), json!(subject));
        }
        None => {
            input.insert("title".into(), json!(format!("{project} video")));
        }
    }
    input.insert("prompt".into(), json!(message.chars().take(4000).collect::<String>()));
    if !modifiers.is_empty() {
        input.insert("modifiers".into(), json!(modifiers));
    }
    Value::Object(input)
}

/// One turn: the LLM Brendan when an LLM is configured, else the scripted one.
pub async fn turn(engine: &Engine, turn: &ChatTurn) -> Result<ChatReply, String> {
    match &engine.personas {
        Personas::Scripted => Ok(scripted(turn)),
        Personas::Llm(llm) => {
            let (reply, usage) = llm.brendan(engine.store.as_ref(), turn).await?;
            engine
                .metrics
                .llm_tokens(llm.model(), usage.prompt_tokens, usage.completion_tokens);
            Ok(reply)
        }
        Personas::Unavailable(why) => Err(why.clone()),
    }
}

/// Brendan without an LLM.
pub fn scripted(turn: &ChatTurn) -> ChatReply {
    let message = turn.message.trim();
    let lower = message.to_lowercase();
    let first = words(message).into_iter().next().unwrap_or_default();
    let awaiting = turn.runs.iter().find(|r| r.awaiting_gate.is_some());
    let reply = |text: String, actions: Vec<ChatAction>| ChatReply { reply: text, actions };

    let short = words(message).len() <= 12;
    let approves =
        APPROVE.contains(&first.as_str()) && (awaiting.is_some() || !["yes", "ok", "okay"].contains(&first.as_str()));
    let rejects = REJECT.contains(&first.as_str()) && (awaiting.is_some() || first != "no");
    if short && (approves || rejects) {
        let Some(run) = awaiting else {
            return reply("Nothing is waiting for your approval right now.".into(), vec![]);
        };
        let gate = run.awaiting_gate.expect("awaiting");
        let reason = rejects
            .then(|| {
                message[first.len().min(message.len())..]
                    .trim_start_matches([':', ',', ' ', '-'])
                    .trim()
            })
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        let verb = if approves { "Approving" } else { "Rejecting" };
        return reply(
            format!("{verb} the {gate} gate of run {} ({}).", run.run_id, run.project),
            vec![ChatAction::DecideGate {
                approve: approves,
                run_id: Some(run.run_id.clone()),
                gate: Some(gate),
                reason,
            }],
        );
    }

    let change = CHANGE
        .iter()
        .find(|p| message.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p)));
    if let Some(prefix) = change {
        let feedback = message[prefix.len()..].trim();
        let Some(run) = awaiting else {
            return reply("Nothing is waiting for your approval right now.".into(), vec![]);
        };
        if feedback.is_empty() {
            return reply("Say what to change after \"change:\".".into(), vec![]);
        }
        let gate = run.awaiting_gate.expect("awaiting");
        return reply(
            format!(
                "Asking for changes at the {gate} gate of run {} ({}).",
                run.run_id, run.project
            ),
            vec![ChatAction::ReviseGate {
                run_id: Some(run.run_id.clone()),
                gate: Some(gate),
                feedback: feedback.chars().take(2000).collect(),
            }],
        );
    }

    if short && mentions(&lower, &RESEND) {
        return match turn.runs.iter().filter(|r| r.awaiting_gate.is_some()).count() {
            0 => reply("None of your runs is waiting for a decision.".into(), vec![]),
            n => reply(
                format!(
                    "Here {} fresh approval link{}:",
                    if n == 1 { "is a" } else { "are" },
                    if n == 1 { "" } else { "s" }
                ),
                vec![ChatAction::ResendLinks],
            ),
        };
    }

    let mentioned_run = turn.runs.iter().find(|r| message.contains(&r.run_id));
    if mentioned_run.is_some() || (mentions(&lower, &STATUS_QUESTIONS) && project_in(message, turn).is_none()) {
        let text = match mentioned_run.or(turn.runs.first()) {
            Some(run) => describe_run(run),
            None => {
                "You have no runs yet. Ask me for a video, for example \"make an AISMR video about candles\".".into()
            }
        };
        return reply(text, vec![]);
    }

    if mentions(&lower, &PROJECT_QUESTIONS) && project_in(message, turn).is_none() {
        let list: Vec<String> = turn
            .projects
            .iter()
            .filter(|p| p.runnable)
            .map(|p| format!("{} ({}): {}", p.title, p.project, p.description))
            .collect();
        return reply(
            format!(
                "I can make these videos:\n- {}\nWhat should it be about?",
                list.join("\n- ")
            ),
            vec![],
        );
    }

    // A follow-up answer to a question of Brendan's: the project may be in
    // the user's previous message ("make an aismr video" / "candles").
    let asked = turn
        .history
        .iter()
        .rev()
        .find(|l| l.role == "assistant")
        .is_some_and(|l| l.text.trim_end().ends_with('?'));
    let previous_user = turn.history.iter().rev().find(|l| l.role == "user");
    let (project, from_history) = match project_in(message, turn) {
        Some(project) => (Some(project), false),
        None if asked => (previous_user.and_then(|l| project_in(&l.text, turn)), true),
        None => (None, false),
    };
    let subject = subject_in(message).or_else(|| {
        (from_history && words(message).len() <= 8)
            .then(|| trim_phrase(message))
            .filter(|s| !s.is_empty())
    });

    match project {
        Some(project) if project != "aismr" || subject.is_some() => {
            let skip = if mentions(&lower, &SKIP_EDITING) {
                vec![Persona::Alex]
            } else {
                vec![]
            };
            let input = proposal_input(&project, subject.as_deref(), modifiers_in(message), message);
            reply(
                describe_proposal(&project, &input, &skip),
                vec![ChatAction::ProposeRun { project, input, skip }],
            )
        }
        Some(_) => reply(
            "Happy to make an AISMR video. What object should it be about?".into(),
            vec![],
        ),
        None => reply(
            "I can make an AISMR video (surreal object micro-films for TikTok) or a test video. \
             Which one would you like, and what should it be about?"
                .into(),
            vec![],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use myloware_core::Gate;
    use myloware_core::wire::{ChatLine, ChatProject, ChatRun};

    fn turn(message: &str) -> ChatTurn {
        ChatTurn {
            user_id: "u1".into(),
            message: message.into(),
            history: vec![],
            runs: vec![],
            projects: ["aismr", "test_video_gen", "general"]
                .iter()
                .map(|p| ChatProject {
                    project: (*p).into(),
                    title: p.to_uppercase(),
                    description: format!("{p} videos"),
                    runnable: *p != "general",
                })
                .collect(),
        }
    }

    fn proposal(reply: &ChatReply) -> (String, Value, Vec<Persona>) {
        match reply.actions.as_slice() {
            [ChatAction::ProposeRun { project, input, skip }] => (project.clone(), input.clone(), skip.clone()),
            other => panic!("expected one proposal, got {other:?} ({})", reply.reply),
        }
    }

    #[test]
    fn proposes_an_aismr_run_about_the_object() {
        let reply = scripted(&turn("make an AISMR video about candles"));
        let (project, input, skip) = proposal(&reply);
        assert_eq!(project, "aismr");
        assert_eq!(input["object"], "candles");
        assert!(skip.is_empty());
        assert!(reply.reply.contains("candles"), "{}", reply.reply);
    }

    #[test]
    fn recognises_surreal_and_asmr_modifiers_and_skip_editing() {
        let reply = scripted(&turn(
            "A surreal video about a teacup with modifiers glass, velvet and moss, skip editing please",
        ));
        let (project, input, skip) = proposal(&reply);
        assert_eq!(project, "aismr");
        assert_eq!(input["object"], "teacup");
        assert_eq!(input["modifiers"], json!(["glass", "velvet", "moss"]));
        assert_eq!(skip, vec![Persona::Alex]);
        assert_eq!(
            proposal(&scripted(&turn("an asmr video of pebbles"))).1["object"],
            "pebbles"
        );
    }

    #[test]
    fn a_test_video_needs_no_subject() {
        let (project, input, _) = proposal(&scripted(&turn("run the test video please")));
        assert_eq!(project, "test_video_gen");
        assert!(input["title"].is_string());
    }

    #[test]
    fn asks_for_what_is_missing_and_uses_the_answer() {
        let first = scripted(&turn("make an aismr video"));
        assert!(first.actions.is_empty());
        assert!(first.reply.ends_with('?'), "{}", first.reply);
        let mut second = turn("Candles");
        second.history = vec![
            ChatLine {
                role: "user".into(),
                text: "make an aismr video".into(),
            },
            ChatLine {
                role: "assistant".into(),
                text: first.reply,
            },
        ];
        let (project, input, _) = proposal(&scripted(&second));
        assert_eq!((project.as_str(), input["object"].as_str()), ("aismr", Some("Candles")));

        let vague = scripted(&turn("hello there"));
        assert!(
            vague.actions.is_empty() && vague.reply.ends_with('?'),
            "{}",
            vague.reply
        );
    }

    fn run(id: &str, status: &str, gate: Option<Gate>) -> ChatRun {
        ChatRun {
            run_id: id.into(),
            project: "aismr".into(),
            status: status.into(),
            input: json!({"object": "candles"}),
            awaiting_gate: gate,
            publish_urls: vec![],
            error: None,
            created_at: "2026-11-29T00:00:00Z".into(),
        }
    }

    #[test]
    fn asking_for_the_link_again_resends_the_waiting_gates_links() {
        let mut t = turn("can you resend the link? it expired");
        t.runs = vec![run("run_b", "awaiting_ideate", Some(Gate::Ideate))];
        let reply = scripted(&t);
        assert_eq!(reply.actions, vec![ChatAction::ResendLinks], "{}", reply.reply);
        t.runs.clear();
        t.message = "send me the link again".into();
        let none = scripted(&t);
        assert!(
            none.actions.is_empty() && none.reply.contains("None of your runs"),
            "{}",
            none.reply
        );
    }

    #[test]
    fn change_asks_for_changes_at_the_awaiting_gate() {
        let mut t = turn("Change: warmer light, and redo clip 3");
        t.runs = vec![run("run_b", "awaiting_prepublish", Some(Gate::Prepublish))];
        assert_eq!(
            scripted(&t).actions,
            vec![ChatAction::ReviseGate {
                run_id: Some("run_b".into()),
                gate: Some(Gate::Prepublish),
                feedback: "warmer light, and redo clip 3".into(),
            }]
        );
        t.message = "change:".into();
        assert!(scripted(&t).actions.is_empty(), "no feedback, nothing asked");
        t.message = "change: more colour".into();
        t.runs.clear();
        let none = scripted(&t);
        assert!(
            none.actions.is_empty() && none.reply.contains("Nothing is waiting"),
            "{}",
            none.reply
        );
    }

    #[test]
    fn approve_and_reject_decide_the_awaiting_gate() {
        let mut t = turn("approve");
        t.runs = vec![
            run("run_b", "awaiting_ideate_approval", Some(Gate::Ideate)),
            run("run_a", "published", None),
        ];
        assert_eq!(
            scripted(&t).actions,
            vec![ChatAction::DecideGate {
                approve: true,
                run_id: Some("run_b".into()),
                gate: Some(Gate::Ideate),
                reason: None
            }]
        );
        t.message = "reject: too dark".into();
        assert_eq!(
            scripted(&t).actions,
            vec![ChatAction::DecideGate {
                approve: false,
                run_id: Some("run_b".into()),
                gate: Some(Gate::Ideate),
                reason: Some("too dark".into())
            }]
        );
        t.runs.remove(0);
        t.message = "approve".into();
        let none = scripted(&t);
        assert!(
            none.actions.is_empty() && none.reply.contains("Nothing"),
            "{}",
            none.reply
        );
    }

    #[test]
    fn reports_the_status_of_the_newest_or_named_run() {
        let mut t = turn("what's the status?");
        assert!(scripted(&t).reply.contains("no runs"));
        t.runs = vec![run("run_b", "generating", None), run("run_a", "failed", None)];
        t.runs[1].error = Some("kie.ai said no".into());
        assert!(scripted(&t).reply.contains("run_b (aismr about candles) is generating"));
        t.message = "what happened to run_a".into();
        let reply = scripted(&t).reply;
        assert!(reply.contains("run_a") && reply.contains("kie.ai said no"), "{reply}");
    }

    #[test]
    fn lists_the_projects_when_asked() {
        let reply = scripted(&turn("what projects can you do?")).reply;
        assert!(
            reply.contains("aismr") && reply.contains("test_video_gen") && !reply.contains("general"),
            "{reply}"
        );
    }
}
