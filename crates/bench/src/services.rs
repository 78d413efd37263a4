//! The services under test: as real processes of the built `mw` binary
//! (`mw serve api`, `mw serve orchestrator`, `mw dev`), whose RSS is read
//! from `/proc/<pid>/status`, or as a configuration for in-process servers.
//! Either way with the same settings: loopback only, mock providers without
//! delay, no rate limits (they are policy, not capacity), JSON logs at the
//! default level, as in production.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use myloware_core::config::Config;
use myloware_testkit::process::Process;

use crate::unique_suffix;

/// Keys of the benchmark's services (long enough for any environment).
pub const API_KEY: &str = "bench-api-key-0123456789abcdefghijklmnop";
pub const HITL_SECRET: &str = "bench-hitl-secret-0123456789abcdefghijkl";
pub const KIEAI_SIGNING_SECRET: &str = "bench-kieai-signing-secret-0123456789abc";

/// A free loopback port (the test kit's: below the ephemeral range).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(myloware_testkit::free_port())
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The environment both services get.
pub fn service_env(database_url: &str, api_port: u16, orchestrator_port: u16) -> Vec<(String, String)> {
    let projects = crate::default_projects_dir();
    let projects = projects.canonicalize().unwrap_or(projects);
    [
        ("ENVIRONMENT", "development".to_string()),
        ("LOG_FORMAT", "json".to_string()),
        ("DATABASE_URL", database_url.to_string()),
        ("PROJECTS_DIR", projects.display().to_string()),
        ("BIND_HOST", "127.0.0.1".to_string()),
        ("API_PORT", api_port.to_string()),
        ("ORCHESTRATOR_PORT", orchestrator_port.to_string()),
        ("PUBLIC_BASE_URL", format!("http://127.0.0.1:{api_port}")),
        ("API_URL", format!("http://127.0.0.1:{api_port}")),
        ("ORCHESTRATOR_URL", format!("http://127.0.0.1:{orchestrator_port}")),
        ("USE_MOCK_PROVIDERS", "true".to_string()),
        ("MOCK_PROVIDER_DELAY_MS", "0".to_string()),
        ("RATE_LIMIT_PER_MINUTE", "0".to_string()),
        ("API_KEY", API_KEY.to_string()),
        ("HITL_SECRET", HITL_SECRET.to_string()),
        ("KIEAI_SIGNING_SECRET", KIEAI_SIGNING_SECRET.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `vars` as a checked configuration (for in-process servers).
pub fn config(vars: &[(String, String)]) -> anyhow::Result<Config> {
    Config::from_lookup(|var| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
        .map_err(|err| anyhow::anyhow!("configuration: {err}"))
}

/// Replaces or adds `name=value` in `vars`.
pub fn set_var(vars: &mut Vec<(String, String)>, name: &str, value: &str) {
    vars.retain(|(k, _)| k != name);
    vars.push((name.to_string(), value.to_string()));
}

/// The built `mw`: `explicit`, else `target/release/mw` of this workspace
/// (or of `CARGO_TARGET_DIR`).
pub fn mw_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
            .join("release/mw"),
    };
    if !path.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release --bin mw` (or pass --mw PATH)",
            path.display()
        );
    }
    Ok(path.canonicalize()?)
}

/// A folder for the services' logs, removed by [`Workdir::finish`] unless
/// kept.
pub struct Workdir(pub PathBuf);

impl Workdir {
    pub fn create() -> anyhow::Result<Workdir> {
        let path = std::env::temp_dir().join(format!("mw-bench-{}", unique_suffix()));
        std::fs::create_dir_all(&path)?;
        Ok(Workdir(path))
    }

    pub fn finish(self, keep: bool) {
        if keep {
            eprintln!("kept the services' logs in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// VmRSS, in KiB.
    pub rss_kb: u64,
    /// VmHWM (the peak RSS so far), in KiB.
    pub peak_kb: u64,
    /// The parts of VmRSS: anonymous memory (the heap), file pages (e.g.
    /// SQLite's memory-mapped files), shared memory (SQLite's WAL index).
    pub anon_kb: u64,
    pub file_kb: u64,
    pub shmem_kb: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kb: field("VmRSS:"),
            peak_kb: field("VmHWM:"),
            anon_kb: field("RssAnon:"),
            file_kb: field("RssFile:"),
            shmem_kb: field("RssShmem:"),
        }
    }

    pub fn rss_mb(&self) -> f64 {
        self.rss_kb as f64 / 1024.0
    }

    pub fn peak_mb(&self) -> f64 {
        self.peak_kb as f64 / 1024.0
    }

    /// `anon X MB, file Y MB, shmem Z MB`.
    pub fn parts(&self) -> String {
        let mb = |kb: u64| kb as f64 / 1024.0;
        format!(
            "anon {:.1} MB, file {:.1} MB, shmem {:.1} MB",
            mb(self.anon_kb),
            mb(self.file_kb),
            mb(self.shmem_kb)
        )
    }
}

/// User + system CPU seconds of a process so far (`/proc/<pid>/stat`).
pub fn cpu_seconds(pid: u32) -> f64 {
    let [utime, stime, _, _] = cpu_ticks(pid);
    (utime + stime) / 100.0
}

/// utime, stime, cutime and cstime of a process (its own CPU time, and
/// that of the children it reaped), in USER_HZ (100 on Linux).
fn cpu_ticks(pid: u32) -> [f64; 4] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at
    // ')': utime, stime, cutime and cstime, fields 14 to 17 of the line,
    // are 11 to 14 of these.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    [ticks(11), ticks(12), ticks(13), ticks(14)]
}

/// The live processes named `comm`.
fn pids_of(comm: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm))
        .collect()
}

/// CPU seconds used so far by every live process named `comm` (e.g. all
/// `postgres` backends, this benchmark's and anyone else's).
pub fn cpu_seconds_of(comm: &str) -> f64 {
    pids_of(comm).into_iter().map(cpu_seconds).sum()
}

/// [`cpu_seconds_of`] plus the CPU time of the children those processes
/// reaped: for Postgres, the backends that exited meanwhile too (the
/// postmaster reaps them), so that the count never goes back when a
/// backend ends between two readings.
pub fn cpu_seconds_of_with_exited(comm: &str) -> f64 {
    pids_of(comm)
        .into_iter()
        .map(|pid| cpu_ticks(pid).iter().sum::<f64>() / 100.0)
        .sum()
}

/// The local ports of the TCP connections that the processes `pids` hold
/// to port `remote_port` (e.g. their database connections): their sockets
/// (`/proc/<pid>/fd`) found in `/proc/net/tcp` and `tcp6`.
pub fn client_ports(pids: &[u32], remote_port: u16) -> std::collections::HashSet<u16> {
    let inodes: std::collections::HashSet<String> = pids
        .iter()
        .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let port_of = |address: &str| {
        address
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            // sl, local_address, rem_address, st, …, inode (the tenth).
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
                    (port_of(remote) == Some(remote_port) && inodes.contains(*inode))
                        .then(|| port_of(local))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The machine's CPU time so far, from the first line of `/proc/stat`, in
/// CPU-seconds summed over the CPUs: busy (user, nice, system, irq,
/// softirq), idle (idle, iowait), and stolen by the host (steal). Every
/// process's, this benchmark's and anyone else's.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: f64,
    pub idle: f64,
    pub steal: f64,
}

impl MachineCpu {
    pub fn read() -> MachineCpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is
        // counted in user already), in USER_HZ (100 on Linux).
        let tick = |i: usize| ticks.get(i).copied().unwrap_or(0.0) / 100.0;
        MachineCpu {
            busy: tick(0) + tick(1) + tick(2) + tick(5) + tick(6),
            idle: tick(3) + tick(4),
            steal: tick(7),
        }
    }

    /// What was used from `self` to `later`.
    pub fn until(&self, later: MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: later.busy - self.busy,
            idle: later.idle - self.idle,
            steal: later.steal - self.steal,
        }
    }

    /// The share of the CPUs' time that was busy (0 to 1).
    pub fn busy_share(&self) -> f64 {
        self.busy / (self.busy + self.idle + self.steal).max(1e-9)
    }

    /// The share of the CPUs' time the host took (0 to 1).
    pub fn steal_share(&self) -> f64 {
        self.steal / (self.busy + self.idle + self.steal).max(1e-9)
    }
}

/// One `mw` process (the test kit's [`Process`]); killed when dropped.
pub struct Service {
    pub name: &'static str,
    pub port: u16,
    pub log: PathBuf,
    process: Process,
}

impl Service {
    /// Starts `mw <args>` in `workdir` with exactly `env` (nothing is
    /// inherited, so no `.env.development` or user setting leaks in), its
    /// output in `workdir/<name>.log`.
    pub fn spawn(
        name: &'static str,
        mw: &Path,
        args: &[&str],
        env: &[(String, String)],
        port: u16,
        workdir: &Workdir,
    ) -> anyhow::Result<Service> {
        let process = Process::spawn(name, mw, args, env, &workdir.0)
            .with_context(|| format!("cannot start {}", mw.display()))?;
        Ok(Service {
            name,
            port,
            log: workdir.0.join(format!("{name}.log")),
            process,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn memory(&self) -> Memory {
        Memory::of(self.pid())
    }

    /// CPU time the process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    /// Polls `GET /health` every 2 ms until it answers 200; the time since
    /// the spawn.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        self.process
            .wait_healthy(self.port, timeout)
            .await
            .map_err(anyhow::Error::msg)
    }

    /// The last `lines` lines of the service's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Log lines at WARN or ERROR (JSON logs), for a post-run check.
    pub fn problems(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .map(str::to_owned)
            .collect()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(self, grace: Duration) {
        self.process.stop(grace);
    }
}

/// `mw serve orchestrator` then `mw serve api`, each waited for.
pub async fn start_both(mw: &Path, env: &[(String, String)], workdir: &Workdir) -> anyhow::Result<(Service, Service)> {
    let port = |name: &str| -> anyhow::Result<u16> {
        env.iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
            .with_context(|| format!("{name} missing"))
    };
    let mut orchestrator = Service::spawn(
        "orchestrator",
        mw,
        &["serve", "orchestrator"],
        env,
        port("ORCHESTRATOR_PORT")?,
        workdir,
    )?;
    orchestrator.wait_healthy(Duration::from_secs(30)).await?;
    let mut api = Service::spawn("api", mw, &["serve", "api"], env, port("API_PORT")?, workdir)?;
    api.wait_healthy(Duration::from_secs(30)).await?;
    Ok((orchestrator, api))
}

/// A reqwest client that sends the benchmark's API key.
pub fn api_client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", reqwest::header::HeaderValue::from_static(API_KEY));
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?)
}

/// A server running in this process (on the runtime that spawned it).
pub struct InProcess {
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    /// Stops it and waits for in-flight requests.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await??;
        Ok(())
    }
}

fn stop_channel() -> (
    tokio::sync::watch::Sender<bool>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    (tx, async move {
        let _ = rx.wait_for(|stop| *stop).await;
    })
}

/// The real API (`ApiServer`, its background tasks included) on
/// `config.api_port`.
pub async fn spawn_api(config: std::sync::Arc<Config>, db: &myloware_db::Db) -> anyhow::Result<InProcess> {
    let catalog = myloware_core::project::Catalog::load_from(&config.projects)
        .map_err(|err| anyhow::anyhow!("cannot load the projects: {err}"))?;
    let state = myloware_api::ApiState::new(config, myloware_api::store::open(db), std::sync::Arc::new(catalog));
    let server = myloware_api::ApiServer::bind(state).await?;
    let addr = server.local_addr();
    let (stop, stopped) = stop_channel();
    let task = tokio::spawn(server.run(stopped));
    Ok(InProcess { addr, stop, task })
}

/// The real orchestrator (HTTP, engine workers, outbox dispatcher) on
/// `config.orchestrator_port`.
pub async fn spawn_orchestrator(config: std::sync::Arc<Config>, db: &myloware_db::Db) -> anyhow::Result<InProcess> {
    let state = myloware_orchestrator::OrchestratorState::new(config, myloware_orchestrator::store::open(db));
    let server = myloware_orchestrator::OrchestratorServer::bind(state).await?;
    let addr = server.local_addr();
    let (stop, stopped) = stop_channel();
    let task = tokio::spawn(server.run(stopped));
    Ok(InProcess { addr, stop, task })
}

/// `router` served the way the services serve their own
/// (`myloware_http::server::serve`: the peer address, the default
/// timeouts and connection cap), on a free loopback port.
pub async fn spawn_router(router: axum::Router) -> anyhow::Result<InProcess> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = stop_channel();
    let limits = myloware_core::config::HttpLimits::default();
    let task = tokio::spawn(myloware_http::server::serve(listener, router, &limits, stopped));
    Ok(InProcess { addr, stop, task })
}

/// A workload of `count` run starts through the API (`POST /v1/runs/start`
/// with the API key, body `start_body(i)`), recording the run ids.
pub struct RunStarts {
    api: SocketAddr,
    count: u64,
    start_body: fn(u64) -> serde_json::Value,
    run_ids: std::sync::Mutex<Vec<String>>,
    /// Whether a 202 counts as a success (see [`RunStarts::recorded`]).
    accept_retried: bool,
    retried: std::sync::atomic::AtomicU64,
}

impl RunStarts {
    /// Starts that count when answered 201: recorded and accepted by the
    /// orchestrator.
    pub fn new(api: SocketAddr, count: u64, start_body: fn(u64) -> serde_json::Value) -> std::sync::Arc<RunStarts> {
        RunStarts::with(api, count, start_body, false)
    }

    /// Starts that count once the API recorded them: 201, or 202 (the
    /// orchestrator did not accept it in time; the API retries the start
    /// until it does). [`RunStarts::retried`] counts the 202s.
    pub fn recorded(
        api: SocketAddr,
        count: u64,
        start_body: fn(u64) -> serde_json::Value,
    ) -> std::sync::Arc<RunStarts> {
        RunStarts::with(api, count, start_body, true)
    }

    fn with(
        api: SocketAddr,
        count: u64,
        start_body: fn(u64) -> serde_json::Value,
        accept_retried: bool,
    ) -> std::sync::Arc<RunStarts> {
        std::sync::Arc::new(RunStarts {
            api,
            count,
            start_body,
            run_ids: std::sync::Mutex::new(Vec::new()),
            accept_retried,
            retried: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The ids of the runs started so far, in the order they were answered.
    pub fn run_ids(&self) -> Vec<String> {
        self.run_ids.lock().expect("run ids lock").clone()
    }

    /// Starts answered 202 so far.
    pub fn retried(&self) -> u64 {
        self.retried.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl crate::load::Workload for RunStarts {
    fn request(&self, i: u64, buf: &mut Vec<u8>) -> bool {
        if i >= self.count {
            return false;
        }
        crate::load::post_json(
            buf,
            self.api,
            "/v1/runs/start",
            &[("x-api-key", API_KEY)],
            (self.start_body)(i).to_string().as_bytes(),
        );
        true
    }

    fn response(&self, _i: u64, status: u16, body: &[u8]) -> bool {
        let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        if let Some(run_id) = answer["runId"].as_str() {
            self.run_ids.lock().expect("run ids lock").push(run_id.to_string());
        }
        if status == 202 {
            self.retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        status == 201 || (status == 202 && self.accept_retried)
    }
}

/// Prints, per service, how many warnings and errors it logged (with the
/// first one), and returns the counts as JSON (`{"api": 3, …}`).
pub fn report_problems(services: &[(&str, &Service)]) -> serde_json::Value {
    let mut counts = serde_json::Map::new();
    for (name, service) in services {
        let problems = service.problems();
        if let Some(first) = problems.first() {
            println!("{name} logged {} warnings or errors, e.g. {first}", problems.len());
        }
        counts.insert(name.to_string(), serde_json::json!(problems.len()));
    }
    serde_json::Value::Object(counts)
}
