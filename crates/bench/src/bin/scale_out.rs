//! `scale-out`: one API and one orchestrator against two of each, on one
//! Postgres, as real `mw serve api` / `mw serve orchestrator` processes.
//! Each kind sits behind a round-robin TCP load balancer in this process
//! (the test kit's `Proxy::balance`: each new connection to the next
//! process), and every process's `API_URL` and `PUBLIC_BASE_URL` are the
//! API balancer's, its `ORCHESTRATOR_URL` the orchestrator balancer's, as in
//! a deployment with replicas. 1+1 goes through balancers too (of one
//! process each), so both topologies pay the same hop.
//!
//! For each topology, 1+1 then 2+2, with the same settings and on a fresh
//! schema each:
//!
//! 1. the first API (it migrates the schema), healthy, then the others;
//! 2. **callbacks**: `--callbacks` (12,000) distinct signed kie.ai callbacks,
//!    each sent twice, as `kieai-callbacks` sends them (the shared
//!    [`myloware_bench::callbacks`]), through the API balancer over
//!    `--connections`, at full speed, to aismr runs parked at the ideate gate
//!    (started first, twelve callbacks per run; a start answered 202,
//!    recorded but not yet accepted by an orchestrator, counts too: the API
//!    retries it, and the output says how many). The rate is answered
//!    deliveries (originals and copies) per second. Every original must be
//!    accepted once and every copy answered `duplicate`, and every accepted
//!    one relayed to an orchestrator as one signal: one `signal` command per
//!    accepted callback, all acknowledged, and one `kieai:benchtask…` row
//!    in the orchestrators' `signals` table each. A clip signal wakes the
//!    parked run's gate step, which drops it and parks again; the benchmark
//!    waits until every signal is consumed before the next part;
//! 3. **gate**: `--runs` (500) aismr runs parked at ideate, then all
//!    approved through the API balancer; the clock runs until all are at
//!    prepublish or beyond (Riley's twelve clips on the mock kie.ai with
//!    their callbacks through the API balancer, Alex's render). Meanwhile
//!    the CPU of all API processes, all orchestrators, Postgres (every
//!    backend on the machine) and this process (load generator, balancers,
//!    the database probe), per run.
//!
//! The one verdict: 2+2 completes (every run past the gate, every callback
//! accepted once and relayed once). The rest is reported as measured,
//! together with how busy the machine's CPUs were during each part
//! (`/proc/stat`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::ensure;
use myloware_bench::callbacks::{self, Sent};
use myloware_bench::db::Probe;
use myloware_bench::gates::{self, Approvals, Progress, follow_approvals, per_second, wait_for};
use myloware_bench::harness::{self, Bench, Frame, at_least};
use myloware_bench::load;
use myloware_bench::report::Check;
use myloware_bench::services::{
    self, MachineCpu, RunStarts, Service, Workdir, free_port, loopback, service_env, set_var,
};
use myloware_bench::stats::r3;
use myloware_testkit::proxy::Proxy;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
#[command(about = "one API and one orchestrator against two of each, on one Postgres")]
struct Args {
    /// Distinct kie.ai callbacks per topology (12 per parked aismr run);
    /// each is sent twice (--quick: 1,200).
    #[arg(long, default_value_t = 12_000, default_value_if("quick", "true", "1200"), value_parser = at_least(1))]
    callbacks: usize,
    /// aismr runs parked at ideate, then approved, per topology (--quick: 50).
    #[arg(long, default_value_t = 500, default_value_if("quick", "true", "50"), value_parser = at_least(1))]
    runs: usize,
    /// Concurrent connections to the API balancer (callbacks, starts and
    /// approvals).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Give up on parking after this long.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Stop watching the approved runs after this long (the topology is
    /// then reported as not finished, with the share done).
    #[arg(long, default_value_t = 180)]
    approval_cap_secs: u64,
}

