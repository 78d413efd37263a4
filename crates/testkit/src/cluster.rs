//! An API and orchestrators as real `mw` processes on one database: started,
//! killed (`kill -9`) and started again at will; the API reaches the first
//! orchestrator through a chaos [`Proxy`]. When a test fails, the end of
//! every process's log is printed with it and the folder is kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use myloware_db::Db;
use serde_json::{Value, json};

use crate::process::{Process, Scratch};
use crate::proxy::Proxy;
use crate::system::API_KEY;

/// The signals a test expects a process to die of.
pub const SIGABRT: i32 = 6;
pub const SIGKILL: i32 = 9;

pub struct Cluster {
    bin: PathBuf,
    /// The processes' logs (and working folder).
    pub dir: Scratch,
    /// `DATABASE_URL` of the API and of the orchestrators (through proxies,
    /// for some scenarios).
    db_urls: (String, String),
    /// Variables of every process over the defaults (live mode).
    pub extra: Vec<(String, String)>,
    pub api_port: u16,
    pub orchestrator_ports: Vec<u16>,
    /// How the API reaches the first orchestrator: through this proxy
    /// (with [`Cluster::replicas`], a load balancer over all of them).
    pub to_orchestrator: Proxy,
    /// With [`Cluster::replicas`]: the API processes' ports, and the load
    /// balancer in front of them that everyone (the orchestrators, the
    /// mock providers' callbacks, the test) uses as the API.
    pub api_ports: Vec<u16>,
    to_api: Option<Proxy>,
    pub http: reqwest::Client,
    api: Option<Process>,
    orchestrator: Option<Process>,
    spawned: usize,
}

/// A test run body of project `test_video_gen`.
pub fn smoke(i: usize) -> Value {
    json!({"project": "test_video_gen", "input": {"prompt": format!("run {i}")}})
}

impl Cluster {
    /// Room for an API and `orchestrators` orchestrators of binary `bin` on
    /// the database at `db_url`; nothing started yet.
    pub async fn new(bin: &str, db_url: &str, orchestrators: usize) -> Cluster {
        let orchestrator_ports: Vec<u16> = (0..orchestrators.max(1)).map(|_| crate::free_port()).collect();
        Cluster {
            bin: PathBuf::from(bin),
            dir: Scratch::new("cluster"),
            db_urls: (db_url.to_string(), db_url.to_string()),
            extra: Vec::new(),
            api_port: crate::free_port(),
            to_orchestrator: Proxy::start(orchestrator_ports[0]).await,
            orchestrator_ports,
            api_ports: Vec::new(),
            to_api: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            api: None,
            orchestrator: None,
            spawned: 0,
        }
    }

    /// The API and one orchestrator, both healthy (the API migrates first;
    /// the orchestrator finds the schema ready).
    pub async fn start(bin: &str, db_url: &str, extra: Vec<(String, String)>) -> Cluster {
        Cluster::start_via(bin, (db_url, db_url), extra).await
    }

    /// [`Cluster::start`], the API reaching the database through
    /// `db_urls.0` and the orchestrator through `db_urls.1` (proxies).
    pub async fn start_via(bin: &str, db_urls: (&str, &str), extra: Vec<(String, String)>) -> Cluster {
        let mut cluster = Cluster::new(bin, db_urls.0, 1).await;
        cluster.db_urls.1 = db_urls.1.to_string();
        cluster.extra = extra;
        cluster.start_api().await;
        cluster.start_orchestrator().await;
        cluster
    }

