//! `mw hitl pending|link|approve|reject|revise`: gates awaiting a
//! decision, their signed links, and deciding (or requesting changes) with
//! the API key.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{self, ApiTarget, text, when};

/// The gates a run can stop at.
const GATES: [&str; 3] = ["workflow", "ideate", "prepublish"];

#[derive(Subcommand)]
pub enum HitlCommand {
    /// Every gate awaiting a decision, with a fresh approval link.
    Pending,
    /// A fresh approval (and rejection) link for an awaiting gate.
    Link {
        /// The run id (run_…).
        run_id: String,
        #[arg(value_parser = GATES)]
        gate: String,
    },
    /// Approve a gate with the API key; the run continues.
    Approve {
        /// The run id (run_…).
        run_id: String,
        #[arg(value_parser = GATES)]
        gate: String,
        /// A note kept with the decision (the gate's `note`; default
        /// `cli:$USER`). The approver recorded is the API key (`key:<name>`).
        #[arg(long)]
        approver: Option<String>,
    },
    /// Reject a gate with the API key; the run ends `rejected`.
    Reject {
        /// The run id (run_…).
        run_id: String,
        #[arg(value_parser = GATES)]
        gate: String,
        /// Why (kept with the decision).
        #[arg(long, required = true)]
        reason: String,
        /// A note kept with the decision (the gate's `note`; default
        /// `cli:$USER`). The approver recorded is the API key (`key:<name>`).
        #[arg(long)]
        approver: Option<String>,
    },
    /// Request changes at a gate: the persona before it works again with
    /// the feedback ("redo clip 3, warmer light"), then the gate waits again.
    Revise {
        /// The run id (run_…).
        run_id: String,
        #[arg(value_parser = ["ideate", "prepublish"])]
        gate: String,
        /// What should change (1 to 2000 characters).
        #[arg(long, required = true)]
        feedback: String,
        /// A note kept with the decision (default `cli:$USER`).
        #[arg(long)]
        approver: Option<String>,
    },
}

/// A 502 on a decision: it is kept and delivered later; say so.
fn kept(err: anyhow::Error) -> anyhow::Error {
    match client::refused_status(&err) {
        Some(502) => anyhow::anyhow!(
            "the decision is kept, but the orchestrator could not be told yet; it is delivered as soon as the \
             orchestrator answers (`mw dev` runs both services; `mw runs show <run>` shows the gate as not yet delivered)"
        ),
        _ => err,
    }
}

pub async fn run(command: HitlCommand, target: &ApiTarget, json: bool) -> anyhow::Result<()> {
    let http = client::http();
    match command {
        HitlCommand::Pending => pending(target, &http, json).await,
        HitlCommand::Link { run_id, gate } => {
            let link = link(target, &http, &run_id, &gate).await?;
            if json {
                return client::print_json(&link, false);
            }
            println!("approve: {}", text(&link["approvalUrl"]));
            println!("reject:  {}", text(&link["rejectUrl"]));
            println!("expires: {} UTC", when(&link["expiresAt"]));
            Ok(())
        }
        HitlCommand::Approve { run_id, gate, approver } => {
            let approver = approver.unwrap_or_else(crate::chat::default_user);
            let answer = decide(target, &http, &run_id, &gate, Decision::Approve, &approver)
                .await
                .map_err(kept)?;
            print_decision(&answer, &run_id, &gate, json)
        }
        HitlCommand::Reject {
            run_id,
            gate,
            reason,
            approver,
        } => {
            let approver = approver.unwrap_or_else(crate::chat::default_user);
            let answer = decide(target, &http, &run_id, &gate, Decision::Reject(&reason), &approver)
                .await
                .map_err(kept)?;
            print_decision(&answer, &run_id, &gate, json)
        }
        HitlCommand::Revise {
            run_id,
            gate,
            feedback,
            approver,
        } => {
            let approver = approver.unwrap_or_else(crate::chat::default_user);
            let answer = decide(target, &http, &run_id, &gate, Decision::Revise(&feedback), &approver)
                .await
                .map_err(kept)?;
            print_decision(&answer, &run_id, &gate, json)
        }
    }
}

