//! What runs cost, as the API shows it: a run's `cost` (its estimate, what
//! was spent, per provider) and the per-day totals of `GET /v1/costs`,
//! from what the store keeps (`store::costs`). Amounts are micro-dollars
//! inside and USD rounded to 6 decimals in JSON.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use myloware_core::ProviderMode;
use myloware_core::costs::{PROVIDERS, usd};
use serde::Serialize;

use crate::error::ApiError;
use crate::store::DaySpend;

/// The longest range `GET /v1/costs` answers, in days (both ends included).
pub const MAX_DAYS: u64 = 366;
/// The range when none is asked: the last 30 days, today included.
pub const DEFAULT_DAYS: u64 = 30;

/// USD per provider; every provider is listed, at 0 when nothing was spent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ByProvider {
    kieai: f64,
    shotstack: f64,
    upload_post: f64,
    openai: f64,
}

impl ByProvider {
    /// From `(provider, micro-dollars)` pairs; a provider not among
    /// [`PROVIDERS`] is left out (and logged).
    fn from_micros<'a>(spent: impl IntoIterator<Item = (&'a str, i64)>) -> ByProvider {
        let mut micros: BTreeMap<&str, i64> = PROVIDERS.iter().map(|p| (*p, 0)).collect();
        for (provider, amount) in spent {
            match micros.get_mut(provider) {
                Some(total) => *total += amount,
                None => tracing::warn!(provider, "a cost of an unknown provider is not shown"),
            }
        }
        ByProvider {
            kieai: usd(micros["kieai"]),
            shotstack: usd(micros["shotstack"]),
            upload_post: usd(micros["upload_post"]),
            openai: usd(micros["openai"]),
        }
    }
}

/// A run's `cost`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunCost {
    /// Expected when the run was created, from its project's pipeline and
    /// the price table; null for a run created before costs were kept.
    estimated_usd: Option<f64>,
    /// Recorded so far (in mock mode: what the calls would have cost).
    spent_usd: f64,
    by_provider: ByProvider,
    /// The run's providers mode: `mock` costs were not paid.
    mode: Option<ProviderMode>,
}

impl RunCost {
    pub fn new(estimated_micros: Option<i64>, mode: Option<&str>, spent: &[(String, i64)]) -> RunCost {
        RunCost {
            estimated_usd: estimated_micros.map(usd),
            spent_usd: usd(spent.iter().map(|(_, micros)| micros).sum()),
            by_provider: ByProvider::from_micros(spent.iter().map(|(p, m)| (p.as_str(), *m))),
            mode: mode.and_then(|m| m.parse().ok()),
        }
    }
}

/// One day of `GET /v1/costs`, for one project in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayCost {
    /// `YYYY-MM-DD`, in UTC.
    day: String,
    project: String,
    mode: ProviderMode,
    spent_usd: f64,
    by_provider: ByProvider,
}

/// `GET /v1/costs`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    /// The first day answered (`YYYY-MM-DD`, UTC).
    from: String,
    /// The last day answered, included.
    to: String,
    /// Every day's `spentUsd`, live and mock together.
    total_usd: f64,
    /// Oldest first, then by project and mode; days without costs are left out.
    days: Vec<DayCost>,
}

/// The days `GET /v1/costs` answers for: `to` (default today, UTC) and
/// `from` (default 29 days before `to`). Dates given in reverse are read
/// in order; a range over [`MAX_DAYS`] keeps its last [`MAX_DAYS`] days
/// (the answer says which). A date that is not a `YYYY-MM-DD` day is a 422
/// naming the parameter.
pub fn range(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let to = to.map(|d| day(d, "to")).transpose()?;
    let from = from.map(|d| day(d, "from")).transpose()?;
    let (first, last) = match (from, to) {
        (None, None) => (earlier(today, DEFAULT_DAYS - 1), today),
        (None, Some(to)) => (earlier(to, DEFAULT_DAYS - 1), to),
        (Some(from), None) => (from.min(today), from.max(today)),
        (Some(from), Some(to)) => (from.min(to), from.max(to)),
    };
    Ok((first.max(earlier(last, MAX_DAYS - 1)), last))
}

fn earlier(day: NaiveDate, days: u64) -> NaiveDate {
    day.checked_sub_days(Days::new(days)).unwrap_or(NaiveDate::MIN)
}

fn day(text: &str, field: &str) -> Result<NaiveDate, ApiError> {
    let well_formed = text.len() == 10 && text.bytes().enumerate().all(|(i, b)| matches!(i, 4 | 7) == (b == b'-'));
    well_formed
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| ApiError::invalid(&["query", field], format!("{text:?} is not a day (YYYY-MM-DD)")))
}

