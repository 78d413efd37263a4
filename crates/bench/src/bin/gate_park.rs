//! `gate-park`: many aismr runs parked at the `ideate` gate (after Iggy),
//! then all approved. Both services are real processes (`mw serve api`,
//! `mw serve orchestrator`), mock providers without delay.
//!
//! 1. `--runs` (10,000) aismr runs are started through the API (64 at a
//!    time) and waited for until every one is `awaiting_ideate`;
//! 2. the RSS of both processes is read from `/proc/<pid>/status` once
//!    they are all parked (and after a short settle);
//! 3. every gate is approved through the API (`POST
//!    /v1/hitl/approve/{runId}/ideate` with the API key, 64 at a time), and
//!    the clock runs until every run left the gate: Riley's twelve clips
//!    generated on the mock kie.ai (twelve signed callbacks per run through
//!    the API), Alex's render, and the next gate, `prepublish`, reached (or
//!    beyond).
//!
//! Targets: orchestrator RSS ≤ 150 MB and API RSS ≤ 100 MB with 10,000
//! parked; approving all of them finishes within 60 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use myloware_bench::db::{ActivitySampler, BenchDb, Probe};
use myloware_bench::gates::{Approvals, aismr_start, follow_approvals, per_second, wait_for};
use myloware_bench::harness::{self, Bench, Frame, at_least};
use myloware_bench::load;
use myloware_bench::report::Check;
use myloware_bench::services::{self, Memory, RunStarts, free_port, loopback, service_env, set_var};
use myloware_bench::stats::{r3, rank_correlation, summarize_scaled};
use serde_json::json;

#[derive(Debug, clap::Args)]
#[command(about = "aismr runs parked at the ideate gate, then approved")]
struct Args {
    /// Runs to park (--quick: 200).
    #[arg(long, default_value_t = 10_000, default_value_if("quick", "true", "200"), value_parser = at_least(1))]
    runs: usize,
    /// Concurrent starts and approvals.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds to wait, once all are parked, before reading the RSS
    /// (--quick: 1).
    #[arg(long, default_value_t = 5, default_value_if("quick", "true", "1"))]
    settle_secs: u64,
    /// Give up on parking after this long.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Stop watching the approved runs after this long (the target is
    /// 60 s): the verdict is then a miss, with the share done and a
    /// projection from the rate reached, so the benchmark stays a few
    /// minutes long however slow the system is.
    #[arg(long, default_value_t = 180)]
    approval_cap_secs: u64,
    /// Engine workers of the orchestrator (ORCHESTRATOR_WORKERS; the
    /// service's default is 4).
    #[arg(long)]
    workers: Option<usize>,
}

impl Bench for Args {
    const NAME: &'static str = "gate-park";

    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![("runs", format!("{}, {} at a time", self.runs, self.connections))]
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    harness::processes(run).await
}

fn memory_line(name: &str, memory: Memory) -> String {
    format!(
        "{name} RSS {:.1} MB (peak {:.1} MB; {})",
        memory.rss_mb(),
        memory.peak_mb(),
        memory.parts()
    )
}

/// On Postgres, a sampler of the statements running in the database.
async fn postgres_sampler(bench_db: &BenchDb) -> anyhow::Result<Option<ActivitySampler>> {
    match bench_db.postgres_database() {
        Some(url) => Ok(Some(ActivitySampler::start(url).await?)),
        None => Ok(None),
    }
}

