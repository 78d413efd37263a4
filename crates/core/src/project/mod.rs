//! Project definitions (`projects/<slug>.toml`) and persona prompts
//! (`projects/personas/<name>.md`): parsed, validated with errors that name
//! the file and field, and turned into the knowledge documents the personas
//! search.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::run::Gate;

mod catalog;

pub use catalog::{Catalog, CatalogError, KnowledgeDoc, PersonaPrompt, ProjectsSource};

/// Who does the work. Brendan is the chat front, never a graph node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Persona {
    Brendan,
    Iggy,
    Riley,
    Alex,
    Quinn,
}

impl Persona {
    pub const ALL: [Persona; 5] = [Self::Brendan, Self::Iggy, Self::Riley, Self::Alex, Self::Quinn];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Brendan => "brendan",
            Self::Iggy => "iggy",
            Self::Riley => "riley",
            Self::Alex => "alex",
            Self::Quinn => "quinn",
        }
    }

    /// The tools a project may grant this persona.
    pub fn possible_tools(self) -> &'static [&'static str] {
        match self {
            Self::Brendan => &["knowledge_search", "list_runs", "run_status", "propose_run"],
            Self::Iggy => &["knowledge_search"],
            Self::Riley => &["knowledge_search", "submit_clips", "wait_for_clips"],
            Self::Alex => &["knowledge_search", "render_timeline"],
            Self::Quinn => &["knowledge_search", "publish"],
        }
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One project: a kind of video series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectSpec {
    pub project: String,
    pub title: String,
    pub description: String,
    /// Persona order of the graph; empty for conversation-only projects.
    #[serde(default)]
    pub workflow: Vec<Persona>,
    /// `after_iggy` (the ideate gate), `before_quinn` (the prepublish gate).
    #[serde(default)]
    pub hitl_points: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specs: Option<VideoSpecs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishSpec>,
    /// Tool allowlists per persona.
    #[serde(default)]
    pub personas: BTreeMap<Persona, PersonaTools>,
    /// Rules the personas must respect and the validators check.
    #[serde(default)]
    pub guardrails: Vec<String>,
    /// Free-form notes for the knowledge base.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// This project's own spending limits (live spend), beside the global ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSpec>,
    /// What a gate waiting past `GATE_TIMEOUT_HOURS` decides; unset, the
    /// gate expires and the run ends `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_timeout_decision: Option<TimeoutDecision>,
    /// Who decides each gate and how (`[gates.ideate]`, `[gates.prepublish]`,
    /// `[gates.workflow]`); a gate not listed takes the defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gates: BTreeMap<Gate, GatePolicy>,
}

/// A gate's policy: how many people approve, who may decide, whether the
/// run's owner may approve it, how often changes may be asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatePolicy {
    /// Distinct approvers before the run goes on (a reject or a request
    /// for changes decides at once). Default 1.
    #[serde(default = "GatePolicy::one")]
    pub approvals_required: u32,
    /// Who may decide: API key names (`alice` or `key:alice`), roles
    /// (`role:approver`) or Telegram chats (`telegram:<chat id>`). Empty:
    /// anyone who may decide gates. A link's token names no one: a gate
    /// with approvers takes no decision from a link.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Whether the run's owner (its `userId`) may approve it. Default true.
    #[serde(default = "GatePolicy::yes")]
    pub self_approval: bool,
    /// Requests for changes the gate takes before only approve or reject
    /// remain. Default 3.
    #[serde(default = "GatePolicy::three")]
    pub max_revisions: u32,
}

impl Default for GatePolicy {
    fn default() -> GatePolicy {
        GatePolicy {
            approvals_required: 1,
            approvers: Vec::new(),
            self_approval: true,
            max_revisions: 3,
        }
    }
}

impl GatePolicy {
    fn one() -> u32 {
        1
    }
    fn yes() -> bool {
        true
    }
    fn three() -> u32 {
        3
    }
}

/// A gate's decision when nobody decided in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutDecision {
    Approve,
    Reject,
}

