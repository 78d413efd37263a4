//! The `mw` binary as a real process: a scratch folder of its own, a clean
//! environment, its output in a log, killed when dropped.
//!
//! The binary is the caller's (`env!("CARGO_BIN_EXE_mw")` in the cli
//! package, `env!("CARGO_BIN_EXE_mw-system")` in the system tests, a
//! release build in the benchmarks): this library cannot name it.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A scratch folder (no `.env.development` in it), removed on drop unless
/// [kept](Scratch::keep).
pub struct Scratch(pub PathBuf, bool);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mw-test-{name}-{}", crate::unique_suffix()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir, false)
    }

    /// Leaves the folder in place (for a failure's logs).
    pub fn keep(&mut self) {
        self.1 = true;
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `bin args` in `dir` with only `PATH`, the projects folder and `vars`.
pub fn mw(bin: &str, dir: &Scratch, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(args)
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PROJECTS_DIR", crate::projects_dir())
        .envs(vars.iter().copied());
    command
}

/// A child process, killed (SIGKILL) and reaped if the test ends before it
/// exits; its output in `log` when it has one.
pub struct Process {
    pub child: Child,
    pub name: String,
    pub log: Option<PathBuf>,
    spawned: Instant,
}

impl Process {
    /// A child already spawned, without a log.
    pub fn of(child: Child) -> Process {
        Process {
            child,
            name: "child".into(),
            log: None,
            spawned: Instant::now(),
        }
    }

    /// Starts `bin args` in `dir` with exactly `env` (nothing inherited, so
    /// no `.env.development` or user setting leaks in), stdout and stderr
    /// in `dir/<name>.log`.
    pub fn spawn(
        name: &str,
        bin: &Path,
        args: &[&str],
        env: &[(String, String)],
        dir: &Path,
    ) -> std::io::Result<Process> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(args)
            .current_dir(dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        Ok(Process {
            child,
            name: name.to_string(),
            log: Some(log),
            spawned: Instant::now(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `GET /health` on `port` every 2 ms until it answers 200; the
    /// time since the spawn, or why not (with the end of the log).
    pub async fn wait_healthy(&mut self, port: u16, timeout: Duration) -> Result<Duration, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| e.to_string())?;
        let url = format!("http://127.0.0.1:{port}/health");
        loop {
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(self.spawned.elapsed());
            }
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "{} exited ({status}) before answering:\n{}",
                    self.name,
                    self.log_tail(40)
                ));
            }
            if self.spawned.elapsed() > timeout {
                return Err(format!(
                    "{} did not answer /health within {timeout:?}:\n{}",
                    self.name,
                    self.log_tail(40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self
            .log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `kill -9`, and wait for it to be gone.
    pub fn kill_nine(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The signal that ended the process, waiting up to `within`.
    pub async fn wait_signal(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.signal();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
