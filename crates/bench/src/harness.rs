//! What every benchmark binary does around its measurement, in one place:
//! its command line (its own options, `--quick`, and the options of its
//! kind), the header it prints first (its name and title, the backend and
//! binary, the machine, its settings), its database and the services' logs
//! prepared and removed again, and the report printed last.
//!
//! A binary describes its own options with [`Bench`]. A benchmark of `mw`
//! processes is `main` = [`processes`] with its measurement; a comparison
//! of servers in this process is `main` = [`comparison`]; the others parse
//! with [`parse`] and print with [`header`] in a `main` of their own.

use std::fmt::Display;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use serde_json::json;

use crate::compare::{self, Comparison, LoadArgs, Runtimes, Side};
use crate::db::{BenchDb, Maintenance};
use crate::report::{Check, Machine, Report};
use crate::services::{InProcess, Workdir, mw_binary};

/// A benchmark binary's own options. Its `#[command(about = …)]` is its
/// title: the first line of `--help` and of the header. An option whose
/// default is smaller with `--quick` says so (`default_value_if("quick",
/// "true", …)`).
pub trait Bench: clap::Args {
    /// The binary's name, and its report's.
    const NAME: &'static str;

    /// The header's lines about this run's settings, after the machine.
    fn settings(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A benchmark's command line: its own options, `--quick`, and the options
/// of its kind (`common`).
#[derive(clap::Parser)]
struct Cli<B: clap::Args, K: clap::Args> {
    #[command(flatten)]
    bench: B,
    /// A run of seconds instead of minutes, to check that it works
    /// (noisier): the options that say `--quick: N` default to N.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    common: K,
}

/// The options of `B` and those of its kind, `K`, from the command line
/// (`--help` and errors exit).
pub fn parse<B: Bench, K: clap::Args>() -> (B, K) {
    // The title, not the doc comment of a flattened kind's options.
    let command = Cli::<B, K>::command()
        .name(B::NAME)
        .about(title::<B>())
        .long_about(None);
    let cli = Cli::<B, K>::from_arg_matches(&command.get_matches()).unwrap_or_else(|err| err.exit());
    (cli.bench, cli.common)
}

/// The `#[command(about = …)]` of `B`.
fn title<B: Bench>() -> String {
    let command = B::augment_args(clap::Command::new(B::NAME));
    command.get_about().map(ToString::to_string).unwrap_or_default()
}

/// A count of at least `min` on the command line.
pub fn at_least(min: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(min..)
}

/// Prints the header of `bench`: `name: title`, the `facts` of the run
/// (backend, binary), the machine, the `load`, then its settings; the
/// report to fill.
pub fn header<B: Bench>(bench: &B, facts: &[(&str, &dyn Display)], load: Option<&LoadArgs>) -> Report {
    println!("{}: {}", B::NAME, title::<B>());
    for (label, value) in facts {
        line(label, value);
    }
    let report = Report::new(B::NAME, Machine::probe());
    report.machine.print();
    if let Some(load) = load {
        line("load", &load.describe());
    }
    for (label, value) in bench.settings() {
        line(label, &value);
    }
    report
}

/// One line of the header: `  label       value`.
pub fn line(label: &str, value: &dyn Display) {
    println!("  {label:<11} {value}");
}

/// The benchmark's own database.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// Database to run on: sqlite://FILE (a new file), or a Postgres
    /// database in which a fresh schema is created and dropped at the end.
    /// Default: a new temporary SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Keep the benchmark's database (SQLite file or Postgres schema), and
    /// the services' logs, for inspection instead of removing them.
    #[arg(long)]
    pub keep: bool,
}

impl DbArgs {
    /// A fresh database of the benchmark's own.
    pub async fn prepare(&self) -> anyhow::Result<BenchDb> {
        BenchDb::prepare(self.database_url.as_deref()).await
    }
}

/// The options of every benchmark of `mw` processes.
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The `mw` binary (default: target/release/mw).
    #[arg(long)]
    pub mw: Option<PathBuf>,
    /// On Postgres, VACUUM (ANALYZE) the benchmark's tables this often, as
    /// autovacuum would (0: never; this machine's server runs without
    /// autovacuum).
    #[arg(long, default_value_t = 20)]
    pub vacuum_every_secs: u64,
}

/// A benchmark of `mw` processes under way: the binary, its database, the
/// folder of the services' logs, and the report.
pub struct Frame {
    pub mw: PathBuf,
    pub db: BenchDb,
    pub workdir: Workdir,
    pub report: Report,
    maintenance: Option<Maintenance>,
    /// What [`Frame::renew_db`] needs: the database options and the
    /// vacuum interval, and the passes of the databases already finished.
    db_args: DbArgs,
    vacuum_every: Duration,
    vacuum_passes: u32,
}

impl Frame {
    /// A fresh database in place of the frame's, for a benchmark that gives
    /// each of the set-ups it compares a database of its own: the current
    /// one removed (kept with `--keep`), the new one vacuumed as the first.
    pub async fn renew_db(&mut self) -> anyhow::Result<()> {
        let fresh = self.db_args.prepare().await?;
        self.stop_maintenance().await;
        let used = std::mem::replace(&mut self.db, fresh);
        used.finish(self.db_args.keep).await;
        self.maintenance = self.db.maintain(self.vacuum_every).await?;
        Ok(())
    }

