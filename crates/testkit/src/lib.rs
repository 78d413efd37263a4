//! The test kit: what the tests of every crate (and the benchmarks) share.
//!
//! - [`db`]: a fresh migrated database (a SQLite file or a Postgres schema),
//!   and [`conformance_tests!`], which runs one test on both backends;
//! - [`process`]: an `mw` process with its log, killed when dropped;
//!   [`cluster`]: an API and orchestrators as processes on one database,
//!   killed (`kill -9`) and restarted at will, logs shown on failure;
//! - [`proxy`]: a chaos TCP proxy that cuts or blocks connections;
//! - [`fakes`]: kie.ai, Shotstack, Upload-Post, OpenAI and Telegram on
//!   loopback, with exact call counters and scripted faults;
//! - [`s3`]: a real S3-compatible server (moto's) for the asset store;
//! - [`system`]: both services in this process on real HTTP;
//! - [`promql`]: enough PromQL and text exposition to check dashboards;
//! - [`free_port`] and [`wait_until`].

pub mod cluster;
pub mod console;
pub mod db;
pub mod fakes;
pub mod process;
pub mod promql;
pub mod proxy;
pub mod s3;
pub mod system;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use db::TestDb;
pub use system::{API_KEY, System};

/// A free loopback port for a service, below Linux's ephemeral range
/// (32768 up): the kernel never hands those out for `bind(0)` or outgoing
/// connections, so no other socket takes it between this check and the
/// service's bind, nor while a killed service is down before it is started
/// again.
pub fn free_port() -> u16 {
    const LOW: u64 = 20_000;
    const COUNT: u64 = 12_000;
    // Each test process walks the range from its own starting point, once:
    // a port handed out is not handed out again by this process (a cluster
    // holds its orchestrator's port for minutes before it binds it).
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| u64::from(std::process::id()) * 7919 + seed() % 1000);
    for _ in 0..COUNT {
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// Nanoseconds of the clock: a seed, printed by tests that use it so a
/// failing round can be replayed.
pub fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

/// Unique among concurrent test processes: process id and clock.
pub fn unique_suffix() -> String {
    format!("{}_{}", std::process::id(), seed())
}

/// A small deterministic generator, so a failing round can be replayed from
/// the seed printed with it.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

/// The repository's project definitions.
pub fn projects_dir() -> PathBuf {
    repo().join("projects")
}

/// A copy of the shipped projects (and persona prompts) whose
/// `aismr.toml` is `edit`ed, for a test's `PROJECTS_DIR`. `top` lands
/// among the top-level keys, `tables` at the end.
pub fn projects_with(top: &str, tables: &str) -> process::Scratch {
    let projects = process::Scratch::new("projects");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    };
    copy(&projects_dir(), projects.path());
    copy(&projects_dir().join("personas"), &projects.path().join("personas"));
    let aismr = projects.path().join("aismr.toml");
    let text = std::fs::read_to_string(&aismr).unwrap();
    let (head, tail) = text.split_at(text.find("\n[").unwrap_or(text.len()));
    std::fs::write(&aismr, format!("{head}\n{top}\n{tail}\n{tables}\n")).unwrap();
    projects
}

/// Polls `probe` every `every` until it gives `Ok`, failing after `timeout`
/// with `what` and the last state the probe described (its `Err`).
pub async fn wait_until<T, F, Fut>(timeout: Duration, every: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}: {last}"
            ),
        }
        tokio::time::sleep(every).await;
    }
}

/// A start of `spec` for `run_id` in `mode` with `input` (no videos, no
/// trace), as the API sends one.
pub fn start_execution(
    run_id: &str,
    spec: myloware_core::project::ProjectSpec,
    mode: myloware_core::ProviderMode,
    input: serde_json::Value,
) -> myloware_core::wire::StartExecution {
    myloware_core::wire::StartExecution {
        run_id: run_id.into(),
        project: spec.project.clone(),
        graph_spec: myloware_core::wire::GraphSpec::for_project(&spec),
        project_spec: spec,
        providers_mode: mode,
        input,
        videos: Vec::new(),
        traceparent: None,
    }
}

/// An external tool: `$var`, else `name` on `PATH`; `None` (with a note)
/// when it is missing outside CI; a failure under `CI`.
pub fn tool(name: &str, var: &str, hint: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(name));
    let found = std::process::Command::new(&path)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is required under CI ({hint}; or set {var})"
    );
    eprintln!("note: {name} not found ({hint}, or set {var}); skipping this test");
    None
}

/// Whether the tests run under CI, where what they need must be there.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Short ways for a test to send a request (each panics when the request
/// fails or the answer is not what it reads).
pub trait JsonAnswer {
    /// The answer.
    fn sent(self) -> impl Future<Output = reqwest::Response>;
    /// The answer's JSON body, whatever its status.
    fn json_answer(self) -> impl Future<Output = serde_json::Value>;
    /// The answer's body as text, whatever its status.
    fn text_answer(self) -> impl Future<Output = String>;
}

impl JsonAnswer for reqwest::RequestBuilder {
    async fn sent(self) -> reqwest::Response {
        self.send().await.unwrap()
    }

    async fn json_answer(self) -> serde_json::Value {
        self.sent().await.json().await.unwrap()
    }

    async fn text_answer(self) -> String {
        self.sent().await.text().await.unwrap()
    }
}

/// The status of `response` and its JSON body (`null` when it has none).
pub async fn status_and_json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// Waits until no work is left undone: nothing runnable, no undelivered
/// event, no undelivered command; fails after `timeout` saying what is left
/// (and `context`: where the logs are).
pub async fn wait_no_work(
    api: &dyn myloware_api::store::ApiStore,
    orchestrator: &dyn myloware_orchestrator::store::OrchestratorStore,
    timeout: Duration,
    context: &str,
) {
    wait_until(
        timeout,
        Duration::from_millis(25),
        "the work to be done",
        move || async move {
            let counts = orchestrator.counts().await.unwrap();
            let commands = api
                .commands_due(chrono::Utc::now() + chrono::Duration::days(1), 10)
                .await
                .unwrap();
            if counts.runnable == 0 && counts.outbox_pending == 0 && commands.is_empty() {
                return Ok(());
            }
            Err(format!(
                "undone work left behind: {counts:?}, {} undelivered commands{context}",
                commands.len()
            ))
        },
    )
    .await;
}
