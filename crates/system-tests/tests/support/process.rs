//! The `mw` binary as a real process: a scratch folder of its own, a clean
//! environment, a child killed when the test ends.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A scratch folder (no `.env.development` in it), removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mw-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The repository's project definitions.
pub fn projects_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../projects")
        .canonicalize()
        .unwrap()
}

/// `mw args` in `dir` with only PATH, the projects folder and `vars`.
pub fn mw(dir: &Scratch, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mw-system"));
    command
        .args(args)
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PROJECTS_DIR", projects_dir())
        .envs(vars.iter().copied());
    command
}

/// A child process, killed if the test ends before it exits.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