    /// `apis` API processes and `orchestrators` orchestrators to come on
    /// `db_url`, each kind behind a round-robin load balancer, as in a
    /// deployment with replicas; nothing started yet ([`Cluster::spawn_api`],
    /// [`Cluster::spawn_orchestrator`]).
    pub async fn replicas(bin: &str, db_url: &str, apis: usize, orchestrators: usize) -> Cluster {
        let mut cluster = Cluster::new(bin, db_url, orchestrators).await;
        cluster.api_ports = (0..apis.max(1)).map(|_| crate::free_port()).collect();
        cluster.to_api = Some(Proxy::balance(cluster.api_ports.clone()).await);
        cluster.to_orchestrator = Proxy::balance(cluster.orchestrator_ports.clone()).await;
        cluster
    }

    /// API process `index` of [`Cluster::replicas`], healthy; the test owns it.
    pub async fn spawn_api(&mut self, index: usize) -> Process {
        let port = self.api_ports[index];
        let mut api = self.spawn("api", &[("API_PORT", port.to_string())], &format!("-{index}"));
        self.wait_healthy(&mut api, port).await;
        api
    }

    /// The API: its load balancer with [`Cluster::replicas`], else the one
    /// API process.
    pub fn api_url(&self) -> String {
        match &self.to_api {
            Some(balancer) => balancer.url(),
            None => format!("http://127.0.0.1:{}", self.api_port),
        }
    }

