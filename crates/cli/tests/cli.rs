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
    spawn_dev(&mut dev_command(dir, api, orchestrator, extra), api, orchestrator)
}

/// The `mw dev` command of [`start_dev`], not started.
fn dev_command(dir: &Scratch, api: u16, orchestrator: u16, extra: &[(&str, &str)]) -> Command {
    let (api_text, orchestrator_text) = (api.to_string(), orchestrator.to_string());
    let orchestrator_url = format!("http://127.0.0.1:{orchestrator}");
    let mut vars = vec![
        ("API_PORT", api_text.as_str()),
        ("ORCHESTRATOR_PORT", orchestrator_text.as_str()),
        ("ORCHESTRATOR_URL", orchestrator_url.as_str()),
        ("BIND_HOST", "127.0.0.1"),
    ];
    vars.extend_from_slice(extra);
    mw(dir, &["dev"], &vars)
}

fn spawn_dev(command: &mut Command, api: u16, orchestrator: u16) -> Process {
    let dev = Process::of(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    wait_for_health(api);
    wait_for_health(orchestrator);
    dev
}

/// A projects folder in `dir` with the repository's persona prompts and
/// `projects` (file names), `edit` applied to each project's text.
fn projects_copy(dir: &Scratch, projects: &[&str], edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let folder = dir.0.join("projects");
    std::fs::create_dir_all(folder.join("personas")).unwrap();
    for entry in std::fs::read_dir(projects_dir().join("personas")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), folder.join("personas").join(entry.file_name())).unwrap();
    }
    for project in projects {
        let text = std::fs::read_to_string(projects_dir().join(project)).unwrap();
        std::fs::write(folder.join(project), edit(text)).unwrap();
    }
    folder
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
    assert!(
        stdout.contains("traces: not exported, with prompts and completions, secrets redacted (TRACE_CONTENT=true)"),
        "development records content by default:\n{stdout}"
    );
    assert!(stdout.contains("configuration OK"));

    let output = run(&dir, &["validate", "env"], &[("TRACE_CONTENT", "sometimes")]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("TRACE_CONTENT: expected true or false"), "{stderr}");
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
    let projects = projects_copy(&dir, &["aismr.toml"], |text| {
        text.replace("videoCount = 12", "videoCount = 0")
    });
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

/// `mw` in `dir` without PROJECTS_DIR: an operator outside the checkout.
fn run_anywhere(dir: &Scratch, args: &[&str], vars: &[(&str, &str)]) -> Output {
    mw(dir, args, vars).env_remove("PROJECTS_DIR").output().unwrap()
}