/// `[budget]` of a project: USD per UTC day and per UTC calendar month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VideoSpecs {
    pub video_count: u32,
    pub clip_duration_seconds: f64,
    pub aspect_ratio: String,
    /// `WIDTHxHEIGHT`, e.g. `1080x1920`.
    pub resolution: String,
    /// Target length of the compilation; the render's length is the sum of
    /// its clips, checked against this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compilation_length_seconds: Option<f64>,
    /// One continuous shot per clip, no cuts.
    #[serde(default)]
    pub single_shot: bool,
    /// How often a failed clip is submitted again (each try is paid).
    /// Default 0: a failed clip fails the run.
    #[serde(default)]
    pub clip_retries: u32,
    pub overlay: OverlayStyle,
    /// Fixed subjects and headers; when empty, Iggy invents them.
    #[serde(default)]
    pub videos: Vec<FixedVideo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverlayStyle {
    /// `top`, `center` or `bottom`.
    pub position: String,
    #[serde(default)]
    pub uppercase: bool,
    pub color: String,
    pub background: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FixedVideo {
    pub subject: String,
    pub header: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishSpec {
    pub platforms: Vec<String>,
    /// The Upload-Post profile (`user`) to post as. A live publish for a
    /// project without one fails; it never falls back to another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// A fixed caption; when absent Quinn writes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default)]
    pub hashtags: Vec<String>,
    /// Exactly this many hashtags, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashtag_count: Option<u32>,
    #[serde(default = "default_max_caption_chars")]
    pub max_caption_chars: u32,
}

fn default_max_caption_chars() -> u32 {
    2200
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonaTools {
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub required_tools: Vec<String>,
}

impl ProjectSpec {
    /// The gates this project's graph pauses at, in graph order.
    pub fn gates(&self) -> Vec<Gate> {
        self.hitl_points
            .iter()
            .filter_map(|point| Gate::from_hitl_point(point))
            .collect()
    }

    /// Conversation-only projects (e.g. `general`) have no graph to run.
    pub fn is_runnable(&self) -> bool {
        !self.workflow.is_empty()
    }

    /// The policy of `gate` (the defaults when the project sets none).
    pub fn gate_policy(&self, gate: Gate) -> GatePolicy {
        self.gates.get(&gate).cloned().unwrap_or_default()
    }

    pub fn video_count(&self) -> u32 {
        self.specs.as_ref().map_or(0, |s| s.video_count)
    }

    /// Parses and validates one project file. `file` is used in messages only.
    pub fn parse(file: &Path, text: &str) -> Result<ProjectSpec, Vec<String>> {
        let spec: ProjectSpec = toml::from_str(text).map_err(|err| {
            let line = err.span().map(|span| text[..span.start].lines().count().max(1));
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            vec![format!("{}: {}{at}", file.display(), err.message().trim())]
        })?;
        let problems = spec.problems();
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(problems
                .into_iter()
                .map(|(field, msg)| format!("{}: {field}: {msg}", file.display()))
                .collect())
        }
    }

    /// `(field, message)` for everything wrong with this definition.
    fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut bad = |field: &str, msg: String| out.push((field.to_string(), msg));

        if self.project.is_empty()
            || !self
                .project
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            bad("project", "must be a slug of a-z, 0-9 and _".into());
        }
        if self.title.trim().is_empty() {
            bad("title", "must not be empty".into());
        }
        for (i, persona) in self.workflow.iter().enumerate() {
            if *persona == Persona::Brendan {
                bad(
                    &format!("workflow[{i}]"),
                    "brendan is the chat front, not a graph step".into(),
                );
            }
            if self.workflow[..i].contains(persona) {
                bad(&format!("workflow[{i}]"), format!("{persona} appears twice"));
            }
        }
        for (i, point) in self.hitl_points.iter().enumerate() {
            let field = format!("hitlPoints[{i}]");
            match Gate::from_hitl_point(point) {
                None => bad(
                    &field,
                    format!("unknown point {point:?}; use after_iggy or before_quinn"),
                ),
                Some(_) => {
                    let persona = point.split_once('_').map_or("", |(_, p)| p);
                    if !self.workflow.iter().any(|p| p.as_str() == persona) {
                        bad(
                            &field,
                            format!("{point} refers to {persona}, who is not in the workflow"),
                        );
                    }
                }
            }
        }
        match (&self.specs, self.is_runnable()) {
            (None, true) => bad("specs", "required when the project has a workflow".into()),
            (Some(specs), _) => specs.problems(&mut bad),
            (None, false) => {}
        }
        if let Some(budget) = &self.budget {
            for (field, usd) in [
                ("budget.dailyUsd", budget.daily_usd),
                ("budget.monthlyUsd", budget.monthly_usd),
            ] {
                if usd.is_some_and(|usd| !usd.is_finite() || usd < 0.0) {
                    bad(field, "must be a number of USD, 0 or more".into());
                }
            }
        }
        for (gate, policy) in &self.gates {
            if !(1..=10).contains(&policy.approvals_required) {
                bad(
                    &format!("gates.{gate}.approvalsRequired"),
                    "must be between 1 and 10".into(),
                );
            }
            let named = policy.approvers.iter().all(|a| !a.starts_with("role:"));
            if !policy.approvers.is_empty() && named && policy.approvals_required as usize > policy.approvers.len() {
                bad(
                    &format!("gates.{gate}.approvalsRequired"),
                    format!(
                        "{} approvals can never come from the {} approver(s) named; name more, or a role",
                        policy.approvals_required,
                        policy.approvers.len()
                    ),
                );
            }
            if policy.max_revisions > 20 {
                bad(&format!("gates.{gate}.maxRevisions"), "must be at most 20".into());
            }
            for (i, approver) in policy.approvers.iter().enumerate() {
                let valid = match approver.split_once(':') {
                    Some(("role", role)) => role.parse::<crate::auth::Role>().is_ok(),
                    Some(("key" | "telegram", id)) => !id.is_empty() && !id.contains(char::is_whitespace),
                    Some(_) => false,
                    None => !approver.is_empty() && !approver.contains(char::is_whitespace),
                };
                if !valid {
                    bad(
                        &format!("gates.{gate}.approvers[{i}]"),
                        format!("{approver:?} is not a key name, key:<name>, role:<role> or telegram:<chat id>"),
                    );
                }
            }
        }
        match (&self.publish, self.workflow.contains(&Persona::Quinn)) {
            (None, true) => bad("publish", "required when quinn is in the workflow".into()),
            (Some(publish), _) => publish.problems(&mut bad),
            (None, false) => {}
        }
        for (persona, tools) in &self.personas {
            let possible = persona.possible_tools();
            for tool in &tools.tools {
                if !possible.contains(&tool.as_str()) {
                    bad(
                        &format!("personas.{persona}.tools"),
                        format!("{tool:?} is not a tool of {persona}; possible: {}", possible.join(", ")),
                    );
                }
            }
            for tool in &tools.required_tools {
                if !tools.tools.contains(tool) {
                    bad(
                        &format!("personas.{persona}.requiredTools"),
                        format!("{tool:?} is required but not in tools"),
                    );
                }
            }
        }
        for (i, rule) in self.guardrails.iter().enumerate() {
            if rule.trim().is_empty() {
                bad(&format!("guardrails[{i}]"), "must not be empty".into());
            }
        }
        out
    }
}

