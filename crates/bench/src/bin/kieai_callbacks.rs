//! `kieai-callbacks`: signed kie.ai clip callbacks into the API's
//! `POST /v1/webhooks/kieai?runId=&index=&token=`, each one sent twice:
//! verified (`X-Webhook-Timestamp` / `X-Webhook-Signature` with
//! `KIEAI_SIGNING_SECRET`, and the per-clip token of the URL),
//! deduplicated (the second copy must answer `duplicate`), recorded, and
//! relayed to the orchestrator as a signal. Target: ≥ 2,000 callbacks/s on
//! Postgres, every delivery counted.
//!
//! The API is the real `mw serve api` process. The orchestrator is a stub in
//! this process that acknowledges starts and signals (and counts them), so
//! the figure is the API's: the real orchestrator would also wake an
//! engine step per signal, which `engine-steps` measures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use myloware_bench::callbacks::{self, Answers};
use myloware_bench::db::Probe;
use myloware_bench::harness::{self, Bench, Frame, at_least};
use myloware_bench::load;
use myloware_bench::report::Check;
use myloware_bench::services::{self, RunStarts, Service, free_port, loopback, service_env, set_var};
use myloware_bench::stats::r3;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
#[command(about = "signed kie.ai callbacks, each sent twice, into `mw serve api`")]
struct Args {
    /// Distinct callbacks (12 clips per run); each is sent twice (--quick: 1,200).
    #[arg(long, default_value_t = 12_000, default_value_if("quick", "true", "1200"), value_parser = at_least(1))]
    callbacks: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
}

impl Bench for Args {
    const NAME: &'static str = "kieai-callbacks";

    fn settings(&self) -> Vec<(&'static str, String)> {
        let (callbacks, connections) = (self.callbacks, self.connections);
        vec![(
            "load",
            format!("{callbacks} distinct callbacks × 2, {connections} connections, stub orchestrator"),
        )]
    }
}

/// How long to wait for the API to relay every accepted callback.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

/// What the stub orchestrator received.
#[derive(Default)]
struct StubCounts {
    starts: AtomicU64,
    signals: AtomicU64,
    /// Distinct `signalId`s (the real orchestrator deduplicates on them).
    signal_ids: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn stub_orchestrator(counts: Arc<StubCounts>) -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/v1/executions",
            post(|State(c): State<Arc<StubCounts>>| async move {
                c.starts.fetch_add(1, Ordering::Relaxed);
                (StatusCode::ACCEPTED, Json(json!({"status": "queued"})))
            }),
        )
        .route(
            "/v1/executions/{runId}/signals",
            post(|State(c): State<Arc<StubCounts>>, Json(body): Json<Value>| async move {
                c.signals.fetch_add(1, Ordering::Relaxed);
                let id = body["signalId"].as_str().unwrap_or_default().to_string();
                let fresh = c.signal_ids.lock().expect("lock").insert(id);
                let status = if fresh { "accepted" } else { "duplicate" };
                (StatusCode::ACCEPTED, Json(json!({"status": status})))
            }),
        )
        .with_state(counts)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    harness::processes(run).await
}

