//! `idle`: what the services cost doing nothing, and how fast `mw dev` is
//! ready.
//!
//! 1. `mw serve orchestrator` and `mw serve api` as processes on a fresh
//!    database, started, then left idle for `--settle-secs`; their RSS is
//!    the largest of five reads of `/proc/<pid>/status` over the next
//!    second. Target: ≤ 30 MB each.
//! 2. `mw dev` started `--starts` times on a new SQLite file (migrations
//!    included) and `--starts` times on an existing one; ready is when both
//!    `/health` answer (polled every 2 ms from outside, so the process's
//!    start, the migrations, the project catalog and both listeners all
//!    count). Target: ≤ 1 s.

use std::time::Duration;

use myloware_bench::harness::{self, Bench, DbArgs, at_least};
use myloware_bench::report::{Check, Report};
use myloware_bench::services::{self, Memory, Service, Workdir, free_port, service_env};
use myloware_bench::stats::{r3, summarize_scaled};
use serde_json::json;

#[derive(Debug, clap::Args)]
#[command(about = "RSS of idle services, and `mw dev` readiness")]
struct Args {
    /// Seconds the services stay idle before their RSS is read (--quick: 1).
    #[arg(long, default_value_t = 5, default_value_if("quick", "true", "1"))]
    settle_secs: u64,
    /// `mw dev` starts of each kind (new database, existing database),
    /// always on a SQLite file (the services' part runs on --database-url;
    /// --quick: 2).
    #[arg(long, default_value_t = 5, default_value_if("quick", "true", "2"), value_parser = at_least(1))]
    starts: usize,
    /// The `mw` binary (default: target/release/mw).
    #[arg(long)]
    mw: Option<std::path::PathBuf>,
}

impl Bench for Args {
    const NAME: &'static str = "idle";
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (args, db) = harness::parse::<Args, DbArgs>();
    let mw = services::mw_binary(args.mw.as_deref())?;
    let workdir = Workdir::create()?;
    let mut report = harness::header(&args, &[("binary", &mw.display())], None);
    println!();
    let outcome = run(&args, &db, &mw, &workdir, &mut report).await;
    workdir.finish(db.keep || outcome.is_err());
    report.conclude(outcome)
}

/// The largest of five reads, 200 ms apart.
async fn settled_memory(service: &Service) -> Memory {
    let mut largest = Memory::default();
    for _ in 0..5 {
        let memory = service.memory();
        if memory.rss_kb > largest.rss_kb {
            largest = memory;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    largest
}

async fn run(
    args: &Args,
    db: &DbArgs,
    mw: &std::path::Path,
    workdir: &Workdir,
    report: &mut Report,
) -> anyhow::Result<()> {
    // 1. Both services, idle.
    let bench_db = db.prepare().await?;
    let backend = bench_db.backend();
    let env = service_env(&bench_db.url, free_port()?, free_port()?);
    let services = services::start_both(mw, &env, workdir).await;
    let memory = match services {
        Ok((orchestrator, api)) => {
            tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
            let memory = (settled_memory(&api).await, settled_memory(&orchestrator).await);
            orchestrator.stop(Duration::from_secs(10));
            api.stop(Duration::from_secs(10));
            Ok(memory)
        }
        Err(err) => Err(err),
    };
    bench_db.finish(db.keep).await;
    let (api, orchestrator) = memory?;
    println!(
        "idle after {} s ({}): api RSS {:.1} MB (peak {:.1}; {}), orchestrator RSS {:.1} MB (peak {:.1}; {})",
        args.settle_secs,
        backend,
        api.rss_mb(),
        api.peak_mb(),
        api.parts(),
        orchestrator.rss_mb(),
        orchestrator.peak_mb(),
        orchestrator.parts()
    );

    // 2. `mw dev`, on a new database and on an existing one.
    let mut cold_ms = Vec::new();
    let mut warm_ms = Vec::new();
    let mut dev_memory = Memory::default();
    for i in 0..args.starts {
        let path = workdir.0.join(format!("dev-{i}.db"));
        let dev_env = service_env(&format!("sqlite://{}", path.display()), free_port()?, free_port()?);
        for (times, kind) in [(&mut cold_ms, "new"), (&mut warm_ms, "existing")] {
            let (ready, memory) = dev_ready(mw, &dev_env, workdir).await?;
            times.push(ready.as_secs_f64() * 1000.0);
            if i == 0 && kind == "existing" {
                dev_memory = memory;
            }
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    let (cold, warm) = (summarize_scaled(&cold_ms, 1.0), summarize_scaled(&warm_ms, 1.0));
    println!("mw dev ready, new database:      {}", cold.line("ms"));
    println!("mw dev ready, existing database: {}", warm.line("ms"));
    println!("mw dev RSS just after ready: {:.1} MB", dev_memory.rss_mb());

    report.check(Check::new(
        "idle: API RSS ≤ 30 MB",
        format!("{:.1} MB (peak {:.1} MB)", api.rss_mb(), api.peak_mb()),
        api.rss_mb() <= 30.0,
    ));
    report.check(Check::new(
        "idle: orchestrator RSS ≤ 30 MB",
        format!(
            "{:.1} MB (peak {:.1} MB)",
            orchestrator.rss_mb(),
            orchestrator.peak_mb()
        ),
        orchestrator.rss_mb() <= 30.0,
    ));
    let worst = cold.p50.max(warm.p50);
    report.check(Check::new(
        "`mw dev` ready ≤ 1 s",
        format!(
            "{:.0} ms on a new database, {:.0} ms on an existing one (medians of {}; max {:.0} ms)",
            cold.p50,
            warm.p50,
            args.starts,
            cold.max.max(warm.max)
        ),
        worst <= 1000.0,
    ));
    let mb = |m: Memory| json!({"rss_mb": r3(m.rss_mb()), "peak_mb": r3(m.peak_mb())});
    report.detail("services_backend", json!(backend));
    report.detail(
        "idle",
        json!({"api": mb(api), "orchestrator": mb(orchestrator), "settle_s": args.settle_secs}),
    );
    report.detail(
        "dev_ready_ms",
        json!({"new_database": cold.to_json(), "existing_database": warm.to_json(), "rss_mb": r3(dev_memory.rss_mb())}),
    );
    Ok(())
}

/// Starts `mw dev`, waits until both services answer, reads its RSS, stops it.
async fn dev_ready(
    mw: &std::path::Path,
    env: &[(String, String)],
    workdir: &Workdir,
) -> anyhow::Result<(Duration, Memory)> {
    let port = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<u16>().ok())
            .unwrap_or_default()
    };
    let mut dev = Service::spawn("dev", mw, &["dev"], env, port("API_PORT"), workdir)?;
    dev.wait_healthy(Duration::from_secs(30)).await?;
    // The API answers last (`mw dev` binds the orchestrator first), but
    // check the orchestrator too.
    let http = reqwest::Client::new();
    let orchestrator = format!("http://127.0.0.1:{}/health", port("ORCHESTRATOR_PORT"));
    let ready = loop {
        if let Ok(response) = http.get(&orchestrator).send().await
            && response.status().is_success()
        {
            break dev.wait_healthy(Duration::from_secs(30)).await?;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let memory = dev.memory();
    dev.stop(Duration::from_secs(10));
    Ok((ready, memory))
}
