//! Crash points for the fault-injection tests. `MW_FAULT_CRASH=<point>[:<n>]`
//! aborts the process (like `kill -9`: no destructors, no flush) the n-th
//! time (default first) execution passes `<point>`. Unset in production,
//! where every check is one relaxed atomic load after the first.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Fault {
    point: String,
    at: u64,
    seen: AtomicU64,
}

fn configured() -> Option<&'static Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            let raw = std::env::var("MW_FAULT_CRASH").ok()?;
            let (point, at) = match raw.split_once(':') {
                Some((point, n)) => (point.to_string(), n.parse().unwrap_or(1)),
                None => (raw, 1),
            };
            Some(Fault {
                point,
                at,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts here if this is the configured crash point and hit.
pub fn point(name: &str) {
    if let Some(fault) = configured() {
        if fault.point == name && fault.seen.fetch_add(1, Ordering::Relaxed) + 1 == fault.at {
            eprintln!("fault injection: crashing at {name}");
            std::process::abort();
        }
    }
}
