//! The `mw` binary as an operator runs it: real processes, a clean
//! environment, a folder of its own.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const LIVE_SECRETS: [(&str, &str); 4] = [
    ("KIEAI_API_KEY", "kie-key-value"),
    ("KIEAI_SIGNING_SECRET", "kie-signing-value"),
    ("SHOTSTACK_API_KEY", "shotstack-key-value"),
    ("UPLOAD_POST_API_KEY", "upload-key-value"),
];
const MISSING_IN_LIVE: [&str; 4] = [
    "KIEAI_API_KEY",
    "KIEAI_SIGNING_SECRET",
    "SHOTSTACK_API_KEY",
    "UPLOAD_POST_API_KEY",
];

use myloware_testkit::process::{self, Process, Scratch};
use myloware_testkit::{free_port, projects_dir};

/// `mw` as an operator runs it, with a database in `dir` unless `vars`
/// names one.
fn mw(dir: &Scratch, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let database = format!("sqlite://{}/mw.db", dir.0.display());
    let mut all = vec![("DATABASE_URL", database.as_str())];
    all.extend_from_slice(vars);
    process::mw(env!("CARGO_BIN_EXE_mw"), dir, args, &all)
}

fn run(dir: &Scratch, args: &[&str], vars: &[(&str, &str)]) -> Output {
    mw(dir, args, vars).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn wait_for_health(port: u16) -> Duration {
    let started = Instant::now();
    let client = reqwest::blocking::Client::new();
    loop {
        if let Ok(response) = client.get(format!("http://127.0.0.1:{port}/health")).send() {
            if response.status().is_success() {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "port {port} never became healthy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `mw dev` in `dir` on `api` and `orchestrator` with `extra` variables
/// (its output discarded), once both services answer `/health`.
fn start_dev(dir: &Scratch, api: u16, orchestrator: u16, extra: &[(&str, &str)]) -> Process {
    let (api_text, orchestrator_text) = (api.to_string(), orchestrator.to_string());
    let orchestrator_url = format!("http://127.0.0.1:{orchestrator}");
    let mut vars = vec![
        ("API_PORT", api_text.as_str()),
        ("ORCHESTRATOR_PORT", orchestrator_text.as_str()),
        ("ORCHESTRATOR_URL", orchestrator_url.as_str()),
        ("BIND_HOST", "127.0.0.1"),
    ];
    vars.extend_from_slice(extra);
    let dev = Process::of(
        mw(dir, &["dev"], &vars)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_health(api);
    wait_for_health(orchestrator);
    dev
}

fn get_json(port: u16, path: &str, key: &str) -> Value {
    reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("x-api-key", key)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn help_explains_every_command() {
    let dir = Scratch::new("help");
    let output = run(&dir, &["--help"], &[]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    for command in ["serve", "dev", "migrate", "validate", "ingest"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    let output = run(&dir, &["ingest", "run", "--help"], &[]);
    assert!(text(&output.stdout).contains("--dry-run"));
}

#[test]
fn validate_env_in_mock_mode_prints_mode_and_hosts() {
    let dir = Scratch::new("validate-mock");
    let output = run(&dir, &["validate", "env"], &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("providers mode: mock"), "{stdout}");
    for host in [
        "https://api.kie.ai",
        "https://api.shotstack.io",
        "https://api.upload-post.com",
    ] {
        assert!(stdout.contains(host), "{host} missing from:\n{stdout}");
    }
    assert!(
        stdout.contains("rendered videos: local folder data/assets (URLs valid 168 h)"),
        "{stdout}"
    );
    assert!(stdout.contains("configuration OK"));
}

#[test]
fn validate_env_reports_the_price_table_and_an_unknown_price_key() {
    let dir = Scratch::new("validate-prices");
    let output = run(&dir, &["validate", "env"], &[]);
    let stdout = text(&output.stdout);
    assert!(
        stdout
            .contains("prices: defaults (kie.ai veo3_fast $0.40/clip, Shotstack $0.30/min, Upload-Post $0.60/publish"),
        "{stdout}"
    );
    let file = dir.0.join("prices.toml");
    std::fs::write(&file, "[kieai.clip]\nveo3_fast = 0.3\n").unwrap();
    let path = file.display().to_string();
    let output = run(&dir, &["validate", "env"], &[("PRICES_FILE", &path)]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains(&format!("prices: PRICES_FILE {path} (kie.ai veo3_fast $0.30/clip")),
        "{stdout}"
    );

    std::fs::write(&file, "[kieai.clip]\nveo3_fast = 0.3\n[shotstack]\nper_render = 1\n").unwrap();
    let output = run(&dir, &["validate", "env"], &[("PRICES_FILE", &path)]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("PRICES_FILE: ") && stderr.contains("per_render"),
        "{stderr}"
    );
}

#[test]
fn live_mode_without_secrets_is_refused_by_validate_and_serve() {
    let dir = Scratch::new("live-missing");
    let live = [("USE_MOCK_PROVIDERS", "false")];
    for args in [&["validate", "env"][..], &["serve", "api"], &["serve", "orchestrator"]] {
        let output = run(&dir, args, &live);
        assert!(!output.status.success(), "mw {args:?} started without secrets");
        let stderr = text(&output.stderr);
        for var in MISSING_IN_LIVE {
            assert!(
                stderr.contains(&format!("{var}: required in live mode")),
                "mw {args:?}: {var} not named in:\n{stderr}"
            );
        }
    }
}

#[test]
fn weak_keys_are_refused_outside_development_without_printing_them() {
    let dir = Scratch::new("weak");
    let output = run(
        &dir,
        &["validate", "env"],
        &[
            ("ENVIRONMENT", "production"),
            ("API_KEY", "short-secret-value"),
            ("HITL_SECRET", "dev-hitl-secret-not-for-production"),
        ],
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("API_KEY: too short"), "{stderr}");
    assert!(stderr.contains("HITL_SECRET: is a development default"), "{stderr}");
    assert!(!stderr.contains("short-secret-value"), "a secret was printed: {stderr}");
}

#[test]
fn ingest_dry_run_validates_and_counts_without_writing() {
    let dir = Scratch::new("ingest");
    let output = run(&dir, &["ingest", "run", "--dry-run"], &[("LOG_FORMAT", "json")]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains("projects: 3 (aismr, general, test_video_gen), personas: 5, guardrails: 11"),
        "{stdout}"
    );
    assert!(text(&output.stderr).contains("api.kie.ai"), "provider hosts are logged");
    assert!(!dir.0.join("mw.db").exists(), "a dry run writes nothing");

    let output = run(&dir, &["ingest", "run"], &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("loaded 19 knowledge documents"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn a_broken_project_file_is_named_with_its_field() {
    let dir = Scratch::new("broken");
    let projects = dir.0.join("projects");
    std::fs::create_dir_all(projects.join("personas")).unwrap();
    for entry in std::fs::read_dir(projects_dir().join("personas")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), projects.join("personas").join(entry.file_name())).unwrap();
    }
    let aismr = std::fs::read_to_string(projects_dir().join("aismr.toml")).unwrap();
    std::fs::write(
        projects.join("aismr.toml"),
        aismr.replace("videoCount = 12", "videoCount = 0"),
    )
    .unwrap();
    let output = run(
        &dir,
        &["ingest", "run", "--dry-run"],
        &[("PROJECTS_DIR", projects.to_str().unwrap())],
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("aismr.toml: specs.videoCount: must be between 1 and 50"),
        "{stderr}"
    );
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = Scratch::new("migrate");
    let url = format!("sqlite://{}/nested/folder/mw.db", dir.0.display());
    let output = run(&dir, &["migrate"], &[("DATABASE_URL", &url)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(dir.0.join("nested/folder/mw.db").exists());
    // Twice is fine.
    assert!(run(&dir, &["migrate"], &[("DATABASE_URL", &url)]).status.success());
}

#[test]
fn serve_api_in_live_mode_with_every_secret_reports_live() {
    let dir = Scratch::new("live");
    let port = free_port();
    let port_text = port.to_string();
    let mut vars = vec![
        ("USE_MOCK_PROVIDERS", "false"),
        ("API_PORT", port_text.as_str()),
        ("BIND_HOST", "127.0.0.1"),
    ];
    vars.extend(LIVE_SECRETS);
    let child = Process::of(
        mw(&dir, &["serve", "api"], &vars)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_health(port);
    let project = get_json(port, "/v1/projects/test_video_gen", "dev-api-key-not-for-production");
    assert_eq!(project["providers"]["mode"], "live");
    drop(child);
}

#[test]
fn dev_runs_both_services_in_mock_mode_and_stops_on_sigterm() {
    let dir = Scratch::new("dev");
    let (api, orchestrator) = (free_port(), free_port());
    let started = Instant::now();
    let mut child = start_dev(&dir, api, orchestrator, &[("USE_MOCK_PROVIDERS", "false")]);
    eprintln!("mw dev healthy after {:?} (debug build)", started.elapsed());
    let project = get_json(api, "/v1/projects/test_video_gen", "dev-api-key-not-for-production");
    assert_eq!(project["providers"]["mode"], "mock", "mw dev always mocks providers");
    let orchestrator_health = get_json(orchestrator, "/health", "");
    assert_eq!(orchestrator_health["service"], "orchestrator");

    // SIGTERM: both services drain and the process exits cleanly.
    let pid = child.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "mw dev did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// Runs a runbook line with `sh`, the way an operator would.
fn shell(line: &str, vars: &[(&str, &str)]) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(line)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert!(output.status.success(), "{line}: {}", text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn the_runbooks_commands_work_against_mw_dev() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "curl is needed for the runbook test");
        return;
    }
    let dir = Scratch::new("runbook");
    let (api, orchestrator) = (free_port(), free_port());
    let public = format!("http://localhost:{api}");
    let _dev = start_dev(&dir, api, orchestrator, &[("PUBLIC_BASE_URL", public.as_str())]);
    let key = "dev-api-key-not-for-production";
    let env = [("API_KEY", key)];

    // §1: mock mode, health of both services.
    let providers = shell(
        &format!("curl -sS -H \"x-api-key: $API_KEY\" http://localhost:{api}/v1/projects/test_video_gen"),
        &env,
    );
    let providers: Value = serde_json::from_str(&providers).unwrap();
    assert_eq!(providers["providers"]["mode"], "mock");
    for port in [api, orchestrator] {
        let health: Value =
            serde_json::from_str(&shell(&format!("curl -sS http://localhost:{port}/health"), &[])).unwrap();
        assert_eq!(health["status"], "ok");
    }

    // §2: a run waiting at the ideate gate, a fresh link, the manual approval.
    let client = reqwest::blocking::Client::new();
    let started: Value = client
        .post(format!("http://127.0.0.1:{api}/v1/runs/start"))
        .header("x-api-key", key)
        .json(&serde_json::json!({"project": "aismr", "input": {"object": "candles"}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let run_id = started["runId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(api, &format!("/v1/runs/{run_id}"), key)["status"] != "awaiting_ideate" {
        assert!(Instant::now() < deadline, "run never reached the ideate gate");
        std::thread::sleep(Duration::from_millis(50));
    }
    let link = shell(
        &format!("curl -sS -H \"x-api-key: $API_KEY\" http://localhost:{api}/v1/hitl/link/{run_id}/ideate"),
        &env,
    );
    let link: Value = serde_json::from_str(&link).unwrap();
    let token = link["token"].as_str().unwrap().to_string();
    let approved = shell(
        &format!(
            "curl -sS -H \"x-api-key: $API_KEY\" \\\n  \"http://localhost:{api}/v1/hitl/approve/{run_id}/ideate?token=$TOKEN\""
        ),
        &[("API_KEY", key), ("TOKEN", token.as_str())],
    );
    let approved: Value = serde_json::from_str(&approved).unwrap();
    assert_eq!(approved["status"], "approved", "{approved}");
    // An expired or foreign token: the documented 403.
    // The dead-letter queue from the operator's side.
    let api_url = format!("http://127.0.0.1:{api}");
    let list = mw(&dir, &["dlq", "list", "--api-url", &api_url], &[("API_KEY", key)])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(text(&list.stdout).trim(), "no dead letters");
    let replay = mw(
        &dir,
        &["dlq", "replay", "--all", "--api-url", &api_url],
        &[("API_KEY", key)],
    )
    .output()
    .unwrap();
    assert!(!replay.status.success());
    assert!(
        text(&replay.stderr).contains("nothing to replay"),
        "{}",
        text(&replay.stderr)
    );
    let unauthorized = mw(&dir, &["dlq", "list", "--api-url", &api_url], &[("API_KEY", "wrong")])
        .output()
        .unwrap();
    assert!(
        text(&unauthorized.stderr).contains("set API_KEY"),
        "{}",
        text(&unauthorized.stderr)
    );

    let refused = shell(
        &format!(
            "curl -sS \"http://localhost:{api}/v1/hitl/approve/{run_id}/prepublish?token=$TOKEN\" -H 'accept: application/json'"
        ),
        &[("TOKEN", token.as_str())],
    );
    assert_eq!(refused.trim(), r#"{"detail":"invalid or expired token"}"#);
}
