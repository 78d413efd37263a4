//! `mw schedules list|show|create|pause|resume|delete`: runs started on a
//! calendar by a running API, for operators and scripts.

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{self, ApiTarget, text, when};
use crate::runs::RunArgs;

#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// Schedules, newest first (GET /v1/schedules).
    List {
        /// Only schedules of this project.
        #[arg(long)]
        project: Option<String>,
        /// Only active or only paused schedules.
        #[arg(long, value_parser = ["active", "paused"])]
        status: Option<String>,
        /// How many (1 to 100).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        /// The page after this cursor (printed under a full page).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One schedule and its latest firings: the runs started, the refusals.
    Show {
        /// The schedule id (sch_…).
        schedule_id: String,
    },
    /// Start runs on a calendar (POST /v1/schedules): each time the cron
    /// pattern matches in the time zone, a run starts as `mw runs start`
    /// would start it. Prints the schedule's id and its first firing.
    #[command(group = clap::ArgGroup::new("about").required(true).multiple(true).args(["object", "prompt", "subject", "topic", "inputs"]))]
    Create {
        /// The project (aismr, test_video_gen).
        project: String,
        /// When: 5 fields (minute hour day-of-month month day-of-week, e.g.
        /// "0 9 * * 1-5": weekdays at 9:00), or 6 with seconds first.
        #[arg(long)]
        cron: String,
        /// The IANA time zone the pattern is read in (Europe/Paris, America/New_York).
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[command(flatten)]
        run: RunArgs,
        /// An input as JSON (`{"object": "soap"}`); repeat to take several
        /// in turn, one per run. Instead of --object, --prompt, … .
        #[arg(long = "input", value_name = "JSON", conflicts_with = "input")]
        inputs: Vec<String>,
    },
    /// Stop a schedule from firing (POST /v1/schedules/{id}/pause).
    Pause {
        /// The schedule id (sch_…).
        schedule_id: String,
    },
    /// Fire again from the next time after now (POST /v1/schedules/{id}/resume).
    Resume {
        /// The schedule id (sch_…).
        schedule_id: String,
    },
    /// Delete a schedule; the runs it started stay (DELETE /v1/schedules/{id}).
    Delete {
        /// The schedule id (sch_…).
        schedule_id: String,
    },
}

pub async fn run(command: SchedulesCommand, target: &ApiTarget, json: bool) -> anyhow::Result<()> {
    let http = client::http();
    match command {
        SchedulesCommand::List {
            project,
            status,
            limit,
            cursor,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(client::present([
                ("project", project),
                ("status", status),
                ("cursor", cursor),
            ]));
            let body = target.send(http.get(target.url("/v1/schedules")).query(&query)).await?;
            if json {
                return client::print_json(&body, false);
            }
            let header = format!(
                "{:<17} {:<16} {:<20} {:<18} {:<7} next firing",
                "schedule", "project", "cron", "timezone", "status"
            );
            let any = client::print_table(&body, "schedules", "no schedules", &header, |schedule| {
                format!(
                    "{:<17} {:<16} {:<20} {:<18} {:<7} {}",
                    text(&schedule["id"]),
                    text(&schedule["project"]),
                    text(&schedule["cron"]),
                    text(&schedule["timezone"]),
                    text(&schedule["status"]),
                    when(&schedule["nextFireAt"])
                )
            });
            if any && let Some(cursor) = body["nextCursor"].as_str() {
                println!("more: mw schedules list --limit {limit} --cursor {cursor}");
            }
            Ok(())
        }
        SchedulesCommand::Show { schedule_id } => {
            let schedule = target
                .send(http.get(target.url(&format!("/v1/schedules/{schedule_id}"))))
                .await
                .map_err(|err| not_found(err, &schedule_id))?;
            if json {
                return client::print_json(&schedule, false);
            }
            describe(&schedule);
            Ok(())
        }
        SchedulesCommand::Create {
            project,
            cron,
            timezone,
            run,
            inputs,
        } => {
            let (input, options) = run.into_parts();
            let mut body = json!({"project": project, "cron": cron, "timezone": timezone, "options": options});
            if inputs.is_empty() {
                body["input"] = input.into();
            } else {
                let inputs = inputs
                    .iter()
                    .map(|text| {
                        serde_json::from_str::<Value>(text).with_context(|| format!("--input {text:?} is not JSON"))
                    })
                    .collect::<anyhow::Result<Vec<Value>>>()?;
                body["inputs"] = inputs.into();
            }
            let schedule = target.send(http.post(target.url("/v1/schedules")).json(&body)).await?;
            if json {
                return client::print_json(&schedule, false);
            }
            println!(
                "{} created: {} ({}), first firing {} UTC",
                text(&schedule["id"]),
                text(&schedule["cron"]),
                text(&schedule["timezone"]),
                when(&schedule["nextFireAt"])
            );
            println!("  its firings: mw schedules show {}", text(&schedule["id"]));
            Ok(())
        }
        SchedulesCommand::Pause { schedule_id } => act(target, &schedule_id, "pause", json).await,
        SchedulesCommand::Resume { schedule_id } => act(target, &schedule_id, "resume", json).await,
        SchedulesCommand::Delete { schedule_id } => {
            target
                .send(http.delete(target.url(&format!("/v1/schedules/{schedule_id}"))))
                .await
                .map_err(|err| not_found(err, &schedule_id))?;
            if json {
                return client::print_json(&json!({"id": schedule_id, "deleted": true}), false);
            }
            println!("{schedule_id} deleted (the runs it started stay)");
            Ok(())
        }
    }
}