    async fn stop_maintenance(&mut self) {
        if let Some(maintenance) = self.maintenance.take() {
            self.vacuum_passes += maintenance.stop().await;
        }
    }
}

/// `main` of a benchmark of `mw` processes: the binary, a fresh database
/// (vacuumed in the background on Postgres) and a folder for the logs, the
/// header, then `measure`; then the database and the logs removed unless
/// kept (the logs also kept on a failure), and the report printed.
pub async fn processes<B: Bench>(
    measure: impl AsyncFnOnce(&B, &mut Frame) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (bench, common) = parse::<B, ProcessArgs>();
    let mw = mw_binary(common.mw.as_deref())?;
    let db = common.db.prepare().await?;
    let workdir = Workdir::create()?;
    let report = header(&bench, &[("backend", &db.backend()), ("binary", &mw.display())], None);
    let mut frame = Frame {
        mw,
        db,
        workdir,
        report,
        maintenance: None,
        db_args: common.db,
        vacuum_every: Duration::from_secs(common.vacuum_every_secs),
        vacuum_passes: 0,
    };
    let outcome = match frame.db.maintain(frame.vacuum_every).await {
        Ok(maintenance) => {
            frame.maintenance = maintenance;
            println!();
            frame.report.detail("backend", json!(frame.db.backend()));
            measure(&bench, &mut frame).await
        }
        Err(err) => Err(err),
    };
    if frame.maintenance.is_some() {
        frame.stop_maintenance().await;
        frame.report.detail("vacuum_passes", json!(frame.vacuum_passes));
    }
    let keep = frame.db_args.keep;
    frame.db.finish(keep).await;
    frame.workdir.finish(keep || outcome.is_err());
    frame.report.conclude(outcome)
}

/// The options of every comparison of servers in this process.
#[derive(Debug, clap::Args)]
pub struct ComparisonArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// A comparison under way: the load options, the servers' and the load
/// generator's runtimes, and the database the servers use.
pub struct Comparing {
    pub load: LoadArgs,
    pub runtimes: Runtimes,
    pub database_url: String,
}

impl Comparing {
    /// Loads `servers` (the ceiling first, then the real endpoint, then any
    /// breakdown) with the same `paths` and `headers`, then stops them.
    pub fn compare(
        &self,
        servers: Vec<(&'static str, InProcess)>,
        paths: &[String],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Comparison> {
        let sides: Vec<Side> = servers
            .iter()
            .map(|(name, server)| Side {
                name,
                addr: server.addr,
                paths: paths.to_vec(),
            })
            .collect();
        let comparison = self
            .runtimes
            .load
            .block_on(compare::compare(&sides, headers, &self.load));
        self.runtimes.servers.block_on(async {
            for (_, server) in servers {
                server.stop().await?;
            }
            anyhow::Ok(())
        })?;
        comparison
    }

    /// Prints `comparison`, and checks `target`: the real side's median
    /// throughput at least `share` of the ceiling's, nothing refused and no
    /// error; with the details every comparison reports. Whether nothing
    /// was refused and no request failed.
    pub fn check_throughput(&self, comparison: &Comparison, report: &mut Report, target: &str, share: f64) -> bool {
        let ratio = comparison.median_ratio();
        println!();
        comparison.print();
        let (ceiling, real) = (comparison.ceiling(), comparison.real());
        let clean = real.refused + real.errors + ceiling.errors == 0;
        report.check(Check::new(
            target,
            format!(
                "{:.0} % ({:.0} vs {:.0} req/s, median of {} rounds)",
                ratio * 100.0,
                real.median_rate(),
                ceiling.median_rate(),
                comparison.ratios.len()
            ),
            ratio >= share && clean,
        ));
        report.detail("connections", json!(self.load.connections));
        report.detail("client", json!(format!("{:?}", self.load.client).to_lowercase()));
        report.detail("comparison", comparison.to_json());
        clean
    }
}

/// `main` of a comparison of servers in this process ([`crate::compare`]):
/// the runtimes, this process's logs as `logs_as`'s (the request span costs
/// what it costs in production; no event is logged per request at the
/// default level), a fresh database, the header, then `measure`; then the
/// database removed unless kept, and the report printed.
pub fn comparison<B: Bench>(
    logs_as: &str,
    measure: impl FnOnce(&B, &Comparing, &mut Report) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (bench, ComparisonArgs { load, db }) = parse::<B, ComparisonArgs>();
    let runtimes = Runtimes::new(&load)?;
    myloware_telemetry::logging::init(true, None, logs_as);
    let bench_db = runtimes.servers.block_on(db.prepare())?;
    let mut report = header(&bench, &[("backend", &bench_db.backend())], Some(&load));
    println!();
    report.detail("backend", json!(bench_db.backend()));
    let comparing = Comparing {
        load,
        runtimes,
        database_url: bench_db.url.clone(),
    };
    let outcome = measure(&bench, &comparing, &mut report);
    comparing.runtimes.servers.block_on(bench_db.finish(db.keep));
    report.conclude(outcome)
}
