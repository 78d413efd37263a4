//! `run-e2e`: a test_video_gen run from `POST /v1/runs/start` to
//! `published`, through both services as real processes (`mw serve api`,
//! `mw serve orchestrator`) with real HTTP between them: the start relayed
//! to the orchestrator, Iggy, Riley's two clips on the mock kie.ai and its
//! signed callbacks to the API's webhook, relayed back as signals, Alex's
//! render, Quinn's publish, and every event delivered to the API by the
//! outbox. Mock providers without delay.
//!
//! Targets: median ≤ 100 ms on SQLite (runs one at a time); 100 runs
//! started together all published within 5 s.
//!
//! The benchmark watches the runs in the database directly (a 1 ms poll of
//! one row), so that watching adds no request to the API.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use myloware_bench::db::Probe;
use myloware_bench::harness::{self, Bench, Frame, at_least};
use myloware_bench::load;
use myloware_bench::report::Check;
use myloware_bench::services::{self, RunStarts, free_port, loopback, service_env};
use myloware_bench::stats::{r3, summarize_scaled};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
#[command(about = "test_video_gen, POST /v1/runs/start to published, two mw processes")]
struct Args {
    /// Runs measured one at a time (after 3 unmeasured ones; --quick: 5).
    #[arg(long, default_value_t = 30, default_value_if("quick", "true", "5"), value_parser = at_least(1))]
    runs: usize,
    /// Runs started together.
    #[arg(long, default_value_t = 100)]
    burst: usize,
}

impl Bench for Args {
    const NAME: &'static str = "run-e2e";
}

fn start_body(i: u64) -> Value {
    json!({"project": "test_video_gen", "input": {"topic": format!("benchmark {i}")}})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    harness::processes(run).await
}

async fn run(args: &Args, frame: &mut Frame) -> anyhow::Result<()> {
    let (bench_db, report) = (&frame.db, &mut frame.report);
    let api_port = free_port()?;
    let env = service_env(&bench_db.url, api_port, free_port()?);
    let (orchestrator, api) = services::start_both(&frame.mw, &env, &frame.workdir).await?;
    let probe = Probe::connect(&bench_db.url).await?;
    let http = services::api_client()?;
    let api_url = format!("http://127.0.0.1:{api_port}");

    // One at a time: POST, then watch the row until it is published.
    let single_start = chrono::Utc::now();
    let mut latencies_ms = Vec::new();
    for i in 0..args.runs + 3 {
        let sent = Instant::now();
        let answer: Value = http
            .post(format!("{api_url}/v1/runs/start"))
            .body(start_body(i as u64).to_string())
            .header("content-type", "application/json")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let run_id = answer["runId"].as_str().context("no runId")?.to_string();
        loop {
            match probe.run_status(&run_id).await?.as_deref() {
                Some("published") => break,
                Some(status @ ("failed" | "cancelled" | "rejected")) => bail!("{run_id} ended {status}"),
                _ => {}
            }
            if sent.elapsed() > Duration::from_secs(30) {
                bail!("{run_id} not published after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if i >= 3 {
            latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let single = summarize_scaled(&latencies_ms, 1.0);
    println!(
        "one at a time ({} runs): start → published {}",
        single.count,
        single.line("ms")
    );
    println!("  the hops between the services, one run at a time (their own timestamps):");
    let single_stages = probe.stages(single_start).await?;

    // Together: every start at once, then watch which are published.
    let starts = RunStarts::new(loopback(api_port), args.burst as u64, start_body);
    let burst_start = chrono::Utc::now();
    let began = Instant::now();
    let all_started = load::all_accepted(
        loopback(api_port),
        args.burst,
        starts.clone(),
        args.burst,
        "starts accepted",
    )
    .await?;
    let burst_ids = starts.run_ids();
    let mut published_at: HashMap<String, Duration> = HashMap::new();
    while published_at.len() < burst_ids.len() {
        for run_id in probe.runs_in("published").await? {
            if burst_ids.contains(&run_id) {
                published_at.entry(run_id).or_insert_with(|| began.elapsed());
            }
        }
        let counts = probe.status_counts().await?;
        let ended_badly: i64 = ["failed", "cancelled", "rejected"]
            .iter()
            .filter_map(|s| counts.get(*s))
            .sum();
        ensure!(ended_badly == 0, "runs ended badly: {counts:?}");
        if began.elapsed() > Duration::from_secs(120) {
            bail!(
                "{} of {} runs published after 120 s: {counts:?}",
                published_at.len(),
                burst_ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let burst_ms: Vec<f64> = published_at.values().map(|d| d.as_secs_f64() * 1000.0).collect();
    let burst = summarize_scaled(&burst_ms, 1.0);
    let last = burst.max / 1000.0;
    println!(
        "{} together: all started in {:.3} s, all published {:.3} s after the first start; per run {}",
        args.burst,
        all_started.as_secs_f64(),
        last,
        burst.line("ms")
    );

    println!("  the hops between the services, {} together:", args.burst);
    let burst_stages = probe.stages(burst_start).await?;
    let log_problems = services::report_problems(&[("api", &api), ("orchestrator", &orchestrator)]);
    probe.close().await;
    orchestrator.stop(Duration::from_secs(10));
    api.stop(Duration::from_secs(10));

    let on_sqlite = !bench_db.is_postgres();
    let median = format!(
        "{:.1} ms (p90 {:.1} ms, max {:.1} ms; {} runs one at a time)",
        single.p50, single.p90, single.max, single.count
    );
    if on_sqlite {
        report.check(Check::new(
            "SQLite: median start → published ≤ 100 ms",
            median,
            single.p50 <= 100.0,
        ));
    } else {
        report.check(Check::not_applicable(
            "SQLite: median start → published ≤ 100 ms",
            median,
        ));
    }
    report.check(Check::new(
        format!("{} runs started together all published within 5 s", args.burst),
        format!("{last:.2} s (per run p50 {:.0} ms, p99 {:.0} ms)", burst.p50, burst.p99),
        last <= 5.0 && args.burst >= 100,
    ));
    report.detail("single_ms", single.to_json());
    report.detail("stages_ms", json!({"single": single_stages, "burst": burst_stages}));
    report.detail(
        "burst",
        json!({"runs": args.burst, "all_started_s": r3(all_started.as_secs_f64()),
                                  "all_published_s": r3(last), "per_run_ms": burst.to_json()}),
    );
    report.detail("log_problems", log_problems);
    Ok(())
}
