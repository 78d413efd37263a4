//! `mw`: the MyloWare binary. Servers, development mode and operator
//! commands; everything else lives in the libraries.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod chat;
mod client;
mod dlq;
mod env;
mod ingest;
mod serve;
mod validate;

#[derive(Parser)]
#[command(name = "mw", version, about = "MyloWare: chat requests in, published videos out")]
#[command(long_about = "MyloWare: chat requests in, published videos out.\n\n\
Configuration comes from the environment; in development (ENVIRONMENT unset or \
development) `.env.development` in the current folder fills in what is not set.")]
struct Cli {
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

fn main() -> ExitCode {
    // Before parsing, so `.env.development` also fills flags read from the
    // environment (API_KEY for the operator commands).
    env::load_development_file();
    let cli = Cli::parse();
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
            } => validate::env(online).await,
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
