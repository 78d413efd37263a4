//! The console's templates (askama, every value HTML-escaped) and the
//! small conversions their rows need.

use askama::Template;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Who is signed in, for the header (and its sign-out form).
pub struct Who {
    pub name: String,
    pub role: String,
    pub csrf: String,
}

impl Who {
    pub fn of(session: &super::Session) -> Who {
        Who {
            name: session.principal.name.clone(),
            role: session.principal.role.to_string(),
            csrf: session.csrf.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage<'a> {
    /// None: the sign-in page has no header links.
    pub session: Option<Who>,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "console/notice.html")]
pub struct Notice<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub session: Option<Who>,
}

/// An option of a filter's list.
pub struct Choice {
    pub value: String,
    pub selected: bool,
}

impl Choice {
    pub fn all<'a>(values: impl IntoIterator<Item = &'a str>, selected: &str) -> Vec<Choice> {
        values
            .into_iter()
            .map(|value| Choice {
                value: value.to_string(),
                selected: value == selected,
            })
            .collect()
    }
}

/// The filters as given (empty: none).
#[derive(Default)]
pub struct Filter {
    pub project: String,
    pub status: String,
    pub from: String,
    pub to: String,
    pub q: String,
}

pub struct RunRow {
    pub id: String,
    pub project: String,
    pub about: String,
    pub status: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "console/runs.html")]
pub struct RunsPage {
    pub session: Option<Who>,
    pub projects: Vec<Choice>,
    pub statuses: Vec<Choice>,
    pub filter: Filter,
    pub runs: Vec<RunRow>,
    /// Whether a run of the page is still moving (the script listens).
    pub live: bool,
    pub next: Option<String>,
}

pub struct GateRow {
    pub gate: String,
    pub status: String,
    pub decided_by: Option<String>,
    pub detail: Option<String>,
    pub waiting: Option<String>,
}

pub struct RevisionRow {
    pub gate: String,
    pub round: u32,
    pub by: String,
    pub feedback: String,
    pub cost: String,
}

pub struct ClipRow {
    pub index: String,
    pub subject: String,
    pub url: String,
}

pub struct CallRow {
    pub at: String,
    pub provider: String,
    pub operation: String,
    pub cost: String,
    pub key: String,
}

pub struct Step {
    pub at: String,
    pub after: String,
    pub kind: String,
    pub what: String,
}

pub struct Trace {
    pub id: String,
    pub url: Option<String>,
}

#[derive(Template)]
#[template(path = "console/run.html")]
pub struct RunPage {
    pub session: Option<Who>,
    pub csrf: String,
    pub run: RunRow,
    pub cost: String,
    pub trace: Option<Trace>,
    pub error: Option<String>,
    pub can_cancel: bool,
    pub can_retry: bool,
    pub gates: Vec<GateRow>,
    pub revisions: Vec<RevisionRow>,
    pub render: Option<String>,
    pub clips: Vec<ClipRow>,
    pub publish_urls: Vec<String>,
    pub calls: Vec<CallRow>,
    /// Failed attempts, retries, holds: what went wrong and what was tried.
    pub incidents: Vec<Step>,
    pub timeline: Vec<Step>,
}

pub struct InboxGate {
    pub run_id: String,
    pub gate: String,
    pub project: String,
    pub since: String,
    pub waiting: Option<String>,
    pub revision: Option<u32>,
    pub round: u32,
    pub revisable: bool,
    /// (subject, concept) of each idea.
    pub ideas: Vec<(String, String)>,
    pub render: Option<String>,
    pub proposal: Option<String>,
}

#[derive(Template)]
#[template(path = "console/inbox.html")]
pub struct InboxPage {
    pub session: Option<Who>,
    pub csrf: String,
    pub can_decide: bool,
    pub gates: Vec<InboxGate>,
}

/// `2026-12-07 09:31:12` (UTC).
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `1.48 USD`, `0.0012 USD` (at most 4 decimals, no trailing zeros).
pub fn usd(amount: f64) -> String {
    let text = format!("{amount:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} USD")
}

/// What a run is about: its input's subject, object, topic, title or prompt.
pub fn about(input: &Value) -> String {
    ["object", "subject", "topic", "title", "prompt"]
        .iter()
        .find_map(|field| input[field].as_str())
        .map(|text| text.chars().take(80).collect())
        .unwrap_or_default()
}

/// A value as short text for a table cell.
pub fn short(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(160).collect::<String>())
    } else {
        text
    }
}