/// The answer for `from`..=`to` from the store's sums.
pub fn report(from: NaiveDate, to: NaiveDate, spent: &[DaySpend]) -> CostReport {
    let mut days: Vec<DayCost> = Vec::new();
    for group in spent.chunk_by(|a, b| (&a.day, &a.project, &a.mode) == (&b.day, &b.project, &b.mode)) {
        let first = &group[0];
        let Ok(mode) = first.mode.parse::<ProviderMode>() else {
            tracing::warn!(mode = %first.mode, "costs of an unknown mode are not shown");
            continue;
        };
        let micros: i64 = group.iter().map(|d| d.usd_micros).sum();
        days.push(DayCost {
            day: first.day.clone(),
            project: first.project.clone(),
            mode,
            spent_usd: usd(micros),
            by_provider: ByProvider::from_micros(group.iter().map(|d| (d.provider.as_str(), d.usd_micros))),
        });
    }
    let total: i64 = spent.iter().map(|d| d.usd_micros).sum();
    CostReport {
        from: from.to_string(),
        to: to.to_string(),
        total_usd: usd(total),
        days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn answered(from: Option<&str>, to: Option<&str>) -> (String, String) {
        let (first, last) = range(from, to, date("2026-03-10")).unwrap();
        (first.to_string(), last.to_string())
    }

    #[test]
    fn the_range_defaults_to_the_last_30_days_and_keeps_at_most_366() {
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(answered(None, None), pair("2026-02-09", "2026-03-10"));
        assert_eq!(answered(None, Some("2026-01-31")), pair("2026-01-02", "2026-01-31"));
        assert_eq!(answered(Some("2026-03-01"), None), pair("2026-03-01", "2026-03-10"));
        assert_eq!(
            answered(Some("2026-01-01"), Some("2026-01-01")),
            pair("2026-01-01", "2026-01-01")
        );
        assert_eq!(
            answered(Some("2026-02-01"), Some("2026-01-01")),
            pair("2026-01-01", "2026-02-01"),
            "read in order"
        );
        assert_eq!(
            answered(Some("2020-01-01"), Some("2026-01-01")),
            pair("2025-01-01", "2026-01-01"),
            "the last 366 days"
        );
        assert_eq!(answered(Some("0001-01-01"), Some("9999-12-31")).1, "9999-12-31");
    }

    #[test]
    fn a_date_that_is_not_a_day_names_its_parameter() {
        let today = date("2026-03-10");
        for bad in [
            "2026-02-30",
            "2026-2-01",
            "20260201",
            "yesterday",
            "2026-02-01x",
            "",
            "+2026-02-01",
        ] {
            let Err(ApiError::Validation(errors)) = range(Some(bad), None, today) else {
                panic!("{bad:?} was taken")
            };
            assert_eq!(errors[0].loc, ["query", "from"], "{bad:?}");
        }
        assert!(matches!(
            range(None, Some("2026-13-01"), today),
            Err(ApiError::Validation(errors)) if errors[0].loc == ["query", "to"]
        ));
    }

    #[test]
    fn the_report_groups_providers_per_day_project_and_mode() {
        let spend = |day: &str, project: &str, mode: &str, provider: &str, usd_micros| DaySpend {
            day: day.into(),
            project: project.into(),
            mode: mode.into(),
            provider: provider.into(),
            usd_micros,
        };
        let rows = [
            spend("2026-03-01", "aismr", "live", "kieai", 4_800_000),
            spend("2026-03-01", "aismr", "live", "shotstack", 480_000),
            spend("2026-03-01", "aismr", "mock", "kieai", 400_000),
            spend("2026-03-02", "test_video_gen", "live", "openai", 450),
        ];
        let report = report(date("2026-03-01"), date("2026-03-02"), &rows);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["from"], "2026-03-01");
        assert_eq!(json["totalUsd"], 5.68045);
        assert_eq!(json["days"].as_array().unwrap().len(), 3);
        assert_eq!(
            json["days"][0],
            serde_json::json!({"day": "2026-03-01", "project": "aismr", "mode": "live", "spentUsd": 5.28,
                "byProvider": {"kieai": 4.8, "shotstack": 0.48, "upload_post": 0.0, "openai": 0.0}})
        );
        assert_eq!(json["days"][1]["mode"], "mock");
        assert_eq!(json["days"][2]["byProvider"]["openai"], 0.00045);
    }

    #[test]
    fn a_runs_cost_lists_every_provider() {
        let cost = RunCost::new(
            Some(5_880_000),
            Some("live"),
            &[("kieai".into(), 800_000), ("openai".into(), 1_234)],
        );
        assert_eq!(
            serde_json::to_value(&cost).unwrap(),
            serde_json::json!({"estimatedUsd": 5.88, "spentUsd": 0.801234, "mode": "live",
                "byProvider": {"kieai": 0.8, "shotstack": 0.0, "upload_post": 0.0, "openai": 0.001234}})
        );
        let before = serde_json::to_value(RunCost::new(None, None, &[])).unwrap();
        assert_eq!(
            (before["estimatedUsd"].clone(), before["spentUsd"].clone()),
            (serde_json::Value::Null, 0.0.into())
        );
    }
}