/// `POST /v1/schedules/{id}/{action}` (pause, resume); prints the new state.
async fn act(target: &ApiTarget, schedule_id: &str, action: &str, json: bool) -> anyhow::Result<()> {
    let schedule = target
        .send(client::http().post(target.url(&format!("/v1/schedules/{schedule_id}/{action}"))))
        .await
        .map_err(|err| not_found(err, schedule_id))?;
    if json {
        return client::print_json(&schedule, false);
    }
    match schedule["nextFireAt"].as_str() {
        Some(_) => println!(
            "{schedule_id} {}; next firing {} UTC",
            text(&schedule["status"]),
            when(&schedule["nextFireAt"])
        ),
        None => println!("{schedule_id} {}", text(&schedule["status"])),
    }
    Ok(())
}

/// A 404 about the schedule says so, and where to find the ids.
fn not_found(err: anyhow::Error, schedule_id: &str) -> anyhow::Error {
    match client::refused_status(&err) {
        Some(404) => anyhow::anyhow!("no schedule {schedule_id}; `mw schedules list` shows the schedules"),
        _ => err,
    }
}

/// A schedule and its latest firings, for people.
fn describe(schedule: &Value) {
    println!(
        "{}  {}  {}",
        text(&schedule["id"]),
        text(&schedule["project"]),
        text(&schedule["status"])
    );
    println!(
        "  when:     {} ({})",
        text(&schedule["cron"]),
        text(&schedule["timezone"])
    );
    println!("  next:     {} UTC", when(&schedule["nextFireAt"]));
    let inputs = schedule["inputs"].as_array().cloned().unwrap_or_default();
    let next = schedule["nextInput"].as_u64().unwrap_or_default() as usize;
    for (index, input) in inputs.iter().enumerate() {
        let marker = if inputs.len() > 1 && index == next { "next" } else { "" };
        println!("  input {index:<2} {input} {marker}");
    }
    if schedule["options"].as_object().is_some_and(|o| !o.is_empty()) {
        println!("  options:  {}", schedule["options"]);
    }
    println!(
        "  created:  {} by {}",
        when(&schedule["createdAt"]),
        text(&schedule["createdBy"])
    );
    let firings = schedule["firings"].as_array().cloned().unwrap_or_default();
    if firings.is_empty() {
        println!("  firings:  none yet");
        return;
    }
    println!("  firings (latest first):");
    for firing in &firings {
        let what = match firing["runId"].as_str() {
            Some(run_id) => format!("started {run_id}"),
            None => format!("refused: {}", text(&firing["reason"])),
        };
        let skipped = match firing["skipped"].as_u64() {
            Some(n) if n > 0 => format!(" (for {n} missed time(s) too)"),
            _ => String::new(),
        };
        println!("    {}  {what}{skipped}", when(&firing["fireAt"]));
    }
}