impl Bench for Args {
    const NAME: &'static str = "scale-out";

    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "topologies",
                "1 API + 1 orchestrator, then 2 + 2, each kind behind a round-robin balancer".to_string(),
            ),
            (
                "callbacks",
                format!(
                    "{} distinct × 2 to {} parked aismr runs, {} connections",
                    self.callbacks,
                    callbacks::runs_for(self.callbacks),
                    self.connections
                ),
            ),
            (
                "gate",
                format!(
                    "{} aismr runs parked at ideate, then approved, {} at a time",
                    self.runs, self.connections
                ),
            ),
        ]
    }
}

/// The topologies compared, in order: (API processes, orchestrators).
const TOPOLOGIES: [(usize, usize); 2] = [(1, 1), (2, 2)];
/// The processes' names (their logs: `<topology>/<name>.log`).
const API_NAMES: [&str; 2] = ["api-1", "api-2"];
const ORCHESTRATOR_NAMES: [&str; 2] = ["orchestrator-1", "orchestrator-2"];
/// How long to wait for every accepted callback to be relayed, and then
/// consumed by a step.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    harness::processes(run).await
}

/// API processes and orchestrators on one database, each kind behind its
/// balancer.
struct Replicas {
    apis: Vec<Service>,
    orchestrators: Vec<Service>,
    api_balancer: Proxy,
    /// Where the processes' database connections go.
    postgres_port: u16,
    /// Kept with the processes it leads to.
    _orchestrator_balancer: Proxy,
}

impl Replicas {
    /// The first API (it migrates the schema), healthy; then the other
    /// processes, all healthy.
    async fn start(
        mw: &std::path::Path,
        database_url: &str,
        (apis, orchestrators): (usize, usize),
        workdir: &Workdir,
    ) -> anyhow::Result<Replicas> {
        let api_ports: Vec<u16> = (0..apis).map(|_| free_port()).collect::<Result<_, _>>()?;
        let orchestrator_ports: Vec<u16> = (0..orchestrators).map(|_| free_port()).collect::<Result<_, _>>()?;
        let api_balancer = Proxy::balance(api_ports.clone()).await;
        let orchestrator_balancer = Proxy::balance(orchestrator_ports.clone()).await;
        let env = |api_port: u16, orchestrator_port: u16| {
            let mut env = service_env(database_url, api_port, orchestrator_port);
            set_var(&mut env, "API_URL", &api_balancer.url());
            set_var(&mut env, "PUBLIC_BASE_URL", &api_balancer.url());
            set_var(&mut env, "ORCHESTRATOR_URL", &orchestrator_balancer.url());
            env
        };
        let spawn_api = |i: usize| {
            Service::spawn(
                API_NAMES[i],
                mw,
                &["serve", "api"],
                &env(api_ports[i], orchestrator_ports[0]),
                api_ports[i],
                workdir,
            )
        };
        let timeout = Duration::from_secs(30);
        let mut first = spawn_api(0)?;
        first.wait_healthy(timeout).await?;
        let mut others = Vec::new();
        for i in 1..apis {
            others.push(spawn_api(i)?);
        }
        let mut started = Vec::new();
        for (i, port) in orchestrator_ports.iter().enumerate() {
            started.push(Service::spawn(
                ORCHESTRATOR_NAMES[i],
                mw,
                &["serve", "orchestrator"],
                &env(api_ports[0], *port),
                *port,
                workdir,
            )?);
        }
        for service in others.iter_mut().chain(started.iter_mut()) {
            service.wait_healthy(timeout).await?;
        }
        let mut apis = vec![first];
        apis.extend(others);
        Ok(Replicas {
            apis,
            orchestrators: started,
            api_balancer,
            postgres_port: reqwest::Url::parse(database_url)?.port().unwrap_or(5432),
            _orchestrator_balancer: orchestrator_balancer,
        })
    }

    /// Where the load goes: the API balancer.
    fn api_addr(&self) -> SocketAddr {
        loopback(self.api_balancer.port)
    }

