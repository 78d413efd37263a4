//! `mw`: the MyloWare binary. Servers, development mode and operator
//! commands; everything else lives in the libraries. The binary's `main`
//! is [`main`] here, so the system tests can build it as a binary of their
//! own (`mw-system`).
//!
//! Crate graph: `myloware-cli` (the `mw` binary) may import every other
//! MyloWare crate; only the tests and benchmarks import it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod chat;
mod client;
mod costs;
mod demo;
mod dlq;
mod env;
mod follow;
mod hitl;
mod ingest;
mod retention;
mod runs;
mod schedules;
mod serve;
mod validate;

#[derive(Parser)]
#[command(name = "mw", version, about = "MyloWare: chat requests in, published videos out")]
#[command(long_about = "MyloWare: chat requests in, published videos out.\n\n\
Configuration comes from the environment; `.env.<environment>` in the current folder \
(`.env.development` when ENVIRONMENT is unset, `.env.production` in production), or the \
file --env-file names, fills in what is not set. The project catalog is shipped in the \
binary; PROJECTS_DIR replaces it with a folder.\n\n\
The operator commands (runs, schedules, hitl, demo, audit, costs, retention, dlq, chat) talk to a running API: \
MW_API_URL (or --api-url, default http://127.0.0.1:8080) and API_KEY (or --api-key). \
Exit status: 0 success, 1 failure (the message says what to do next), 2 bad usage.")]
struct Cli {
    /// Read this env file instead of `.env.<environment>` (it must exist);
    /// variables set in the environment still win.
    #[arg(long, global = true, value_name = "PATH")]
    env_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one service (production: one process per service).
    Serve {
        #[command(subcommand)]
        service: Service,
    },
    /// Run the API (8080) and the orchestrator (8090) in one process, with mock
    /// providers and the configured database (SQLite by default).
    Dev,
    /// Apply the database migrations of DATABASE_URL and exit.
    Migrate,
    /// Check the configuration without starting anything.
    Validate {
        #[command(subcommand)]
        what: ValidateWhat,
    },
    /// Load the knowledge base (persona prompts, guardrails, project notes).
    Ingest {
        #[command(subcommand)]
        what: IngestWhat,
    },
    /// The dead-letter queue of a running API (MW_API_URL, API_KEY).
    Dlq {
        #[command(subcommand)]
        what: DlqWhat,
        #[command(flatten)]
        target: client::ApiTarget,
    },
    /// Runs of a running API (MW_API_URL, API_KEY): start, list, show, watch, cancel.
    Runs {
        #[command(subcommand)]
        what: runs::RunsCommand,
        /// The API's JSON instead of text, for scripts (one line per change for `watch`).
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        target: client::ApiTarget,
    },
    /// Runs started on a calendar (MW_API_URL, API_KEY): list, show, create, pause, resume, delete.
    Schedules {
        #[command(subcommand)]
        what: schedules::SchedulesCommand,
        /// The API's JSON instead of text, for scripts.
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        target: client::ApiTarget,
    },
    /// Gates awaiting a decision, their links, approving and rejecting (MW_API_URL, API_KEY).
    Hitl {
        #[command(subcommand)]
        what: hitl::HitlCommand,
        /// The API's JSON instead of text, for scripts.
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        target: client::ApiTarget,
    },
    /// Start a run on a running API and follow it from start to publish URL:
    /// personas, gates with their links, clips, the render and the publish.
    /// Exit 0 when it is published.
    Demo {
        /// The project (aismr, test_video_gen).
        project: String,
        /// What the video is about (aismr: "candles" by default).
        #[arg(long)]
        object: Option<String>,
        /// Approve every gate with the API key instead of waiting for a person.
        #[arg(long)]
        auto_approve: bool,
        /// Give up (exit 1) after this many seconds; by default wait until the run ends.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// The API's JSON instead of text: one line per answer and per change of the run.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: client::ApiTarget,
    },
    /// Who did what, when and from where (MW_API_URL, API_KEY): gate
    /// decisions (refused ones too) and approval-page views, cancels,
    /// retries, dead-letter replays, proposal edits; newest first. Needs a
    /// key that may read the audit (every role but viewer).
    Audit {
        #[command(flatten)]
        args: audit::AuditArgs,
        #[command(flatten)]
        target: client::ApiTarget,
    },
    /// Delete old rows no unfinished run needs (MW_API_URL, API_KEY).
    Retention {
        #[command(subcommand)]
        what: RetentionWhat,
        /// The API's JSON instead of text, for scripts.
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        target: client::ApiTarget,
    },
    /// What paid calls cost per day, project and mode, by provider (MW_API_URL, API_KEY).
    /// Mock runs show what they would have cost. Default: the last 30 days.
    Costs {
        /// The first day, YYYY-MM-DD (UTC); default 29 days before --to.
        #[arg(long, value_parser = costs::day)]
        from: Option<chrono::NaiveDate>,
        /// The last day, included; default today (UTC). At most 366 days from --from.
        #[arg(long, value_parser = costs::day)]
        to: Option<chrono::NaiveDate>,
        /// Only this project's costs.
        #[arg(long)]
        project: Option<String>,
        /// The API's JSON instead of text, for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: client::ApiTarget,
    },
    /// One message to Brendan through a running API (MW_API_URL, API_KEY):
    /// prints his reply and the approval links of the runs he proposes.
    Chat {
        /// The message (several words are joined with spaces).
        #[arg(required = true)]
        message: Vec<String>,
        /// The chat user (default `cli:$USER`).
        #[arg(long)]
        user: Option<String>,
        /// The API's JSON answer, for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: client::ApiTarget,
    },
}

#[derive(Subcommand)]
enum DlqWhat {
    /// Entries that could not be processed (open ones; --all for every one).
    List {
        #[arg(long)]
        all: bool,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Process entries again (exit 1 if any still fails).
    Replay {
        /// Entry numbers (`seq` in the list).
        seqs: Vec<i64>,
        /// Every open entry.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum RetentionWhat {
    /// Delete webhook deliveries (of ended or unknown runs), artifacts of
    /// runs that ended, and finished chat pushes, older than the cutoff.
    Prune {
        /// Keep this many days (1 to 3650).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=3650))]
        older_than_days: i64,
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum Service {
    /// The public API (runs, gates, webhooks, chat) on API_PORT (8080).
    Api,
    /// The private orchestrator (persona graphs, provider calls) on ORCHESTRATOR_PORT (8090).
    Orchestrator,
}

#[derive(Subcommand)]
enum ValidateWhat {
    /// Check every variable (live mode needs every provider secret; outside
    /// development API_KEY and HITL_SECRET must be strong), print the mode and
    /// the provider hosts that would be called; exit 1 on any problem.
    Env {
        /// In live mode, also call each provider with a request that costs
        /// nothing (kie.ai credits, Shotstack and Upload-Post lookups) to
        /// check reachability and credentials.
        #[arg(long)]
        online: bool,
    },
}

#[derive(Subcommand)]
enum IngestWhat {
    /// Validate the project definitions and load the knowledge documents into
    /// the database.
    Run {
        /// Validate and report counts without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The `mw` command line: parses the arguments, runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env_file = match env::load_env_file(cli.env_file.as_deref()) {
        Ok(env_file) => env_file,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // Again, so the file also fills flags read from the environment
    // (API_KEY for the operator commands).
    let cli = if env_file.as_ref().is_some_and(|f| f.names.is_some()) {
        Cli::parse()
    } else {
        cli
    };
    if let Command::Costs { from, to, .. } = &cli.command {
        if let Err(problem) = costs::check_range(*from, *to) {
            use clap::CommandFactory;
            Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, problem)
                .exit();
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve { service: Service::Api } => serve::api().await,
            Command::Serve {
                service: Service::Orchestrator,
            } => serve::orchestrator().await,
            Command::Dev => serve::dev().await,
            Command::Migrate => serve::migrate().await,
            Command::Validate {
                what: ValidateWhat::Env { online },
            } => validate::env(env_file.as_ref(), online).await,
            Command::Ingest {
                what: IngestWhat::Run { dry_run },
            } => ingest::run(dry_run).await,
            Command::Dlq {
                what: DlqWhat::List { all, json },
                target,
            } => dlq::list(&target, all, json).await,
            Command::Dlq {
                what: DlqWhat::Replay { seqs, all },
                target,
            } => dlq::replay(&target, &seqs, all).await,
            Command::Runs { what, json, target } => runs::run(what, &target, json).await,
            Command::Schedules { what, json, target } => schedules::run(what, &target, json).await,
            Command::Hitl { what, json, target } => hitl::run(what, &target, json).await,
            Command::Demo {
                project,
                object,
                auto_approve,
                timeout,
                json,
                target,
            } => demo::run(&target, &project, object, auto_approve, timeout, json).await,
            Command::Audit { args, target } => audit::show(&target, args).await,
            Command::Retention {
                what:
                    RetentionWhat::Prune {
                        older_than_days,
                        dry_run,
                    },
                json,
                target,
            } => retention::prune(&target, older_than_days, dry_run, json).await,
            Command::Costs {
                from,
                to,
                project,
                json,
                target,
            } => costs::show(&target, from, to, project.as_deref(), json).await,
            Command::Chat {
                message,
                user,
                json,
                target,
            } => {
                chat::send(
                    &target,
                    &user.unwrap_or_else(chat::default_user),
                    &message.join(" "),
                    json,
                )
                .await
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
