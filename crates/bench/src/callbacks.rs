//! The kie.ai callback workload that `kieai-callbacks` and `scale-out`
//! share: signed clip callbacks into the API's `POST
//! /v1/webhooks/kieai?runId=&index=&token=`, each one sent twice: verified
//! (`X-Webhook-Timestamp` / `X-Webhook-Signature` with
//! `KIEAI_SIGNING_SECRET`, and the per-clip token of the URL), deduplicated
//! (the second copy must answer `duplicate`), recorded, and relayed to the
//! orchestrator as a signal (`kieai:{taskId}`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use myloware_core::signing;
use serde_json::{Value, json};

use crate::load::{self, LoadResult, Stop, Workload};
use crate::services;
use crate::stats::{Summary, summarize_us};

/// Clips of a run, so callbacks per run.
pub const CLIPS_PER_RUN: usize = 12;
/// Originals of this many callbacks, then their copies, and so on: a copy
/// comes soon after its original, sometimes while it is still in flight.
const CHUNK: usize = 256;
/// The task ids of the workload's callbacks start with this (the
/// orchestrator's signal ids with `kieai:` before it).
pub const TASK_PREFIX: &str = "benchtask";

/// Runs needed for `callbacks` distinct callbacks.
pub fn runs_for(callbacks: usize) -> usize {
    callbacks.div_ceil(CLIPS_PER_RUN)
}

/// The callbacks: delivery `i` is callback `order[i]`; callback `c` is clip
/// `c % 12` of run `c / 12`.
pub struct Callbacks {
    api: SocketAddr,
    run_ids: Vec<String>,
    order: Vec<usize>,
    accepted: AtomicU64,
    duplicate: AtomicU64,
    other: AtomicU64,
}

impl Callbacks {
    /// `callbacks` distinct callbacks to the API at `api` for `run_ids`
    /// (at least [`runs_for`] of them), each sent twice.
    pub fn new(api: SocketAddr, run_ids: Vec<String>, callbacks: usize) -> Arc<Callbacks> {
        assert!(run_ids.len() >= runs_for(callbacks), "too few runs for the callbacks");
        let mut order = Vec::with_capacity(callbacks * 2);
        for chunk in (0..callbacks).collect::<Vec<_>>().chunks(CHUNK) {
            order.extend_from_slice(chunk);
            order.extend_from_slice(chunk);
        }
        Arc::new(Callbacks {
            api,
            run_ids,
            order,
            accepted: AtomicU64::new(0),
            duplicate: AtomicU64::new(0),
            other: AtomicU64::new(0),
        })
    }

    /// The answers so far.
    pub fn answers(&self) -> Answers {
        Answers {
            accepted: self.accepted.load(Ordering::Relaxed),
            duplicate: self.duplicate.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
        }
    }
}

impl Workload for Callbacks {
    fn request(&self, i: u64, buf: &mut Vec<u8>) -> bool {
        let Some(&callback) = self.order.get(i as usize) else {
            return false;
        };
        let run_id = &self.run_ids[callback / CLIPS_PER_RUN];
        let index = callback % CLIPS_PER_RUN;
        let task_id = format!("{TASK_PREFIX}{callback:08}");
        // The bench's services run in mock mode: a mock run's clip purpose.
        let purpose = signing::clip_purpose(myloware_core::ProviderMode::Mock, index as u32);
        let token = signing::callback_token(services::HITL_SECRET.as_bytes(), run_id, &purpose);
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = signing::kieai_signature(services::KIEAI_SIGNING_SECRET.as_bytes(), &task_id, &timestamp);
        let body = json!({
            "code": 200, "msg": "success",
            "data": {"taskId": task_id, "info": {"resultUrls": [format!("https://mock.kie.ai/clips/{task_id}.mp4")],
                     "resolution": "1080p"}, "fallbackFlag": false}
        });
        load::post_json(
            buf,
            self.api,
            &format!("/v1/webhooks/kieai?runId={run_id}&index={index}&token={token}"),
            &[("x-webhook-timestamp", &timestamp), ("x-webhook-signature", &signature)],
            body.to_string().as_bytes(),
        );
        true
    }