    /// CPU so far; `probe` finds the Postgres backends of the processes'
    /// connections.
    async fn cpu(&self, probe: &Probe) -> anyhow::Result<Usage> {
        let pids: Vec<u32> = self.apis.iter().chain(&self.orchestrators).map(Service::pid).collect();
        let ports = services::client_ports(&pids, self.postgres_port);
        let backends = probe.backends_of(&ports).await?;
        let (commits, wal_syncs) = probe.postgres_counters().await?;
        Ok(Usage {
            commits,
            wal_syncs,
            apis: self.apis.iter().map(Service::cpu_seconds).collect(),
            orchestrators: self.orchestrators.iter().map(Service::cpu_seconds).collect(),
            backends: backends
                .into_iter()
                .map(|pid| (pid, services::cpu_seconds(pid)))
                .collect(),
            postgres: services::cpu_seconds_of_with_exited("postgres"),
            bench: services::cpu_seconds(std::process::id()),
            machine: MachineCpu::read(),
        })
    }

    fn problems(&self) -> Value {
        let named: Vec<(&str, &Service)> = self
            .apis
            .iter()
            .chain(self.orchestrators.iter())
            .map(|s| (s.name, s))
            .collect();
        services::report_problems(&named)
    }

    fn stop(self) {
        for service in self.orchestrators.into_iter().chain(self.apis) {
            service.stop(Duration::from_secs(10));
        }
    }
}

/// CPU seconds so far (or used between two readings): of each API process,
/// each orchestrator, the Postgres backends of their connections (by
/// backend pid), every Postgres process on the machine (those that exited
/// meanwhile included), this process, and the machine; and the
/// database's commits and the server's WAL flushes.
#[derive(Debug, Clone, Default)]
struct Usage {
    commits: i64,
    wal_syncs: i64,
    apis: Vec<f64>,
    orchestrators: Vec<f64>,
    backends: HashMap<u32, f64>,
    postgres: f64,
    bench: f64,
    machine: MachineCpu,
}

/// CPU milliseconds per unit of work (a delivery, a run).
struct PerUnit {
    api: f64,
    orchestrator: f64,
    /// The Postgres backends of the services' connections.
    backends: f64,
    /// Every Postgres process on the machine.
    postgres: f64,
    bench: f64,
    /// Commits in the database and WAL flushes (counts, not milliseconds).
    commits: f64,
    wal_syncs: f64,
}

impl PerUnit {
    fn to_json(&self) -> Value {
        json!({"api": r3(self.api), "orchestrator": r3(self.orchestrator), "postgres_backends": r3(self.backends),
               "postgres_all": r3(self.postgres), "bench": r3(self.bench), "commits": r3(self.commits),
               "wal_syncs": r3(self.wal_syncs)})
    }
}

