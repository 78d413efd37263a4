//! Bad usage, an unreachable API, and `mw demo` against `mw dev`.

use super::*;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    myloware_testkit::free_port()
}

#[test]
fn bad_usage_exits_2_and_an_unreachable_api_exits_1_with_the_hint() {
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let bad_usage: [&[&str]; 9] = [
        &["runs"],
        &["runs", "start", "aismr"],
        &["runs", "list", "--limit", "0"],
        &["runs", "watch"],
        &["runs", "frobnicate"],
        &["hitl", "approve", "run_000000000000", "publish"],
        &["hitl", "reject", "run_000000000000", "ideate"],
        &["retention", "prune", "--older-than-days", "0"],
        &["demo", "aismr", "--timeout", "soon"],
    ];
    for args in bad_usage {
        let output = mw_command(&nowhere, API_KEY, args).output().unwrap();
        let stderr = failed(&output, 2);
        assert!(
            stderr.contains("Usage: mw") || stderr.contains("try '--help'"),
            "{args:?}: {stderr}"
        );
    }
    let unreachable: [&[&str]; 8] = [
        &["runs", "list"],
        &["runs", "show", "run_000000000000"],
        &["runs", "start", "aismr", "--object", "candles"],
        &["runs", "watch", "run_000000000000"],
        &["hitl", "pending"],
        &["hitl", "approve", "run_000000000000", "ideate"],
        &["demo", "aismr", "--auto-approve"],
        &["retention", "prune", "--dry-run"],
    ];
    for args in unreachable {
        let output = mw_command(&nowhere, API_KEY, args).output().unwrap();
        let stderr = failed(&output, 1);
        assert!(
            stderr.contains(&format!("cannot reach the API at {nowhere}"))
                && stderr.contains("start it with `mw dev` or set MW_API_URL"),
            "{args:?}: {stderr}"
        );
    }
    let output = mw_command(&nowhere, API_KEY, &["runs", "list"])
        .env_remove("API_KEY")
        .output()
        .unwrap();
    assert!(failed(&output, 1).contains("no API key: set API_KEY"));
}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The acceptance check exactly as stated: `mw demo aismr --auto-approve`
/// against `mw dev` (a real process, SQLite in a folder of its own).
#[test]
fn demo_auto_approve_against_mw_dev() {
    let dir = Scratch(std::env::temp_dir().join(format!("mw-operator-dev-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (api, orchestrator) = (closed_port(), closed_port());
    let api_url = format!("http://127.0.0.1:{api}");
    let projects = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects");
    let _dev = Running(
        Command::new(env!("CARGO_BIN_EXE_mw"))
            .arg("dev")
            .current_dir(&dir.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PROJECTS_DIR", projects)
            .env("DATABASE_URL", format!("sqlite://{}/mw.db", dir.0.display()))
            .env("API_KEY", API_KEY)
            .env("BIND_HOST", "127.0.0.1")
            .env("API_PORT", api.to_string())
            .env("ORCHESTRATOR_PORT", orchestrator.to_string())
            .env("ORCHESTRATOR_URL", format!("http://127.0.0.1:{orchestrator}"))
            .env("API_URL", &api_url)
            .env("PUBLIC_BASE_URL", &api_url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in [api, orchestrator] {
        while reqwest::blocking::get(format!("http://127.0.0.1:{port}/health")).is_err() {
            assert!(Instant::now() < deadline, "mw dev did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let output = mw_command(
        &api_url,
        API_KEY,
        &["demo", "aismr", "--auto-approve", "--timeout", "120"],
    )
    .output()
    .unwrap();
    let stdout = ok(&output);
    let run_id = run_id_in(&stdout);
    for needle in [
        format!("/v1/hitl/approve/{run_id}/ideate?token="),
        "clip 12/12 completed".to_string(),
        // The mock render, copied into `mw dev`'s asset folder (no setup).
        format!("render: {api_url}/v1/assets/aismr/{run_id}/render-0.mp4?expires="),
        format!("/v1/hitl/approve/{run_id}/prepublish?token="),
        "publish: https://".to_string(),
        format!("{run_id} published after"),
    ] {
        assert!(stdout.contains(&needle), "{needle:?} in:\n{stdout}");
    }
    let copy = dir.0.join(format!("data/assets/aismr/{run_id}/render-0.mp4"));
    assert!(copy.is_file(), "{} is missing", copy.display());
}