async fn run(args: &Args, frame: &mut Frame) -> anyhow::Result<()> {
    let (bench_db, report) = (&frame.db, &mut frame.report);
    let api_port = free_port()?;
    let mut env = service_env(&bench_db.url, api_port, free_port()?);
    if let Some(workers) = args.workers {
        set_var(&mut env, "ORCHESTRATOR_WORKERS", &workers.to_string());
    }
    let (orchestrator, api) = services::start_both(&frame.mw, &env, &frame.workdir).await?;
    let probe = Probe::connect(&bench_db.url).await?;
    let api_addr = loopback(api_port);
    let timeout = Duration::from_secs(args.timeout_secs);
    let (idle_api, idle_orchestrator) = (api.memory(), orchestrator.memory());

    // 1. Park.
    let sampler = postgres_sampler(bench_db).await?;
    let starts = RunStarts::new(api_addr, args.runs as u64, aismr_start);
    let began = Instant::now();
    let all_started =
        load::all_accepted(api_addr, args.connections, starts.clone(), args.runs, "starts accepted").await?;
    println!("{} runs started in {}", args.runs, per_second(args.runs, all_started));
    let parked = wait_for(
        &probe,
        &["awaiting_ideate"],
        args.runs,
        began,
        timeout,
        "parked at ideate",
    )
    .await?;
    println!(
        "all {} parked at ideate {:.1} s after the first start",
        args.runs,
        parked.as_secs_f64()
    );
    let park_activity = match sampler {
        Some(sampler) => Some(sampler.finish(8).await?),
        None => None,
    };

    // 2. Memory with everything parked.
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let (parked_api, parked_orchestrator) = (api.memory(), orchestrator.memory());
    println!(
        "parked: {}; {} (idle before: api {:.1} MB, orchestrator {:.1} MB)",
        memory_line("api", parked_api),
        memory_line("orchestrator", parked_orchestrator),
        idle_api.rss_mb(),
        idle_orchestrator.rss_mb()
    );
    // Series labelled with a run id stay in each service's registry until
    // the run ends (plus METRICS_RUN_SERIES_TTL): a share of the RSS.
    let mut series = serde_json::Map::new();
    for (name, port) in [("api", api.port), ("orchestrator", orchestrator.port)] {
        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .text()
            .await?;
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        let per_run = text.lines().filter(|l| l.contains("runId=\"run_")).count();
        println!(
            "  {name} /metrics: {} KB, {samples} samples, {per_run} of them labelled with a run id",
            text.len() / 1024
        );
        series.insert(
            name.to_string(),
            json!({"bytes": text.len(), "samples": samples, "run_samples": per_run}),
        );
    }

    // 3. Approve all, until every run is past the gate.
    let approvals = Arc::new(Approvals {
        api: api_addr,
        run_ids: starts.run_ids(),
    });
    let (cpu_api, cpu_orchestrator) = (api.cpu_seconds(), orchestrator.cpu_seconds());
    let cpu_postgres = services::cpu_seconds_of("postgres");
    let steps_before = probe.engine_steps().await?;
    let sampler = postgres_sampler(bench_db).await?;
    let approval_start = chrono::Utc::now();
    let began = Instant::now();
    let all_approved = load::all_accepted(
        api_addr,
        args.connections,
        approvals,
        args.runs,
        "approvals answered approved",
    )
    .await?;
    println!(
        "{} approvals answered in {}",
        args.runs,
        per_second(args.runs, all_approved)
    );
    let progress = follow_approvals(&probe, args.runs, began, Duration::from_secs(args.approval_cap_secs)).await?;
    let (cpu_api, cpu_orchestrator) = (
        api.cpu_seconds() - cpu_api,
        orchestrator.cpu_seconds() - cpu_orchestrator,
    );
    let cpu_postgres = services::cpu_seconds_of("postgres") - cpu_postgres;
    let activity = match sampler {
        Some(sampler) => Some(sampler.finish(10).await?),
        None => None,
    };
    let done = progress.all_past.is_some();
    let finished = progress.all_past.unwrap_or(progress.watched);
    match progress.none_at_ideate {
        Some(at) => println!(
            "no run awaiting ideate {:.1} s after the first approval",
            at.as_secs_f64()
        ),
        None => println!(
            "runs still awaiting ideate after {:.0} s",
            progress.watched.as_secs_f64()
        ),
    }
    if done {
        println!(
            "all {} at prepublish (or beyond) {:.1} s after the first approval",
            args.runs,
            finished.as_secs_f64()
        );
    } else {
        println!(
            "stopped watching after {:.0} s (--approval-cap-secs): {} of {} at prepublish or beyond \
             ({:.1} runs/s over the last half; {})",
            progress.watched.as_secs_f64(),
            progress.past,
            args.runs,
            progress.recent_rate,
            progress.projection(args.runs)
        );
    }
    println!(
        "CPU used meanwhile: api {cpu_api:.1} s, orchestrator {cpu_orchestrator:.1} s, postgres {cpu_postgres:.1} s \
         (every backend on the machine), of {:.0} s the CPUs had",
        finished.as_secs_f64() * report.machine.nproc as f64
    );
    // In what order the runs passed the gate, against the approvals'.
    let passes = probe.gate_to_gate_ms("ideate", "prepublish", approval_start).await?;
    let order = rank_correlation(&passes);
    let waits: Vec<f64> = passes.iter().map(|(approved, reached)| reached - approved).collect();
    let waits = summarize_scaled(&waits, 1e-3);
    println!(
        "order: {} runs reached prepublish; rank correlation with the approvals' order {order:.3}; \
         approval → prepublish {}",
        passes.len(),
        waits.line("s")
    );
    let (steps, events, callbacks) =
        myloware_bench::gates::work_since(&probe, steps_before, approval_start, args.runs).await?;
    println!("where the time went after the first approval (each stage's own timestamps):");
    let stages = probe.stages(approval_start).await?;
    let (end_api, end_orchestrator) = (api.memory(), orchestrator.memory());
    println!(
        "after: {}; {}",
        memory_line("api", end_api),
        memory_line("orchestrator", end_orchestrator)
    );
    let webhooks = probe.group_count("webhook_deliveries", "outcome").await?;
    println!("kie.ai callbacks recorded by outcome: {webhooks:?}");
    let log_problems = services::report_problems(&[("api", &api), ("orchestrator", &orchestrator)]);
    probe.close().await;
    orchestrator.stop(Duration::from_secs(10));
    api.stop(Duration::from_secs(10));

    let full = args.runs >= 10_000;
    let scale = if full {
        String::new()
    } else {
        format!(" [only {} runs: not the target's scale]", args.runs)
    };
    report.check(Check::new(
        "10,000 parked: orchestrator RSS ≤ 150 MB",
        format!(
            "{:.1} MB (peak {:.1} MB){scale}",
            parked_orchestrator.rss_mb(),
            parked_orchestrator.peak_mb()
        ),
        parked_orchestrator.rss_mb() <= 150.0 && full,
    ));
    report.check(Check::new(
        "10,000 parked: API RSS ≤ 100 MB",
        format!(
            "{:.1} MB (peak {:.1} MB){scale}",
            parked_api.rss_mb(),
            parked_api.peak_mb()
        ),
        parked_api.rss_mb() <= 100.0 && full,
    ));
    let measured = if done {
        format!(
            "{:.1} s (approvals answered in {:.1} s){scale}",
            finished.as_secs_f64(),
            all_approved.as_secs_f64()
        )
    } else {
        format!(
            "not finished: {} of {} past the gate after {:.0} s; {}{scale}",
            progress.past,
            args.runs,
            progress.watched.as_secs_f64(),
            progress.projection(args.runs)
        )
    };
    report.check(Check::new(
        "approving all of them finishes within 60 s (all at prepublish or beyond)",
        measured,
        done && finished.as_secs_f64() <= 60.0 && full,
    ));
    // First come, first served: in order, and the median run waits about
    // half as long as the last (each advancing a step in turn before any
    // finishes also keeps the order, but every run waits about as long as
    // the last).
    let share = waits.p50 / waits.max;
    report.check(Check::new(
        "runs reach prepublish in the order they were approved (rank correlation ≥ 0.9) and the median \
         run waits ≤ 0.6 of the last one's wait",
        format!(
            "{order:.3} over {} runs; approval → prepublish p50 {:.1} s, max {:.1} s ({share:.2})",
            passes.len(),
            waits.p50,
            waits.max
        ),
        done && order >= 0.9 && share <= 0.6,
    ));
    let mb = |m: Memory| {
        json!({"rss_mb": r3(m.rss_mb()), "peak_mb": r3(m.peak_mb()), "anon_mb": r3(m.anon_kb as f64 / 1024.0),
               "file_mb": r3(m.file_kb as f64 / 1024.0), "shmem_mb": r3(m.shmem_kb as f64 / 1024.0)})
    };
    report.detail("runs", json!(args.runs));
    report.detail(
        "park",
        json!({"all_started_s": r3(all_started.as_secs_f64()), "all_parked_s": r3(parked.as_secs_f64())}),
    );
    report.detail("metrics_when_parked", series.into());
    report.detail(
        "postgres_activity",
        json!({"parking": park_activity, "approving": activity}),
    );
    report.detail(
        "memory",
        json!({"idle": {"api": mb(idle_api), "orchestrator": mb(idle_orchestrator)},
               "parked": {"api": mb(parked_api), "orchestrator": mb(parked_orchestrator)},
               "after_approval": {"api": mb(end_api), "orchestrator": mb(end_orchestrator)}}),
    );
    report.detail(
        "approve",
        json!({"answered_s": r3(all_approved.as_secs_f64()),
               "none_awaiting_ideate_s": progress.none_at_ideate.map(|d| r3(d.as_secs_f64())),
               "all_at_prepublish_s": progress.all_past.map(|d| r3(d.as_secs_f64())),
               "past_the_gate": progress.past, "watched_s": r3(progress.watched.as_secs_f64()),
               "projected_s": Some(progress.projected_secs(args.runs)).filter(|s| s.is_finite()).map(r3),
               "cpu_s": {"api": r3(cpu_api), "orchestrator": r3(cpu_orchestrator), "postgres": r3(cpu_postgres)},
               "order": {"rank_correlation": r3(order), "approval_to_prepublish_s": waits.to_json()},
               "engine_steps": steps, "events": events, "callbacks": callbacks, "stages_ms": stages}),
    );
    report.detail("log_problems", log_problems);
    Ok(())
}