impl VideoSpecs {
    fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        if !(1..=50).contains(&self.video_count) {
            bad("specs.videoCount", "must be between 1 and 50".into());
        }
        if !(self.clip_duration_seconds > 0.0 && self.clip_duration_seconds <= 60.0) {
            bad("specs.clipDurationSeconds", "must be more than 0 and at most 60".into());
        }
        if !["9:16", "16:9", "1:1", "4:5"].contains(&self.aspect_ratio.as_str()) {
            bad("specs.aspectRatio", "must be one of 9:16, 16:9, 1:1, 4:5".into());
        }
        let dims: Option<(u32, u32)> = self
            .resolution
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
        if dims.is_none_or(|(w, h)| w == 0 || h == 0) {
            bad("specs.resolution", "must look like 1080x1920".into());
        }
        if self.compilation_length_seconds.is_some_and(|len| len <= 0.0) {
            bad("specs.compilationLengthSeconds", "must be positive".into());
        }
        if self.clip_retries > 3 {
            bad("specs.clipRetries", "must be at most 3 (each retry is paid)".into());
        }
        if !["top", "center", "bottom"].contains(&self.overlay.position.as_str()) {
            bad("specs.overlay.position", "must be top, center or bottom".into());
        }
        for (field, color) in [("color", &self.overlay.color), ("background", &self.overlay.background)] {
            let hex = color.strip_prefix('#').unwrap_or("");
            if !matches!(hex.len(), 6 | 8) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                bad(&format!("specs.overlay.{field}"), "must be #RRGGBB or #RRGGBBAA".into());
            }
        }
        if !self.videos.is_empty() && self.videos.len() != self.video_count as usize {
            bad(
                "specs.videos",
                format!(
                    "lists {} videos but videoCount is {}",
                    self.videos.len(),
                    self.video_count
                ),
            );
        }
        for (i, video) in self.videos.iter().enumerate() {
            if video.subject.trim().is_empty() || video.header.trim().is_empty() {
                bad(
                    &format!("specs.videos[{i}]"),
                    "subject and header must not be empty".into(),
                );
            }
        }
    }
}

