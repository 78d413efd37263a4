//! Fault injection with real processes: an orchestrator that dies like
//! `kill -9` at chosen points (and at random moments), then a new one that
//! continues; two orchestrators sharing one Postgres. After each, every run
//! is published and the mocks saw exactly one submission per clip, one
//! render and one publish.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use myloware_db::{Db, PoolSettings};
use serde_json::{Value, json};

use crate::support;

const KEY: &str = "dev-api-key-not-for-production";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A database for the processes: a SQLite file, or a fresh Postgres schema.
struct SharedDb {
    url: String,
    dir: PathBuf,
    schema: Option<(String, String)>,
}

impl SharedDb {
    fn sqlite(name: &str) -> SharedDb {
        let dir = std::env::temp_dir().join(format!("mw-crash-{name}-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        SharedDb {
            url: format!("sqlite://{}/mw.db", dir.display()),
            dir,
            schema: None,
        }
    }

    async fn postgres(name: &str) -> Option<SharedDb> {
        let base = std::env::var("TEST_DATABASE_URL").ok()?;
        let schema = format!("mw_crash_{}", uuid_like());
        let admin = sqlx::PgPool::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        let dir = std::env::temp_dir().join(format!("mw-crash-{name}-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        Some(SharedDb {
            url,
            dir,
            schema: Some((base, schema)),
        })
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

fn uuid_like() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ rand_seed()
    )
}

fn rand_seed() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

struct Cluster {
    db: SharedDb,
    /// Extra variables of every process (live-mode settings).
    extra: Vec<(String, String)>,
    api_port: u16,
    orchestrator_ports: Vec<u16>,
    http: reqwest::Client,
    _api: Process,
}

impl Cluster {
    fn env(&self, command: &mut Command) {
        let api = format!("http://127.0.0.1:{}", self.api_port);
        let orchestrator = format!("http://127.0.0.1:{}", self.orchestrator_ports[0]);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "PROJECTS_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects"),
            )
            .env("DATABASE_URL", &self.db.url)
            .env("BIND_HOST", "127.0.0.1")
            .env("API_PORT", self.api_port.to_string())
            .env("API_URL", api)
            .env("ORCHESTRATOR_URL", orchestrator)
            .env("MOCK_PROVIDER_DELAY_MS", "150")
            .env("ENGINE_LEASE_SECS", "3")
            .env("ENGINE_POLL_MS", "100")
            .env("RATE_LIMIT_PER_MINUTE", "0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .envs(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.db.dir);
    }

    fn spawn(&self, args: &[&str], extra: &[(&str, String)], log: &str) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mw-system"));
        command.args(args);
        self.env(&mut command);
        command.envs(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let log = std::fs::File::create(self.db.dir.join(log)).unwrap();
        command.stdout(Stdio::null()).stderr(log);
        Process(command.spawn().unwrap())
    }

    fn orchestrator(&self, index: usize, fault: Option<&str>) -> Process {
        let mut extra = vec![("ORCHESTRATOR_PORT", self.orchestrator_ports[index].to_string())];
        if let Some(fault) = fault {
            extra.push(("MW_FAULT_CRASH", fault.to_string()));
        }
        self.spawn(
            &["serve", "orchestrator"],
            &extra,
            &format!(
                "orchestrator-{index}-{}.log",
                fault.unwrap_or("clean").replace(':', "_")
            ),
        )
    }

    async fn start(db: SharedDb, orchestrators: usize) -> Cluster {
        Cluster::start_with(db, orchestrators, Vec::new()).await
    }

    async fn start_with(db: SharedDb, orchestrators: usize, extra: Vec<(String, String)>) -> Cluster {
        let api_port = free_port();
        let orchestrator_ports = (0..orchestrators).map(|_| free_port()).collect();
        let placeholder = Process(Command::new("true").spawn().unwrap());
        let mut cluster = Cluster {
            db,
            extra,
            api_port,
            orchestrator_ports,
            http: reqwest::Client::new(),
            _api: placeholder,
        };
        // The API migrates first; the orchestrators find the schema ready.
        cluster._api = cluster.spawn(&["serve", "api"], &[], "api.log");
        cluster.wait_healthy(api_port).await;
        cluster
    }