#[test]
fn validate_and_ingest_work_from_an_empty_folder_with_the_shipped_projects() {
    let dir = Scratch::new("anywhere");
    let output = run_anywhere(&dir, &["validate", "env"], &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains("env file: none (no .env.development in the current folder; ENVIRONMENT=development)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("projects: 3 (aismr, general, test_video_gen), shipped in the binary"),
        "{stdout}"
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");

    let output = run_anywhere(&dir, &["ingest", "run", "--dry-run"], &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains(
            "projects: 3 (aismr, general, test_video_gen), personas: 5, guardrails: 11, knowledge documents: 19 (shipped in the binary)"
        ),
        "{stdout}"
    );
}

#[test]
fn projects_dir_with_one_project_is_the_whole_catalog() {
    let dir = Scratch::new("one-project");
    let folder = projects_copy(&dir, &["test_video_gen.toml"], |text| text);
    let folder = folder.display().to_string();
    let output = run(&dir, &["validate", "env"], &[("PROJECTS_DIR", &folder)]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains(&format!("projects: 1 (test_video_gen), PROJECTS_DIR {folder}")),
        "{stdout}"
    );
}

#[test]
fn dev_serves_the_shipped_projects_from_an_empty_folder() {
    let dir = Scratch::new("dev-anywhere");
    let (api, orchestrator) = (free_port(), free_port());
    let mut command = dev_command(&dir, api, orchestrator, &[]);
    let _dev = spawn_dev(command.env_remove("PROJECTS_DIR"), api, orchestrator);
    let projects = get_json(api, "/v1/projects", "dev-api-key-not-for-production");
    let names: Vec<&str> = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["project"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["aismr", "general", "test_video_gen"]);
    // The orchestrator's catalog too: its per-project series (and project
    // budgets) come from it.
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{orchestrator}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("project=\"aismr\""), "{metrics}");
}

#[test]
fn env_file_fills_what_the_environment_does_not_set() {
    let dir = Scratch::new("env-file");
    std::fs::write(
        dir.0.join(".env.development"),
        "PUBLIC_BASE_URL=http://default-file.test:1\n",
    )
    .unwrap();
    let output = run(&dir, &["validate", "env"], &[]);
    assert!(
        text(&output.stdout).contains("public base url: http://default-file.test:1/"),
        "without --env-file, .env.development is read in development: {}",
        text(&output.stdout)
    );

    let file = dir.0.join("custom.env");
    std::fs::write(
        &file,
        "# the operator's file\nPUBLIC_BASE_URL=http://from-file.test:8080\n\
         ORCHESTRATOR_URL=http://from-file.test:8090\nMW_API_URL=http://127.0.0.1:9\nAPI_KEY=from-file-key\n",
    )
    .unwrap();
    let path = file.display().to_string();
    let output = run(
        &dir,
        &["--env-file", &path, "validate", "env"],
        &[("ORCHESTRATOR_URL", "http://from-env.test:8090")],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains(&format!(
            "env file: {path} (--env-file): 4 variable(s); the environment overrides ORCHESTRATOR_URL"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("public base url: http://from-file.test:8080/"),
        "{stdout}"
    );
    assert!(
        stdout.contains("orchestrator url: http://from-env.test:8090/"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("default-file.test"),
        "--env-file replaces .env.development: {stdout}"
    );

    // After the command as well, and for flags read from the environment.
    let output = run(&dir, &["dlq", "list", "--env-file", &path], &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot reach the API at http://127.0.0.1:9"),
        "{stderr}"
    );
}

#[test]
fn env_production_is_read_in_production() {
    let dir = Scratch::new("env-production");
    // Read in production, its development keys would be refused.
    std::fs::copy(
        myloware_testkit::repo().join(".env.development"),
        dir.0.join(".env.development"),
    )
    .unwrap();
    let production = format!(
        "API_KEY={}\nHITL_SECRET={}\nINTERNAL_SECRET={}\nDATABASE_URL=postgres://mw@db.internal:5432/mw\n\
         PUBLIC_BASE_URL=https://from-file.example.com\n",
        "k".repeat(40),
        "h".repeat(40),
        "i".repeat(40)
    );
    std::fs::write(dir.0.join(".env.production"), production).unwrap();
    let vars = [
        ("ENVIRONMENT", "production"),
        ("PUBLIC_BASE_URL", "https://from-env.example.com"),
    ];
    // Without the test's SQLite DATABASE_URL: the file names Postgres.
    let validate = || {
        mw(&dir, &["validate", "env"], &vars)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let output = validate();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains(
            "env file: .env.production (ENVIRONMENT=production): 5 variable(s); the environment overrides PUBLIC_BASE_URL"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("environment: production"), "{stdout}");
    assert!(
        stdout.contains("database: postgres://mw@db.internal:5432/mw"),
        "{stdout}"
    );
    assert!(
        stdout.contains("public base url: https://from-env.example.com/"),
        "{stdout}"
    );

    // The file is what made it valid; a missing one is fine, not read.
    std::fs::remove_file(dir.0.join(".env.production")).unwrap();
    let output = validate();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout)
            .contains("env file: none (no .env.production in the current folder; ENVIRONMENT=production)"),
        "{}",
        text(&output.stdout)
    );
    assert!(
        text(&output.stderr).contains("API_KEY: missing; required in production"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_bad_env_file_is_refused_before_anything_runs() {
    let dir = Scratch::new("env-file-bad");
    let missing = dir.0.join("missing.env").display().to_string();
    let output = run(&dir, &["--env-file", &missing, "migrate"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "error: env file {missing} (--env-file): cannot read it: No such file or directory"
        )),
        "{stderr}"
    );
    assert!(!dir.0.join("mw.db").exists(), "nothing ran");

    let folder = dir.0.display().to_string();
    let output = run(&dir, &["validate", "env", "--env-file", &folder], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("cannot read it"),
        "{}",
        text(&output.stderr)
    );

    // A line that is not NAME=value is named by its number; its text, which
    // may be a pasted secret, is not printed.
    let broken = dir.0.join("broken.env");
    std::fs::write(&broken, "API_KEY=a-fine-value\nsk-pasted-secret-value\n").unwrap();
    let broken = broken.display().to_string();
    let output = run(&dir, &["--env-file", &broken, "validate", "env"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("env file {broken} (--env-file): line 2 is not NAME=value")),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-pasted-secret-value"), "{stderr}");
    assert!(text(&output.stdout).is_empty(), "{}", text(&output.stdout));
}