impl PublishSpec {
    fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        if self.platforms.is_empty() {
            bad("publish.platforms", "must name at least one platform".into());
        }
        for platform in &self.platforms {
            if platform != "tiktok" {
                bad(
                    "publish.platforms",
                    format!("{platform:?} is not supported; use tiktok"),
                );
            }
        }
        if self.max_caption_chars == 0 || self.max_caption_chars > 2200 {
            bad(
                "publish.maxCaptionChars",
                "must be between 1 and 2200 (TikTok's limit)".into(),
            );
        }
        if let Some(caption) = &self.caption {
            if caption.chars().count() > self.max_caption_chars as usize {
                bad(
                    "publish.caption",
                    format!("longer than {} characters", self.max_caption_chars),
                );
            }
        }
        for tag in &self.hashtags {
            if !tag.starts_with('#') || tag.len() < 2 || tag.contains(char::is_whitespace) {
                bad("publish.hashtags", format!("{tag:?} must look like #word"));
            }
        }
        if let Some(count) = self.hashtag_count {
            if !self.hashtags.is_empty() && self.hashtags.len() != count as usize {
                bad(
                    "publish.hashtags",
                    format!("lists {} hashtags but hashtagCount is {count}", self.hashtags.len()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r##"
project = "demo"
title = "Demo"
description = "A demo."
workflow = ["iggy", "riley", "alex", "quinn"]
hitlPoints = ["after_iggy", "before_quinn"]
guardrails = ["no music"]

[specs]
videoCount = 1
clipDurationSeconds = 8.0
aspectRatio = "9:16"
resolution = "1080x1920"
overlay = { position = "top", uppercase = true, color = "#FFFFFF", background = "#000000AA" }

[publish]
platforms = ["tiktok"]
hashtags = ["#a"]

[personas.riley]
tools = ["knowledge_search", "submit_clips"]
requiredTools = ["submit_clips"]
"##;

    fn parse(text: &str) -> Result<ProjectSpec, Vec<String>> {
        ProjectSpec::parse(Path::new("projects/demo.toml"), text)
    }

    #[test]
    fn a_valid_definition_parses_with_its_gates() {
        let spec = parse(MINIMAL).unwrap();
        assert_eq!(spec.gates(), [Gate::Ideate, Gate::Prepublish]);
        assert!(spec.is_runnable());
        assert_eq!(spec.video_count(), 1);
    }

    #[test]
    fn unknown_fields_name_the_file_and_line() {
        let text = MINIMAL.replace("videoCount = 1", "vidoeCount = 1");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("projects/demo.toml: "), "{}", errs[0]);
        assert!(errs[0].contains("vidoeCount"), "{}", errs[0]);
        assert!(errs[0].contains("line"), "{}", errs[0]);
    }

    #[test]
    fn semantic_problems_name_file_and_field() {
        let text = MINIMAL
            .replace("videoCount = 1", "videoCount = 0")
            .replace("\"after_iggy\"", "\"after_lunch\"")
            .replace("requiredTools = [\"submit_clips\"]", "requiredTools = [\"publish\"]");
        let errs = parse(&text).unwrap_err();
        let joined = errs.join("\n");
        assert!(
            joined.contains("projects/demo.toml: specs.videoCount: must be between 1 and 50"),
            "{joined}"
        );
        assert!(
            joined.contains("projects/demo.toml: hitlPoints[0]: unknown point"),
            "{joined}"
        );
        assert!(joined.contains("personas.riley.requiredTools"), "{joined}");
    }

    #[test]
    fn a_projects_budget_is_read_and_a_negative_one_refused() {
        let spec = parse(&format!("{MINIMAL}\n[budget]\ndailyUsd = 5.0\n")).unwrap();
        assert_eq!(
            spec.budget,
            Some(BudgetSpec {
                daily_usd: Some(5.0),
                monthly_usd: None
            })
        );
        let errs = parse(&format!("{MINIMAL}\n[budget]\nmonthlyUsd = -2\n")).unwrap_err();
        assert!(
            errs.join("\n")
                .contains("budget.monthlyUsd: must be a number of USD, 0 or more"),
            "{errs:?}"
        );
    }

    #[test]
    fn gate_policies_are_read_with_defaults_and_impossible_ones_refused() {
        let spec = parse(&format!(
            "{MINIMAL}\n[gates.prepublish]\napprovalsRequired = 2\napprovers = [\"role:approver\", \"key:dana\"]\nselfApproval = false\n"
        ))
        .unwrap();
        let policy = spec.gate_policy(Gate::Prepublish);
        assert_eq!(
            (policy.approvals_required, policy.self_approval, policy.max_revisions),
            (2, false, 3)
        );
        assert_eq!(spec.gate_policy(Gate::Ideate), GatePolicy::default());
        for (table, field) in [
            ("approvalsRequired = 0", "approvalsRequired: must be between 1 and 10"),
            ("maxRevisions = 21", "maxRevisions: must be at most 20"),
            ("approvers = [\"role:boss\"]", "approvers[0]"),
            ("approvers = [\"has space\"]", "approvers[0]"),
            (
                "approvalsRequired = 3\napprovers = [\"ann\", \"telegram:42\"]",
                "can never come from the 2 approver(s)",
            ),
        ] {
            let errs = parse(&format!("{MINIMAL}\n[gates.ideate]\n{table}\n")).unwrap_err();
            assert!(errs.join("\n").contains(field), "{table}: {errs:?}");
        }
    }

    #[test]
    fn tools_outside_a_personas_reach_are_refused() {
        let text = MINIMAL.replace(
            "tools = [\"knowledge_search\", \"submit_clips\"]",
            "tools = [\"publish\", \"submit_clips\"]",
        );
        let errs = parse(&text).unwrap_err();
        assert!(
            errs[0].contains("personas.riley.tools: \"publish\" is not a tool of riley"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_runnable_project_needs_specs_and_publish() {
        let text = "project = \"x\"\ntitle = \"X\"\ndescription = \"\"\nworkflow = [\"iggy\", \"quinn\"]\n";
        let errs = parse(text).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("specs: required")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("publish: required")), "{errs:?}");
    }

    #[test]
    fn conversation_only_projects_need_no_specs() {
        let spec = parse("project = \"general\"\ntitle = \"General\"\ndescription = \"chat\"\n").unwrap();
        assert!(!spec.is_runnable());
        assert!(spec.gates().is_empty());
    }
}