    pub fn orchestrator_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.orchestrator_ports[0])
    }

    /// Where the logs are, for failure messages.
    pub fn logs(&self) -> String {
        format!("logs in {}", self.dir.path().display())
    }

    /// The JSON log records of every `service` process started so far
    /// (`LOG_FORMAT=json`, flattened: `target`, `message`, the fields).
    pub fn log_records(&self, service: &str) -> Vec<Value> {
        let suffix = format!("-{service}");
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .filter(|p| {
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.contains(&suffix))
            })
            .collect();
        logs.sort();
        logs.iter()
            .flat_map(|log| {
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter_map(|line| serde_json::from_str(&line).ok())
            .collect()
    }

    fn env(&self, service: &str) -> Vec<(String, String)> {
        let projects = crate::projects_dir();
        let mut env: Vec<(String, String)> = [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("PROJECTS_DIR", projects.display().to_string()),
            (
                "DATABASE_URL",
                if service == "api" {
                    self.db_urls.0.clone()
                } else {
                    self.db_urls.1.clone()
                },
            ),
            ("BIND_HOST", "127.0.0.1".into()),
            ("API_PORT", self.api_port.to_string()),
            ("API_URL", self.api_url()),
            ("PUBLIC_BASE_URL", self.api_url()),
            ("ORCHESTRATOR_URL", self.to_orchestrator.url()),
            ("MOCK_PROVIDER_DELAY_MS", "150".into()),
            ("ENGINE_LEASE_SECS", "3".into()),
            ("ENGINE_POLL_MS", "100".into()),
            ("RATE_LIMIT_PER_MINUTE", "0".into()),
            ("LOG_FORMAT", "json".into()),
            ("RUST_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (name, value) in &self.extra {
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), value.clone()));
        }
        env
    }

    fn spawn(&mut self, service: &str, extra: &[(&str, String)], label: &str) -> Process {
        let mut env = self.env(service);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self.spawned += 1;
        let name = format!("{}-{service}{label}", self.spawned);
        Process::spawn(&name, &self.bin, &["serve", service], &env, self.dir.path())
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()))
    }

    /// Orchestrator `index` (not waited for), dying at `fault`
    /// (`MW_FAULT_CRASH`) when given; the test owns it.
    pub fn spawn_orchestrator(&mut self, index: usize, fault: Option<&str>) -> Process {
        let mut extra = vec![("ORCHESTRATOR_PORT", self.orchestrator_ports[index].to_string())];
        if let Some(fault) = fault {
            extra.push(("MW_FAULT_CRASH", fault.to_string()));
        }
        let label = format!("-{index}-{}", fault.unwrap_or("clean").replace(':', "_"));
        self.spawn("orchestrator", &extra, &label)
    }

    pub async fn start_api(&mut self) {
        let mut api = self.spawn("api", &[], "");
        self.wait_healthy(&mut api, self.api_port).await;
        self.api = Some(api);
    }

    pub async fn start_orchestrator(&mut self) {
        let mut orchestrator = self.spawn_orchestrator(0, None);
        self.wait_healthy(&mut orchestrator, self.orchestrator_ports[0]).await;
        self.orchestrator = Some(orchestrator);
    }

    /// Another API process on the same database, on a port of its own
    /// (a replica behind a load balancer), healthy; the test owns it.
    pub async fn spawn_api_replica(&mut self) -> (Process, u16) {
        let port = crate::free_port();
        let label = format!("-replica-{port}");
        let mut api = self.spawn("api", &[("API_PORT", port.to_string())], &label);
        self.wait_healthy(&mut api, port).await;
        (api, port)
    }

    pub fn kill_api(&mut self) {
        self.api.take().expect("the API runs").kill_nine();
    }

    pub fn kill_orchestrator(&mut self) {
        self.orchestrator.take().expect("the orchestrator runs").kill_nine();
    }

    async fn wait_healthy(&self, process: &mut Process, port: u16) {
        if let Err(why) = process.wait_healthy(port, Duration::from_secs(30)).await {
            panic!("{why}\n{}", self.logs());
        }
    }

    /// Starts `n` runs at once; their ids in no particular order.
    pub async fn start_runs(&self, n: usize, body: impl Fn(usize) -> Value) -> Vec<String> {
        let mut starts = tokio::task::JoinSet::new();
        for i in 0..n {
            let request = self
                .http
                .post(format!("{}/v1/runs/start", self.api_url()))
                .header("x-api-key", API_KEY)
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
    pub async fn get(&self, url: &str) -> Option<Value> {
        let mut request = self.http.get(url).build().ok()?;
        if url.contains("/v1/executions") {
            let keys =
                myloware_core::internal::InternalKeys::new(myloware_core::config::DEV_INTERNAL_SECRET.into(), None);
            myloware_http::internal::sign(&keys, &mut request);
        } else {
            request.headers_mut().insert("x-api-key", API_KEY.parse().ok()?);
        }
        let response = self.http.execute(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    pub async fn run(&self, run_id: &str) -> Value {
        self.get(&format!("{}/v1/runs/{run_id}", self.api_url()))
            .await
            .unwrap_or_else(|| panic!("cannot read {run_id}; {}", self.logs()))
    }

    pub async fn count_status(&self, ids: &[String], status: &str) -> usize {
        let mut count = 0;
        for id in ids {
            count += usize::from(self.run(id).await["status"] == status);
        }
        count
    }

    /// Waits until every run is `status`; fails as soon as one ends otherwise.
    pub async fn wait_all(&self, ids: &[String], status: &str, timeout: Duration) {
        let what = format!("every run {status}");
        crate::wait_until(timeout, Duration::from_millis(150), &what, move || async move {
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
                    "{id} ended {now}, not {status}: {}; {}",
                    self.run(id).await["result"]["error"],
                    self.logs()
                );
                if now != status {
                    waiting.push((id.clone(), now));
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            Err(format!("not yet: {waiting:?}; {}", self.logs()))
        })
        .await
    }

    /// No runnable execution, no undelivered event, no undelivered command.
    pub async fn wait_idle(&self, db: &Db) {
        let (api, orchestrator) = (myloware_api::store::open(db), myloware_orchestrator::store::open(db));
        let context = format!("; {}", self.logs());
        crate::wait_no_work(api.as_ref(), orchestrator.as_ref(), Duration::from_secs(30), &context).await;
    }

    /// Every event the orchestrator committed for each run was applied by
    /// the API exactly once and in order: the API's `last_event_seq` is the
    /// number of events `GET /v1/executions/{id}` lists, and the applied
    /// events are the outbox's, seq 1..n, same ids.
    pub async fn assert_events_complete(&self, db: &Db, ids: &[String]) {
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
            let applied = api.list_events(id).await.unwrap();
            let sent = orchestrator.outbox(id).await.unwrap();
            // (seq, event id) of each, as applied and as sent.
            let applied: Vec<(i64, &str)> = applied.iter().map(|e| (e.seq, e.event_id.as_str())).collect();
            let sent: Vec<(i64, &str)> = sent.iter().map(|e| (e.run_seq, e.event_id.as_str())).collect();
            assert_eq!(applied, sent, "events of {id} as applied and as sent");
            assert!(
                applied.iter().map(|(seq, _)| *seq).eq(1..=committed),
                "seqs of {id}: {applied:?}"
            );
        }
    }

    /// A published run as the API shows it: every video completed with its
    /// clip, the render and the publish URL, and their artifacts.
    pub async fn assert_published_in_full(&self, ids: &[String]) {
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
            let kinds = crate::system::artifact_kinds(&run);
            let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
            assert_eq!(count("kieai.clip"), videos.len(), "{id}: {kinds:?}");
            assert_eq!(count("render.url"), 1, "{id}: {kinds:?}");
            assert_eq!(count("publish.url"), 1, "{id}: {kinds:?}");
        }
    }

    /// The mocks were paid exactly once per clip (`clips` of them, or as
    /// many as the run has videos), render and publish, and each of those
    /// calls' cost was recorded once ([`Self::assert_costed_once`]).
    pub async fn assert_paid_once(&self, db: &Db, ids: &[String], clips: Option<usize>) {
        let store = myloware_orchestrator::store::open(db);
        for id in ids {
            let expected = self.paid_calls(id, clips).await;
            let mut counts: HashMap<(String, String), usize> = HashMap::new();
            for call in store.mock_calls(id).await.unwrap() {
                *counts.entry((call.provider, call.key)).or_default() += 1;
            }
            assert_eq!(counts, expected, "paid calls of {id}");
        }
        self.assert_costed_once(db, ids, clips).await;
    }

    /// Each paid call (a submission per clip, a render, a publish) has
    /// exactly one recorded cost, by its journal key, however often its
    /// step ran.
    pub async fn assert_costed_once(&self, db: &Db, ids: &[String], clips: Option<usize>) {
        let store = myloware_orchestrator::store::open(db);
        for id in ids {
            let expected = self.paid_calls(id, clips).await;
            let mut counts: HashMap<(String, String), usize> = HashMap::new();
            for cost in store.spend(id).await.unwrap() {
                let key = cost.journal_key.expect("a provider call's cost has its journal key");
                *counts.entry((cost.charge.provider, key)).or_default() += 1;
            }
            assert_eq!(counts, expected, "recorded costs of {id}");
        }
    }

    /// `(provider, journal key)` of every paid call of a published run, once.
    async fn paid_calls(&self, id: &str, clips: Option<usize>) -> HashMap<(String, String), usize> {
        let clips = match clips {
            Some(clips) => clips,
            None => self.run(id).await["result"]["videos"].as_array().unwrap().len(),
        };
        let mut expected: HashMap<(String, String), usize> = (0..clips)
            .map(|i| (("kieai".to_string(), format!("{id}:riley:clip:{i}")), 1))
            .collect();
        expected.insert(("shotstack".into(), format!("{id}:alex:render")), 1);
        expected.insert(("upload_post".into(), format!("{id}:quinn:publish:1")), 1);
        expected
    }

    /// Stops every process and removes the logs.
    pub async fn finish(self) {}
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop((self.api.take(), self.orchestrator.take()));
        if std::thread::panicking() {
            print_logs(self.dir.path());
            self.dir.keep();
        }
    }
}

/// The end of every log in `dir`, to stderr (the test harness shows it
/// with the failure).
fn print_logs(dir: &Path) {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!(
            "----- {} (last 40 lines) -----\n{}",
            log.display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
}