impl Usage {
    /// What was used from `self` to `later`. A backend that was not there
    /// before started meanwhile: all its time counts.
    fn until(&self, later: &Usage) -> Usage {
        let minus = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a - b).collect();
        Usage {
            commits: later.commits - self.commits,
            wal_syncs: later.wal_syncs - self.wal_syncs,
            apis: minus(&later.apis, &self.apis),
            orchestrators: minus(&later.orchestrators, &self.orchestrators),
            backends: later
                .backends
                .iter()
                .map(|(pid, s)| (*pid, s - self.backends.get(pid).copied().unwrap_or(0.0)))
                .collect(),
            postgres: later.postgres - self.postgres,
            bench: later.bench - self.bench,
            machine: self.machine.until(later.machine),
        }
    }

    fn api(&self) -> f64 {
        self.apis.iter().sum()
    }

    fn orchestrator(&self) -> f64 {
        self.orchestrators.iter().sum()
    }

    fn backends(&self) -> f64 {
        self.backends.values().sum()
    }

    /// This benchmark's share of the machine: its processes, their Postgres
    /// backends and this process.
    fn ours(&self) -> f64 {
        self.api() + self.orchestrator() + self.backends() + self.bench
    }

    /// `api 1.2 s (0.6 + 0.6), orchestrator …, postgres …, this process …;
    /// CPUs 97 % busy (3 % stolen)`.
    fn line(&self) -> String {
        let each = |v: &[f64]| {
            if v.len() > 1 {
                format!(
                    " ({})",
                    v.iter().map(|s| format!("{s:.1}")).collect::<Vec<_>>().join(" + ")
                )
            } else {
                String::new()
            }
        };
        format!(
            "api {:.1} s{}, orchestrator {:.1} s{}, postgres {:.1} s in the {} backends of their connections \
             ({:.1} s in every postgres process on the machine), this process {:.1} s; the CPUs {:.0} % busy \
             ({:.0} % stolen by the host)",
            self.api(),
            each(&self.apis),
            self.orchestrator(),
            each(&self.orchestrators),
            self.backends(),
            self.backends.len(),
            self.postgres,
            self.bench,
            self.machine.busy_share() * 100.0,
            self.machine.steal_share() * 100.0
        )
    }

    /// The database's commits and the server's WAL flushes, and per `unit`.
    fn postgres_line(&self, units: usize, unit: &str) -> String {
        let per = |n: i64| n as f64 / units.max(1) as f64;
        format!(
            "{} commits in the database ({:.2} per {unit}), {} WAL flushes ({:.2} per {unit})",
            self.commits,
            per(self.commits),
            self.wal_syncs,
            per(self.wal_syncs)
        )
    }

    /// Milliseconds per unit of work, per kind.
    fn per(&self, units: usize) -> PerUnit {
        let ms = |s: f64| s * 1000.0 / units.max(1) as f64;
        PerUnit {
            commits: self.commits as f64 / units.max(1) as f64,
            wal_syncs: self.wal_syncs as f64 / units.max(1) as f64,
            api: ms(self.api()),
            orchestrator: ms(self.orchestrator()),
            backends: ms(self.backends()),
            postgres: ms(self.postgres),
            bench: ms(self.bench),
        }
    }

    fn to_json(&self) -> Value {
        let r = |v: &[f64]| v.iter().map(|s| r3(*s)).collect::<Vec<_>>();
        json!({"postgres_commits": self.commits, "postgres_wal_syncs": self.wal_syncs, "api_s": r(&self.apis), "orchestrator_s": r(&self.orchestrators),
               "postgres_backends_s": r3(self.backends()), "postgres_backends": self.backends.len(),
               "postgres_all_s": r3(self.postgres), "bench_s": r3(self.bench),
               "machine_busy_s": r3(self.machine.busy), "machine_idle_s": r3(self.machine.idle),
               "machine_steal_s": r3(self.machine.steal)})
    }
}

/// What the callbacks part of one topology measured.
struct CallbacksPart {
    /// Starts of the parked runs answered 202 (retried by the API).
    starts_retried: u64,
    sent: Sent,
    cpu: Usage,
    /// `signal` commands the API processes recorded, and how many of them
    /// the orchestrators acknowledged.
    signal_commands: i64,
    acked: i64,
    /// `kieai:benchtask…` rows in the orchestrators' `signals` table: when
    /// the last callback was answered, and once drained.
    relayed_at_end: i64,
    relayed: i64,
    /// How long after the last answer every accepted callback was relayed
    /// (the drain's timeout if never).
    drain: Duration,
    /// How long after that every signal was consumed by a step.
    consumed_after: Option<Duration>,
}

impl CallbacksPart {
    /// Every original accepted once, every copy answered `duplicate`, and
    /// every accepted one relayed as one signal.
    fn once(&self) -> bool {
        let accepted = self.sent.answers.accepted as i64;
        self.sent.exact() && self.signal_commands == accepted && self.acked == accepted && self.relayed == accepted
    }

