//! The operator commands (`mw runs`, `mw schedules`, `mw hitl`, `mw demo`, `mw audit`, `mw costs`, `mw retention`)
//! as an operator runs them: the real `mw` binary against both services on
//! loopback, in text and in JSON, with their exit codes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::Duration as Days;
use myloware_api::store::{Artifact, ChatMessage, NewRun, Push, PushOutcome, WebhookDelivery, now};
use myloware_core::RunStatus;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::system;
use myloware_testkit::system::{API_KEY, System, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

/// `mw` with a clean environment (no `.env.development`), pointed at `api`.
fn mw_command(api: &str, key: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mw"));
    command
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("USER", "operator")
        .env("MW_API_URL", api)
        .env("API_KEY", key);
    command
}

/// Runs `mw` to the end, off the runtime the services serve on.
async fn mw(system: &System, args: &[&str]) -> Output {
    output_of(mw_command(&system.api, API_KEY, args)).await
}

async fn output_of(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Its stdout, asserting it succeeded.
#[track_caller]
fn ok(output: &Output) -> String {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

/// Its stderr, asserting it exited with `code`.
#[track_caller]
fn failed(output: &Output, code: i32) -> String {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(code), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stderr
}

fn json_of(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).expect("--json prints JSON")
}

/// The run id in a line like `run_abc123def456 started (pending)`.
fn run_id_in(stdout: &str) -> String {
    id_in(stdout, "run_")
}

/// The first id of `prefix` (`run_`, `sch_`) and 12 characters in `stdout`.
fn id_in(stdout: &str, prefix: &str) -> String {
    stdout
        .split_whitespace()
        .find(|w| w.starts_with(prefix) && w.len() == prefix.len() + 12)
        .unwrap_or_else(|| panic!("no {prefix} id in:\n{stdout}"))
        .to_string()
}

/// `mw` running in the background, its stdout read line by line as it comes.
struct Streaming {
    /// Taken by `finish`; killed on drop otherwise.
    child: Option<Child>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn spawn(api: &str, args: &[&str]) -> Streaming {
        let mut child = mw_command(api, API_KEY, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Streaming {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads until a line contains every one of `needles`; that line.
    async fn until(&mut self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + QUICK;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|n| line.contains(n)) {
                        return line;
                    }
                }
                Ok(None) => panic!("mw ended before printing {needles:?}:\n{}", self.seen.join("\n")),
                Err(_) => panic!("mw did not print {needles:?} in time:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// Waits for the exit; the status, all of stdout and stderr.
    async fn finish(mut self) -> (ExitStatus, String, String) {
        let child = self.child.take().unwrap();
        let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        (
            output.status,
            std::mem::take(&mut self.seen).join("\n"),
            text(&output.stderr),
        )
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The line index of the first line containing `needle`.
#[track_caller]
fn line_of(stdout: &str, needle: &str) -> usize {
    stdout
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{stdout}"))
}

/// How gates decided with the test's API key name their approver.
fn admin_key() -> String {
    format!("key:key-{}", myloware_core::auth::ApiKeys::fingerprint(API_KEY))
}

mod audit;
mod costs;
mod demo;
mod retention;
mod runs;
mod schedules;
mod usage;