    fn response(&self, _i: u64, status: u16, body: &[u8]) -> bool {
        let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match (status, answer["status"].as_str()) {
            (200, Some("accepted")) => self.accepted.fetch_add(1, Ordering::Relaxed),
            (200, Some("duplicate")) => self.duplicate.fetch_add(1, Ordering::Relaxed),
            _ => self.other.fetch_add(1, Ordering::Relaxed),
        };
        status == 200
    }
}

/// The API's answers to the callbacks.
#[derive(Debug, Clone, Copy)]
pub struct Answers {
    pub accepted: u64,
    pub duplicate: u64,
    pub other: u64,
}

/// The callbacks sent, all of them.
pub struct Sent {
    /// `callbacks` distinct ones, each sent twice.
    pub callbacks: usize,
    pub result: LoadResult,
    /// From the first request to the last answer.
    pub wall: Duration,
    pub answers: Answers,
}

impl Sent {
    /// Answered deliveries (originals and copies).
    pub fn deliveries(&self) -> u64 {
        self.result.ok + self.result.refused
    }

    /// Answered deliveries per second: the benchmarks' "callbacks/s".
    pub fn rate(&self) -> f64 {
        self.deliveries() as f64 / self.wall.as_secs_f64()
    }

    pub fn latency(&self) -> Summary {
        summarize_us(&self.result.latencies_us)
    }

    /// Every original accepted once, every copy answered `duplicate`,
    /// nothing else, no connection error.
    pub fn exact(&self) -> bool {
        let Answers {
            accepted,
            duplicate,
            other,
        } = self.answers;
        let callbacks = self.callbacks as u64;
        accepted == callbacks && duplicate == callbacks && other == 0 && self.result.errors == 0
    }

    /// The two lines every benchmark of callbacks prints: the rate and
    /// latency, then the answers.
    pub fn print(&self) {
        let Answers {
            accepted,
            duplicate,
            other,
        } = self.answers;
        println!(
            "{} deliveries in {:.2} s = {:.0} callbacks/s ({:.0} distinct/s); latency {}",
            self.deliveries(),
            self.wall.as_secs_f64(),
            self.rate(),
            accepted as f64 / self.wall.as_secs_f64(),
            self.latency().line("ms")
        );
        println!(
            "answers: {accepted} accepted, {duplicate} duplicate, {other} other, {} connection errors",
            self.result.errors
        );
    }

    /// `3122/s (24000 deliveries in 7.69 s; 12000 accepted, 12000 duplicate, 0 other)`.
    pub fn measured(&self) -> String {
        let Answers {
            accepted,
            duplicate,
            other,
        } = self.answers;
        format!(
            "{:.0}/s ({} deliveries in {:.2} s; {accepted} accepted, {duplicate} duplicate, {other} other)",
            self.rate(),
            self.deliveries(),
            self.wall.as_secs_f64()
        )
    }

    /// `{"accepted": …, "duplicate": …, "other": …, "errors": …}`.
    pub fn answers_json(&self) -> Value {
        let Answers {
            accepted,
            duplicate,
            other,
        } = self.answers;
        json!({"accepted": accepted, "duplicate": duplicate, "other": other, "errors": self.result.errors})
    }
}

/// Sends `callbacks` distinct callbacks for `run_ids`, each twice, to the
/// API at `api` over `connections` connections, as fast as it answers.
pub async fn send(api: SocketAddr, run_ids: Vec<String>, callbacks: usize, connections: usize) -> anyhow::Result<Sent> {
    let workload = Callbacks::new(api, run_ids, callbacks);
    let began = Instant::now();
    let result = load::closed_loop(api, connections, Stop::Exhausted, workload.clone()).await?;
    let wall = began.elapsed();
    Ok(Sent {
        callbacks,
        result,
        wall,
        answers: workload.answers(),
    })
}