    async fn wait_healthy(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
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

    async fn start_runs(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let response = self
                .http
                .post(format!("http://127.0.0.1:{}/v1/runs/start", self.api_port))
                .header("x-api-key", KEY)
                .json(&json!({"project": "test_video_gen", "input": {"prompt": format!("crash {i}")}}))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            ids.push(
                response.json::<Value>().await.unwrap()["runId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        ids
    }

    async fn status(&self, run_id: &str) -> String {
        let run: Value = self
            .http
            .get(format!("http://127.0.0.1:{}/v1/runs/{run_id}", self.api_port))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        run["status"].as_str().unwrap_or_default().to_string()
    }

    async fn wait_all_published(&self, ids: &[String], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut waiting = Vec::new();
            for id in ids {
                let status = self.status(id).await;
                assert!(
                    status != "failed" && status != "cancelled",
                    "{id} ended {status}; logs in {}",
                    self.db.dir.display()
                );
                if status != "published" {
                    waiting.push((id.clone(), status));
                }
            }
            if waiting.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "runs not published: {waiting:?}; logs in {}",
                self.db.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Exactly one paid call per clip, one render and one publish per run.
    async fn assert_exactly_once(&self, ids: &[String]) {
        let db = Db::connect(
            &self.db.url,
            PoolSettings {
                max_connections: 2,
                ..PoolSettings::default()
            },
        )
        .await
        .unwrap();
        let store = myloware_orchestrator::store::open(&db);
        for id in ids {
            let mut counts: HashMap<(String, String), usize> = HashMap::new();
            for call in store.mock_calls(id).await.unwrap() {
                *counts.entry((call.provider, call.key)).or_default() += 1;
            }
            let expected: HashMap<(String, String), usize> = [
                (("kieai".to_string(), format!("{id}:riley:clip:0")), 1),
                (("kieai".to_string(), format!("{id}:riley:clip:1")), 1),
                (("shotstack".to_string(), format!("{id}:alex:render")), 1),
                (("upload_post".to_string(), format!("{id}:quinn:publish:1")), 1),
            ]
            .into();
            assert_eq!(counts, expected, "paid calls of {id}");
        }
        db.close().await;
    }
}

/// The signal that ended the process, waiting up to `within`.
async fn wait_exit(process: &mut Process, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = process.0.try_wait().unwrap() {
            return status.signal();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;

/// Each crash point in turn: the orchestrator dies there, a new one continues.
async fn crash_points(db: SharedDb) {
    let points = [
        "riley.after_submit:2",
        "step.before_commit:4",
        "step.after_commit:6",
        "alex.after_render",
        "quinn.after_publish",
        "outbox.after_send:3",
    ];
    let cluster = Cluster::start(db, 1).await;
    for point in points {
        let ids = cluster.start_runs(3).await;
        let mut doomed = cluster.orchestrator(0, Some(point));
        let signal = wait_exit(&mut doomed, Duration::from_secs(30)).await;
        assert_eq!(
            signal,
            Some(SIGABRT),
            "did not crash at {point}; logs in {}",
            cluster.db.dir.display()
        );
        let _survivor = cluster.orchestrator(0, None);
        cluster.wait_all_published(&ids, Duration::from_secs(60)).await;
        cluster.assert_exactly_once(&ids).await;
    }
    let Cluster { db, .. } = cluster;
    db.cleanup().await;
}

/// SIGKILL at random moments while runs are in flight, several times.
async fn random_kills(db: SharedDb) {
    let cluster = Cluster::start(db, 1).await;
    let ids = cluster.start_runs(12).await;
    let mut seed = rand_seed() as u64;
    for round in 0..4 {
        let mut orchestrator = cluster.orchestrator(0, None);
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let alive = Duration::from_millis(150 + (seed >> 33) % 900);
        tokio::time::sleep(alive).await;
        let pid = orchestrator.0.id().to_string();
        assert!(
            Command::new("kill").args(["-KILL", &pid]).status().unwrap().success(),
            "round {round}"
        );
        assert_eq!(
            wait_exit(&mut orchestrator, Duration::from_secs(5)).await,
            Some(SIGKILL)
        );
    }
    let _survivor = cluster.orchestrator(0, None);
    cluster.wait_all_published(&ids, Duration::from_secs(90)).await;
    cluster.assert_exactly_once(&ids).await;
    let Cluster { db, .. } = cluster;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_orchestrator_crashes_at_every_point_lose_and_repeat_nothing() {
    crash_points(SharedDb::sqlite("points")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_orchestrator_crashes_at_every_point_lose_and_repeat_nothing() {
    let Some(db) = SharedDb::postgres("points").await else {
        return;
    };
    crash_points(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_random_kills_lose_and_repeat_nothing() {
    random_kills(SharedDb::sqlite("random")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_random_kills_lose_and_repeat_nothing() {
    let Some(db) = SharedDb::postgres("random").await else {
        return;
    };
    random_kills(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orchestrators_on_postgres_complete_fifty_runs_exactly_once() {
    let Some(db) = SharedDb::postgres("pair").await else {
        return;
    };
    let cluster = Cluster::start(db, 2).await;
    let _first = cluster.orchestrator(0, None);
    let _second = cluster.orchestrator(1, None);
    let ids = cluster.start_runs(50).await;
    cluster.wait_all_published(&ids, Duration::from_secs(90)).await;
    cluster.assert_exactly_once(&ids).await;
    let Cluster { db, .. } = cluster;
    db.cleanup().await;
}

/// Live mode against fake providers: the orchestrator dies right after kie.ai
/// accepted a clip (before the answer was journaled), and right after
/// Upload-Post published; a new one continues. kie.ai cannot be asked by our
/// key, so the clip completes through its callback; the publish is found by
/// our request id. Exactly one submission per clip and one publish per run.
async fn live_crashes(db: SharedDb) {
    use support::fakes::{Calls, SIGNING, fake_kie, fake_shotstack, fake_upload_post};
    let calls = Calls::default();
    let (kie, shotstack, upload) = (
        fake_kie(calls.clone()).await,
        fake_shotstack(calls.clone()).await,
        fake_upload_post(calls.clone()).await,
    );
    let extra: Vec<(String, String)> = [
        ("USE_MOCK_PROVIDERS", "false"),
        ("KIEAI_API_KEY", "kie-live-key"),
        ("KIEAI_SIGNING_SECRET", SIGNING),
        ("KIEAI_BASE_URL", kie.as_str()),
        ("SHOTSTACK_API_KEY", "shotstack-live-key"),
        ("SHOTSTACK_BASE_URL", shotstack.as_str()),
        ("UPLOAD_POST_API_KEY", "upload-live-key"),
        ("UPLOAD_POST_BASE_URL", upload.as_str()),
        ("CLIP_POLL_AFTER_SECS", "2"),
        // One worker, so the crash interrupts exactly the call at the crash
        // point. With several, another worker may be killed between
        // journaling a kie.ai submission and sending it: kie.ai cannot be
        // asked about it, so that clip is (by design) never sent again and
        // its run fails after CLIP_TIMEOUT_SECS saying why.
        ("ORCHESTRATOR_WORKERS", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut cluster = Cluster::start_with(db, 1, extra).await;
    cluster.extra.push((
        "PUBLIC_BASE_URL".into(),
        format!("http://127.0.0.1:{}", cluster.api_port),
    ));
    let mut all = Vec::new();
    for point in ["riley.after_submit:2", "quinn.after_publish"] {
        let ids = cluster.start_runs(2).await;
        let mut doomed = cluster.orchestrator(0, Some(point));
        let signal = wait_exit(&mut doomed, Duration::from_secs(30)).await;
        assert_eq!(
            signal,
            Some(SIGABRT),
            "did not crash at {point}; logs in {}",
            cluster.db.dir.display()
        );
        let _survivor = cluster.orchestrator(0, None);
        cluster.wait_all_published(&ids, Duration::from_secs(60)).await;
        all.extend(ids);
    }
    let submissions = calls.0.lock().unwrap().clone();
    for id in &all {
        for clip in 0..2 {
            let marker = format!("runId={id}&index={clip}&");
            let count = submissions
                .iter()
                .filter(|(what, body)| {
                    what == "kieai.submit" && body["callBackUrl"].as_str().unwrap_or("").contains(&marker)
                })
                .count();
            assert_eq!(count, 1, "submissions of clip {clip} of {id}");
        }
        let publishes = submissions
            .iter()
            .filter(|(what, body)| {
                what == "upload_post.publish" && body["requestId"] == format!("{id}:quinn:publish:1")
            })
            .count();
        assert_eq!(publishes, 1, "publishes of {id}");
    }
    assert_eq!(calls.count("shotstack.render"), all.len(), "one render per run");
    let Cluster { db, .. } = cluster;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_live_mode_crashes_pay_nothing_twice() {
    live_crashes(SharedDb::sqlite("live")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_live_mode_crashes_pay_nothing_twice() {
    let Some(db) = SharedDb::postgres("live").await else {
        return;
    };
    live_crashes(db).await;
}