    fn relay_line(&self) -> String {
        format!(
            "{} signal commands ({} acknowledged), {} signals in the orchestrators' table ({} when the last \
             callback was answered, all {:.1} s later)",
            self.signal_commands,
            self.acked,
            self.relayed,
            self.relayed_at_end,
            self.drain.as_secs_f64()
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "starts_answered_202": self.starts_retried,
            "rate_per_s": r3(self.sent.rate()), "deliveries": self.sent.deliveries(),
            "wall_s": r3(self.sent.wall.as_secs_f64()), "latency_ms": self.sent.latency().to_json(),
            "answers": self.sent.answers_json(),
            "relay": {"signal_commands": self.signal_commands, "acked": self.acked, "signals": self.relayed,
                      "signals_when_answered": self.relayed_at_end, "all_relayed_after_s": r3(self.drain.as_secs_f64()),
                      "all_consumed_after_s": self.consumed_after.map(|d| r3(d.as_secs_f64()))},
            "cpu": self.cpu.to_json(),
            "cpu_ms_per_delivery": self.cpu.per(self.sent.deliveries() as usize).to_json(),
            "machine_busy": r3(self.cpu.machine.busy_share()),
        })
    }
}

/// What the gate part of one topology measured.
struct GatePart {
    runs: usize,
    parked: Duration,
    /// Starts answered 202 (retried by the API).
    starts_retried: u64,
    approvals_answered: Duration,
    progress: Progress,
    cpu: Usage,
    steps: i64,
    events: i64,
    callbacks: i64,
}

impl GatePart {
    /// `12.3 s`, or how far it got.
    fn approve_to_prepublish(&self) -> String {
        match self.progress.all_past {
            Some(all) => format!("{:.1} s", all.as_secs_f64()),
            None => format!(
                "not finished: {} of {} after {:.0} s",
                self.progress.past,
                self.runs,
                self.progress.watched.as_secs_f64()
            ),
        }
    }

    /// CPU milliseconds per run: API processes, orchestrators, Postgres,
    /// this process.
    fn per_run(&self) -> PerUnit {
        self.cpu.per(self.runs)
    }

    fn to_json(&self) -> Value {
        json!({
            "runs": self.runs, "all_parked_s": r3(self.parked.as_secs_f64()),
            "starts_answered_202": self.starts_retried,
            "approvals_answered_s": r3(self.approvals_answered.as_secs_f64()),
            "all_at_prepublish_s": self.progress.all_past.map(|d| r3(d.as_secs_f64())),
            "past_the_gate": self.progress.past, "watched_s": r3(self.progress.watched.as_secs_f64()),
            "projected_s": Some(self.progress.projected_secs(self.runs)).filter(|s| s.is_finite()).map(r3),
            "cpu": self.cpu.to_json(),
            "cpu_ms_per_run": self.per_run().to_json(),
            "machine_busy": r3(self.cpu.machine.busy_share()),
            "engine_steps": self.steps, "events": self.events, "kieai_callbacks": self.callbacks,
        })
    }
}

/// What one topology measured.
struct Measured {
    label: String,
    callbacks: CallbacksPart,
    gate: GatePart,
    log_problems: Value,
}

impl Measured {
    fn to_json(&self) -> Value {
        json!({"callbacks": self.callbacks.to_json(), "gate": self.gate.to_json(), "log_problems": self.log_problems})
    }
}

async fn run(args: &Args, frame: &mut Frame) -> anyhow::Result<()> {
    ensure!(
        frame.db.is_postgres(),
        "scale-out compares processes sharing one Postgres: pass --database-url postgres://…"
    );
    let mut measured = Vec::new();
    for (i, topology) in TOPOLOGIES.into_iter().enumerate() {
        if i > 0 {
            frame.renew_db().await?;
        }
        let label = format!("{}+{}", topology.0, topology.1);
        println!(
            "\n== {label}: {} API process{} and {} orchestrator{} ==",
            topology.0,
            if topology.0 > 1 { "es" } else { "" },
            topology.1,
            if topology.1 > 1 { "s" } else { "" }
        );
        let workdir = Workdir(frame.workdir.0.join(&label));
        std::fs::create_dir_all(&workdir.0)?;
        let replicas = Replicas::start(&frame.mw, &frame.db.url, topology, &workdir).await?;
        let outcome = measure(args, &label, &replicas, &frame.db.url).await;
        replicas.stop();
        measured.push(outcome?);
    }
    conclude(args, frame, &measured);
    Ok(())
}

