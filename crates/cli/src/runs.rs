//! `mw runs start|list|show|watch|cancel|retry`: runs of a running API, for
//! operators and scripts.

use std::time::Duration;

use clap::Subcommand;
use serde_json::{Map, Value, json};

use crate::client::{self, ApiTarget, text, when};
use crate::follow::{self, Follow};

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Start a run (POST /v1/runs/start); prints its id and status.
    #[command(group = clap::ArgGroup::new("input").required(true).multiple(true))]
    Start {
        /// The project (aismr, test_video_gen; an unknown one is refused with the list).
        project: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Runs, newest first (GET /v1/runs).
    List {
        /// Only runs in this status (e.g. awaiting_ideate, published).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this project.
        #[arg(long)]
        project: Option<String>,
        /// Only runs of this user.
        #[arg(long)]
        user: Option<String>,
        /// How many (1 to 100).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        /// The page after this cursor (printed under a full page).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One run: status, persona, gates, videos, render and publish URLs, error.
    Show {
        /// The run id (run_…).
        run_id: String,
    },
    /// Follow a run until it ends, printing each change; exit 0 when it is
    /// published, 1 when it failed, was rejected or cancelled, or on timeout.
    Watch {
        /// The run id (run_…).
        run_id: String,
        /// Give up (exit 1) after this many seconds; by default wait until the run ends.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Stop a run that has not ended (POST /v1/runs/{runId}/cancel).
    Cancel {
        /// The run id (run_…).
        run_id: String,
        /// Why (kept in the run's `run.cancelled` artifact).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Continue a failed run from the step that failed, without paying again
    /// for what succeeded (POST /v1/runs/{runId}/retry; at most 3 per run).
    Retry {
        /// The run id (run_…).
        run_id: String,
    },
}

/// What a run is about and how it runs: the flags of `mw runs start`, and
/// of `mw schedules create` for the runs it starts.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The object of the video (aismr: "candles").
    #[arg(long, group = "input")]
    object: Option<String>,
    /// A free-form prompt.
    #[arg(long, group = "input")]
    prompt: Option<String>,
    /// The subject of the video.
    #[arg(long, group = "input")]
    subject: Option<String>,
    /// The topic of the video.
    #[arg(long, group = "input")]
    topic: Option<String>,
    /// A modifier to use (repeat for several).
    #[arg(long = "modifier", value_name = "MODIFIER")]
    modifiers: Vec<String>,
    /// The user the run belongs to (gate links go to their chat).
    #[arg(long)]
    user: Option<String>,
    /// A persona to leave out of the pipeline (repeat for several).
    #[arg(long, value_name = "PERSONA", value_parser = ["iggy", "riley", "alex", "quinn"])]
    skip: Vec<String>,
    /// Hold the run at the workflow gate until someone approves the plan.
    #[arg(long)]
    require_approval: bool,
}

impl RunArgs {
    /// The start's `input` (empty when no text flag was given) and `options`.
    pub fn into_parts(self) -> (Map<String, Value>, Map<String, Value>) {
        let mut input: Map<String, Value> = client::present([
            ("object", self.object),
            ("prompt", self.prompt),
            ("subject", self.subject),
            ("topic", self.topic),
        ])
        .map(|(field, value)| (field.into(), value.into()))
        .collect();
        if !self.modifiers.is_empty() {
            input.insert("modifiers".into(), self.modifiers.into());
        }
        let mut options = Map::new();
        if let Some(user) = self.user {
            options.insert("user_id".into(), user.into());
        }
        if !self.skip.is_empty() {
            options.insert("skip".into(), self.skip.into());
        }
        if self.require_approval {
            options.insert("requireWorkflowApproval".into(), true.into());
        }
        (input, options)
    }
}

pub async fn run(command: RunsCommand, target: &ApiTarget, json: bool) -> anyhow::Result<()> {
    match command {
        RunsCommand::Start { project, run } => {
            let (input, options) = run.into_parts();
            let body = json!({"project": project, "input": input, "options": options});
            let run_id = start(target, &body, json, false).await?;
            if !json {
                println!("  follow it:  mw runs watch {run_id}");
            }
            Ok(())
        }
        RunsCommand::List {
            status,
            project,
            user,
            limit,
            cursor,
        } => list(target, status, project, user, limit, cursor, json).await,
        RunsCommand::Show { run_id } => show(target, &run_id, json).await,
        RunsCommand::Watch { run_id, timeout } => {
            Follow::new(target, &run_id, json, false, timeout.map(Duration::from_secs))
                .run()
                .await
                .map(|_| ())
        }
        RunsCommand::Cancel { run_id, reason } => {
            let body = json!({"reason": reason, "actor": crate::chat::default_user()});
            act(target, &run_id, "cancel", body, json).await
        }
        RunsCommand::Retry { run_id } => act(target, &run_id, "retry", json!({}), json).await,
    }
}

/// Starts a run and prints what happened (`json`: the answer, on one line
/// when `compact`); the run id.
pub async fn start(target: &ApiTarget, body: &Value, json: bool, compact: bool) -> anyhow::Result<String> {
    let answer = target
        .send(client::http().post(target.url("/v1/runs/start")).json(body))
        .await?;
    let run_id = answer["runId"].as_str().unwrap_or_default().to_string();
    if json {
        client::print_json(&answer, compact)?;
        return Ok(run_id);
    }
    let status = text(&answer["status"]);
    match answer["detail"].as_str() {
        Some(detail) => println!("{run_id} recorded ({status}): {detail}"),
        None if status == "pending_workflow" => {
            println!("{run_id} is waiting for its plan to be approved ({status})");
            println!("  approve it: mw hitl approve {run_id} workflow   (link: mw hitl link {run_id} workflow)");
        }
        None => println!("{run_id} started ({status})"),
    }
    Ok(run_id)
}

async fn list(
    target: &ApiTarget,
    status: Option<String>,
    project: Option<String>,
    user: Option<String>,
    limit: u32,
    cursor: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let mut query = vec![("limit", limit.to_string())];
    query.extend(client::present([
        ("status", status),
        ("project", project),
        ("user_id", user),
        ("cursor", cursor),
    ]));
    let body = target
        .send(client::http().get(target.url("/v1/runs")).query(&query))
        .await?;
    if json {
        return client::print_json(&body, false);
    }
    let header = format!(
        "{:<18} {:<16} {:<20} {:<8} {:<20} created",
        "run", "project", "status", "persona", "user"
    );
    let any = client::print_table(&body, "runs", "no runs", &header, |run| {
        format!(
            "{:<18} {:<16} {:<20} {:<8} {:<20} {}",
            text(&run["runId"]),
            text(&run["project"]),
            text(&run["status"]),
            text(&run["currentPersona"]),
            text(&run["userId"]),
            when(&run["createdAt"])
        )
    });
    if any && let Some(cursor) = body["nextCursor"].as_str() {
        println!("more: mw runs list --limit {limit} --cursor {cursor}");
    }
    Ok(())
}

async fn show(target: &ApiTarget, run_id: &str, json: bool) -> anyhow::Result<()> {
    let run = target.run(&client::http(), run_id).await?;
    if json {
        return client::print_json(&run, false);
    }
    let payload = &run["payload"];
    let result = &run["result"];
    println!(
        "{}  {}  {}",
        text(&run["runId"]),
        text(&run["project"]),
        text(&run["status"])
    );
    println!("  persona:  {}", text(&run["currentPersona"]));
    println!("  user:     {}", text(&payload["user_id"]));
    let input: Vec<String> = payload["input"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(field, value)| match value.as_str() {
            Some(value) => format!("{field}={value:?}"),
            None => format!("{field}={value}"),
        })
        .collect();
    println!("  input:    {}", input.join(" "));
    println!(
        "  created:  {}   updated: {}",
        when(&run["createdAt"]),
        when(&run["updatedAt"])
    );
    let gates = run["gates"].as_array().cloned().unwrap_or_default();
    if !gates.is_empty() {
        println!("  gates:");
        for gate in &gates {
            let mut line = format!(
                "    {:<11} {}{}",
                text(&gate["gate"]),
                text(&gate["status"]),
                client::decided_by(gate)
            );
            if let Some(reason) = gate["reason"].as_str() {
                line += &format!(": {reason}");
            }
            if gate["delivered"] == false {
                line += " (not yet delivered to the orchestrator)";
            }
            println!("{line}");
        }
    }
    let videos = result["videos"].as_array().cloned().unwrap_or_default();
    if !videos.is_empty() {
        let done = videos.iter().filter(|v| v["status"] == "completed").count();
        println!("  videos ({done}/{} completed):", follow::total_clips(result));
        for video in &videos {
            println!(
                "    {:>2}  {:<24} {:<16} {:<10} {}",
                video["index"].as_u64().map_or("?".into(), |i| i.to_string()),
                text(&video["subject"]),
                text(&video["header"]),
                text(&video["status"]),
                video["assetUrl"].as_str().unwrap_or("")
            );
        }
    }
    println!("  render:   {}", text(&result["renderUrl"]));
    let publish: Vec<&str> = result["publishUrls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!(
        "  publish:  {}",
        if publish.is_empty() {
            "-".to_string()
        } else {
            publish.join(" ")
        }
    );
    if !result["error"].is_null() {
        println!("  error:    {}", follow::describe_error(&result["error"]));
    }
    Ok(())
}

/// `POST /v1/runs/{runId}/{action}` (cancel, retry); prints the run's new status.
async fn act(target: &ApiTarget, run_id: &str, action: &str, body: Value, json: bool) -> anyhow::Result<()> {
    let answer = target
        .send_about_run(
            run_id,
            client::http()
                .post(target.url(&format!("/v1/runs/{run_id}/{action}")))
                .json(&body),
        )
        .await
        .map_err(|err| match client::refused_status(&err) {
            Some(409) => err.context(format!("cannot {action} {run_id}")),
            _ => err,
        })?;
    if json {
        return client::print_json(&answer, false);
    }
    println!("{run_id} {}", text(&answer["status"]));
    Ok(())
}