async fn pending(target: &ApiTarget, http: &reqwest::Client, json: bool) -> anyhow::Result<()> {
    let body = target.send(http.get(target.url("/v1/hitl/pending"))).await?;
    if json {
        return client::print_json(&body, false);
    }
    let header = format!("{:<18} {:<11} {:<20} approve", "run", "gate", "requested");
    let any = client::print_table(&body, "pending", "no gates awaiting a decision", &header, |gate| {
        format!(
            "{:<18} {:<11} {:<20} {}",
            text(&gate["runId"]),
            text(&gate["gate"]),
            when(&gate["requestedAt"]),
            text(&gate["approvalUrl"])
        )
    });
    if any {
        println!(
            "decide: mw hitl approve <run> <gate>, mw hitl reject <run> <gate> --reason <why>, \
             or mw hitl revise <run> <gate> --feedback <what to change>"
        );
    }
    // Held runs need no decision: they go on when the limit allows.
    if body["held"].as_array().is_some_and(|held| !held.is_empty()) {
        println!();
        let header = format!("{:<18} {:<20} {:<10} held by", "run", "held since", "needs USD");
        client::print_table(&body, "held", "", &header, |run| {
            let hold = &run["hold"];
            format!(
                "{:<18} {:<20} {:<10} {} ({} USD left, counts again from {})",
                text(&run["runId"]),
                when(&run["heldAt"]),
                hold["neededUsd"],
                text(&hold["limit"]),
                hold["leftUsd"],
                text(&hold["until"])
            )
        });
        println!(
            "held runs go on by themselves once the limit allows: raise it (and restart), or wait for the date shown"
        );
    }
    Ok(())
}

/// `GET /v1/hitl/link/{runId}/{gate}`: a fresh link for an awaiting gate.
pub async fn link(target: &ApiTarget, http: &reqwest::Client, run_id: &str, gate: &str) -> anyhow::Result<Value> {
    target
        .send_about_run(run_id, http.get(target.url(&format!("/v1/hitl/link/{run_id}/{gate}"))))
        .await
}

#[derive(Clone, Copy)]
pub enum Decision<'a> {
    Approve,
    Reject(&'a str),
    Revise(&'a str),
}

/// Decides a gate with the API key (`POST /v1/hitl/approve|reject/...`).
pub async fn decide(
    target: &ApiTarget,
    http: &reqwest::Client,
    run_id: &str,
    gate: &str,
    decision: Decision<'_>,
    approver: &str,
) -> anyhow::Result<Value> {
    let (action, body) = match decision {
        Decision::Approve => ("approve", json!({"approver": approver})),
        Decision::Reject(reason) => ("reject", json!({"approver": approver, "reason": reason})),
        Decision::Revise(feedback) => ("revise", json!({"approver": approver, "feedback": feedback})),
    };
    target
        .send_about_run(
            run_id,
            http.post(target.url(&format!("/v1/hitl/{action}/{run_id}/{gate}")))
                .json(&body),
        )
        .await
}

fn print_decision(answer: &Value, run_id: &str, gate: &str, json: bool) -> anyhow::Result<()> {
    if json {
        return client::print_json(answer, false);
    }
    match answer["status"].as_str() {
        Some("approved") => println!("approved: {run_id} {gate}; the run continues"),
        Some("rejected") => println!("rejected: {run_id} {gate}; the run is stopped"),
        Some("already_approved") => println!("{run_id} {gate} was already approved; nothing changed"),
        Some("already_rejected") => println!("{run_id} {gate} was already rejected; nothing changed"),
        Some("revised") => println!("changes requested: {run_id} {gate}; the gate waits again once they are made"),
        Some("already_revised") => println!("{run_id} {gate}: changes were already requested; nothing changed"),
        Some("approval_counted" | "already_counted") => println!(
            "approval counted: {run_id} {gate} has {} of {} approvals; it waits for the rest",
            answer["approvals"], answer["approvalsRequired"]
        ),
        _ => println!("{answer}"),
    }
    Ok(())
}
