//! Benchmarks of MyloWare with targets (docs/benchmarks.md). Each binary in
//! `src/bin` measures one row of the targets table and prints, for each
//! target, the measured value and PASS or MISS, then one JSON line for
//! scripts. Where a target is relative, the ceiling it is relative to is
//! measured in the same run, so the ratio holds on a noisy machine.
//!
//! The modules are what the binaries share:
//!
//! - [`compare`], a real endpoint against its ceiling, rounds in ABBA order;
//! - [`callbacks`], signed kie.ai callbacks, each sent twice (the workload
//!   of `kieai-callbacks` and `scale-out`);
//! - [`gates`], aismr runs parked at the ideate gate, approved and watched
//!   (`gate-park` and `scale-out`);
//! - [`harness`], what every binary does around its measurement: its
//!   command line, header, database and logs, and report;
//! - [`db`], a database of the benchmark's own (a temporary SQLite file or
//!   a fresh Postgres schema), removed at the end;
//! - [`load`], a closed-loop HTTP/1.1 load generator with latency
//!   percentiles;
//! - [`services`], the `mw` binary's services as real processes (their
//!   RSS, their readiness) and in-process configuration;
//! - [`stats`], percentiles;
//! - [`report`], the machine, the targets and their verdicts.
//!
//! Crate graph: `myloware-bench` may import every MyloWare crate but
//! `myloware-cli`; none imports it.

pub mod callbacks;
pub mod compare;
pub mod db;
pub mod gates;
pub mod harness;
pub mod load;
pub mod report;
pub mod services;
pub mod stats;

use std::path::{Path, PathBuf};

/// The project catalog of the repository (`projects/`).
pub fn default_projects_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects")
}

pub use myloware_testkit::unique_suffix;
