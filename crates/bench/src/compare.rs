//! A real endpoint against its ceiling (a bare axum handler doing the least
//! the endpoint must do), loaded the same way in the same run: rounds of
//! ceiling and real back to back, in ABBA order (ceiling, real, real,
//! ceiling, …) so that a drift of the machine's load hits both alike. The
//! ratio of each round is real/ceiling; the verdict uses their median.
//! Further sides (`--breakdown`) sit between the two, to show where the
//! difference goes.
//!
//! The servers run on a runtime of their own ([`Runtimes`]), the load
//! generator on another, as two processes would (the CPUs are shared
//! either way).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::load::{self, LoadResult, RoundRobin, Stop};
use crate::stats::{self, Summary, r3, summarize_us};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientKind {
    /// The minimal HTTP/1.1 client of `load` (least client CPU).
    Raw,
    /// reqwest, one pooled client.
    Reqwest,
}

/// The load options every comparison takes.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Concurrent connections (closed loop: each sends its next request
    /// when the previous is answered).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Rounds; each loads the ceiling and the real endpoint once (--quick: 2).
    #[arg(long, default_value_t = 4, default_value_if("quick", "true", "2"))]
    pub rounds: usize,
    /// Seconds of load per side and round that are measured (--quick: 2).
    #[arg(long, default_value_t = 5.0, default_value_if("quick", "true", "2"))]
    pub secs: f64,
    /// Seconds of load before each measurement (connections open, caches
    /// warm; --quick: 0.5).
    #[arg(long, default_value_t = 1.0, default_value_if("quick", "true", "0.5"))]
    pub warmup_secs: f64,
    #[arg(long, value_enum, default_value_t = ClientKind::Raw)]
    pub client: ClientKind,
    /// Worker threads of the servers' runtime (default: the CPUs, as `mw`).
    #[arg(long)]
    pub server_threads: Option<usize>,
    /// Worker threads of the load generator's runtime (default: the CPUs).
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// Also load intermediate servers that show where the difference
    /// between the ceiling and the real endpoint goes.
    #[arg(long)]
    pub breakdown: bool,
    /// Load only one side (to profile it, e.g. with `perf record -p`); no
    /// ratio then.
    #[arg(long, value_enum)]
    pub only: Option<OnlySide>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnlySide {
    Bare,
    Api,
}

impl LoadArgs {
    /// `64 connections, 4 rounds of 5 s per side (+1 s warm-up), Raw client`.
    pub fn describe(&self) -> String {
        format!(
            "{} connections, {} rounds of {} s per side (+{} s warm-up), {:?} client",
            self.connections, self.rounds, self.secs, self.warmup_secs, self.client
        )
    }

    fn stop(&self) -> Stop {
        Stop::Timed {
            warmup: Duration::from_secs_f64(self.warmup_secs),
            measure: Duration::from_secs_f64(self.secs),
        }
    }
}

/// The servers' runtime and the load generator's.
pub struct Runtimes {
    pub servers: tokio::runtime::Runtime,
    pub load: tokio::runtime::Runtime,
}

impl Runtimes {
    pub fn new(args: &LoadArgs) -> std::io::Result<Runtimes> {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let build = |threads: usize, name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .thread_name(name)
                .enable_all()
                .build()
        };
        Ok(Runtimes {
            servers: build(args.server_threads.unwrap_or(cpus), "server")?,
            load: build(args.client_threads.unwrap_or(cpus), "load")?,
        })
    }
}

/// One side of a comparison: where it listens and the paths to request.
pub struct Side {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub paths: Vec<String>,
}

/// What one side measured over all rounds.
#[derive(Default)]
pub struct SideResult {
    pub rates: Vec<f64>,
    pub latencies_us: Vec<f64>,
    pub refused: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl SideResult {
    pub fn latency(&self) -> Summary {
        summarize_us(&self.latencies_us)
    }

    pub fn median_rate(&self) -> f64 {
        stats::median(&self.rates)
    }

    fn add(&mut self, result: LoadResult) {
        self.rates.push(result.rate());
        self.refused += result.refused;
        self.errors += result.errors;
        if self.first_error.is_none() {
            self.first_error = result.first_error;
        }
        self.latencies_us.extend(result.latencies_us);
    }

    fn to_json(&self) -> Value {
        json!({"rates": self.rates.iter().map(|r| r3(*r)).collect::<Vec<_>>(), "median_rate": r3(self.median_rate()),
               "latency_ms": self.latency().to_json(), "refused": self.refused, "errors": self.errors})
    }
}

/// Every side's results (the ceiling first, the real endpoint second,
/// then any breakdown sides) and the real/ceiling ratio of each round.
pub struct Comparison {
    pub sides: Vec<(&'static str, SideResult)>,
    pub ratios: Vec<f64>,
}

impl Comparison {
    pub fn ceiling(&self) -> &SideResult {
        &self.sides[0].1
    }

