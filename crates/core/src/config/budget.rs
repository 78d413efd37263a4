//! Spending limits and caps: `SPEND_LIMIT_DAILY_USD`,
//! `SPEND_LIMIT_MONTHLY_USD` (live spend, all projects; a project's own
//! limits are in its definition) and `MAX_ACTIVE_RUNS`.

use chrono::{Datelike, NaiveDate};

use super::reader::Reader;
use crate::costs::limits::Limit;
use crate::costs::micros;
use crate::project::BudgetSpec;

/// What the whole deployment may spend and run at once. `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Live spend per UTC day, in micro-dollars.
    pub daily_micros: Option<i64>,
    /// Live spend per UTC calendar month, in micro-dollars.
    pub monthly_micros: Option<i64>,
    /// Runs started and not yet ended (proposals waiting for the workflow
    /// gate do not count).
    pub max_active_runs: Option<u32>,
    /// Provider jobs of live runs in flight at once, at each provider
    /// (kie.ai clips, Shotstack renders).
    pub max_provider_jobs: Option<u32>,
}

impl BudgetConfig {
    /// The limits on a run of `project` (whose own limits are `spec`) on `today`.
    pub fn limits(&self, project: &str, spec: Option<BudgetSpec>, today: NaiveDate) -> Vec<Limit> {
        let month = today.with_day(1).expect("every month has a first day");
        let next_month = month
            .checked_add_months(chrono::Months::new(1))
            .expect("a date before the year 262143");
        let tomorrow = today.succ_opt().expect("a date before the year 262143");
        let spec = spec.unwrap_or_default();
        let project_limit = |usd: Option<f64>| usd.map(micros);
        [
            (
                "daily spend limit (SPEND_LIMIT_DAILY_USD)".to_string(),
                today,
                tomorrow,
                None,
                self.daily_micros,
            ),
            (
                "monthly spend limit (SPEND_LIMIT_MONTHLY_USD)".to_string(),
                month,
                next_month,
                None,
                self.monthly_micros,
            ),
            (
                format!("daily spend limit of project {project}"),
                today,
                tomorrow,
                Some(project.to_string()),
                project_limit(spec.daily_usd),
            ),
            (
                format!("monthly spend limit of project {project}"),
                month,
                next_month,
                Some(project.to_string()),
                project_limit(spec.monthly_usd),
            ),
        ]
        .into_iter()
        .filter_map(|(name, since, until, project, micros)| {
            micros.map(|micros| Limit {
                name,
                since,
                until,
                project,
                micros,
            })
        })
        .collect()
    }
}

pub(super) fn budget<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> BudgetConfig {
    BudgetConfig {
        daily_micros: limit(r, "SPEND_LIMIT_DAILY_USD"),
        monthly_micros: limit(r, "SPEND_LIMIT_MONTHLY_USD"),
        max_active_runs: cap(r, "MAX_ACTIVE_RUNS"),
        max_provider_jobs: cap(r, "MAX_PROVIDER_JOBS"),
    }
}

/// A cap of 1 or more; unset: none.
fn cap<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, var: &'static str) -> Option<u32> {
    r.get(var)?;
    match r.parse::<u32>(var, 0) {
        0 => {
            if r.problems.iter().all(|p| p.var != var) {
                r.problem(var, "must be at least 1 (unset it for no cap)");
            }
            None
        }
        cap => Some(cap),
    }
}

/// A limit in USD (`12.5`), kept in micro-dollars; zero or more.
fn limit<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, var: &'static str) -> Option<i64> {
    r.get(var)?;
    let usd: f64 = r.parse(var, -1.0);
    if !usd.is_finite() || usd < 0.0 {
        if r.problems.iter().all(|p| p.var != var) {
            r.problem(var, "must be a number of USD, 0 or more");
        }
        return None;
    }
    Some(micros(usd))
}