/// Runs parked at ideate.
struct Parked {
    run_ids: Vec<String>,
    /// From the first start until all were parked.
    took: Duration,
    /// Starts answered 202 (the API retried them).
    retried: u64,
}

/// Parks `count` aismr runs at ideate through `api` (the runs of the
/// database at ideate then number `parked_before + count`).
async fn park(
    args: &Args,
    probe: &Probe,
    api: SocketAddr,
    count: usize,
    parked_before: usize,
) -> anyhow::Result<Parked> {
    let starts = RunStarts::recorded(api, count as u64, gates::aismr_start);
    let began = Instant::now();
    let started = load::all_accepted(api, args.connections, starts.clone(), count, "starts recorded").await?;
    let parked = wait_for(
        probe,
        &["awaiting_ideate"],
        parked_before + count,
        began,
        Duration::from_secs(args.timeout_secs),
        "parked at ideate",
    )
    .await?;
    let retried = match starts.retried() {
        0 => String::new(),
        n => {
            format!(" ({n} answered 202: recorded, not yet accepted by an orchestrator, so the API retried the start)")
        }
    };
    println!(
        "{count} aismr runs started in {}{retried}, all parked at ideate {:.1} s after the first start",
        per_second(count, started),
        parked.as_secs_f64()
    );
    Ok(Parked {
        run_ids: starts.run_ids(),
        took: parked,
        retried: starts.retried(),
    })
}