async fn run(args: &Args, frame: &mut Frame) -> anyhow::Result<()> {
    let (bench_db, report) = (&frame.db, &mut frame.report);
    let counts = Arc::new(StubCounts::default());
    let stub = services::spawn_router(stub_orchestrator(counts.clone())).await?;
    let api_port = free_port()?;
    let mut env = service_env(&bench_db.url, api_port, stub.addr.port());
    set_var(&mut env, "ORCHESTRATOR_URL", &format!("http://{}", stub.addr));
    let mut api = Service::spawn("api", &frame.mw, &["serve", "api"], &env, api_port, &frame.workdir)?;
    api.wait_healthy(Duration::from_secs(30)).await?;
    let api_addr = loopback(api_port);

    let runs = callbacks::runs_for(args.callbacks);
    let starts = RunStarts::new(
        api_addr,
        runs as u64,
        |i| json!({"project": "test_video_gen", "input": {"topic": format!("callbacks {i}")}}),
    );
    load::all_accepted(api_addr, 16, starts.clone(), runs, "starts accepted").await?;
    let run_ids = starts.run_ids();
    println!(
        "{runs} runs started (the stub acknowledged {} starts)",
        counts.starts.load(Ordering::Relaxed)
    );

    let cpu_before = api.cpu_seconds();
    let postgres_before = services::cpu_seconds_of("postgres");
    let sent = callbacks::send(api_addr, run_ids, args.callbacks, args.connections).await?;
    let api_cpu = api.cpu_seconds() - cpu_before;
    let postgres_cpu = services::cpu_seconds_of("postgres") - postgres_before;
    let (deliveries, rate) = (sent.deliveries(), sent.rate());
    let latency = sent.latency();
    let Answers { accepted, .. } = sent.answers;
    // Every accepted callback must reach the orchestrator; those not relayed
    // inline wait for the API's command reconciler.
    let at_end = counts.signal_ids.lock().expect("lock").len() as u64;
    let drained = Instant::now();
    while (counts.signal_ids.lock().expect("lock").len() as u64) < accepted && drained.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain = drained.elapsed();
    let signals = counts.signals.load(Ordering::Relaxed);
    let distinct_signals = counts.signal_ids.lock().expect("lock").len() as u64;
    sent.print();
    println!("the orchestrator got {distinct_signals} distinct signals in {signals} deliveries");
    println!(
        "relayed to the orchestrator when the last callback was answered: {at_end} of {accepted}; \
         all {distinct_signals} {:.2} s later",
        drain.as_secs_f64()
    );
    println!(
        "CPU for {deliveries} deliveries: API process {api_cpu:.2} s = {:.3} ms each; postgres (every backend on \
         the machine) {postgres_cpu:.2} s = {:.3} ms each",
        api_cpu * 1000.0 / deliveries.max(1) as f64,
        postgres_cpu * 1000.0 / deliveries.max(1) as f64
    );
    let probe = Probe::connect(&bench_db.url).await?;
    let recorded = probe.group_count("webhook_deliveries", "outcome").await?;
    let commands = probe.group_count("commands", "kind").await?;
    probe.close().await;
    println!("webhook_deliveries by outcome: {recorded:?}; commands by kind: {commands:?}");
    let log_problems = services::report_problems(&[("api", &api)]);
    api.stop(Duration::from_secs(10));
    stub.stop().await?;

    let exact = sent.exact();
    let relayed = distinct_signals == accepted;
    let measured = sent.measured();
    let target = "signed kie.ai callbacks, verified and deduplicated: ≥ 2,500/s on Postgres";
    if bench_db.is_postgres() {
        report.check(Check::new(target, measured, rate >= 2500.0 && exact));
    } else {
        report.check(Check::not_applicable(target, measured));
    }
    report.check(Check::new(
        "every original accepted once, every copy answered duplicate",
        format!(
            "{accepted}/{} accepted, {}/{} duplicate",
            args.callbacks, sent.answers.duplicate, args.callbacks
        ),
        exact,
    ));
    // Not a target of the issue, but a callback is only useful once the
    // orchestrator has it.
    report.check(Check::new(
        "every accepted callback relayed to the orchestrator as one signal",
        format!(
            "{distinct_signals} signals ({signals} deliveries); {at_end} when the last callback was answered, \
             all {:.1} s later",
            drain.as_secs_f64()
        ),
        relayed,
    ));
    report.detail("log_problems", log_problems);
    report.detail("callbacks", json!(args.callbacks));
    report.detail("deliveries", json!(deliveries));
    report.detail("connections", json!(args.connections));
    report.detail("rate_per_s", json!(r3(rate)));
    report.detail("latency_ms", latency.to_json());
    report.detail(
        "cpu_ms_per_delivery",
        json!({"api": r3(api_cpu * 1000.0 / deliveries.max(1) as f64),
               "postgres": r3(postgres_cpu * 1000.0 / deliveries.max(1) as f64)}),
    );
    report.detail("answers", sent.answers_json());
    report.detail(
        "signals",
        json!({"distinct": distinct_signals, "deliveries": signals, "relayed_during_load": at_end,
               "all_relayed_after_s": r3(drain.as_secs_f64())}),
    );
    Ok(())
}
