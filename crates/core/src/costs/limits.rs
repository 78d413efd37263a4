//! Spending limits: which apply to a run, and whether an amount fits in
//! what they have left. Limits count live spend per UTC day and per UTC
//! calendar month, for every project (`SPEND_LIMIT_*_USD`) and for one
//! project (its `[budget]`). The API checks a run's estimate at its start;
//! the orchestrator checks each paid call before making it, and holds the
//! run until the limit allows (see docs/operations.md, "Budgets and caps").
//! Which limits apply to a run: [`crate::config::BudgetConfig::limits`].

use chrono::NaiveDate;

use super::usd;

/// One limit on live spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// What a refusal or a hold calls it.
    pub name: String,
    /// The first UTC day it counts: today, or the month's first day.
    pub since: NaiveDate,
    /// The UTC day it counts afresh: tomorrow, or next month's first day.
    pub until: NaiveDate,
    /// Whose spend: one project's, or (`None`) every project's.
    pub project: Option<String>,
    pub micros: i64,
}

/// A limit that `needed` more micro-dollars would cross.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: Limit,
    pub spent: i64,
    pub needed: i64,
}

impl Limit {
    /// `Some` when `needed` does not fit in what is left after `spent`.
    pub fn exceeded(&self, spent: i64, needed: i64) -> Option<Exceeded> {
        (needed > self.left(spent)).then(|| Exceeded {
            limit: self.clone(),
            spent,
            needed,
        })
    }

    fn left(&self, spent: i64) -> i64 {
        (self.micros - spent).max(0)
    }
}

impl Exceeded {
    /// "the daily spend limit … is 5.00 USD, 4.80 USD of it spent, 0.20 USD
    /// left; `what` is estimated at 0.40 USD".
    pub fn describe(&self, what: &str) -> String {
        format!(
            "the {} is {:.2} USD, {:.2} USD of it spent, {:.2} USD left; {what} is estimated at {:.2} USD",
            self.limit.name,
            usd(self.limit.micros),
            usd(self.spent),
            usd(self.limit.left(self.spent)),
            usd(self.needed),
        )
    }

    /// What a hold on this limit tells the API (USD, like every cost).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "limit": self.limit.name,
            "limitUsd": usd(self.limit.micros),
            "spentUsd": usd(self.spent),
            "leftUsd": usd(self.limit.left(self.spent)),
            "neededUsd": usd(self.needed),
            "until": self.limit.until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BudgetConfig;
    use crate::project::BudgetSpec;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_limit_counts_from_the_start_of_its_period_to_the_next() {
        let global = BudgetConfig {
            daily_micros: Some(5_000_000),
            monthly_micros: Some(100_000_000),
            max_active_runs: None,
            max_provider_jobs: None,
        };
        let spec = BudgetSpec {
            daily_usd: None,
            monthly_usd: Some(20.0),
        };
        let limits = global.limits("aismr", Some(spec), day("2026-12-31"));
        let periods: Vec<_> = limits
            .iter()
            .map(|l| (l.since, l.until, l.project.as_deref(), l.micros))
            .collect();
        assert_eq!(
            periods,
            [
                (day("2026-12-31"), day("2027-01-01"), None, 5_000_000),
                (day("2026-12-01"), day("2027-01-01"), None, 100_000_000),
                (day("2026-12-01"), day("2027-01-01"), Some("aismr"), 20_000_000),
            ]
        );
        assert!(
            BudgetConfig::default()
                .limits("aismr", None, day("2026-12-31"))
                .is_empty()
        );
    }

    #[test]
    fn an_amount_fits_in_what_is_left_or_names_the_numbers() {
        let global = BudgetConfig {
            daily_micros: Some(5_000_000),
            ..BudgetConfig::default()
        };
        let limit = &global.limits("aismr", None, day("2026-12-07"))[0];
        assert_eq!(limit.exceeded(4_600_000, 400_000), None, "exactly what is left fits");
        let exceeded = limit.exceeded(4_800_000, 400_000).expect("0.40 does not fit in 0.20");
        assert_eq!(
            exceeded.describe("this run"),
            "the daily spend limit (SPEND_LIMIT_DAILY_USD) is 5.00 USD, 4.80 USD of it spent, 0.20 USD left; \
             this run is estimated at 0.40 USD"
        );
        let overspent = limit.exceeded(6_000_000, 1).expect("nothing is left");
        assert_eq!(overspent.to_json()["leftUsd"], 0.0);
        assert_eq!(overspent.to_json()["until"], "2026-12-08");
    }
}
