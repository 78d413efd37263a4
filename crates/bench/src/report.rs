//! What every benchmark prints: the machine (CPUs, CPU model, kernel, load
//! before and after), each target with its measured value and verdict, and
//! a one-line JSON summary for scripts.

use serde_json::{Map, Value, json};

/// The machine a benchmark ran on.
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// 1-, 5- and 15-minute load averages when the benchmark started.
    pub load_before: [f64; 3],
}

impl Machine {
    pub fn probe() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, model)| model.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel,
            load_before: load_average(),
        }
    }

    pub fn print(&self) {
        let [one, five, fifteen] = self.load_before;
        println!(
            "  machine     {} CPUs ({}), Linux {}, load {one:.2} {five:.2} {fifteen:.2} at start",
            self.nproc, self.cpu_model, self.kernel
        );
    }

    fn to_json(&self) -> Value {
        let after = load_average();
        json!({"nproc": self.nproc, "cpu": self.cpu_model, "kernel": self.kernel,
               "load_before": self.load_before, "load_after": after})
    }
}

/// `/proc/loadavg`'s three averages (zeros when unreadable).
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
    ]
}

/// One target and how the run did against it.
pub struct Check {
    pub target: String,
    pub measured: String,
    /// `None`: not applicable to this run (e.g. a Postgres target on SQLite).
    pub pass: Option<bool>,
}

impl Check {
    pub fn new(target: impl Into<String>, measured: impl Into<String>, pass: bool) -> Check {
        Check {
            target: target.into(),
            measured: measured.into(),
            pass: Some(pass),
        }
    }

    pub fn not_applicable(target: impl Into<String>, measured: impl Into<String>) -> Check {
        Check {
            target: target.into(),
            measured: measured.into(),
            pass: None,
        }
    }

    fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        }
    }
}

/// A benchmark's results: its checks and any detail worth keeping.
pub struct Report {
    pub bench: &'static str,
    pub machine: Machine,
    pub checks: Vec<Check>,
    pub details: Map<String, Value>,
}

impl Report {
    pub fn new(bench: &'static str, machine: Machine) -> Report {
        Report {
            bench,
            machine,
            checks: Vec::new(),
            details: Map::new(),
        }
    }

    pub fn check(&mut self, check: Check) {
        self.checks.push(check);
    }

    pub fn detail(&mut self, key: &str, value: Value) {
        self.details.insert(key.to_string(), value);
    }

    /// Prints the report once the measurement succeeded; else the failure.
    pub fn conclude(&self, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        outcome?;
        self.print();
        Ok(())
    }

    /// Prints the targets table and the JSON line (last line of the output).
    pub fn print(&self) {
        let [one, five, fifteen] = load_average();
        println!();
        println!(
            "targets ({} CPUs, load {one:.2} {five:.2} {fifteen:.2} at the end):",
            self.machine.nproc
        );
        let width = self.checks.iter().map(|c| c.target.len()).max().unwrap_or(0);
        for check in &self.checks {
            println!(
                "  [{:<4}] {:<width$}  measured: {}",
                check.verdict(),
                check.target,
                check.measured
            );
        }
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| json!({"target": c.target, "measured": c.measured, "verdict": c.verdict()}))
            .collect();
        let mut summary = Map::new();
        summary.insert("bench".into(), json!(self.bench));
        summary.insert("machine".into(), self.machine.to_json());
        summary.insert("checks".into(), Value::Array(checks));
        summary.insert(
            "all_met".into(),
            json!(self.checks.iter().all(|c| c.pass != Some(false))),
        );
        summary.extend(self.details.clone());
        println!();
        println!("{}", Value::Object(summary));
    }
}
