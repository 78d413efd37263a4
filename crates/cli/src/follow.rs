//! Following a run until it ends (`mw runs watch`, `mw demo`): polls
//! `GET /v1/runs/{runId}` and prints each change once: the status, personas
//! starting and finishing, gates with their approval links (approving them
//! with `auto_approve`), clips as they complete, the render and the publish
//! URLs. With `json`, every new state of the run (and every link and
//! decision) is one line of the API's JSON instead.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::bail;
use myloware_core::RunStatus;
use serde_json::Value;

use crate::client::{self, ApiTarget, text};
use crate::hitl::{self, Decision};

/// How often the API is asked.
const POLL: Duration = Duration::from_millis(500);
/// Consecutive failed polls (API restarting, network blip) tolerated.
const MAX_FAILED_POLLS: u32 = 20;
/// The approver recorded for gates `mw demo --auto-approve` decides.
const AUTO_APPROVER: &str = "mw demo --auto-approve";

pub struct Follow<'a> {
    target: &'a ApiTarget,
    http: reqwest::Client,
    run_id: String,
    json: bool,
    auto_approve: bool,
    timeout: Option<Duration>,
    since: Instant,
    status: Option<String>,
    last: Option<Value>,
    started: HashSet<String>,
    finished: HashSet<String>,
    artifacts: HashSet<String>,
    clips: BTreeSet<u64>,
    /// The last status shown of each gate.
    gates: HashMap<String, String>,
}