    pub fn real(&self) -> &SideResult {
        &self.sides[1].1
    }

    pub fn median_ratio(&self) -> f64 {
        stats::median(&self.ratios)
    }

    /// Prints each side's median rate, its share of the ceiling's, and its
    /// latency; then the ratios.
    pub fn print(&self) {
        let ceiling = self.ceiling().median_rate();
        for (name, side) in &self.sides {
            println!(
                "{name:<12} median {:>8.0} req/s ({:>3.0} % of {}), {}",
                side.median_rate(),
                side.median_rate() / ceiling * 100.0,
                self.sides[0].0,
                side.latency().line("ms")
            );
        }
        println!(
            "ratio {}/{} per round: {:?}; median {:.3}",
            self.sides[1].0,
            self.sides[0].0,
            self.ratios.iter().map(|r| r3(*r)).collect::<Vec<_>>(),
            self.median_ratio()
        );
    }

    pub fn to_json(&self) -> Value {
        let sides: serde_json::Map<String, Value> = self
            .sides
            .iter()
            .map(|(name, side)| (name.to_string(), side.to_json()))
            .collect();
        json!({"ceiling": self.sides[0].0, "real": self.sides[1].0, "sides": sides,
               "ratios": self.ratios.iter().map(|r| r3(*r)).collect::<Vec<_>>(), "median_ratio": r3(self.median_ratio())})
    }
}

async fn load_once(side: &Side, headers: &[(&str, &str)], args: &LoadArgs) -> anyhow::Result<LoadResult> {
    match args.client {
        ClientKind::Raw => {
            let requests = side
                .paths
                .iter()
                .map(|path| load::get_request(side.addr, path, headers))
                .collect();
            load::closed_loop(side.addr, args.connections, args.stop(), Arc::new(RoundRobin(requests))).await
        }
        ClientKind::Reqwest => {
            let urls = side.paths.iter().map(|p| format!("http://{}{p}", side.addr)).collect();
            load::closed_loop_reqwest(Arc::new(urls), headers, args.connections, args.stop()).await
        }
    }
}

/// Loads every side once per round, in ABBA order (even rounds in the
/// given order, odd rounds reversed), with the same `headers` on all,
/// printing each measurement. `sides[0]` is the ceiling, `sides[1]` the
/// real endpoint; later ones break the difference down.
pub async fn compare(sides: &[Side], headers: &[(&str, &str)], args: &LoadArgs) -> anyhow::Result<Comparison> {
    assert!(sides.len() >= 2, "a ceiling and a real side");
    let mut result = Comparison {
        sides: sides.iter().map(|s| (s.name, SideResult::default())).collect(),
        ratios: Vec::new(),
    };
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut rates = vec![f64::NAN; sides.len()];
        for index in order {
            let wanted = match args.only {
                None => true,
                Some(OnlySide::Bare) => index == 0,
                Some(OnlySide::Api) => index == 1,
            };
            if !wanted {
                continue;
            }
            let side = &sides[index];
            let measured = load_once(side, headers, args).await?;
            let latency = summarize_us(&measured.latencies_us);
            println!(
                "  round {} {:<12} {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms{}{}",
                round + 1,
                side.name,
                measured.rate(),
                latency.p50,
                latency.p99,
                if measured.refused > 0 {
                    format!("  ({} non-2xx answers)", measured.refused)
                } else {
                    String::new()
                },
                if measured.errors > 0 {
                    format!("  ({} errors, first: {:?})", measured.errors, measured.first_error)
                } else {
                    String::new()
                },
            );
            rates[index] = measured.rate();
            result.sides[index].1.add(measured);
        }
        result.ratios.push(rates[1] / rates[0]);
    }
    Ok(result)
}
