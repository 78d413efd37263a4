//! Fault injection with real processes (`mw serve api`, `mw serve
//! orchestrator`): `kill -9` of the orchestrator during 50 concurrent runs,
//! of the API while events are in flight, database connections cut under
//! both services, the orchestrator unreachable while people approve, and
//! live-mode providers that answer 500s or hang. Each scenario ends with
//! every run in its right terminal state, nothing paid twice, no event lost
//! or applied twice, and no gate decided twice.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use myloware_api::store::{CommandKind, GateStatus};
use myloware_db::{Db, PoolSettings};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::support;

const KEY: &str = "dev-api-key-not-for-production";
const KIE_SIGNING: &str = "faults-kie-signing-secret";

/// A free port for a service, below Linux's ephemeral range (32768 up):
/// the kernel never hands those out for `bind(0)` or outgoing connections,
/// so no other socket takes it between this check and the service's bind,
/// nor while a killed service is down before it is started again.
fn free_port() -> u16 {
    use std::sync::atomic::AtomicU64;
    const LOW: u64 = 20_000;
    const COUNT: u64 = 12_000;
    // Each test process walks the range from its own starting point.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = u64::from(std::process::id()) * 7919 + seed() % 1000;
    for _ in 0..COUNT {
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// A child process, killed (SIGKILL) and reaped when dropped.
struct Process(Child);

impl Process {
    /// `kill -9`, and wait for it to be gone.
    fn kill_nine(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A small deterministic generator, so a failing round can be replayed from
/// the seed printed with it.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The database of one scenario: a SQLite file, or a fresh Postgres schema.
struct SharedDb {
    /// What the test itself connects to (never through a proxy).
    url: String,
    dir: PathBuf,
    schema: Option<(String, String)>,
}

impl SharedDb {
    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mw-faults-{name}-{}-{}", std::process::id(), seed()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sqlite(name: &str) -> SharedDb {
        let dir = SharedDb::dir(name);
        SharedDb {
            url: format!("sqlite://{}/mw.db", dir.display()),
            dir,
            schema: None,
        }
    }

    /// `None` without `TEST_DATABASE_URL`, except under `CI`, where it fails.
    async fn postgres(name: &str) -> Option<SharedDb> {
        let Ok(base) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TEST_DATABASE_URL must be set in CI: the Postgres fault scenarios would be skipped"
            );
            eprintln!("TEST_DATABASE_URL is not set: skipping a Postgres fault scenario");
            return None;
        };
        let schema = format!("mw_faults_{}_{}", std::process::id(), seed());
        let admin = sqlx::PgPool::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        Some(SharedDb {
            url: format!("{base}{separator}options=-c%20search_path%3D{schema}"),
            dir: SharedDb::dir(name),
            schema: Some((base, schema)),
        })
    }

    async fn connect(&self) -> Db {
        let settings = PoolSettings {
            max_connections: 2,
            ..PoolSettings::default()
        };
        Db::connect(&self.url, settings).await.unwrap()
    }

    async fn cleanup(self) {
        if let Some((base, schema)) = &self.schema {
            let admin = sqlx::PgPool::connect(base).await.unwrap();
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                .execute(&admin)
                .await;
            admin.close().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy on loopback. `cut` drops every open connection (new ones
/// are still accepted); `block` also refuses new ones until unblocked.
#[derive(Clone)]
struct Proxy {
    port: u16,
    state: Arc<watch::Sender<(bool, u64)>>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = watch::channel((false, 0u64));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (blocked, generation) = *rx.borrow();
                if blocked {
                    continue;
                }
                let mut changed = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let cut = async move {
                        let sender_gone = changed
                            .wait_for(|(blocked, now)| *blocked || *now != generation)
                            .await
                            .is_err();
                        if sender_gone {
                            // Nobody can cut any more: copy until either side closes.
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Proxy {
            port,
            state: Arc::new(tx),
        }
    }

    /// Drops every open connection through the proxy.
    fn cut(&self) {
        self.state.send_modify(|(_, generation)| *generation += 1);
    }

    fn block(&self, blocked: bool) {
        self.state.send_modify(|(b, _)| *b = blocked);
    }
}

/// One API and one orchestrator process on a shared database.
struct Cluster {
    db: SharedDb,
    /// `DATABASE_URL` of the API and of the orchestrator (through proxies,
    /// for some scenarios).
    db_urls: (String, String),
    /// Variables of both processes over the defaults (live mode).
    extra: Vec<(String, String)>,
    api_port: u16,
    orchestrator_port: u16,
    /// How the API reaches the orchestrator: through this proxy.
    to_orchestrator: Proxy,
    http: reqwest::Client,
    api: Option<Process>,
    orchestrator: Option<Process>,
    spawned: usize,
}

impl Cluster {
    async fn start(db: SharedDb, extra: Vec<(String, String)>) -> Cluster {
        let urls = (db.url.clone(), db.url.clone());
        Cluster::start_via(db, urls, extra).await
    }

    /// Both processes, the API reaching the database through `db_urls.0`
    /// and the orchestrator through `db_urls.1`.
    async fn start_via(db: SharedDb, db_urls: (String, String), extra: Vec<(String, String)>) -> Cluster {
        let orchestrator_port = free_port();
        let mut cluster = Cluster {
            db_urls,
            db,
            extra,
            api_port: free_port(),
            orchestrator_port,
            to_orchestrator: Proxy::start(orchestrator_port).await,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            api: None,
            orchestrator: None,
            spawned: 0,
        };
        // The API migrates first; the orchestrator finds the schema ready.
        cluster.start_api().await;
        cluster.start_orchestrator().await;
        cluster
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    fn orchestrator_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.orchestrator_port)
    }

    fn spawn(&mut self, service: &str, port_var: (&str, u16)) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mw-system"));
        command
            .args(["serve", service])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "PROJECTS_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects"),
            )
            .env(
                "DATABASE_URL",
                if service == "api" {
                    &self.db_urls.0
                } else {
                    &self.db_urls.1
                },
            )
            .env("BIND_HOST", "127.0.0.1")
            .env("API_URL", self.api_url())
            .env("PUBLIC_BASE_URL", self.api_url())
            .env(
                "ORCHESTRATOR_URL",
                format!("http://127.0.0.1:{}", self.to_orchestrator.port),
            )
            .env("MOCK_PROVIDER_DELAY_MS", "150")
            .env("ENGINE_LEASE_SECS", "3")
            .env("ENGINE_POLL_MS", "100")
            .env("RATE_LIMIT_PER_MINUTE", "0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .env(port_var.0, port_var.1.to_string())
            .envs(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.db.dir);
        self.spawned += 1;
        let log = std::fs::File::create(self.db.dir.join(format!("{}-{service}.log", self.spawned))).unwrap();
        command.stdout(Stdio::null()).stderr(log);
        Process(command.spawn().unwrap())
    }

    async fn start_api(&mut self) {
        let api = self.spawn("api", ("API_PORT", self.api_port));
        self.api = Some(api);
        self.wait_healthy(self.api_port).await;
    }

    async fn start_orchestrator(&mut self) {
        let orchestrator = self.spawn("orchestrator", ("ORCHESTRATOR_PORT", self.orchestrator_port));
        self.orchestrator = Some(orchestrator);
        self.wait_healthy(self.orchestrator_port).await;
    }

    fn kill_api(&mut self) {
        self.api.take().expect("the API runs").kill_nine();
    }

    fn kill_orchestrator(&mut self) {
        self.orchestrator.take().expect("the orchestrator runs").kill_nine();
    }

    async fn wait_healthy(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(response) = self.http.get(format!("http://127.0.0.1:{port}/health")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("port {port} never became healthy; logs in {}", self.db.dir.display());
    }

    /// Starts `n` runs at once; their ids in no particular order.
    async fn start_runs(&self, n: usize, body: impl Fn(usize) -> Value) -> Vec<String> {
        let mut starts = tokio::task::JoinSet::new();
        for i in 0..n {
            let request = self
                .http
                .post(format!("{}/v1/runs/start", self.api_url()))
                .header("x-api-key", KEY)
                .json(&body(i));
            starts.spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                assert!(status.is_success(), "start refused: {status} {body}");
                body["runId"].as_str().unwrap().to_string()
            });
        }
        starts.join_all().await
    }

    /// GETs `url` with the operator key, or, on the orchestrator's
    /// executions, signed with the internal credential as the API does.
    async fn get(&self, url: &str) -> Option<Value> {
        let mut request = self.http.get(url).build().ok()?;
        if url.contains("/v1/executions") {
            let keys =
                myloware_core::internal::InternalKeys::new(myloware_core::config::DEV_INTERNAL_SECRET.into(), None);
            myloware_telemetry::internal::sign(&keys, &mut request);
        } else {
            request.headers_mut().insert("x-api-key", KEY.parse().ok()?);
        }
        let response = self.http.execute(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    async fn run(&self, run_id: &str) -> Value {
        self.get(&format!("{}/v1/runs/{run_id}", self.api_url()))
            .await
            .unwrap_or_else(|| panic!("cannot read {run_id}; logs in {}", self.db.dir.display()))
    }

    async fn count_status(&self, ids: &[String], status: &str) -> usize {
        let mut count = 0;
        for id in ids {
            count += usize::from(self.run(id).await["status"] == status);
        }
        count
    }

    /// Waits until at least `target` runs are `status`; how many are.
    async fn wait_count(&self, ids: &[String], status: &str, target: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let count = self.count_status(ids, status).await;
            if count >= target {
                return count;
            }
            assert!(
                Instant::now() < deadline,
                "{count}/{target} runs {status} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every run is `status`; fails as soon as one ends otherwise.
    async fn wait_all(&self, ids: &[String], status: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut waiting = Vec::new();
            for id in ids {
                let now = self
                    .get(&format!("{}/v1/runs/{id}", self.api_url()))
                    .await
                    .map(|run| run["status"].as_str().unwrap_or_default().to_string())
                    .unwrap_or_else(|| "unreadable".into());
                let terminal = ["published", "failed", "cancelled", "rejected"].contains(&now.as_str());
                assert!(
                    now == status || !terminal,
                    "{id} ended {now}, not {status}: {}; logs in {}",
                    self.run(id).await["result"]["error"],
                    self.db.dir.display()
                );
                if now != status {
                    waiting.push((id.clone(), now));
                }
            }
            if waiting.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not {status} after {timeout:?}: {waiting:?}; logs in {}",
                self.db.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// No runnable execution, no undelivered event, no undelivered command.
    async fn wait_idle(&self, db: &Db) {
        let orchestrator = myloware_orchestrator::store::open(db);
        let api = myloware_api::store::open(db);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let counts = orchestrator.counts().await.unwrap();
            let commands = api
                .commands_due(chrono::Utc::now() + chrono::Duration::days(1), 10)
                .await
                .unwrap();
            if counts.runnable == 0 && counts.outbox_pending == 0 && commands.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "undone work left behind: {counts:?}, {} undelivered commands; logs in {}",
                commands.len(),
                self.db.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every event the orchestrator committed for each run was applied by
    /// the API exactly once and in order: the API's `last_event_seq` is the
    /// number of events `GET /v1/executions/{id}` lists, and the applied
    /// events are the outbox's, seq 1..n, same ids.
    async fn assert_events_complete(&self, db: &Db, ids: &[String]) {
        self.wait_idle(db).await;
        let api = myloware_api::store::open(db);
        let orchestrator = myloware_orchestrator::store::open(db);
        for id in ids {
            let execution = self
                .get(&format!("{}/v1/executions/{id}", self.orchestrator_url()))
                .await
                .unwrap_or_else(|| panic!("no execution {id}"));
            let committed = execution["events"].as_array().unwrap().len() as i64;
            let run = api.get_run(id).await.unwrap().unwrap();
            assert_eq!(run.last_event_seq, committed, "events of {id} lost or repeated");
            let applied: Vec<(i64, String)> = api
                .list_events(id)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.seq, e.event_id))
                .collect();
            let sent: Vec<(i64, String)> = orchestrator
                .outbox(id)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.run_seq, e.event_id))
                .collect();
            assert_eq!(applied, sent, "events of {id} as applied and as sent");
            assert!(
                applied.iter().map(|(seq, _)| *seq).eq(1..=committed),
                "seqs of {id}: {applied:?}"
            );
        }
    }

    /// A published run as the API shows it: every video completed with its
    /// clip, the render and the publish URL, and their artifacts.
    async fn assert_published_in_full(&self, ids: &[String]) {
        for id in ids {
            let run = self.run(id).await;
            assert_eq!(run["status"], "published", "{id}");
            let videos = run["result"]["videos"].as_array().unwrap();
            assert!(!videos.is_empty(), "{id}: no videos");
            assert_eq!(run["result"]["totalVideos"], videos.len(), "{id}");
            for video in videos {
                assert_eq!(video["status"], "completed", "{id}: {video}");
                assert!(video["assetUrl"].is_string(), "{id}: {video}");
            }
            assert!(run["result"]["renderUrl"].is_string(), "{id}: {}", run["result"]);
            assert!(
                !run["result"]["publishUrls"].as_array().unwrap().is_empty(),
                "{id}: {}",
                run["result"]
            );
            let kinds = support::artifact_kinds(&run);
            let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
            assert_eq!(count("kieai.clip"), videos.len(), "{id}: {kinds:?}");
            assert_eq!(count("render.url"), 1, "{id}: {kinds:?}");
            assert_eq!(count("publish.url"), 1, "{id}: {kinds:?}");
        }
    }

    /// The mocks were paid exactly once per clip, render and publish.
    async fn assert_paid_once(&self, db: &Db, ids: &[String]) {
        let store = myloware_orchestrator::store::open(db);
        for id in ids {
            let videos = self.run(id).await["result"]["videos"].as_array().unwrap().len();
            let mut counts: HashMap<(String, String), usize> = HashMap::new();
            for call in store.mock_calls(id).await.unwrap() {
                *counts.entry((call.provider, call.key)).or_default() += 1;
            }
            let mut expected: HashMap<(String, String), usize> = (0..videos)
                .map(|i| (("kieai".to_string(), format!("{id}:riley:clip:{i}")), 1))
                .collect();
            expected.insert(("shotstack".into(), format!("{id}:alex:render")), 1);
            expected.insert(("upload_post".into(), format!("{id}:quinn:publish:1")), 1);
            assert_eq!(counts, expected, "paid calls of {id}");
        }
    }

    async fn finish(self) {
        let Cluster {
            db, api, orchestrator, ..
        } = self;
        drop((api, orchestrator));
        db.cleanup().await;
    }
}

fn smoke(i: usize) -> Value {
    json!({"project": "test_video_gen", "input": {"prompt": format!("fault {i}")}})
}

/// `kill -9` of the orchestrator at random moments while 50 runs started
/// at once are in flight, round after round; then one that lives.
///
/// The moments follow the work rather than the clock, so a faster machine
/// does not finish every run before the last kill: round `r` waits until
/// `9r + (0..9)` runs are published, then a random 0–100 ms more; slower
/// mock providers (400 ms a call) spread the work out.
async fn orchestrator_killed_during_fifty_runs(db: SharedDb) {
    let slow = vec![("MOCK_PROVIDER_DELAY_MS".to_string(), "400".to_string())];
    let mut cluster = Cluster::start(db, slow).await;
    let ids = cluster.start_runs(50, smoke).await;
    let seed = seed();
    let mut random = Lcg(seed);
    let mut kills_in_flight = 0;
    for round in 0..5 {
        let target = (round * 9 + random.below(9)) as usize;
        let seen = cluster
            .wait_count(&ids, "published", target, Duration::from_secs(60))
            .await;
        let delay = Duration::from_millis(random.below(100));
        tokio::time::sleep(delay).await;
        cluster.kill_orchestrator();
        let published = cluster.count_status(&ids, "published").await;
        eprintln!("seed {seed}: round {round}: kill -9 {delay:?} after {seen} published, {published}/50 then");
        kills_in_flight += usize::from(published < ids.len());
        cluster.start_orchestrator().await;
    }
    assert!(
        kills_in_flight >= 3,
        "seed {seed}: only {kills_in_flight} of 5 kills landed while runs were in flight"
    );
    cluster.wait_all(&ids, "published", Duration::from_secs(120)).await;
    let db = cluster.db.connect().await;
    cluster.assert_events_complete(&db, &ids).await;
    cluster.assert_paid_once(&db, &ids).await;
    cluster.assert_published_in_full(&ids).await;
    db.close().await;
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_orchestrator_killed_during_fifty_runs_loses_and_repeats_nothing() {
    orchestrator_killed_during_fifty_runs(SharedDb::sqlite("kill9")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_orchestrator_killed_during_fifty_runs_loses_and_repeats_nothing() {
    let Some(db) = SharedDb::postgres("kill9").await else {
        return;
    };
    orchestrator_killed_during_fifty_runs(db).await;
}

/// `kill -9` of the API while the orchestrator's events are in flight
/// (twice); the orchestrator keeps working and its outbox retries. Every
/// event is applied once and in order when the API is back.
async fn api_killed_while_events_are_in_flight(db: SharedDb) {
    let mut cluster = Cluster::start(db, Vec::new()).await;
    let ids = cluster.start_runs(20, smoke).await;
    let db = cluster.db.connect().await;
    let api = myloware_api::store::open(&db);
    for round in 0..2 {
        // Some events applied, more to come.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut applied = 0;
            for id in &ids {
                applied += api.get_run(id).await.unwrap().unwrap().last_event_seq;
            }
            if applied > 20 * (round + 1) {
                break;
            }
            assert!(Instant::now() < deadline, "no progress before kill {round}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.kill_api();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.start_api().await;
    }
    cluster.wait_all(&ids, "published", Duration::from_secs(90)).await;
    cluster.assert_events_complete(&db, &ids).await;
    // The outage was felt: some events needed more than one delivery.
    let orchestrator = myloware_orchestrator::store::open(&db);
    let mut retried = 0;
    for id in &ids {
        retried += orchestrator
            .outbox(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.attempts > 1)
            .count();
    }
    assert!(retried > 0, "no event was in flight while the API was down");
    cluster.assert_paid_once(&db, &ids).await;
    cluster.assert_published_in_full(&ids).await;
    db.close().await;
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_api_killed_while_events_are_in_flight_applies_each_once_in_order() {
    api_killed_while_events_are_in_flight(SharedDb::sqlite("apikill")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_api_killed_while_events_are_in_flight_applies_each_once_in_order() {
    let Some(db) = SharedDb::postgres("apikill").await else {
        return;
    };
    api_killed_while_events_are_in_flight(db).await;
}

/// A proxy in front of the Postgres of `db`, and `db`'s URL through it.
async fn postgres_proxy(db: &SharedDb) -> (Proxy, String) {
    let mut url = reqwest::Url::parse(&db.url).unwrap();
    let proxy = Proxy::start(url.port().unwrap_or(5432)).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    (proxy, url.to_string())
}

/// Cuts every connection through `proxies` `rounds` times, at random moments.
async fn cut_connections(proxies: Vec<Proxy>, rounds: usize, what: &str) {
    let seed = seed();
    let mut random = Lcg(seed);
    for round in 0..rounds {
        let pause = Duration::from_millis(150 + random.below(500));
        tokio::time::sleep(pause).await;
        eprintln!("seed {seed}: {what}: round {round}: connections cut after {pause:?}");
        for proxy in &proxies {
            proxy.cut();
        }
    }
}

/// `GET /v1/executions/{id}` says which of a run's events were delivered:
/// with the API down, none of those sent since is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_execution_view_shows_undelivered_events_as_undelivered() {
    let mut cluster = Cluster::start(SharedDb::sqlite("delivered"), Vec::new()).await;
    let ids = cluster.start_runs(1, smoke).await;
    cluster.kill_api();
    // The run goes on; its events fail to reach the API and wait for a retry.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let db = cluster.db.connect().await;
    let applied = myloware_api::store::open(&db)
        .get_run(&ids[0])
        .await
        .unwrap()
        .unwrap()
        .last_event_seq;
    let execution = cluster
        .get(&format!("{}/v1/executions/{}", cluster.orchestrator_url(), ids[0]))
        .await
        .unwrap();
    let events = execution["events"].as_array().unwrap();
    let delivered = events.iter().filter(|e| e["delivered"] == true).count() as i64;
    assert!(events.len() as i64 > applied, "the API had every event before it died");
    assert_eq!(delivered, applied, "{events:?}");
    db.close().await;
    cluster.finish().await;
}

/// Each service reaches Postgres through a proxy that cuts every open
/// connection, several times: the orchestrator's while 6 aismr runs wait
/// at the ideate gate (its workers, heartbeats and outbox keep polling),
/// the API's all along (gate decisions, kie.ai callbacks, events,
/// commands). The pools reconnect; every run completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_dropped_mid_run_complete_every_run_once() {
    let Some(db) = SharedDb::postgres("dbcut").await else {
        return;
    };
    let (api_proxy, api_url) = postgres_proxy(&db).await;
    let (orchestrator_proxy, orchestrator_url) = postgres_proxy(&db).await;
    let cluster = Cluster::start_via(db, (api_url, orchestrator_url), Vec::new()).await;
    let aismr = |i: usize| json!({"project": "aismr", "input": {"object": format!("soap {i}")}});
    // (Not during the starts: a start whose connection is cut is a 500.)
    let ids = cluster.start_runs(6, aismr).await;
    cut_connections(vec![api_proxy.clone()], 2, "first events").await;
    cluster.wait_all(&ids, "awaiting_ideate", Duration::from_secs(60)).await;
    cut_connections(
        vec![api_proxy.clone(), orchestrator_proxy.clone()],
        4,
        "parked at ideate",
    )
    .await;
    for id in &ids {
        approve_despite_cuts(&cluster, id, "ideate").await;
        api_proxy.cut();
    }
    let (_, ()) = tokio::join!(
        cluster.wait_all(&ids, "awaiting_prepublish", Duration::from_secs(90)),
        cut_connections(vec![api_proxy.clone()], 6, "clips and events")
    );
    for id in &ids {
        approve_despite_cuts(&cluster, id, "prepublish").await;
    }
    let (_, ()) = tokio::join!(
        cluster.wait_all(&ids, "published", Duration::from_secs(60)),
        cut_connections(vec![api_proxy.clone()], 3, "publishing")
    );
    let db = cluster.db.connect().await;
    cluster.assert_events_complete(&db, &ids).await;
    cluster.assert_paid_once(&db, &ids).await;
    cluster.assert_published_in_full(&ids).await;
    let api = myloware_api::store::open(&db);
    for id in &ids {
        for gate in api.list_gates(id).await.unwrap() {
            assert_eq!(gate.status, GateStatus::Approved, "{id} {}", gate.gate);
        }
    }
    db.close().await;
    cluster.finish().await;
}

/// Approves by the link's token, again while a request meets a cut
/// connection (a 500, or a 502 with the decision kept): one decision.
async fn approve_despite_cuts(cluster: &Cluster, run_id: &str, gate: &str) {
    let url = format!("{}/v1/hitl/link/{run_id}/{gate}", cluster.api_url());
    let mut token = None;
    for _ in 0..20 {
        if token.is_none() {
            token = cluster
                .get(&url)
                .await
                .map(|link| link["token"].as_str().unwrap().to_string());
        }
        if let Some(token) = &token {
            let (status, body) = approve_by_token(cluster, run_id, gate, token).await;
            if status == 200 {
                assert!(
                    ["approved", "already_approved"].contains(&body["status"].as_str().unwrap()),
                    "{body}"
                );
                return;
            }
            assert!([500, 502].contains(&status), "{run_id} {gate}: {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{run_id} {gate} never approved; logs in {}", cluster.db.dir.display());
}

/// The same cuts under the orchestrator while the mock providers are being
/// called: 20 runs, both services' connections cut at random moments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_dropped_during_mock_provider_calls_complete_every_run_once() {
    let Some(db) = SharedDb::postgres("dbcutmock").await else {
        return;
    };
    let (proxy, url) = postgres_proxy(&db).await;
    let cluster = Cluster::start_via(db, (url.clone(), url), Vec::new()).await;
    let ids = cluster.start_runs(20, smoke).await;
    let (_, ()) = tokio::join!(
        cluster.wait_all(&ids, "published", Duration::from_secs(90)),
        cut_connections(vec![proxy], 30, "runs in flight")
    );
    let db = cluster.db.connect().await;
    cluster.assert_events_complete(&db, &ids).await;
    cluster.assert_paid_once(&db, &ids).await;
    cluster.assert_published_in_full(&ids).await;
    db.close().await;
    cluster.finish().await;
}

/// A fresh approval link's token for an awaiting gate.
async fn token(cluster: &Cluster, run_id: &str, gate: &str) -> String {
    let link = cluster
        .get(&format!("{}/v1/hitl/link/{run_id}/{gate}", cluster.api_url()))
        .await
        .unwrap_or_else(|| panic!("no link for {run_id} {gate}"));
    link["token"].as_str().unwrap().to_string()
}

/// Approves with the link's token (a form POST, as the page does).
async fn approve_by_token(cluster: &Cluster, run_id: &str, gate: &str, token: &str) -> (u16, Value) {
    let response = cluster
        .http
        .post(format!("{}/v1/hitl/approve/{run_id}/{gate}", cluster.api_url()))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Approves with the API key (the runbook's curl).
async fn approve_by_key(cluster: &Cluster, run_id: &str, gate: &str) -> (u16, Value) {
    let response = cluster
        .http
        .get(format!("{}/v1/hitl/approve/{run_id}/{gate}", cluster.api_url()))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// aismr runs at the ideate gate; the orchestrator is first cut off from
/// the API (its port blocked by a proxy), then killed. Approvals answer 502
/// with the decision kept; when it is back, each run resumes exactly once.
async fn orchestrator_unreachable_during_approvals(db: SharedDb) {
    let mut cluster = Cluster::start(db, Vec::new()).await;
    let ids = cluster
        .start_runs(
            6,
            |i| json!({"project": "aismr", "input": {"object": format!("candle {i}")}}),
        )
        .await;
    cluster.wait_all(&ids, "awaiting_ideate", Duration::from_secs(30)).await;
    let (blocked, killed) = ids.split_at(3);
    let mut tokens = HashMap::new();
    for id in &ids {
        tokens.insert(id.clone(), token(&cluster, id, "ideate").await);
    }

    let kept = json!({"detail": "failed to resume run"});
    cluster.to_orchestrator.block(true);
    for id in blocked {
        assert_eq!(
            approve_by_token(&cluster, id, "ideate", &tokens[id]).await,
            (502, kept.clone()),
            "{id}"
        );
    }
    // Retried while still unreachable: still 502, still one decision.
    assert_eq!(
        approve_by_key(&cluster, &blocked[0], "ideate").await,
        (502, kept.clone())
    );
    cluster.kill_orchestrator();
    cluster.to_orchestrator.block(false);
    for id in killed {
        assert_eq!(
            approve_by_key(&cluster, id, "ideate").await,
            (502, kept.clone()),
            "{id}"
        );
    }
    for id in &ids {
        let run = cluster.run(id).await;
        assert_eq!(run["status"], "awaiting_ideate", "{id}: nothing moved yet");
        assert_eq!(run["gates"][0]["status"], "approved", "{id}: the decision is kept");
        assert_eq!(run["gates"][0]["delivered"], false, "{id}");
    }

    // Back: the command reconciler (or a retried link) delivers each decision.
    cluster.start_orchestrator().await;
    let (status, body) = approve_by_token(&cluster, &killed[0], "ideate", &tokens[&killed[0]]).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("already_approved")),
        "{body}"
    );
    cluster
        .wait_all(&ids, "awaiting_prepublish", Duration::from_secs(60))
        .await;
    for id in &ids {
        assert_eq!(
            approve_by_key(&cluster, id, "ideate").await.1["status"],
            "already_approved"
        );
        let token = token(&cluster, id, "prepublish").await;
        let (status, body) = approve_by_token(&cluster, id, "prepublish", &token).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("approved")),
            "{id}: {body}"
        );
    }
    cluster.wait_all(&ids, "published", Duration::from_secs(60)).await;

    let db = cluster.db.connect().await;
    cluster.assert_events_complete(&db, &ids).await;
    cluster.assert_paid_once(&db, &ids).await;
    cluster.assert_published_in_full(&ids).await;
    let api = myloware_api::store::open(&db);
    let orchestrator = myloware_orchestrator::store::open(&db);
    for id in &ids {
        for gate in api.list_gates(id).await.unwrap() {
            assert_eq!(gate.status, GateStatus::Approved, "{id} {}", gate.gate);
            assert_eq!(gate.delivered, Some(true), "{id} {}", gate.gate);
        }
        let resumes = api
            .list_commands(id)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.kind == CommandKind::Resume)
            .count();
        assert_eq!(resumes, 2, "{id}: one resume per gate");
        // The audit: at most one deciding attempt per gate, everything else
        // a repeat of the same decision.
        let audit = api.list_audit(id).await.unwrap();
        for gate in ["ideate", "prepublish"] {
            let decided = audit
                .iter()
                .filter(|a| a.gate == gate && a.outcome == "approved")
                .count();
            assert!(decided <= 1, "{id} {gate}: {audit:?}");
            assert!(
                audit
                    .iter()
                    .filter(|a| a.gate == gate && a.action == "approve")
                    .all(|a| ["approved", "already_approved", "approved; resume pending"].contains(&a.outcome.as_str())),
                "{id} {gate}: {audit:?}"
            );
        }
        // The execution passed each gate once and resumed once after it.
        let events = orchestrator.outbox(id).await.unwrap();
        let count = |kind: &str, field: &str, value: &str| {
            events
                .iter()
                .filter(|e| e.kind == kind && e.data[field] == value)
                .count()
        };
        assert_eq!(count("gate.reached", "gate", "ideate"), 1, "{id}");
        assert_eq!(count("gate.reached", "gate", "prepublish"), 1, "{id}");
        assert_eq!(count("persona.started", "persona", "riley"), 1, "{id}");
        assert_eq!(count("persona.started", "persona", "quinn"), 1, "{id}");
    }
    db.close().await;
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_orchestrator_unreachable_during_approvals_resumes_each_run_once() {
    orchestrator_unreachable_during_approvals(SharedDb::sqlite("approvals")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_orchestrator_unreachable_during_approvals_resumes_each_run_once() {
    let Some(db) = SharedDb::postgres("approvals").await else {
        return;
    };
    orchestrator_unreachable_during_approvals(db).await;
}

// ------------------------------------------------------------ live-mode fakes

/// What a fake provider does with one request.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answers this HTTP status (and the provider's error body) without
    /// doing anything.
    Status(u16),
    /// Does the work, then answers only after this long (past the client's
    /// timeout).
    Hang(Duration),
}

/// Fake kie.ai, Shotstack and Upload-Post on loopback, with scripted faults
/// per operation (`kieai.submit`, `kieai.status`, `shotstack.render`,
/// `shotstack.status`, `upload_post.publish`, `upload_post.status`).
#[derive(Default)]
struct Fakes {
    /// Requests that did the work (a paid call), with their bodies.
    done: Mutex<Vec<(String, Value)>>,
    /// Every request, faulty ones included.
    attempts: Mutex<HashMap<String, usize>>,
    /// The next requests of an operation, in order (`None`: behave).
    script: Mutex<HashMap<String, VecDeque<Option<Fault>>>>,
    /// A fault for every request of an operation.
    always: Mutex<HashMap<String, Fault>>,
    ids: AtomicU64,
}

impl Fakes {
    fn fault(&self, operation: &str) -> Option<Fault> {
        *self.attempts.lock().unwrap().entry(operation.into()).or_default() += 1;
        if let Some(fault) = self.always.lock().unwrap().get(operation) {
            return Some(*fault);
        }
        self.script
            .lock()
            .unwrap()
            .get_mut(operation)
            .and_then(VecDeque::pop_front)
            .flatten()
    }

    fn script(&self, operation: &str, faults: &[Option<Fault>]) {
        self.script
            .lock()
            .unwrap()
            .insert(operation.into(), faults.iter().copied().collect());
    }

    fn always(&self, operation: &str, fault: Fault) {
        self.always.lock().unwrap().insert(operation.into(), fault);
    }

    fn reset(&self) {
        self.script.lock().unwrap().clear();
        self.always.lock().unwrap().clear();
        self.attempts.lock().unwrap().clear();
        self.done.lock().unwrap().clear();
    }

    fn attempts(&self, operation: &str) -> usize {
        self.attempts.lock().unwrap().get(operation).copied().unwrap_or(0)
    }

    fn done(&self, operation: &str, matches: impl Fn(&Value) -> bool) -> usize {
        self.done
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, body)| op == operation && matches(body))
            .count()
    }

    fn record(&self, operation: &str, body: Value) -> u64 {
        self.done.lock().unwrap().push((operation.into(), body));
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// The provider's error answer for `status`.
fn refusal(provider: &str, status: u16) -> Response {
    let body = match provider {
        "kieai" => json!({"code": status, "msg": format!("fake kie.ai failure {status}")}),
        "shotstack" => {
            json!({"success": false, "message": format!("fake Shotstack failure {status}: invalid timeline")})
        }
        _ => json!({"success": false, "message": format!("fake Upload-Post failure {status}: invalid API key")}),
    };
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

async fn kie_generate(State(fakes): State<Arc<Fakes>>, Json(body): Json<Value>) -> Response {
    let fault = fakes.fault("kieai.submit");
    if let Some(Fault::Status(status)) = fault {
        return refusal("kieai", status);
    }
    let task = format!("task-{}", fakes.record("kieai.submit", body.clone()));
    let callback = body["callBackUrl"].as_str().unwrap_or_default().to_string();
    let signed = task.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = myloware_core::signing::kieai_signature(KIE_SIGNING.as_bytes(), &signed, &timestamp);
        let _ = reqwest::Client::new()
            .post(callback)
            .header("x-webhook-timestamp", timestamp)
            .header("x-webhook-signature", signature)
            .json(&json!({"code": 200, "msg": "success",
                "data": {"taskId": signed, "info": {"resultUrls": [format!("https://cdn.fake-kie/{signed}.mp4")]}}}))
            .send()
            .await;
    });
    if let Some(Fault::Hang(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    Json(json!({"code": 200, "msg": "success", "data": {"taskId": task}})).into_response()
}

async fn kie_record_info(State(fakes): State<Arc<Fakes>>, Query(query): Query<HashMap<String, String>>) -> Response {
    match fakes.fault("kieai.status") {
        Some(Fault::Status(status)) => return refusal("kieai", status),
        Some(Fault::Hang(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let task = query.get("taskId").cloned().unwrap_or_default();
    Json(json!({"code": 200, "data": {"taskId": task, "successFlag": 1,
        "response": {"resultUrls": [format!("https://cdn.fake-kie/{task}.mp4")]}}}))
    .into_response()
}

async fn shotstack_render(State(fakes): State<Arc<Fakes>>, Json(body): Json<Value>) -> Response {
    let fault = fakes.fault("shotstack.render");
    if let Some(Fault::Status(status)) = fault {
        return refusal("shotstack", status);
    }
    let id = format!("render-{}", fakes.record("shotstack.render", body));
    if let Some(Fault::Hang(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    Json(json!({"success": true, "message": "Created", "response": {"id": id}})).into_response()
}

async fn shotstack_status(
    State(fakes): State<Arc<Fakes>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match fakes.fault("shotstack.status") {
        Some(Fault::Status(status)) => return refusal("shotstack", status),
        Some(Fault::Hang(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    Json(json!({"success": true, "response": {"id": id, "status": "done", "url": format!("https://cdn.fake-shotstack/{id}.mp4")}}))
        .into_response()
}

const TIKTOK_URL: &str = "https://www.tiktok.com/@myloware-aismr/video/1";

async fn upload_post_publish(State(fakes): State<Arc<Fakes>>, headers: HeaderMap) -> Response {
    let fault = fakes.fault("upload_post.publish");
    if let Some(Fault::Status(status)) = fault {
        return refusal("upload_post", status);
    }
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    fakes.record("upload_post.publish", json!({"requestId": request_id}));
    if let Some(Fault::Hang(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    Json(json!({"success": true, "results": {"tiktok": {"success": true, "url": TIKTOK_URL}}})).into_response()
}

async fn upload_post_status(State(fakes): State<Arc<Fakes>>, Query(query): Query<HashMap<String, String>>) -> Response {
    match fakes.fault("upload_post.status") {
        Some(Fault::Status(status)) => return refusal("upload_post", status),
        Some(Fault::Hang(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let id = query.get("request_id").cloned().unwrap_or_default();
    if fakes.done("upload_post.publish", |body| body["requestId"] == id.as_str()) > 0 {
        Json(json!({"status": "completed", "results": {"tiktok": {"success": true, "url": TIKTOK_URL}}}))
            .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"success": false, "message": "not found"})),
        )
            .into_response()
    }
}

/// The three fakes on one loopback server, and the live-mode variables
/// that point the services at it.
async fn fake_providers() -> (Arc<Fakes>, Vec<(String, String)>) {
    let fakes = Arc::new(Fakes::default());
    let url = support::fakes::serve(
        axum::Router::new()
            .route("/api/v1/veo/generate", post(kie_generate))
            .route("/api/v1/veo/record-info", get(kie_record_info))
            .route("/edit/stage/render", post(shotstack_render))
            .route("/edit/stage/render/{id}", get(shotstack_status))
            .route("/api/upload", post(upload_post_publish))
            .route("/api/uploadposts/status", get(upload_post_status))
            .with_state(fakes.clone()),
    )
    .await;
    let vars = [
        ("USE_MOCK_PROVIDERS", "false"),
        ("KIEAI_API_KEY", "kie-live-key"),
        ("KIEAI_SIGNING_SECRET", KIE_SIGNING),
        ("KIEAI_BASE_URL", &url),
        ("SHOTSTACK_API_KEY", "shotstack-live-key"),
        ("SHOTSTACK_BASE_URL", &url),
        ("UPLOAD_POST_API_KEY", "upload-live-key"),
        ("UPLOAD_POST_BASE_URL", &url),
        ("CLIP_POLL_AFTER_SECS", "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    (fakes, vars)
}

/// Submissions the fake kie.ai accepted for clip `index` of `run_id`.
fn clip_submissions(fakes: &Fakes, run_id: &str, index: usize) -> usize {
    let marker = format!("runId={run_id}&index={index}&");
    fakes.done("kieai.submit", |body| {
        body["callBackUrl"].as_str().unwrap_or_default().contains(&marker)
    })
}

/// Each provider's paid calls of the run: one per clip, one render, one publish.
fn assert_paid_once_live(fakes: &Fakes, run_id: &str, clips: usize) {
    for index in 0..clips {
        assert_eq!(clip_submissions(fakes, run_id, index), 1, "submissions of clip {index}");
    }
    assert_eq!(fakes.done("shotstack.render", |_| true), 1, "renders");
    let key = format!("{run_id}:quinn:publish:1");
    assert_eq!(
        fakes.done("upload_post.publish", |body| body["requestId"] == key.as_str()),
        1,
        "publishes"
    );
}

/// Transient provider failures (500, 502, 503, and a status lookup that
/// hangs past the client's 30 s timeout) are retried: the run publishes,
/// and each provider did the work exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_transient_provider_failures_are_retried_and_publish_once() {
    let (fakes, vars) = fake_providers().await;
    fakes.script(
        "kieai.submit",
        &[Some(Fault::Status(500)), None, Some(Fault::Status(503))],
    );
    fakes.script("shotstack.render", &[Some(Fault::Status(503))]);
    fakes.script("shotstack.status", &[Some(Fault::Hang(Duration::from_secs(31)))]);
    fakes.script("upload_post.publish", &[Some(Fault::Status(502))]);
    let cluster = Cluster::start(SharedDb::sqlite("transient"), vars).await;
    let ids = cluster.start_runs(1, smoke).await;
    cluster.wait_all(&ids, "published", Duration::from_secs(90)).await;
    assert_paid_once_live(&fakes, &ids[0], 2);
    assert_eq!(fakes.attempts("kieai.submit"), 4, "each clip retried once");
    assert_eq!(fakes.attempts("shotstack.render"), 2);
    assert!(fakes.attempts("shotstack.status") >= 2);
    assert_eq!(fakes.attempts("upload_post.publish"), 2);
    let db = cluster.db.connect().await;
    cluster.assert_events_complete(&db, &ids).await;
    cluster.assert_published_in_full(&ids).await;
    db.close().await;
    cluster.finish().await;
}

/// Permanent failures end the run `failed` with the provider's reason: a
/// kie.ai that answers 500 to every attempt (given up after the client's 3
/// attempts), a Shotstack that refuses the render (400), an Upload-Post
/// that refuses the key (401). 4xx are never retried, nothing downstream is
/// called, and nothing is paid twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_permanent_provider_failures_fail_the_run_with_a_clear_error() {
    let (fakes, vars) = fake_providers().await;
    let cluster = Cluster::start(SharedDb::sqlite("permanent"), vars).await;
    let db = cluster.db.connect().await;
    let cases = [
        (
            "kieai.submit",
            500,
            "kieai.submit_failed",
            "gave up after 3 attempt(s)",
            3,
        ),
        (
            "shotstack.render",
            400,
            "shotstack.render_failed",
            "invalid timeline",
            1,
        ),
        (
            "upload_post.publish",
            401,
            "upload_post.publish_failed",
            "invalid API key",
            1,
        ),
    ];
    for (operation, status, code, reason, attempts) in cases {
        fakes.reset();
        fakes.always(operation, Fault::Status(status));
        let ids = cluster.start_runs(1, smoke).await;
        cluster.wait_all(&ids, "failed", Duration::from_secs(60)).await;
        let run = cluster.run(&ids[0]).await;
        let error = &run["result"]["error"];
        assert_eq!(error["code"], code, "{operation}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(reason), "{operation}: {message}");
        assert!(message.contains(&status.to_string()), "{operation}: {message}");
        assert_eq!(fakes.attempts(operation), attempts, "{operation}: attempts");
        let downstream = match operation {
            "kieai.submit" => vec!["shotstack.render", "upload_post.publish"],
            "shotstack.render" => vec!["upload_post.publish"],
            _ => vec![],
        };
        for later in downstream {
            assert_eq!(fakes.attempts(later), 0, "{operation} failed, yet {later} was called");
        }
        for index in 0..2 {
            assert!(clip_submissions(&fakes, &ids[0], index) <= 1, "clip {index} paid twice");
        }
        assert!(fakes.done("shotstack.render", |_| true) <= 1);
        assert!(fakes.done("upload_post.publish", |_| true) <= 1);
        cluster.assert_events_complete(&db, &ids).await;
    }
    db.close().await;
    cluster.finish().await;
}

/// A provider that did the work but answered after the client's timeout:
/// the client must not send the same paid call again. The run then ends
/// as `outcome` says: published (the clip completes by its callback, the
/// publish is found by our request id), or failed with `code` (a render
/// Shotstack cannot be asked about is never requested twice).
async fn timed_out_call_is_not_made_twice(operation: &str, outcome: Result<(), &str>) {
    let (fakes, vars) = fake_providers().await;
    fakes.script(operation, &[Some(Fault::Hang(Duration::from_secs(31)))]);
    let cluster = Cluster::start(SharedDb::sqlite("timeout"), vars).await;
    let ids = cluster.start_runs(1, smoke).await;
    let deadline = Instant::now() + Duration::from_secs(150);
    let run = loop {
        let run = cluster.run(&ids[0]).await;
        if ["published", "failed"].contains(&run["status"].as_str().unwrap()) {
            break run;
        }
        assert!(Instant::now() < deadline, "still {}", run["status"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for index in 0..2 {
        assert!(
            clip_submissions(&fakes, &ids[0], index) <= 1,
            "clip {index} submitted twice"
        );
    }
    assert!(fakes.done("shotstack.render", |_| true) <= 1, "rendered twice");
    assert!(fakes.done("upload_post.publish", |_| true) <= 1, "published twice");
    match outcome {
        Ok(()) => {
            assert_eq!(run["status"], "published", "{}", run["result"]["error"]);
            assert_paid_once_live(&fakes, &ids[0], 2);
        }
        Err(code) => {
            assert_eq!(run["status"], "failed");
            assert_eq!(run["result"]["error"]["code"], code, "{}", run["result"]["error"]);
        }
    }
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kieai_submission_that_timed_out_is_not_submitted_again() {
    timed_out_call_is_not_made_twice("kieai.submit", Ok(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shotstack_render_that_timed_out_is_not_requested_again() {
    timed_out_call_is_not_made_twice("shotstack.render", Err("shotstack.render_unknown")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_post_publish_that_timed_out_is_not_posted_again() {
    timed_out_call_is_not_made_twice("upload_post.publish", Ok(())).await;
}