impl<'a> Follow<'a> {
    pub fn new(
        target: &'a ApiTarget,
        run_id: &str,
        json: bool,
        auto_approve: bool,
        timeout: Option<Duration>,
    ) -> Follow<'a> {
        Follow {
            target,
            http: client::http(),
            run_id: run_id.to_string(),
            json,
            auto_approve,
            timeout,
            since: Instant::now(),
            status: None,
            last: None,
            started: HashSet::new(),
            finished: HashSet::new(),
            artifacts: HashSet::new(),
            clips: BTreeSet::new(),
            gates: HashMap::new(),
        }
    }

    /// Follows the run until it ends: the final run when it is published,
    /// an error saying how it ended otherwise (or that time ran out).
    pub async fn run(mut self) -> anyhow::Result<Value> {
        let mut failed_polls = 0;
        loop {
            let run = match self.target.run(&self.http, &self.run_id).await {
                Ok(run) => run,
                // The first answer says whether the run and the key are right;
                // after that, ride out an API restart or a network blip.
                Err(err) if self.last.is_some() && transient(&err) && failed_polls < MAX_FAILED_POLLS => {
                    if failed_polls == 0 {
                        eprintln!("warning: {err:#}; retrying");
                    }
                    failed_polls += 1;
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                Err(err) => return Err(err),
            };
            failed_polls = 0;
            self.show(&run).await?;
            let status = run["status"].as_str().and_then(|s| s.parse::<RunStatus>().ok());
            if status.is_some_and(RunStatus::is_terminal) {
                return self.end(run);
            }
            if let Some(timeout) = self.timeout
                && self.since.elapsed() >= timeout
            {
                bail!(
                    "timed out after {}s: {} is still {}; `mw runs watch {}` keeps following it",
                    timeout.as_secs(),
                    self.run_id,
                    text(&run["status"]),
                    self.run_id
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A line of progress, with the time since following began.
    fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("[{:>6.1}s] {}", self.since.elapsed().as_secs_f64(), line.as_ref());
        }
    }

    /// An indented detail line under the last one.
    fn detail(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("           {}", line.as_ref());
        }
    }

    async fn show(&mut self, run: &Value) -> anyhow::Result<()> {
        if self.json && self.last.as_ref() != Some(run) {
            client::print_json(run, true)?;
        }
        self.last = Some(run.clone());
        let result = &run["result"];
        // A status a persona's work leads to (a gate, the end) reads best
        // after that work; one that starts work, before it.
        let status = text(&run["status"]).to_string();
        let changed = self.status.as_deref() != Some(status.as_str());
        let outcome = status
            .parse::<RunStatus>()
            .is_ok_and(|s| s.is_terminal() || s.is_awaiting_gate());
        // Decisions on gates already shown came before any later work; gates
        // reached come after the work that led to them.
        let (shown, reached): (Vec<Value>, Vec<Value>) = run["gates"]
            .as_array()
            .into_iter()
            .flatten()
            .cloned()
            .partition(|g| self.gates.contains_key(text(&g["gate"])));
        for gate in &shown {
            self.gate(gate).await?;
        }
        if changed && !outcome {
            self.say(format!("status: {status}"));
        }
        for artifact in run["artifacts"].as_array().into_iter().flatten() {
            let id = artifact["id"].as_str().unwrap_or_default().to_string();
            if !self.artifacts.insert(id) {
                continue;
            }
            self.artifact(artifact, result);
        }
        if changed && outcome {
            self.say(format!("status: {status}"));
        }
        self.status = Some(status);
        if let Some(persona) = run["currentPersona"].as_str() {
            self.persona_started(persona);
        }
        for gate in &reached {
            self.gate(gate).await?;
        }
        Ok(())
    }

    fn persona_started(&mut self, persona: &str) {
        if self.started.insert(persona.to_string()) {
            self.say(format!("{persona}: started"));
        }
    }

    fn artifact(&mut self, artifact: &Value, result: &Value) {
        let kind = artifact["kind"].as_str().unwrap_or_default();
        let data = &artifact["data"];
        // Work of a persona shows it started, even if a poll missed it.
        if let Some(persona) = artifact["persona"].as_str()
            && !matches!(kind, "gate.reached" | "run.failed")
        {
            self.persona_started(persona);
        }
        match kind {
            "persona.output" => {
                let persona = text(&artifact["persona"]).to_string();
                if self.finished.insert(persona.clone()) {
                    self.say(format!("{persona}: finished"));
                }
            }
            "kieai.clip" => {
                let index = data["index"].as_u64().unwrap_or_default();
                if data["status"] == "completed" {
                    self.clips.insert(index);
                    self.say(format!(
                        "clip {}/{} completed (#{index} {})",
                        self.clips.len(),
                        total_clips(result),
                        clip_subject(result, index)
                    ));
                } else {
                    self.say(format!(
                        "clip #{index} {}: {}",
                        text(&data["status"]),
                        data["message"]
                            .as_str()
                            .or(data["code"].as_str())
                            .unwrap_or("no detail")
                    ));
                }
            }
            "render.url" => self.say(format!("render: {}", text(&data["url"]))),
            "publish.url" => self.say(format!(
                "publish: {} ({})",
                text(&data["url"]),
                data["platform"].as_str().unwrap_or("published")
            )),
            _ => {}
        }
    }

    async fn gate(&mut self, gate: &Value) -> anyhow::Result<()> {
        let name = text(&gate["gate"]).to_string();
        let status = text(&gate["status"]).to_string();
        let shown = self.gates.get(&name).cloned();
        if shown.is_none() {
            self.say(format!("gate {name}: reached"));
            if status == "awaiting" {
                self.gates.insert(name.clone(), status.clone());
                return self.awaiting(&name).await;
            }
        }
        if shown.as_deref() != Some(status.as_str()) {
            let mut line = format!("gate {name}: {status}{}", client::decided_by(gate));
            if let Some(reason) = gate["reason"].as_str() {
                line += &format!(" ({reason})");
            }
            self.say(line);
            self.gates.insert(name, status);
        }
        Ok(())
    }

    /// A gate waiting for a decision: its links, and the decision itself
    /// with `auto_approve`, else how to take it.
    async fn awaiting(&mut self, gate: &str) -> anyhow::Result<()> {
        let run_id = self.run_id.clone();
        match hitl::link(self.target, &self.http, &run_id, gate).await {
            Ok(link) if self.json => client::print_json(&link, true)?,
            Ok(link) => {
                self.say(format!("gate {gate}: waiting for a decision"));
                self.detail(format!("approve: {}", text(&link["approvalUrl"])));
                self.detail(format!("reject:  {}", text(&link["rejectUrl"])));
            }
            // Decided between the poll and the link: the next poll shows it.
            Err(err) if client::refused_status(&err) == Some(409) => return Ok(()),
            Err(err) => return Err(err),
        }
        if !self.auto_approve {
            self.detail(format!(
                "open the approve link, or run `mw hitl approve {run_id} {gate}` (or `mw hitl reject {run_id} {gate} --reason …`); waiting…"
            ));
            return Ok(());
        }
        match hitl::decide(self.target, &self.http, &run_id, gate, Decision::Approve, AUTO_APPROVER).await {
            Ok(answer) if self.json => client::print_json(&answer, true)?,
            Ok(answer) => {
                self.say(format!("gate {gate}: {} (--auto-approve)", text(&answer["status"])));
                self.gates.insert(gate.to_string(), "approved".into());
            }
            // Kept by the API and delivered when the orchestrator answers.
            Err(err) if client::refused_status(&err) == Some(502) => {
                self.say(format!(
                    "gate {gate}: approved; the orchestrator will be told when it answers"
                ));
                self.gates.insert(gate.to_string(), "approved".into());
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }

    /// The end of the run: a summary, and an error unless it was published.
    fn end(&self, run: Value) -> anyhow::Result<Value> {
        let result = &run["result"];
        let took = format!("{:.1}s", self.since.elapsed().as_secs_f64());
        let id = &self.run_id;
        match text(&run["status"]) {
            "published" => {
                if !self.json {
                    println!("{id} published after {took}");
                    println!("  render:  {}", text(&result["renderUrl"]));
                    for url in result["publishUrls"].as_array().into_iter().flatten() {
                        println!("  publish: {}", text(url));
                    }
                }
                Ok(run)
            }
            "failed" => bail!(
                "{id} failed: {} (continue it from there: mw runs retry {id})",
                describe_error(&result["error"])
            ),
            "rejected" => {
                let gate = run["gates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|g| g["status"] == "rejected");
                match gate {
                    Some(gate) => bail!(
                        "{id} was rejected at the {} gate{}",
                        text(&gate["gate"]),
                        gate["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default()
                    ),
                    None => bail!("{id} was rejected"),
                }
            }
            "cancelled" => {
                let reason = run["artifacts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["kind"] == "run.cancelled")
                    .and_then(|a| a["data"]["reason"].as_str());
                bail!(
                    "{id} was cancelled{}",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                )
            }
            other => bail!("{id} ended {other}"),
        }
    }
}

/// Worth polling again: the API was unreachable, busy or failing, not a
/// refusal that will stay (bad key, unknown run).
fn transient(err: &anyhow::Error) -> bool {
    client::refused_status(err).is_none_or(|status| status == 429 || status >= 500)
}

/// How many clips the run makes (`totalVideos`, else its videos), or `?`.
pub fn total_clips(result: &Value) -> String {
    result["totalVideos"]
        .as_u64()
        .or_else(|| result["videos"].as_array().map(|v| v.len() as u64))
        .filter(|n| *n > 0)
        .map_or("?".into(), |n| n.to_string())
}

fn clip_subject(result: &Value, index: u64) -> String {
    result["videos"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["index"].as_u64() == Some(index))
        .and_then(|v| v["subject"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A run's `result.error` (`{code, message, persona}`) in one line.
pub fn describe_error(error: &Value) -> String {
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => match error["persona"].as_str() {
            Some(persona) => format!("{code}: {message} ({persona})"),
            None => format!("{code}: {message}"),
        },
        _ if error.is_null() => "no error recorded".into(),
        _ => error.to_string(),
    }
}