/// Polls `done` every 20 ms until it holds or `timeout`; the time it took,
/// `None` on the timeout.
async fn until(
    timeout: Duration,
    mut done: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Option<Duration>> {
    let began = Instant::now();
    loop {
        if done().await? {
            return Ok(Some(began.elapsed()));
        }
        if began.elapsed() > timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The orchestrators' signals of the callbacks the benchmark sent.
fn bench_signals() -> String {
    format!("signal_id LIKE 'kieai:{}%'", callbacks::TASK_PREFIX)
}

async fn measure(args: &Args, label: &str, replicas: &Replicas, database_url: &str) -> anyhow::Result<Measured> {
    let probe = Probe::connect(database_url).await?;
    let callbacks = measure_callbacks(args, replicas, &probe).await?;
    let gate = measure_gate(args, replicas, &probe).await?;
    probe.close().await;
    Ok(Measured {
        label: label.to_string(),
        callbacks,
        gate,
        log_problems: replicas.problems(),
    })
}

/// Callbacks through the API balancer to runs parked at ideate, until
/// every accepted one is relayed and consumed.
async fn measure_callbacks(args: &Args, replicas: &Replicas, probe: &Probe) -> anyhow::Result<CallbacksPart> {
    let api = replicas.api_addr();
    let parked = park(args, probe, api, callbacks::runs_for(args.callbacks), 0).await?;
    let before = replicas.cpu(probe).await?;
    let sent = callbacks::send(api, parked.run_ids, args.callbacks, args.connections).await?;
    let cpu = before.until(&replicas.cpu(probe).await?);
    let relayed_at_end = probe.count_where("signals", &bench_signals()).await?;
    let accepted = sent.answers.accepted as i64;
    // Those not relayed inline wait for an API's command reconciler.
    let drain = until(DRAIN_TIMEOUT, async || {
        Ok(probe.count_where("signals", &bench_signals()).await? >= accepted
            && probe
                .count_where("commands", "kind = 'signal' AND acked_at IS NULL")
                .await?
                == 0)
    })
    .await?
    .unwrap_or(DRAIN_TIMEOUT);
    let consumed_after = until(DRAIN_TIMEOUT, async || {
        Ok(probe.count_where("signals", "consumed_at IS NULL").await? == 0)
    })
    .await?;
    let part = CallbacksPart {
        starts_retried: parked.retried,
        relayed: probe.count_where("signals", &bench_signals()).await?,
        signal_commands: probe.count_where("commands", "kind = 'signal'").await?,
        acked: probe
            .count_where("commands", "kind = 'signal' AND acked_at IS NOT NULL")
            .await?,
        sent,
        cpu,
        relayed_at_end,
        drain,
        consumed_after,
    };
    part.sent.print();
    println!("CPU meanwhile: {}", part.cpu.line());
    println!(
        "Postgres meanwhile: {}",
        part.cpu.postgres_line(part.sent.deliveries() as usize, "delivery")
    );
    println!("relayed: {}", part.relay_line());
    match consumed_after {
        Some(after) => println!(
            "every signal consumed by a step {:.1} s after that",
            after.as_secs_f64()
        ),
        None => println!("signals still unconsumed after {DRAIN_TIMEOUT:?}"),
    }
    Ok(part)
}

/// More aismr runs parked at ideate, then all approved through the API
/// balancer, until all are past the gate.
async fn measure_gate(args: &Args, replicas: &Replicas, probe: &Probe) -> anyhow::Result<GatePart> {
    let api = replicas.api_addr();
    let parked_before = callbacks::runs_for(args.callbacks);
    let Parked {
        run_ids,
        took: parked,
        retried: starts_retried,
    } = park(args, probe, api, args.runs, parked_before).await?;
    let approvals = std::sync::Arc::new(Approvals { api, run_ids });
    let steps_before = probe.engine_steps().await?;
    let approval_start = chrono::Utc::now();
    let before = replicas.cpu(probe).await?;
    let began = Instant::now();
    let approvals_answered = load::all_accepted(
        api,
        args.connections,
        approvals,
        args.runs,
        "approvals answered approved",
    )
    .await?;
    let progress = follow_approvals(probe, args.runs, began, Duration::from_secs(args.approval_cap_secs)).await?;
    let cpu = before.until(&replicas.cpu(probe).await?);
    println!(
        "{} approvals answered in {}",
        args.runs,
        per_second(args.runs, approvals_answered)
    );
    match progress.all_past {
        Some(all) => println!(
            "all {} at prepublish (or beyond) {:.1} s after the first approval",
            args.runs,
            all.as_secs_f64()
        ),
        None => println!(
            "stopped watching after {:.0} s (--approval-cap-secs): {} of {} at prepublish or beyond; {}",
            progress.watched.as_secs_f64(),
            progress.past,
            args.runs,
            progress.projection(args.runs)
        ),
    }
    println!("CPU meanwhile: {}", cpu.line());
    println!("Postgres meanwhile: {}", cpu.postgres_line(args.runs, "run"));
    let (steps, events, callbacks) =
        myloware_bench::gates::work_since(probe, steps_before, approval_start, args.runs).await?;
    Ok(GatePart {
        runs: args.runs,
        parked,
        starts_retried,
        approvals_answered,
        progress,
        cpu,
        steps,
        events,
        callbacks,
    })
}

/// The table, the explanation, the verdict and the details.
fn conclude(args: &Args, frame: &mut Frame, measured: &[Measured]) {
    println!();
    println!("                                            CPU ms per run, approve → prepublish");
    println!("                                                                   postgres:  postgres:");
    println!("topology  callbacks/s  approve → prepublish      api  orchestrator   backends        all");
    for m in measured {
        let per_run = m.gate.per_run();
        println!(
            "{:<8}  {:>11.0}  {:>20}  {:>7.1}  {:>12.1}  {:>9.1}  {:>9.1}",
            m.label,
            m.callbacks.sent.rate(),
            m.gate.approve_to_prepublish(),
            per_run.api,
            per_run.orchestrator,
            per_run.backends,
            per_run.postgres
        );
    }
    println!(
        "(postgres: backends = the backends of the mw processes' connections; all = every postgres process on the \
         machine)"
    );
    if let [one, two] = measured {
        println!();
        println!("{}", explanation(frame.report.machine.nproc, one, two));
    }

    let report = &mut frame.report;
    let Some(last) = measured.last() else {
        return;
    };
    report.check(Check::new(
        format!(
            "{} completes: every run past the gate, every callback accepted once and relayed once",
            last.label
        ),
        format!(
            "{}/{} runs at prepublish or beyond ({}); callbacks {}; {}",
            last.gate.progress.past,
            args.runs,
            last.gate.approve_to_prepublish(),
            last.callbacks.sent.measured(),
            last.callbacks.relay_line()
        ),
        last.gate.progress.all_past.is_some() && last.callbacks.once(),
    ));
    report.detail("callbacks", json!(args.callbacks));
    report.detail("runs", json!(args.runs));
    report.detail("connections", json!(args.connections));
    let topologies: serde_json::Map<String, Value> = measured.iter().map(|m| (m.label.clone(), m.to_json())).collect();
    report.detail("topologies", Value::Object(topologies));
}

/// One paragraph on what the numbers show, from what was measured: how
/// busy the CPUs were, and 2+2 against 1+1 in work done and in CPU per unit
/// of work (the `mw` processes and their Postgres backends).
fn explanation(nproc: usize, one: &Measured, two: &Measured) -> String {
    let busy = |usage: &Usage| usage.machine.busy_share() * 100.0;
    let ours = |usage: &Usage| usage.ours() / usage.machine.busy.max(1e-9) * 100.0;
    let cost = |per: PerUnit| per.api + per.orchestrator + per.backends;
    let per_delivery = |m: &Measured| cost(m.callbacks.cpu.per(m.callbacks.sent.deliveries() as usize));
    let per_run = |m: &Measured| cost(m.gate.per_run());
    let (c1, c2, g1, g2) = (&one.callbacks.cpu, &two.callbacks.cpu, &one.gate.cpu, &two.gate.cpu);
    let least_busy = [c1, c2, g1, g2].iter().map(|u| busy(u)).fold(f64::INFINITY, f64::min);
    let mut text = format!(
        "why: this machine has {nproc} CPUs, shared by the load generator and the balancers (this process), every \
         mw process and Postgres. While the callbacks ran, the CPUs were {:.0} % busy with 1+1 and {:.0} % with 2+2 \
         ({:.0} and {:.0} % of that in this benchmark: its processes and their Postgres backends); while the \
         approved runs moved on, {:.0} and {:.0} % ({:.0} and {:.0} %). ",
        busy(c1),
        busy(c2),
        ours(c1),
        ours(c2),
        busy(g1),
        busy(g2),
        ours(g1),
        ours(g2)
    );
    text.push_str(&if least_busy >= 85.0 {
        "With the CPUs that busy, a second process of each kind could add no CPU, only share it, so what decides is \
         the CPU each piece of work costs. "
            .to_string()
    } else {
        format!("The CPUs had room in at least one part ({least_busy:.0} % busy), so CPU was not all that limited it. ")
    });
    let (r1, r2) = (one.callbacks.sent.rate(), two.callbacks.sent.rate());
    text.push_str(&format!(
        "2+2 spent {:.2} × the CPU per callback delivery of 1+1 ({:.2} against {:.2} ms in the mw processes and \
         their Postgres backends) and answered {:.2} × the callbacks per second ({r2:.0} against {r1:.0}/s)",
        per_delivery(two) / per_delivery(one),
        per_delivery(two),
        per_delivery(one),
        r2 / r1
    ));
    match (one.gate.progress.all_past, two.gate.progress.all_past) {
        (Some(a), Some(b)) => text.push_str(&format!(
            "; it spent {:.2} × the CPU per approved run ({:.1} against {:.1} ms) and took {:.2} × the time to get \
             them past the gate ({:.1} against {:.1} s).",
            per_run(two) / per_run(one),
            per_run(two),
            per_run(one),
            b.as_secs_f64() / a.as_secs_f64(),
            b.as_secs_f64(),
            a.as_secs_f64()
        )),
        _ => text.push_str("; not every topology got all its approved runs past the gate (above)."),
    }
    text
}
