//! aismr runs parked at the `ideate` gate, then approved: the workload and
//! the watching that `gate-park` and `scale-out` share. The runs are
//! watched in the database ([`Probe`]), so that watching adds no request to
//! the API under test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde_json::{Value, json};

use crate::db::Probe;
use crate::load::Workload;
use crate::services;

/// The start of the `i`-th aismr run (for [`services::RunStarts`]).
pub fn aismr_start(i: u64) -> Value {
    json!({"project": "aismr", "input": {"object": format!("candle {i}")}})
}

/// Where a run is once it left the ideate gate: at the next gate,
/// `prepublish`, or beyond.
pub const LEFT_THE_GATE: [&str; 3] = ["awaiting_prepublish", "publishing", "published"];
/// Where no run of the benchmark should end.
pub const ENDED_BADLY: [&str; 3] = ["failed", "cancelled", "rejected"];

/// Runs in any of `statuses`.
pub fn count_of(counts: &BTreeMap<String, i64>, statuses: &[&str]) -> i64 {
    statuses.iter().filter_map(|s| counts.get(*s)).sum()
}

/// `12.3 s (812/s)`: how long `count` requests took, and their rate.
pub fn per_second(count: usize, took: Duration) -> String {
    format!(
        "{:.1} s ({:.0}/s)",
        took.as_secs_f64(),
        count as f64 / took.as_secs_f64()
    )
}

/// One approval of the ideate gate per run, with the API key (the
/// runbook's way).
pub struct Approvals {
    pub api: SocketAddr,
    pub run_ids: Vec<String>,
}

impl Workload for Approvals {
    fn request(&self, i: u64, buf: &mut Vec<u8>) -> bool {
        let Some(run_id) = self.run_ids.get(i as usize) else {
            return false;
        };
        let request = format!(
            "POST /v1/hitl/approve/{run_id}/ideate HTTP/1.1\r\nhost: {}\r\nx-api-key: {}\r\ncontent-length: 0\r\n\r\n",
            self.api,
            services::API_KEY
        );
        buf.extend_from_slice(request.as_bytes());
        true
    }

    fn response(&self, _i: u64, status: u16, body: &[u8]) -> bool {
        let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        status == 200 && answer["status"] == "approved"
    }
}

/// Polls until `runs` runs are in one of `statuses`; the time since
/// `since`. Fails when a run ended badly, or after `timeout`.
pub async fn wait_for(
    probe: &Probe,
    statuses: &[&str],
    runs: usize,
    since: Instant,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<Duration> {
    let mut last_print = Instant::now();
    loop {
        let counts = probe.status_counts().await?;
        ensure!(count_of(&counts, &ENDED_BADLY) == 0, "runs ended badly: {counts:?}");
        if count_of(&counts, statuses) >= runs as i64 {
            return Ok(since.elapsed());
        }
        if since.elapsed() > timeout {
            bail!("not all {what} after {timeout:?}: {counts:?}");
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            println!("  … {:.0} s: {counts:?}", since.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How the approved runs moved on.
pub struct Progress {
    /// When no run was awaiting ideate any more.
    pub none_at_ideate: Option<Duration>,
    /// When every run was at prepublish or beyond.
    pub all_past: Option<Duration>,
    /// Runs at prepublish or beyond when watching stopped.
    pub past: i64,
    pub watched: Duration,
    /// Runs per second getting past the gate over the second half of the
    /// watch.
    pub recent_rate: f64,
}

impl Progress {
    /// When all would have been past the gate at the recent rate (infinite
    /// without progress).
    pub fn projected_secs(&self, runs: usize) -> f64 {
        match self.all_past {
            Some(all) => all.as_secs_f64(),
            None if self.recent_rate > 0.0 => {
                self.watched.as_secs_f64() + (runs as f64 - self.past as f64) / self.recent_rate
            }
            None => f64::INFINITY,
        }
    }

    /// "about N s at the rate reached", or that there was no progress.
    pub fn projection(&self, runs: usize) -> String {
        let secs = self.projected_secs(runs);
        if secs.is_finite() {
            format!("all would take about {secs:.0} s at the rate reached")
        } else {
            "no run got past the gate yet".to_string()
        }
    }
}

/// Watches the database's runs until `runs` of them are at prepublish or
/// beyond, or `cap` after `since`.
pub async fn follow_approvals(probe: &Probe, runs: usize, since: Instant, cap: Duration) -> anyhow::Result<Progress> {
    let mut progress = Progress {
        none_at_ideate: None,
        all_past: None,
        past: 0,
        watched: Duration::ZERO,
        recent_rate: 0.0,
    };
    let mut samples: Vec<(Duration, i64)> = Vec::new();
    let mut last_print = Instant::now();
    loop {
        let counts = probe.status_counts().await?;
        ensure!(count_of(&counts, &ENDED_BADLY) == 0, "runs ended badly: {counts:?}");
        let now = since.elapsed();
        progress.past = count_of(&counts, &LEFT_THE_GATE);
        progress.watched = now;
        samples.push((now, progress.past));
        if progress.none_at_ideate.is_none() && count_of(&counts, &["awaiting_ideate"]) == 0 {
            progress.none_at_ideate = Some(now);
        }
        if progress.past >= runs as i64 {
            progress.all_past = Some(now);
            return Ok(progress);
        }
        if now > cap {
            let (t0, p0) = samples[samples.partition_point(|(t, _)| *t < now / 2)];
            progress.recent_rate = (progress.past - p0) as f64 / (now - t0).as_secs_f64().max(1e-9);
            return Ok(progress);
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            println!("  … {:.0} s: {counts:?}", now.as_secs_f64());
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The work done since the first approval (`since`): engine steps (the
/// counter was `steps_before` then), events and kie.ai callbacks, printed
/// with the steps per run and returned as `(steps, events, callbacks)`.
pub async fn work_since(
    probe: &Probe,
    steps_before: i64,
    since: chrono::DateTime<chrono::Utc>,
    runs: usize,
) -> anyhow::Result<(i64, i64, i64)> {
    let steps = probe.engine_steps().await? - steps_before;
    let events = probe.count_since("outbox", "created_at", since).await?;
    let callbacks = probe.count_since("webhook_deliveries", "received_at", since).await?;
    println!(
        "meanwhile: {steps} engine steps ({:.1} per run), {events} events, {callbacks} kie.ai callbacks",
        steps as f64 / runs as f64
    );
    Ok((steps, events, callbacks))
}
